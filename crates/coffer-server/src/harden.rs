//! Hardening of the server process itself, applied once at start by
//! `coffer server` (never by a library user such as a test process).
//!
//! An unsealed server holds the root key and the keyring in memory. Three
//! ways out of memory are closed where the system allows:
//!
//! - **Core dumps**: the core-file limit is set to zero (soft and hard, so
//!   nothing in the process can raise it again), and the process is marked
//!   non-dumpable, which also stops other processes of the same user from
//!   attaching a debugger or reading `/proc/PID/mem`, and makes
//!   `/proc/PID/*` owned by root.
//! - **Swap**: all memory is locked (`mlockall`, current and future
//!   pages, each as it is first touched: `MCL_ONFAULT`, so that start-up
//!   does not read the whole binary and every reserved stack and heap
//!   arena into memory first; a page is locked from the moment it holds
//!   anything, so nothing written ever reaches swap), but only when the memory-lock limit is unlimited (or the
//!   process holds `CAP_IPC_LOCK`, which lifts it). With a finite
//!   limit, locking future pages would make allocations fail once the limit
//!   is reached, which would take the server down; the server runs unlocked
//!   instead, logs why, and `coffer status` reports it.
//!
//! What was applied is kept for the process's lifetime and shown in the
//! status answer ([`memory_locked`]).

use std::path::Path;
use std::sync::OnceLock;

use rustix::process::{DumpableBehavior, Resource, Rlimit};

/// What [`harden_process`] managed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// The core-file limit is zero.
    pub core_dumps_disabled: bool,
    /// The process is non-dumpable.
    pub non_dumpable: bool,
    /// All memory is locked in RAM.
    pub memory_locked: bool,
    /// Why a step was not applied, one sentence each, for the log.
    pub notes: Vec<String>,
}

static APPLIED: OnceLock<Hardening> = OnceLock::new();

/// Disables core dumps, makes the process non-dumpable and locks its
/// memory where the memory-lock limit allows. Runs once; later calls return
/// the first result.
pub fn harden_process() -> &'static Hardening {
    APPLIED.get_or_init(apply)
}

/// Whether the server's memory is locked, once [`harden_process`] has run
/// (`None` in a process that never hardened itself, such as a test).
pub fn memory_locked() -> Option<bool> {
    APPLIED.get().map(|h| h.memory_locked)
}

fn apply() -> Hardening {
    let mut notes = Vec::new();
    let core_dumps_disabled = match rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    ) {
        Ok(()) => true,
        Err(e) => {
            notes.push(format!("core dumps could not be disabled: {e}"));
            false
        }
    };
    let non_dumpable = match rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        Ok(()) => true,
        Err(e) => {
            notes.push(format!("the process could not be made non-dumpable: {e}"));
            false
        }
    };
    let limit = rustix::process::getrlimit(Resource::Memlock).current;
    // CAP_IPC_LOCK lifts the limit for this process.
    let ipc_lock = rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::IPC_LOCK)
    });
    let memory_locked = match limit {
        Some(limit) if !ipc_lock => {
            notes.push(format!(
                "memory is not locked, so keys may reach swap: the memory-lock limit is {limit} bytes; make it unlimited (systemd LimitMEMLOCK=infinity, docker --ulimit memlock=-1) or use encrypted or no swap"
            ));
            false
        }
        _ => match lock_all_memory() {
            Ok(()) => true,
            Err(e) => {
                notes.push(format!("memory could not be locked: {e}"));
                false
            }
        },
    };
    Hardening {
        core_dumps_disabled,
        non_dumpable,
        memory_locked,
        notes,
    }
}

/// Warnings about files that people other than the server's user can
/// read: the data directory (the store, the audit log, dev mode's key
/// files) and the configuration file (which may name a database password).
pub fn exposure_warnings(data_dir: &Path, config: Option<&Path>) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut warnings = Vec::new();
    if let Ok(meta) = std::fs::metadata(data_dir)
        && meta.permissions().mode() & 0o007 != 0
    {
        warnings.push(format!(
            "the data directory {} is open to other users (mode {:o}); chmod 700 it",
            data_dir.display(),
            meta.permissions().mode() & 0o7777
        ));
    }
    if let Some(config) = config
        && let Ok(meta) = std::fs::metadata(config)
        && meta.permissions().mode() & 0o004 != 0
    {
        warnings.push(format!(
            "the configuration file {} is readable by other users (mode {:o}); chmod o-r it",
            config.display(),
            meta.permissions().mode() & 0o7777
        ));
    }
    warnings
}

/// `mlockall` of current and future pages, locked as they are first
/// touched (`MCL_ONFAULT`, Linux 4.4 and later); on a kernel without it,
/// every page at once.
fn lock_all_memory() -> rustix::io::Result<()> {
    use rustix::mm::{MlockAllFlags, mlockall};
    let all = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE;
    match mlockall(all | MlockAllFlags::ONFAULT) {
        Err(rustix::io::Errno::INVAL) => mlockall(all),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn exposure_warnings_name_open_directories_and_readable_configs() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let config = dir.path().join("coffer.toml");
        std::fs::write(&config, "").unwrap();

        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            exposure_warnings(&data, Some(&config)),
            Vec::<String>::new()
        );

        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = exposure_warnings(&data, Some(&config));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("mode 755") && w[0].contains("chmod 700"),
            "{}",
            w[0]
        );
        assert!(
            w[1].contains("mode 644") && w[1].contains("chmod o-r"),
            "{}",
            w[1]
        );

        // A missing file is not this check's business (start fails later,
        // with its own message).
        assert!(exposure_warnings(&dir.path().join("nope"), None).is_empty());
    }
}
