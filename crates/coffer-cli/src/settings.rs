//! Client settings: the server address, the token (from `COFFER_TOKEN` or the
//! file `coffer login` writes), and where files live.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use coffer_client::Client;
use coffer_crypto::SecretString;
use coffer_server::private_file::{self, PrivateFileError};

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

pub use coffer_server::private_file::no_follow;

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

/// Writes `contents` to `path` atomically with `mode`
/// ([`coffer_server::private_file::write`]), creating its directory 0700.
/// A bare file name is in the current directory.
pub fn write_file(path: &Path, contents: &[u8], durable: bool, mode: u32) -> anyhow::Result<()> {
    private_file::refuse_special_target(path).map_err(shown)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    if path.file_name().is_none() {
        return Err(fail(
            Status::Invalid,
            format!("{} names no file", path.display()),
        ));
    }
    private_file::write(path, contents, mode, durable).map_err(shown)
}

/// A file that could not be written, as the CLI reports it.
fn shown(e: PrivateFileError) -> anyhow::Error {
    match e {
        PrivateFileError::NotRegularFile(path) => fail(
            Status::Other,
            format!(
                "{} is not a regular file (a device, a pipe, a directory, or a link to one): nothing written; to write to standard output, leave out --out",
                path.display()
            ),
        ),
        PrivateFileError::Io {
            action,
            path,
            source,
        } => anyhow::Error::new(source).context(format!("{action} {}", path.display())),
    }
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
