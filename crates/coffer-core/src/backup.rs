//! Encrypted backups: a consistent snapshot of a whole store, and its restore
//! into a fresh store of either backend (also the way from SQLite to
//! PostgreSQL).
//!
//! The snapshot holds only what the store holds (ciphertext and metadata),
//! and is encrypted once more as a whole under a key derived from the root
//! key, so paths, token hashes and policies are not readable either. Opening
//! it needs the root key, which needs the original unseal keys; the restored
//! store keeps the same seal configuration, so the restored server needs
//! them too.
//!
//! File layout:
//!
//! ```text
//! "COFFER-BACKUP\n"
//! u32 length, header (JSON: format, time, seal configuration, the wrapped
//!     root key, a random salt)
//! frames: u8 kind, u32 length, payload
//!   kind 1 (data): AES-256-GCM of JSON lines (one record each),
//!                  associated data = SHA-256(header) || frame index
//!   kind 2 (end):  u32 length, summary JSON (records, secrets, versions,
//!                  checksum), then AES-256-GCM of nothing with associated
//!                  data = SHA-256(header) || frame index || summary
//! ```
//!
//! So a frame cannot be edited, dropped, reordered or moved between backups,
//! and a backup cut short lacks its authenticated end. The checksum is a
//! SHA-256 over the record lines: the same set of secrets, versions, tokens
//! and records always has the same checksum, whatever the backend.

use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_crypto::{Key256, RootKey, UnsealKey, aead, derive, shamir::Share};
use coffer_store::{
    Exported, SecretMeta, Storage, StoredObject, TokenRecord, VersionRecord, VersionState,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::error::{Conflict, CoreError, Integrity, InvalidInput, Record, Result, UnsealRefusal};
use crate::seal::{SEAL_CONFIG, SealConfig, WRAPPED_ROOT_KEY};
use crate::{Coffer, Identity, Operation, now_ms};

const MAGIC: &[u8] = b"COFFER-BACKUP\n";
const FORMAT: u32 = 1;
const FRAME_DATA: u8 = 1;
const FRAME_END: u8 = 2;
/// Plaintext bytes per data frame (a frame is sealed once it passes this).
const FRAME_TARGET: usize = 256 * 1024;
/// Largest frame or header accepted when reading.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Records written per storage transaction on restore.
const IMPORT_BATCH: usize = 500;
const KEY_LABEL: &str = "backup";

/// The readable header of a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupHeader {
    /// Format version.
    pub format: u32,
    /// When the snapshot was taken (unix milliseconds).
    pub created_at: i64,
    /// The backend it was taken from.
    pub storage: String,
    /// Unseal shares and threshold of the backed-up coffer.
    pub shares: u8,
    /// How many shares open it.
    pub threshold: u8,
    /// The root key, wrapped by the unseal key (base64).
    wrapped_root_key: String,
    /// Salt of the backup key (base64).
    salt: String,
}

/// What a backup holds, in its authenticated end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// Records of every kind.
    pub records: u64,
    /// Secrets.
    pub secrets: u64,
    /// Versions.
    pub versions: u64,
    /// Tokens.
    pub tokens: u64,
    /// `sha256:` and the hex SHA-256 of the record lines.
    pub checksum: String,
}

/// One record as it is written in a backup.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Line {
    System {
        key: String,
        value: String,
    },
    Secret {
        path: String,
        current_version: u64,
        live: bool,
        created_at: i64,
        updated_at: i64,
    },
    Version {
        path: String,
        version: u64,
        created_at: i64,
        created_by: String,
        deleted_at: Option<i64>,
        destroyed_at: Option<i64>,
        key_id: u32,
        ciphertext: String,
        // Absent in backups of versions never marked (and of coffers that
        // had no such mark), so older backups restore unchanged.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compromised_at: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compromised_reason: Option<String>,
    },
    Token {
        hash: String,
        uses_left: Option<u64>,
        record: TokenRecord,
    },
    Object {
        kind: String,
        key: String,
        revision: u64,
        value: String,
    },
}

