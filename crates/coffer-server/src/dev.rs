//! Dev mode's start-up: a data directory that initialises itself on first
//! start (one unseal key, kept in the directory beside the root token) and
//! unseals itself on every start. For local use only: whoever can read the
//! directory holds the keys, which is why a dev node listens on loopback
//! only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use coffer_core::Coffer;
use coffer_crypto::SecretString;

use crate::node::NodeError;

/// The dev unseal key's file, in the data directory.
pub const UNSEAL_KEY_FILE: &str = "unseal-key";
/// The dev root token's file, in the data directory (readable by its
/// owner only).
pub const ROOT_TOKEN_FILE: &str = "root-token";

/// Initialises `dir`'s coffer if it is not yet, writing its unseal key and
/// root token there, then unseals it.
pub(crate) async fn bootstrap(coffer: &Coffer, dir: &Path) -> Result<(), NodeError> {
    let key_file = dir.join(UNSEAL_KEY_FILE);
    if !coffer.status().initialized {
        let out = coffer.init(1, 1).await?;
        write_private(&key_file, out.unseal_keys[0].expose_secret().as_bytes())?;
        write_private(
            &dir.join(ROOT_TOKEN_FILE),
            out.root_token.expose_secret().as_bytes(),
        )?;
        tracing::info!(dir = %dir.display(), "initialized a new dev data directory");
    }
    let key = std::fs::read_to_string(&key_file)
        .map(SecretString::new)
        .map_err(|error| NodeError::DevKey {
            dir: dir.to_path_buf(),
            key_file: key_file.clone(),
            error,
        })?;
    coffer.unseal(key.expose_secret().trim()).await?;
    Ok(())
}

/// Writes `contents` to `path` readable by its owner only, atomically and
/// durably: a temporary file of this process's own is created with
/// `O_EXCL` (never through a symbolic link or over another file), written,
/// flushed and renamed over the target.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), NodeError> {
    refuse_special_target(path)?;
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| NodeError::Io {
            action,
            path,
            source,
        }
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("cannot create", &tmp))?;
    let written = (|| -> std::io::Result<()> {
        f.write_all(contents)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.sync_all()
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
/// (or to nothing): renamed over, a named pipe, a device or a link to one
/// (`/dev/stdout`) would be silently replaced by a file holding the key.
fn refuse_special_target(path: &Path) -> Result<(), NodeError> {
    let special = |t: std::fs::FileType| !t.is_file() && !t.is_symlink();
    let bad = match std::fs::symlink_metadata(path) {
        Err(_) => false,
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::metadata(path).is_ok_and(|t| special(t.file_type()))
        }
        Ok(m) => special(m.file_type()),
    };
    if bad {
        return Err(NodeError::NotRegularFile(path.to_path_buf()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_owner_only_and_replace_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROOT_TOKEN_FILE);
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_pipe_a_socket_a_directory_or_a_link_to_one_at_the_path_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let to_socket = dir.path().join("to-socket");
        std::os::unix::fs::symlink(&socket, &to_socket).unwrap();
        let to_dir = dir.path().join("to-dir");
        std::os::unix::fs::symlink(&sub, &to_dir).unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for path in [&socket, &sub, &to_socket, &to_dir, &fifo] {
            let before = std::fs::symlink_metadata(path).unwrap().file_type();
            let err = write_private(path, b"KEYMATERIAL").expect_err("refused");
            assert!(matches!(err, NodeError::NotRegularFile(_)), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!(
                    "{} is not a regular file (a device, a pipe, a directory, or a link to one): \
                     nothing written; to write to standard output, leave out --out",
                    path.display()
                )
            );
            assert!(!err.to_string().contains("KEYMATERIAL"));
            assert_eq!(std::fs::symlink_metadata(path).unwrap().file_type(), before);
        }
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
    }

    #[test]
    fn a_link_to_a_file_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"theirs").unwrap();
        let path = dir.path().join(UNSEAL_KEY_FILE);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_private(&path, b"ours").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(std::fs::read(&path).unwrap(), b"ours");
    }

    #[test]
    fn a_missing_directory_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join(UNSEAL_KEY_FILE);
        let err = write_private(&path, b"k").unwrap_err().to_string();
        assert!(
            err.starts_with("cannot create ") && err.contains(UNSEAL_KEY_FILE),
            "{err}"
        );
    }
}
