//! Writing a file only its owner may read, atomically, without being
//! tricked by what already stands at its path. Dev mode's key files and the
//! CLI's token file, offline copies and exports are written this way.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be written. Names the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Something other than a regular file (or a link to one, or to
    /// nothing) stands at the path: a device, a pipe, a socket, a directory
    /// or a link to one, which renaming over would silently replace
    /// (`/dev/stdout` among them). Nothing was written.
    #[error("{} is not a regular file", .0.display())]
    NotRegularFile(PathBuf),
    /// A step failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done: "cannot create" (the temporary file) or
        /// "cannot write".
        action: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The `O_NOFOLLOW` flag, for `OpenOptionsExt::custom_flags`.
pub fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Writes `contents` to `path` atomically with `mode`: a temporary file of
/// this process's own is created with `O_EXCL` and `O_NOFOLLOW` (never
/// through a symbolic link or over another file), given its mode through
/// its handle, flushed to disk if `durable`, and renamed over the target
/// (which replaces a symbolic link there, never writes through it). The
/// temporary file is removed if any step fails. The directory must exist.
pub fn write(
    path: &Path,
    contents: &[u8],
    mode: u32,
    durable: bool,
) -> Result<(), PrivateFileError> {
    refuse_special_target(path)?;
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| PrivateFileError::Io {
            action,
            path,
            source,
        }
    };
    // A name of this process's own, so that concurrent writers of the same
    // file (two `coffer run`s) never trip over each other's temporary file.
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(no_follow())
        .open(&tmp)
        .map_err(io("cannot create", &tmp))?;
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
        return Err(io("cannot write", &tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("cannot write", path)(e)
    })
}

/// Refuses a target that is not a regular file, nor a symbolic link to one
/// (or to nothing): see [`PrivateFileError::NotRegularFile`].
pub fn refuse_special_target(path: &Path) -> Result<(), PrivateFileError> {
    let special = |t: std::fs::FileType| !t.is_file() && !t.is_symlink();
    let bad = match std::fs::symlink_metadata(path) {
        Err(_) => false,
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::metadata(path).is_ok_and(|t| special(t.file_type()))
        }
        Ok(m) => special(m.file_type()),
    };
    if bad {
        return Err(PrivateFileError::NotRegularFile(path.to_path_buf()));
    }
    Ok(())
}
