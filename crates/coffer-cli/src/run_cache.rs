//! The offline cache of `coffer run`: an encrypted copy of what the last
//! successful request fetched, used only when the server cannot be reached
//! (or with `--offline`).
//!
//! - **Encrypted with a key only the token's holder has.** The key is
//!   derived from the token that fetched the values, the server address and
//!   a label, so the cache adds nothing for anyone who cannot already read
//!   the secrets; it stores no key of its own.
//! - **Named without revealing anything.** A file's name is a keyed hash of
//!   the token, the address and the request (prefixes and references), so
//!   two requests never share a file and a name says nothing about either.
//! - **Time-limited.** The expiry travels in the file's header, which the
//!   AEAD authenticates (so it cannot be extended) and which the sweep reads
//!   without any key to delete expired files.
//! - **Readable by its owner only.** Files are 0600 in a 0700 directory and a
//!   file with looser modes or another owner is refused.
//! - **The server's "no" wins.** When the server refuses the request
//!   (denied, not found), its cached copy is deleted; when it no longer
//!   accepts the token (revoked, expired), every copy that token fetched from
//!   that server is (they share a directory named by a keyed hash of the
//!   token and the address). Only an unreachable server (or a gateway
//!   answering for it) lets the cache answer, never a sealed or refusing one.
//!
//! File layout: `MAGIC (8) || expires_at_ms (8, BE) || fetched_at_ms (8, BE)
//! || nonce || ciphertext || tag`, the 24-byte header and the file name
//! being the associated data.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use coffer_api::{BundleRequest, ReadResponse, WireValue};
use coffer_crypto::{Key256, SecretString};
use zeroize::Zeroizing;

use crate::exit::{Status, fail};
use crate::settings;

const MAGIC: &[u8; 8] = b"cofrun\0\x01";
const HEADER_LEN: usize = 24;
/// The longest a cached copy may be kept.
pub const MAX_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

/// One request's cache entry.
pub struct Cache {
    path: PathBuf,
    name: String,
    key: Key256,
    /// The directory of every copy this token fetched from this server.
    token_dir: PathBuf,
}

/// What a cache entry held.
pub struct Cached {
    pub reads: Vec<ReadResponse<WireValue>>,
    pub fetched_at_ms: i64,
    pub expires_at_ms: i64,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `$XDG_CACHE_HOME/coffer/run` or `~/.cache/coffer/run`.
fn dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .map(|d| d.join("coffer").join("run"))
}

fn header(expires_at_ms: i64, fetched_at_ms: i64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&expires_at_ms.to_be_bytes());
    h[16..24].copy_from_slice(&fetched_at_ms.to_be_bytes());
    h
}

/// `(expires_at_ms, fetched_at_ms)` from a header, if it is one.
fn parse_header(bytes: &[u8]) -> Option<(i64, i64)> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return None;
    }
    let int = |r: std::ops::Range<usize>| Some(i64::from_be_bytes(bytes[r].try_into().ok()?));
    Some((int(8..16)?, int(16..24)?))
}

fn aad(header: &[u8], name: &str) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

impl Cache {
    /// The entry for this token, server and request; `None` when there is
    /// no home or cache directory to keep it in.
    pub fn for_request(token: &SecretString, addr: &str, request: &BundleRequest) -> Option<Cache> {
        let dir = dir()?;
        let secret = token.expose_secret().as_bytes();
        // serde_json writes struct fields in declaration order: a stable encoding.
        let request = serde_json::to_vec(request).ok()?;
        let mut context = addr.as_bytes().to_vec();
        context.push(0);
        context.extend_from_slice(&request);
        let name = coffer_crypto::derive::id(secret, "coffer run cache file", &context);
        let key = coffer_crypto::derive::key(secret, "coffer run cache key", addr.as_bytes());
        let token_dir = dir.join(coffer_crypto::derive::id(
            secret,
            "coffer run cache directory",
            addr.as_bytes(),
        ));
        Some(Cache {
            path: token_dir.join(&name),
            name,
            key,
            token_dir,
        })
    }

