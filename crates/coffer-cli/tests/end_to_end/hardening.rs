//! The server hardens its own process: no core dumps (a zero core-file
//! limit, soft and hard), non-dumpable (so `/proc/PID/*` belongs to root
//! and no other process of its user can read its memory), and memory locked
//! when the memory-lock limit allows it, else reported by `coffer status`.
//! Checked from `/proc/PID/limits` and `/proc/PID/status`.
//!
//! The non-dumpable check needs the server to run as another user than
//! root (a root process's `/proc` files belong to root anyway): as root,
//! the test starts it as `nobody` with util-linux's `setpriv`; otherwise it
//! runs as the test's own user.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::{Cli, Mode, Server};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Starts a dev server as a user other than root, under `prefix` (another
/// exec wrapper, such as `prlimit`).
fn start_unprivileged(dir: &Path, prefix: &[&str]) -> Server {
    let mut wrapper: Vec<&str> = prefix.to_vec();
    if is_root() {
        // The server creates its data directory inside `dir`.
        std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
        wrapper.extend([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]);
    }
    Server::try_start_wrapped(dir, Mode::Dev, &wrapper)
        .unwrap_or_else(|e| panic!("server did not start under {wrapper:?}: {e}"))
}

fn proc_file(server: &Server, name: &str) -> String {
    std::fs::read_to_string(format!("/proc/{}/{name}", server.child.id())).unwrap()
}

fn status_field(server: &Server, field: &str) -> String {
    proc_file(server, "status")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
        .trim()
        .to_string()
}

#[test]
fn server_has_no_core_dumps_and_is_not_dumpable() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_unprivileged(dir.path(), &[]);
    let uid: u32 = status_field(&server, "Uid")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(uid, 0, "the server must run unprivileged for this check");

    let limits = proc_file(&server, "limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");

    // A dumpable process's /proc files belong to its own user.
    let owner = std::fs::metadata(format!("/proc/{}/status", server.child.id()))
        .unwrap()
        .uid();
    assert_eq!(
        owner, 0,
        "/proc/PID/status belongs to {owner}, the server is dumpable"
    );
    let log = server.logs();
    assert!(
        log.contains("core_dumps_disabled=true") && log.contains("non_dumpable=true"),
        "{log}"
    );
    server.stop();
}

#[test]
fn memory_is_locked_when_the_limit_allows_and_status_says_when_not() {
    // A finite memory-lock limit: not locked, and said so.
    let dir = tempfile::tempdir().unwrap();
    let server = start_unprivileged(dir.path(), &["prlimit", "--memlock=65536:65536", "--"]);
    assert_eq!(status_field(&server, "VmLck"), "0 kB");
    let cli = Cli::new(&server.addr, dir.path());
    let run = cli.run(&["status", "--json"]).expect(0);
    assert_eq!(run.json()["memory_locked"], false);
    let text = Cli::new(&server.addr, dir.path())
        .run(&["status"])
        .expect(0)
        .stdout();
    assert!(text.contains("NOT LOCKED"), "{text}");
    assert!(
        server.logs().contains("memory is not locked"),
        "{}",
        server.logs()
    );
    server.stop();

    // A limit that allows it: everything is locked, and status has
    // nothing to warn of. Either the hard limit can be raised (root with
    // CAP_SYS_RESOURCE, or an unlimited hard limit), or the test process
    // holds CAP_IPC_LOCK, which lifts the limit for a server it starts as
    // itself.
    let dir = tempfile::tempdir().unwrap();
    let raise = ["prlimit", "--memlock=unlimited:unlimited", "--"];
    let can_raise = std::process::Command::new("prlimit")
        .args(["--memlock=unlimited:unlimited", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let server = if can_raise {
        start_unprivileged(dir.path(), &raise)
    } else {
        let caps = std::fs::read_to_string("/proc/self/status").unwrap();
        let eff = caps
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
            .unwrap();
        const CAP_IPC_LOCK: u32 = 14;
        assert!(
            eff & (1 << CAP_IPC_LOCK) != 0,
            "this test needs a memory-lock limit it can raise to unlimited, or CAP_IPC_LOCK"
        );
        Server::start(dir.path(), Mode::Dev)
    };
    let locked: u64 = status_field(&server, "VmLck")
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    let rss: u64 = status_field(&server, "VmRSS")
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    assert!(
        locked > 0 && locked >= rss / 2,
        "VmLck {locked} kB of VmRSS {rss} kB"
    );
    let cli = Cli::new(&server.addr, dir.path());
    assert_eq!(
        cli.run(&["status", "--json"]).expect(0).json()["memory_locked"],
        true
    );
    let text = Cli::new(&server.addr, dir.path())
        .run(&["status"])
        .expect(0)
        .stdout();
    assert!(!text.contains("NOT LOCKED"), "{text}");
    server.stop();
}
