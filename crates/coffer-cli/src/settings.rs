//! Client settings: the server address, the token (from `COFFER_TOKEN` or the
//! file `coffer login` writes), and where files live.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use coffer_client::Client;
use coffer_crypto::SecretString;

use crate::cli::Global;
use crate::exit::{Status, fail};

/// Where a client connects when neither `--addr` nor `COFFER_ADDR` is set.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:8270";

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `$XDG_CONFIG_HOME/coffer` or `~/.config/coffer`.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))
        .map(|d| d.join("coffer"))
}

/// `$XDG_DATA_HOME/coffer/dev` or `~/.local/share/coffer/dev`.
pub fn default_dev_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".local").join("share")))
        .map(|d| d.join("coffer").join("dev"))
}

/// The file `coffer login` writes.
pub fn token_file() -> Option<PathBuf> {
    config_dir().map(|d| d.join("token"))
}

/// The token to use: `COFFER_TOKEN`, else the saved one, else none.
pub fn resolve_token() -> anyhow::Result<Option<SecretString>> {
    if let Ok(t) = std::env::var("COFFER_TOKEN") {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(Some(SecretString::new(t)));
        }
    }
    let Some(path) = token_file() else {
        return Ok(None);
    };
    // Opened once, its mode checked through the handle before reading:
    // what is checked is what is read.
    match std::fs::File::open(&path) {
        Ok(mut file) => {
            let mode = file.metadata()?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(fail(
                    Status::Denied,
                    format!(
                        "refusing to use {}: it is readable by others (chmod 600 it, or run `coffer login` again)",
                        path.display()
                    ),
                ));
            }
            let mut t = zeroize::Zeroizing::new(String::new());
            std::io::Read::read_to_string(&mut file, &mut t)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let t = SecretString::new(t.trim().to_string());
            Ok((!t.is_empty()).then_some(t))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `O_NOFOLLOW`, for `OpenOptionsExt::custom_flags`: opening a path whose
/// last component is a symbolic link fails instead of following it.
pub fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Writes `contents` to `path` readable by its owner only, atomically
/// (a temporary file renamed over the target), creating the directory 0700.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_private_with(path, contents, true)
}

/// [`write_private`], flushed to disk before the rename only if `durable`
/// (a cache that is checked on reading need not cost an fsync).
pub fn write_private_with(path: &Path, contents: &[u8], durable: bool) -> anyhow::Result<()> {
    write_file(path, contents, durable, 0o600)
}

/// Writes `contents` to `path` atomically with `mode`: a temporary file of
/// this process's own is created with `O_EXCL` (never through a symbolic
/// link or over another file), given its mode through its handle, and
/// renamed over the target (which replaces a symbolic link there, never
/// writes through it). A bare file name is in the current directory.
pub fn write_file(path: &Path, contents: &[u8], durable: bool, mode: u32) -> anyhow::Result<()> {
    refuse_special_target(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let Some(file_name) = path.file_name() else {
        return Err(fail(
            Status::Invalid,
            format!("{} names no file", path.display()),
        ));
    };
    // A name of this process's own, so that concurrent writers of the same
    // file (two `coffer run`s) never trip over each other's temporary file.
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(no_follow())
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = (|| -> std::io::Result<()> {
        f.write_all(contents)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if durable {
            f.sync_all()?;
        }
        Ok(())
    })();
    drop(f);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
    })?;
    Ok(())
}

/// Refuses a target that is not a regular file, nor a symbolic link to one
/// (or to nothing): renamed over, `/dev/stdout` (a link to
/// `/proc/self/fd/1`), a named pipe or a device would be replaced by a
/// regular file holding the values, for every later writer to append to
/// (as root, in a container, `/dev/stdout` itself).
fn refuse_special_target(path: &Path) -> anyhow::Result<()> {
    let special = |t: std::fs::FileType| !t.is_file() && !t.is_symlink();
    let bad = match std::fs::symlink_metadata(path) {
        Err(_) => false,
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::metadata(path).is_ok_and(|t| special(t.file_type()))
        }
        Ok(m) => special(m.file_type()),
    };
    if bad {
        return Err(fail(
            Status::Other,
            format!(
                "{} is not a regular file (a device, a pipe, a directory, or a link to one): nothing written; to write to standard output, leave out --out",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Creates `dir` (and missing parents) accessible by its owner only; its
/// mode is set through a handle opened without following a symbolic link.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    // Every directory created on the way is 0700, not only the last.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(no_follow() | rustix::fs::OFlags::DIRECTORY.bits() as i32)
        .open(dir)
        .with_context(|| format!("cannot open {}", dir.display()))?;
    handle.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// A client for the configured server, with the resolved token.
pub fn client(global: &Global) -> anyhow::Result<Client> {
    let mut builder = client_builder(global);
    if let Some(t) = resolve_token()? {
        builder = builder.secret_token(t);
    }
    Ok(builder.build()?)
}

/// The server address: `--addr`, `COFFER_ADDR` or the default.
pub fn addr(global: &Global) -> String {
    global
        .addr
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_string())
}

/// A client builder for the configured server, without a token.
pub fn client_builder(global: &Global) -> coffer_client::ClientBuilder {
    let mut builder = Client::builder(addr(global));
    if let Some(ca) = &global.ca_cert {
        builder = builder.ca_cert(ca);
    }
    builder
}
