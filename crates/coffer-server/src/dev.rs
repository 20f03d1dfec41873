//! Dev mode's start-up: a data directory that initialises itself on first
//! start (one unseal key, kept in the directory beside the root token) and
//! unseals itself on every start. For local use only: whoever can read the
//! directory holds the keys, which is why a dev node listens on loopback
//! only.

use std::path::Path;

use coffer_core::Coffer;
use coffer_crypto::SecretString;

use crate::node::NodeError;
use crate::private_file::PrivateFileError;

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
/// durably ([`crate::private_file::write`]).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), NodeError> {
    crate::private_file::write(path, contents, 0o600, true).map_err(|e| match e {
        PrivateFileError::NotRegularFile(path) => NodeError::NotRegularFile(path),
        PrivateFileError::Io {
            action,
            path,
            source,
        } => NodeError::Io {
            action,
            path,
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

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