    /// Keeps `reads` until `ttl_ms` from now, then sweeps expired entries.
    pub fn store(&self, reads: &[ReadResponse<WireValue>], ttl_ms: i64) -> anyhow::Result<()> {
        let now = now_ms();
        let header = header(now.saturating_add(ttl_ms), now);
        let plaintext = Zeroizing::new(serde_json::to_vec(reads)?);
        let sealed = coffer_crypto::aead::seal(&self.key, &aad(&header, &self.name), &plaintext);
        let mut file = header.to_vec();
        file.extend_from_slice(&sealed);
        // No fsync: a copy lost or torn by a crash fails its AEAD check and
        // is deleted, and the next successful run writes it again.
        settings::write_private_with(&self.path, &file, false)?;
        if let Some(dir) = self.token_dir.parent() {
            sweep(dir, now);
        }
        Ok(())
    }

    /// The cached copy, if there is a usable one. An expired or damaged one
    /// is deleted and reported as an error.
    pub fn load(&self) -> anyhow::Result<Option<Cached>> {
        // Opened without following a symbolic link, and checked through
        // the handle: what is checked is what is read.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(settings::no_follow())
            .open(&self.path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(fail(
                    Status::Denied,
                    format!(
                        "refusing the cache file {}: it is a symbolic link",
                        self.path.display()
                    ),
                ));
            }
            Err(e) => {
                return Err(fail(
                    Status::Other,
                    format!("cannot read the cache file {}: {e}", self.path.display()),
                ));
            }
        };
        let meta = file.metadata()?;
        let own_uid = rustix::process::getuid().as_raw();
        if !meta.file_type().is_file()
            || meta.uid() != own_uid
            || meta.permissions().mode() & 0o077 != 0
        {
            return Err(fail(
                Status::Denied,
                format!(
                    "refusing the cache file {}: it must be a regular file of yours that only you can read",
                    self.path.display()
                ),
            ));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)?;
        let damaged = || {
            self.remove();
            fail(
                Status::Invalid,
                "the cached copy is damaged (deleted it)".to_string(),
            )
        };
        let Some((expires_at_ms, fetched_at_ms)) = parse_header(&bytes) else {
            return Err(damaged());
        };
        let Ok(plaintext) = coffer_crypto::aead::open(
            &self.key,
            &aad(&bytes[..HEADER_LEN], &self.name),
            &bytes[HEADER_LEN..],
        ) else {
            return Err(damaged());
        };
        if now_ms() >= expires_at_ms {
            self.remove();
            return Err(fail(
                Status::NotFound,
                format!(
                    "the cached copy expired {} ago (deleted it)",
                    human(now_ms() - expires_at_ms)
                ),
            ));
        }
        let reads = serde_json::from_slice(plaintext.expose_secret()).map_err(|_| damaged())?;
        Ok(Some(Cached {
            reads,
            fetched_at_ms,
            expires_at_ms,
        }))
    }

    /// Deletes the entry (no error if there is none).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.token_dir);
    }

    /// Deletes every copy the token fetched from this server (the server
    /// no longer accepts the token).
    pub fn remove_all_for_token(&self) {
        let _ = std::fs::remove_dir_all(&self.token_dir);
    }
}

/// Deletes cache files that have expired (and leftover temporary files) in
/// every token's directory, and directories left empty. Reads only
/// headers: no key is needed to tell that a file is stale.
fn sweep(dir: &Path, now: i64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            sweep_token_dir(&entry.path(), now);
            // Only succeeds when it is empty.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

fn sweep_token_dir(dir: &Path, now: i64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let stale = if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut head = [0u8; HEADER_LEN];
            let read = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(settings::no_follow())
                .open(&path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
            read.is_ok() && parse_header(&head).is_some_and(|(expires, _)| now >= expires)
        } else {
            // A temporary file left by an interrupted write, after a minute.
            name.ends_with(".tmp")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 60)
        };
        if stale {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A duration for people: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn human(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_reject_other_files() {
        let h = header(1_700_000_000_123, 1_699_000_000_000);
        assert_eq!(
            parse_header(&h),
            Some((1_700_000_000_123, 1_699_000_000_000))
        );
        assert_eq!(parse_header(&h[..20]), None);
        let mut other = h;
        other[0] ^= 1;
        assert_eq!(parse_header(&other), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(45_000), "45s");
        assert_eq!(human(12 * 60_000 + 5_000), "12m");
        assert_eq!(human(3 * 3_600_000 + 5 * 60_000), "3h 5m");
        assert_eq!(human(2 * 86_400_000 + 4 * 3_600_000), "2d 4h");
        assert_eq!(human(-5), "0s");
    }
}