impl From<Exported> for Line {
    fn from(r: Exported) -> Line {
        match r {
            Exported::System { key, value } => Line::System {
                key,
                value: B64.encode(value),
            },
            Exported::Secret(m) => Line::Secret {
                path: m.path,
                current_version: m.current_version,
                live: m.live,
                created_at: m.created_at,
                updated_at: m.updated_at,
            },
            Exported::Version(v) => {
                let (deleted_at, destroyed_at) = match v.state {
                    VersionState::Active => (None, None),
                    VersionState::Deleted(t) => (Some(t), None),
                    VersionState::Destroyed(t) => (None, Some(t)),
                };
                Line::Version {
                    path: v.path,
                    version: v.version,
                    created_at: v.created_at,
                    created_by: v.created_by,
                    deleted_at,
                    destroyed_at,
                    key_id: v.key_id,
                    ciphertext: B64.encode(v.ciphertext),
                    compromised_at: v.compromised.as_ref().map(|c| c.at),
                    compromised_reason: v.compromised.map(|c| c.reason),
                }
            }
            Exported::Token(t) => Line::Token {
                hash: B64.encode(t.hash),
                uses_left: t.uses_left,
                record: t,
            },
            Exported::Object(o) => Line::Object {
                kind: o.kind,
                key: o.key,
                revision: o.revision,
                value: B64.encode(o.value),
            },
        }
    }
}

fn truncated(what: &str) -> CoreError {
    CoreError::Invalid(InvalidInput::BackupTruncated {
        what: what.to_string(),
    })
}

fn corrupt(what: &str) -> CoreError {
    CoreError::Invalid(InvalidInput::BackupDamaged {
        what: what.to_string(),
    })
}

fn b64(s: &str) -> Result<Vec<u8>> {
    B64.decode(s).map_err(|_| corrupt("a field is not base64"))
}

impl Line {
    fn into_exported(self) -> Result<Exported> {
        Ok(match self {
            Line::System { key, value } => Exported::System {
                key,
                value: b64(&value)?,
            },
            Line::Secret {
                path,
                current_version,
                live,
                created_at,
                updated_at,
            } => Exported::Secret(SecretMeta {
                path,
                current_version,
                live,
                created_at,
                updated_at,
            }),
            Line::Version {
                path,
                version,
                created_at,
                created_by,
                deleted_at,
                destroyed_at,
                key_id,
                ciphertext,
                compromised_at,
                compromised_reason,
            } => Exported::Version(VersionRecord {
                path,
                version,
                created_at,
                created_by,
                state: match (deleted_at, destroyed_at) {
                    (_, Some(t)) => VersionState::Destroyed(t),
                    (Some(t), None) => VersionState::Deleted(t),
                    (None, None) => VersionState::Active,
                },
                key_id,
                ciphertext: b64(&ciphertext)?,
                compromised: compromised_at.map(|at| coffer_store::Compromise {
                    at,
                    reason: compromised_reason.unwrap_or_default(),
                }),
            }),
            Line::Token {
                hash,
                uses_left,
                mut record,
            } => {
                record.hash = b64(&hash)?
                    .try_into()
                    .map_err(|_| corrupt("a token hash has the wrong length"))?;
                record.uses_left = uses_left;
                Exported::Token(record)
            }
            Line::Object {
                kind,
                key,
                revision,
                value,
            } => Exported::Object(StoredObject {
                kind,
                key,
                revision,
                value: b64(&value)?,
            }),
        })
    }
}

fn frame_aad(header_hash: &[u8; 32], index: u64, summary: Option<&[u8]>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(48);
    aad.extend_from_slice(b"coffer.backup.v1\0");
    aad.extend_from_slice(header_hash);
    aad.extend_from_slice(&index.to_be_bytes());
    if let Some(s) = summary {
        aad.extend_from_slice(b"end\0");
        aad.extend_from_slice(s);
    }
    aad
}

fn backup_key(root: &RootKey, salt: &[u8]) -> Key256 {
    derive::key(root.key().expose_secret(), KEY_LABEL, salt)
}

/// Counts records and hashes their lines.
#[derive(Default)]
struct Tally {
    hasher: Sha256,
    summary: BackupSummary,
}

