//! Crash consistency under a mixed load, a few trials of it: the script in
//! bench/crash kills the server with SIGKILL at random moments while it
//! writes, rotates, imports, creates and revokes tokens and rotates its
//! audit log, then restarts it and checks that nothing is readable before
//! unseal, that every acknowledged write and revocation held, and that the
//! audit log verifies. `bench/crash/crash.py --trials 1000` is the long run
//! (BENCHMARKS.md); this keeps the script and the guarantee honest in CI.

use crate::common;

#[test]
fn acknowledged_work_survives_sigkill_under_a_mixed_load() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/crash/crash.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        // Audit log rotation is left out of this short run: a kill in the
        // middle of one leaves a new file that does not continue the old
        // (README, Known limits); the long run includes it and reports it.
        .args([
            "--coffer",
            common::BIN,
            "--trials",
            "8",
            "--max-ms",
            "800",
            "--no-audit-rotation",
        ])
        .output()
        .expect("python3 runs the crash script (python3 is needed by the tests)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "crash trials failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("8 trials") && stdout.contains(": 0 failed checks"),
        "{stdout}"
    );
}
