//! `coffer operator backup` and `coffer operator restore`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use coffer_core::CoreError;
use coffer_core::backup::{self, BackupSummary};
use serde::Serialize;

use crate::cli::{BackupArgs, Global, RestoreArgs};
use crate::exit::{Status, fail};
use crate::{input, output, settings};

#[derive(Serialize)]
struct Report<'a> {
    file: &'a Path,
    bytes: Option<u64>,
    #[serde(flatten)]
    summary: &'a BackupSummary,
}

fn describe(s: &BackupSummary) -> String {
    format!(
        "{} secrets, {} versions, {} tokens ({} records); checksum {}",
        s.secrets, s.versions, s.tokens, s.records, s.checksum
    )
}

/// The exit status and message of a backup or restore failure.
fn core_failure(e: CoreError) -> anyhow::Error {
    let status = match &e {
        CoreError::InvalidUnsealKey(_) => Status::Denied,
        CoreError::Conflict(_) => Status::Conflict,
        CoreError::Invalid(_) => Status::Invalid,
        _ => Status::Other,
    };
    fail(status, e.to_string())
}

pub async fn backup(g: &Global, a: BackupArgs) -> anyhow::Result<Status> {
    use std::os::unix::fs::OpenOptionsExt;
    if a.file.exists() {
        return Err(fail(
            Status::Conflict,
            format!(
                "{} exists; a backup never overwrites a file",
                a.file.display()
            ),
        ));
    }
    let partial = PathBuf::from(format!("{}.partial", a.file.display()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let outcome = async {
        let bytes = settings::client(g)?.backup(&mut out).await?;
        use tokio::io::AsyncWriteExt;
        out.flush().await?;
        out.get_ref().sync_all().await?;
        // A backup cut short (the server failed mid-way) lacks its end.
        let mut check = tokio::io::BufReader::new(tokio::fs::File::open(&partial).await?);
        let summary = backup::read_summary(&mut check)
            .await
            .map_err(core_failure)?;
        anyhow::Ok((bytes, summary))
    }
    .await;
    let (bytes, summary) = match outcome {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, &a.file)
        .with_context(|| format!("cannot rename {} into place", partial.display()))?;
    if a.json {
        output::json(&Report {
            file: &a.file,
            bytes: Some(bytes),
            summary: &summary,
        })?;
    } else {
        println!(
            "Backup written to {} ({bytes} bytes): {}.",
            a.file.display(),
            describe(&summary)
        );
        eprintln!("Restoring it needs the original unseal keys: `coffer operator restore`.");
    }
    Ok(Status::Ok)
}

/// The unseal keys: one per line on stdin, or prompted for.
fn read_shares(threshold: u8) -> anyhow::Result<Vec<String>> {
    if input::stdin_is_terminal() {
        let mut shares = Vec::new();
        for i in 1..=threshold {
            let key = input::prompt(&format!("Unseal key {i} of {threshold}"), false)?;
            shares.push(key.expose_secret().trim().to_string());
        }
        return Ok(shares);
    }
    let all = input::read_stdin()?;
    let shares: Vec<String> = all
        .expose_secret()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if shares.len() < threshold as usize {
        return Err(fail(
            Status::Invalid,
            format!(
                "this backup needs {threshold} unseal key(s), one per line on stdin; got {}",
                shares.len()
            ),
        ));
    }
    Ok(shares)
}

pub async fn restore(a: RestoreArgs) -> anyhow::Result<Status> {
    let (storage, data_dir) = match (&a.config, &a.storage, &a.data_dir) {
        (Some(path), storage, _) => {
            let mut c = coffer_server::ServerConfig::load(path)
                .map_err(|e| fail(Status::Usage, e.to_string()))?;
            if let Some(url) = storage {
                c.storage.url = Some(url.clone());
            }
            (c.storage, c.data_dir)
        }
        (None, Some(url), _) => {
            let s = coffer_server::StorageConfig {
                url: Some(url.clone()),
                ..Default::default()
            };
            if !s.is_postgres() {
                return Err(fail(
                    Status::Usage,
                    "--storage must be a postgres:// URL (use --data-dir for SQLite)",
                ));
            }
            (s, PathBuf::new())
        }
        (None, None, Some(dir)) => (coffer_server::StorageConfig::default(), dir.clone()),
        (None, None, None) => {
            return Err(fail(
                Status::Usage,
                "say where to restore: --data-dir DIR, --storage URL or --config FILE",
            ));
        }
    };
    let mut input_file = tokio::io::BufReader::new(
        tokio::fs::File::open(&a.file)
            .await
            .with_context(|| format!("cannot open {}", a.file.display()))?,
    );
    let (header, _) = backup::read_header(&mut input_file)
        .await
        .map_err(core_failure)?;
    drop(input_file);
    // Wiped from memory when the restore is done.
    let shares = zeroize::Zeroizing::new(read_shares(header.threshold)?);
    if !storage.is_postgres() {
        settings::create_private_dir(&data_dir)?;
    }
    let (store, _lock) = coffer_server::open_store(&storage, &data_dir)
        .await
        .map_err(crate::server_cmd::node_failure)?;
    let file = a.file.clone();
    let outcome = backup::restore(
        &*store,
        || {
            let file = file.clone();
            async move {
                tokio::fs::File::open(&file)
                    .await
                    .map(tokio::io::BufReader::new)
            }
        },
        &shares,
    )
    .await;
    store.close().await.context("closing the store")?;
    let summary = outcome.map_err(core_failure)?;
    if a.json {
        output::json(&Report {
            file: &a.file,
            bytes: None,
            summary: &summary,
        })?;
    } else {
        println!(
            "Restored {} into {}: {}.",
            a.file.display(),
            store.backend_name(),
            describe(&summary)
        );
        eprintln!(
            "Start the server on it and unseal it with the original unseal keys ({} of {}).",
            header.threshold, header.shares
        );
    }
    Ok(Status::Ok)
}