impl Tally {
    fn add(&mut self, line: &[u8], record: &Exported) {
        self.hasher.update(line);
        self.hasher.update(b"\n");
        self.summary.records += 1;
        match record {
            Exported::Secret(_) => self.summary.secrets += 1,
            Exported::Version(_) => self.summary.versions += 1,
            Exported::Token(_) => self.summary.tokens += 1,
            _ => {}
        }
    }

    fn finish(self) -> BackupSummary {
        let digest = self.hasher.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        BackupSummary {
            checksum: format!("sha256:{hex}"),
            ..self.summary
        }
    }
}

impl Coffer {
    /// Starts an encrypted backup of the whole store (admin only), taken as
    /// one consistent snapshot while writes go on. The bytes of the backup
    /// file come out of the returned channel; an error ends it early (and
    /// the file then lacks its end, so it is never mistaken for a whole one).
    pub async fn backup(
        &self,
        identity: &Identity,
    ) -> Result<mpsc::Receiver<std::result::Result<Vec<u8>, CoreError>>> {
        self.authorize(identity, Operation::Admin, "sys/backup")?;
        let keys = self.unsealed()?;
        let config: SealConfig = serde_json::from_slice(
            &self
                .store
                .get_system(SEAL_CONFIG)
                .await?
                .ok_or_else(|| CoreError::Corrupt(Integrity::Missing(Record::SealConfig)))?,
        )
        .map_err(|_| CoreError::Corrupt(Integrity::Unreadable(Record::SealConfig)))?;
        let wrapped_root = self
            .store
            .get_system(WRAPPED_ROOT_KEY)
            .await?
            .ok_or_else(|| CoreError::Corrupt(Integrity::Missing(Record::WrappedRoot)))?;
        let salt = coffer_crypto::random::bytes::<32>();
        let header = BackupHeader {
            format: FORMAT,
            created_at: now_ms(),
            storage: self.store.backend_name().to_string(),
            shares: config.shares,
            threshold: config.threshold,
            wrapped_root_key: B64.encode(&wrapped_root),
            salt: B64.encode(salt),
        };
        let key = backup_key(&keys.root, &salt);
        let store = self.store.clone();
        let (out, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            if let Err(e) = write_backup(store, header, key, out.clone()).await {
                tracing::error!(error = %e, "backup failed");
                let _ = out.send(Err(e)).await;
            }
        });
        Ok(rx)
    }
}

async fn write_backup(
    store: Arc<dyn Storage>,
    header: BackupHeader,
    key: Key256,
    out: mpsc::Sender<std::result::Result<Vec<u8>, CoreError>>,
) -> Result<()> {
    let gone = || CoreError::Invalid(InvalidInput::BackupAbandoned);
    let header_bytes = serde_json::to_vec(&header).expect("header serialises");
    let header_hash: [u8; 32] = Sha256::digest(&header_bytes).into();
    let mut first = MAGIC.to_vec();
    first.extend_from_slice(&(header_bytes.len() as u32).to_be_bytes());
    first.extend_from_slice(&header_bytes);
    out.send(Ok(first)).await.map_err(|_| gone())?;

    let (records_tx, mut records) = mpsc::channel::<Exported>(256);
    let export = tokio::spawn(async move { store.export(records_tx).await });
    let mut tally = Tally::default();
    let mut chunk: Vec<u8> = Vec::with_capacity(FRAME_TARGET + 4096);
    let mut index = 0u64;
    let seal_frame = |chunk: &mut Vec<u8>, index: &mut u64| -> Vec<u8> {
        let sealed = aead::seal(&key, &frame_aad(&header_hash, *index, None), chunk);
        // The chunk held ciphertext and metadata only, but wipe it anyway.
        zeroize::Zeroize::zeroize(chunk);
        chunk.clear();
        *index += 1;
        let mut frame = vec![FRAME_DATA];
        frame.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
        frame.extend_from_slice(&sealed);
        frame
    };
    while let Some(record) = records.recv().await {
        let line = serde_json::to_vec(&Line::from(record.clone())).expect("records serialise");
        tally.add(&line, &record);
        chunk.extend_from_slice(&line);
        chunk.push(b'\n');
        if chunk.len() >= FRAME_TARGET {
            let frame = seal_frame(&mut chunk, &mut index);
            out.send(Ok(frame)).await.map_err(|_| gone())?;
        }
    }
    export
        .await
        .map_err(|e| CoreError::Invalid(InvalidInput::ExportTask(Arc::new(e))))??;
    if !chunk.is_empty() {
        let frame = seal_frame(&mut chunk, &mut index);
        out.send(Ok(frame)).await.map_err(|_| gone())?;
    }
    let summary = serde_json::to_vec(&tally.finish()).expect("summary serialises");
    let tag = aead::seal(&key, &frame_aad(&header_hash, index, Some(&summary)), b"");
    let mut end = vec![FRAME_END];
    end.extend_from_slice(&(summary.len() as u32).to_be_bytes());
    end.extend_from_slice(&summary);
    end.extend_from_slice(&(tag.len() as u32).to_be_bytes());
    end.extend_from_slice(&tag);
    out.send(Ok(end)).await.map_err(|_| gone())?;
    Ok(())
}

async fn read_u32<R: AsyncRead + Unpin>(r: &mut R, what: &str) -> Result<usize> {
    let n = r.read_u32().await.map_err(|_| truncated(what))? as usize;
    if n > MAX_FRAME {
        return Err(corrupt("a frame is too large"));
    }
    Ok(n)
}

async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, n: usize, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0; n];
    r.read_exact(&mut buf).await.map_err(|_| truncated(what))?;
    Ok(buf)
}

/// Reads a backup's readable header (to learn how many unseal keys open it).
pub async fn read_header<R: AsyncRead + Unpin>(input: &mut R) -> Result<(BackupHeader, [u8; 32])> {
    let magic = read_exact(input, MAGIC.len(), "magic").await?;
    if magic != MAGIC {
        return Err(CoreError::Invalid(InvalidInput::NotABackup));
    }
    let n = read_u32(input, "header").await?;
    let bytes = read_exact(input, n, "header").await?;
    let header: BackupHeader =
        serde_json::from_slice(&bytes).map_err(|_| corrupt("the header is unreadable"))?;
    if header.format != FORMAT {
        return Err(CoreError::Invalid(InvalidInput::BackupFormat {
            format: header.format,
            reads: FORMAT,
        }));
    }
    Ok((header, Sha256::digest(&bytes).into()))
}

/// The summary in a backup's end, without opening it (for `coffer operator
/// backup` to report what it wrote). Fails if the file is cut short.
pub async fn read_summary<R: AsyncRead + Unpin>(input: &mut R) -> Result<BackupSummary> {
    read_header(input).await?;
    loop {
        let mut kind = [0u8; 1];
        input
            .read_exact(&mut kind)
            .await
            .map_err(|_| truncated("no end"))?;
        match kind[0] {
            FRAME_DATA => {
                let n = read_u32(input, "frame").await?;
                read_exact(input, n, "frame").await?;
            }
            FRAME_END => {
                let n = read_u32(input, "end").await?;
                let summary = read_exact(input, n, "end").await?;
                return serde_json::from_slice(&summary)
                    .map_err(|_| corrupt("the end is unreadable"));
            }
            _ => return Err(corrupt("an unknown frame")),
        }
    }
}

/// Opens the root key of a backup with unseal key shares.
pub fn open_root(header: &BackupHeader, shares: &[String]) -> Result<RootKey> {
    let wrong = || CoreError::InvalidUnsealKey(UnsealRefusal::WrongForBackup);
    let decoded = shares
        .iter()
        .map(|s| Share::decode(s.trim()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| CoreError::InvalidUnsealKey(UnsealRefusal::Malformed))?;
    let combined = coffer_crypto::shamir::combine(&decoded).map_err(|_| wrong())?;
    let unseal =
        UnsealKey::from(Key256::from_slice(combined.expose_secret()).map_err(|_| wrong())?);
    unseal
        .unwrap_root(&b64(&header.wrapped_root_key)?)
        .map_err(|_| wrong())
}

/// Reads, authenticates and decodes every frame, handing each batch of
/// records to `sink`; returns the verified summary.
async fn read_records<R, F, Fut>(
    input: &mut R,
    root: &RootKey,
    header: &BackupHeader,
    header_hash: &[u8; 32],
    mut sink: F,
) -> Result<BackupSummary>
where
    R: AsyncRead + Unpin,
    F: FnMut(Vec<Exported>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let key = backup_key(root, &b64(&header.salt)?);
    let mut tally = Tally::default();
    let mut index = 0u64;
    let mut batch = Vec::new();
    loop {
        let mut kind = [0u8; 1];
        input
            .read_exact(&mut kind)
            .await
            .map_err(|_| truncated("no end"))?;
        match kind[0] {
            FRAME_DATA => {
                let n = read_u32(input, "frame").await?;
                let sealed = read_exact(input, n, "frame").await?;
                let plain = aead::open(&key, &frame_aad(header_hash, index, None), &sealed)
                    .map_err(|_| corrupt(&format!("frame {index} failed its integrity check")))?;
                index += 1;
                for line in plain.expose_secret().split(|b| *b == b'\n') {
                    if line.is_empty() {
                        continue;
                    }
                    let record = serde_json::from_slice::<Line>(line)
                        .map_err(|_| corrupt("a record is unreadable"))?
                        .into_exported()?;
                    tally.add(line, &record);
                    batch.push(record);
                    if batch.len() >= IMPORT_BATCH {
                        sink(std::mem::take(&mut batch)).await?;
                    }
                }
            }
            FRAME_END => {
                let n = read_u32(input, "end").await?;
                let summary_bytes = read_exact(input, n, "end").await?;
                let n = read_u32(input, "end").await?;
                let tag = read_exact(input, n, "end").await?;
                aead::open(
                    &key,
                    &frame_aad(header_hash, index, Some(&summary_bytes)),
                    &tag,
                )
                .map_err(|_| corrupt("its end failed its integrity check"))?;
                let mut extra = [0u8; 1];
                if input.read(&mut extra).await.unwrap_or(0) != 0 {
                    return Err(corrupt("there are bytes after its end"));
                }
                let summary: BackupSummary = serde_json::from_slice(&summary_bytes)
                    .map_err(|_| corrupt("the end is unreadable"))?;
                if !batch.is_empty() {
                    sink(std::mem::take(&mut batch)).await?;
                }
                let computed = tally.finish();
                if computed != summary {
                    return Err(corrupt("its records do not match its checksum"));
                }
                return Ok(summary);
            }
            _ => return Err(corrupt("an unknown frame")),
        }
    }
}

/// Checks a whole backup (every frame and the checksum) without writing.
pub async fn verify<R: AsyncRead + Unpin>(
    input: &mut R,
    shares: &[String],
) -> Result<BackupSummary> {
    let (header, hash) = read_header(input).await?;
    let root = open_root(&header, shares)?;
    read_records(input, &root, &header, &hash, |_| async { Ok(()) }).await
}

/// Restores a backup into `store`, which must be empty. `open` is called
/// twice: the whole backup is checked first, so a damaged file or wrong keys
/// write nothing.
pub async fn restore<R, F, Fut>(
    store: &dyn Storage,
    mut open: F,
    shares: &[String],
) -> Result<BackupSummary>
where
    R: AsyncRead + Unpin,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<R>>,
{
    let reopen = |e: std::io::Error| CoreError::Invalid(InvalidInput::BackupRead(Arc::new(e)));
    let checked = verify(&mut open().await.map_err(reopen)?, shares).await?;
    if !store.is_empty().await? {
        return Err(CoreError::Conflict(Conflict::RestoreTarget));
    }
    let mut input = open().await.map_err(reopen)?;
    let (header, hash) = read_header(&mut input).await?;
    let root = open_root(&header, shares)?;
    let restored = read_records(&mut input, &root, &header, &hash, |batch| async move {
        store.import(batch).await.map_err(CoreError::from)
    })
    .await?;
    if restored != checked {
        return Err(corrupt("it changed while it was being restored"));
    }
    Ok(restored)
}
