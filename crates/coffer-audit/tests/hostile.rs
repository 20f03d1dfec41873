//! The audit writer against hostile input and a hostile file system: real
//! files, real symbolic links, the real writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coffer_audit::chain::{self, HeadFileState};
use coffer_audit::record::ReadRef;
use coffer_audit::{
    Actor, AlertInfo, AlertRules, Auditor, AuditorConfig, Fsync, Kind, Record, Rotation, SinkSpec,
};
use coffer_crypto::AuditKey;

fn key() -> AuditKey {
    coffer_crypto::Keyring::generate(0).audit_key()
}

fn start(path: &Path, key: &AuditKey, rotation: Rotation) -> Auditor {
    let k = key.clone();
    Auditor::start(AuditorConfig {
        sinks: vec![SinkSpec::File(path.to_path_buf())],
        fsync: Fsync::Interval(Duration::from_secs(1)),
        rules: AlertRules::default(),
        key: Arc::new(move || Some(k.clone())),
        rotation,
    })
    .map(|(a, _alerts)| a)
    .expect("auditor starts")
}

fn record(auditor: &Auditor, r: Record) -> bool {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(auditor.record(r))
}

fn request(id: &str) -> Record {
    Record {
        time: coffer_audit::now_rfc3339(),
        kind: Kind::Request,
        request_id: Some(id.into()),
        ..Record::default()
    }
}

fn verify(path: &Path, key: &AuditKey) -> chain::VerifyReport {
    let head = match chain::read_head_file(path, Some(key)) {
        HeadFileState::Valid(h) => Some(h),
        HeadFileState::Missing => None,
        // Written while sealed (untagged): the numbers alone.
        HeadFileState::Invalid => match chain::read_head_file(path, None) {
            HeadFileState::Valid(h) => Some(h),
            _ => panic!("invalid head file"),
        },
    };
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    chain::verify(file, key, head).unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A token of the real shape (valid checksum), an invitation code, a token
/// with a broken checksum, and one cut short.
fn token_shapes() -> Vec<String> {
    let token = coffer_crypto::token::generate_token()
        .expose_secret()
        .to_string();
    let invite = coffer_crypto::token::generate_invite_code()
        .expose_secret()
        .to_string();
    let mut broken = token.clone();
    broken.replace_range(10..11, if &token[10..11] == "a" { "b" } else { "a" });
    vec![token.clone(), invite, broken, token[..30].to_string()]
}

#[test]
fn audit_masks_token_shaped_strings_in_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    let shapes = token_shapes();
    for (i, t) in shapes.iter().enumerate() {
        let r = Record {
            actor: Some(Actor {
                kind: "service".into(),
                name: format!("ci-{t}"),
                accessor: format!("acc_{t}"),
                via: None,
            }),
            source: Some(format!("10.0.0.1 {t}")),
            method: Some("GET".into()),
            route: Some(format!("/api/v1/secrets/leak/{t}?x={t}")),
            op: Some(format!("op{t}")),
            decision: Some(t.clone()),
            path: Some(format!("leak/{t}")),
            reads: vec![ReadRef {
                path: format!("a/b/{t}"),
                version: 1,
            }],
            writes: vec![ReadRef {
                path: format!("a/b/x{t}y"),
                version: 2,
            }],
            error: Some(format!("invalid {t}")),
            login: Some(t.clone()),
            alert: Some(AlertInfo {
                rule: format!("r{t}"),
                subject: format!("actor {t}"),
                count: 1,
                window_secs: 0,
            }),
            message: Some(format!(
                "reason: {t}; and percent-encoded {}",
                t.replacen('_', "%5F", 1)
            )),
            request_id: Some(format!("{i}-{t}")),
            ..request("x")
        };
        assert!(record(&auditor, r));
    }
    auditor.close();
    let log = std::fs::read_to_string(&path).unwrap();
    for t in &shapes {
        let body = &t[4..];
        assert!(!log.contains(body), "a token's body reached the log: {t}");
    }
    // Every field was masked, and the log still verifies.
    assert!(log.contains("\"path\":\"leak/cft_<masked>\""), "{log}");
    assert!(log.contains("\"name\":\"ci-cfi_<masked>\""), "{log}");
    assert!(log.contains("cft%5F<masked>"), "{log}");
    let report = verify(&path, &k);
    assert!(report.ok(), "{:?}", report.problem);
}

/// Alerts raised by the rules over a record with a token in it go to the
/// webhooks masked too.
#[test]
fn alerts_about_a_token_shaped_path_are_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let kk = k.clone();
    let (auditor, mut alerts) = Auditor::start(AuditorConfig {
        sinks: vec![SinkSpec::File(path.clone())],
        fsync: Fsync::Interval(Duration::from_secs(1)),
        rules: AlertRules {
            failures: 1,
            ..AlertRules::default()
        },
        key: Arc::new(move || Some(kk.clone())),
        rotation: Rotation::default(),
    })
    .unwrap();
    let t = &token_shapes()[0];
    let r = Record {
        outcome: Some(coffer_audit::Outcome::Denied),
        status: Some(403),
        source: Some(t.clone()),
        path: Some(format!("leak/{t}")),
        ..request("denied")
    };
    assert!(record(&auditor, r));
    let alert = alerts.try_recv().expect("a failure alert");
    let json = serde_json::to_string(&alert).unwrap();
    assert!(!json.contains(&t[4..]), "{json}");
    auditor.close();
    assert!(!std::fs::read_to_string(&path).unwrap().contains(&t[4..]));
}

#[test]
fn unicode_line_separators_are_escaped_in_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    let hostile =
        "a\u{2028}{\"seq\":99}\u{2029}b\u{202e}gpj.exe\u{85}c\u{200f}\u{2066}\u{61c}\u{9b}31m";
    let r = Record {
        path: Some(hostile.into()),
        actor: Some(Actor {
            kind: "service".into(),
            name: hostile.into(),
            accessor: "acc_x".into(),
            via: None,
        }),
        message: Some(hostile.into()),
        ..request("u")
    };
    assert!(record(&auditor, r));
    auditor.close();
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    for c in [
        '\u{2028}', '\u{2029}', '\u{202e}', '\u{85}', '\u{200f}', '\u{2066}', '\u{61c}', '\u{9b}',
    ] {
        assert!(!text.contains(c), "{c:?} written raw");
    }
    // Every reader sees the same number of lines.
    let js_lines = text
        .split(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}'])
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(js_lines, text.lines().count());
    let back: Vec<Record> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        back.iter().any(|r| r.path.as_deref() == Some(hostile)),
        "the escapes read back as the characters"
    );
    let report = verify(&path, &k);
    assert!(report.ok(), "{:?}", report.problem);
}

#[test]
fn audit_log_symlink_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, "do not touch\n").unwrap();
    let path = dir.path().join("audit.log");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let k = key();
    let err = match Auditor::start(AuditorConfig {
        sinks: vec![SinkSpec::File(path.clone())],
        fsync: Fsync::Batch,
        rules: AlertRules::default(),
        key: Arc::new(move || Some(k.clone())),
        rotation: Rotation::default(),
    }) {
        Ok(_) => panic!("the writer started through a symbolic link"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch\n");
    // A dangling link is not followed either (it would create its target).
    let dangling = dir.path().join("other.log");
    let nowhere = dir.path().join("created-elsewhere");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    let k = key();
    assert!(
        Auditor::start(AuditorConfig {
            sinks: vec![SinkSpec::File(dangling)],
            fsync: Fsync::Batch,
            rules: AlertRules::default(),
            key: Arc::new(move || Some(k.clone())),
            rotation: Rotation::default(),
        })
        .is_err()
    );
    assert!(!nowhere.exists());
}

#[test]
fn head_tmp_symlink_does_not_overwrite_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let target = dir.path().join("precious");
    std::fs::write(&target, "do not touch\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("audit.log.head.tmp")).unwrap();
    // A link at the head's own name is replaced, not written through.
    let target2 = dir.path().join("precious2");
    std::fs::write(&target2, "nor this\n").unwrap();
    std::os::unix::fs::symlink(&target2, dir.path().join("audit.log.head")).unwrap();
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    assert!(record(&auditor, request("r")));
    auditor.close();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch\n");
    assert_eq!(std::fs::read_to_string(&target2).unwrap(), "nor this\n");
    let head = dir.path().join("audit.log.head");
    assert!(
        !std::fs::symlink_metadata(&head)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(matches!(
        chain::read_head_file(&path, Some(&k)),
        HeadFileState::Valid(_)
    ));
    assert!(!dir.path().join("audit.log.head.tmp").exists());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&head).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A head file that cannot be read (the link) beside the log is taken
    // for a damaged one: a gap of unknown extent, until acknowledged.
    let report = verify(&path, &k);
    assert!(report.gap_problem, "{:?}", report.problem);
}

/// A symbolic link among the rotated files (pointing at something else,
/// named like an old rotated file) is neither read as history nor removed
/// through by retention.
#[test]
fn retention_does_not_follow_or_remove_through_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("precious");
    std::fs::write(&target, "do not touch\n").unwrap();
    let planted = dir.path().join("audit.log.20000101T000000Z");
    std::os::unix::fs::symlink(&target, &planted).unwrap();
    std::os::unix::fs::symlink(&target, chain::head_path(&planted)).unwrap();
    let k = key();
    let auditor = start(
        &path,
        &k,
        Rotation {
            keep_files: Some(1),
            keep_for: Some(Duration::from_secs(1)),
            ..Rotation::default()
        },
    );
    assert!(
        !coffer_audit::rotated_files(&path)
            .unwrap()
            .contains(&planted)
    );
    for _ in 0..2 {
        assert!(record(&auditor, request("r")));
        auditor.rotate().unwrap();
    }
    auditor.close();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch\n");
}

/// Truncates `path` to its first `keep` lines.
fn truncate_to(path: &Path, keep: usize) {
    let kept: String = lines(path)
        .into_iter()
        .take(keep)
        .map(|l| l + "\n")
        .collect();
    std::fs::write(path, kept).unwrap();
}

fn ack(auditor: &Auditor, gap: &chain::GapFound) {
    let r = Record {
        acknowledges: Some(gap.link.clone()),
        ..Record::notice("gap acknowledged")
    };
    assert!(record(auditor, r));
}

#[test]
fn truncation_while_stopped_fails_verify_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    for i in 0..10 {
        assert!(record(&auditor, request(&format!("r{i}"))));
    }
    auditor.close();
    let before = lines(&path).len() as u64; // opening + 10 + closing
    assert!(verify(&path, &k).ok());

    // While stopped: the last records are cut off.
    truncate_to(&path, 5);
    let auditor = start(&path, &k, Rotation::default());
    for i in 0..3 {
        assert!(record(&auditor, request(&format!("after{i}"))));
    }
    auditor.close();
    let report = verify(&path, &k);
    let p = report.problem.clone().expect("the gap fails verification");
    assert!(
        p.reason.contains(&format!("records 6 to {before}")) && p.reason.contains("acknowledge"),
        "{}",
        p.reason
    );
    assert_eq!(report.gaps.len(), 1);
    let gap = report.gaps[0].clone();
    assert_eq!((gap.first, gap.last, gap.record), (6, before, before + 1));
    assert!(!gap.acknowledged);
    // Numbers are never used twice: the records after the gap follow the
    // highest there ever was.
    let seqs: Vec<u64> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str::<Record>(l).unwrap().seq.unwrap())
        .collect();
    assert_eq!(seqs[4..6], [5, before + 1]);

    // Stopped and started again: still failing (the gap is in the file).
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    assert!(!verify(&path, &k).ok());

    // An acknowledgement written without the key does not count.
    let auditor = Auditor::start(AuditorConfig {
        sinks: vec![SinkSpec::File(path.clone())],
        fsync: Fsync::Batch,
        rules: AlertRules::default(),
        key: Arc::new(|| None),
        rotation: Rotation::default(),
    })
    .unwrap()
    .0;
    ack(&auditor, &gap);
    auditor.close();
    let report = verify(&path, &k);
    assert!(!report.ok() && report.gap_problem, "{:?}", report.problem);

    // Acknowledged, under the key: verifies, and still lists the gap.
    let auditor = start(&path, &k, Rotation::default());
    ack(&auditor, &gap);
    auditor.close();
    let report = verify(&path, &k);
    assert!(report.ok(), "{:?}", report.problem);
    assert!(report.gaps[0].acknowledged);

    // Cut again, before the gap's notice: found again at the next start.
    truncate_to(&path, 3);
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    let report = verify(&path, &k);
    assert!(!report.ok());
    assert_eq!(report.gaps.len(), 1, "{:?}", report.gaps);
    assert_eq!(report.gaps[0].first, 4);
}

/// Removing the gap's notice and re-linking the rest needs the key; an
/// edited gap notice (shrinking the gap) breaks the chain.
#[test]
fn a_gap_notice_cannot_be_edited_away() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    for i in 0..6 {
        assert!(record(&auditor, request(&format!("r{i}"))));
    }
    auditor.close();
    truncate_to(&path, 3);
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    let mut ls = lines(&path);
    let at = ls.iter().position(|l| l.contains("\"gap\"")).unwrap();
    // Drop the notice: the numbering jumps without one.
    let mut dropped = ls.clone();
    dropped.remove(at);
    std::fs::write(&path, dropped.join("\n") + "\n").unwrap();
    let r = verify(&path, &k);
    assert!(!r.ok() && !r.gap_problem, "{:?}", r.problem);
    // Remove the "gap" field from it: no longer explains the jump.
    ls[at] = ls[at].replace("\"gap\":", "\"gaq\":");
    std::fs::write(&path, ls.join("\n") + "\n").unwrap();
    let r = verify(&path, &k);
    assert!(!r.ok() && !r.gap_problem, "{:?}", r.problem);
}

/// The records of kind alert in the log, by rule.
fn alert_rules(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str::<Record>(l).unwrap())
        .filter_map(|r| r.alert.map(|a| a.rule))
        .collect()
}

/// A head file removed while the server was stopped (with the end of the
/// log, say) cannot be checked against: that is said, not passed over.
#[test]
fn a_removed_head_file_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    assert!(record(&auditor, request("r")));
    auditor.close();
    std::fs::remove_file(chain::head_path(&path)).unwrap();
    truncate_to(&path, 2);
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    assert_eq!(alert_rules(&path), ["audit_head_missing"]);
    // A fresh, empty log has no head file yet: nothing to say.
    let fresh = dir.path().join("fresh.log");
    let auditor = start(&fresh, &k, Rotation::default());
    auditor.close();
    assert!(alert_rules(&fresh).is_empty());
}

/// A head file forged far beyond the log (its tag is checked only by
/// verify) is reported as a gap, without the numbering jumping to the end
/// of the range (where it would overflow).
#[test]
fn a_forged_head_far_ahead_does_not_overflow_the_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    std::fs::write(
        chain::head_path(&path),
        format!("{{\"seq\":{},\"chain\":\"{}\"}}", u64::MAX, "0".repeat(64)),
    )
    .unwrap();
    let auditor = start(&path, &k, Rotation::default());
    assert!(record(&auditor, request("after")));
    auditor.close();
    let recs: Vec<Record> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(recs.iter().all(|r| r.seq.unwrap() < 100), "{recs:?}");
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let report = chain::verify(file, &k, None).unwrap();
    assert!(report.gap_problem, "{:?}", report.problem);
    assert_eq!(report.gaps[0].last, u64::MAX);
}

fn start_sealed(path: &Path) -> Auditor {
    Auditor::start(AuditorConfig {
        sinks: vec![SinkSpec::File(path.to_path_buf())],
        fsync: Fsync::Batch,
        rules: AlertRules::default(),
        key: Arc::new(|| None),
        rotation: Rotation::default(),
    })
    .unwrap()
    .0
}

/// The last record of the log: its number and chain link.
fn last_record(path: &Path) -> (u64, String) {
    let last = lines(path).pop().unwrap();
    let r: Record = serde_json::from_str(&last).unwrap();
    (r.seq.unwrap(), r.chain.unwrap())
}

/// The neighbour of the gap hole: the end of the log cut off and the head
/// file removed with it, while the server was stopped. A log with records
/// and no head file cannot be told from a truncated one, so it is a gap
/// (of unknown extent) that fails verification until acknowledged, not an
/// alert alone.
#[test]
fn head_hole_removed_head_file_fails_verify_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    for i in 0..6 {
        assert!(record(&auditor, request(&format!("r{i}"))));
    }
    auditor.close();
    truncate_to(&path, 3);
    std::fs::remove_file(chain::head_path(&path)).unwrap();
    let auditor = start(&path, &k, Rotation::default());
    assert!(record(&auditor, request("after")));
    auditor.close();
    let report = verify(&path, &k);
    assert!(report.gap_problem, "{:?}", report.problem);
    let gap = report.gaps[0].clone();
    assert_eq!((gap.first, gap.last), (4, 3));
    let reason = report.problem.unwrap().reason;
    assert!(reason.contains("after record 3"), "{reason}");
    // Still failing after another start; passing once acknowledged.
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    assert!(verify(&path, &k).gap_problem);
    let auditor = start(&path, &k, Rotation::default());
    ack(&auditor, &gap);
    auditor.close();
    assert!(verify(&path, &k).ok());
    // A damaged head file is the same.
    std::fs::write(chain::head_path(&path), "{not a head").unwrap();
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    let report = verify(&path, &k);
    assert!(
        report.gap_problem && report.gaps.len() == 2,
        "{:?}",
        report.gaps
    );
}

/// The neighbour of the gap hole the head's tag was meant to close: the log
/// truncated and the head file edited to name its new last record, with a
/// tag that is not the key's (no one else has the key). The server starts
/// sealed, so the tag cannot be checked then; it is checked with the first
/// key, and until then the forged head file is not overwritten (a start
/// that never unseals does not launder it).
#[test]
fn head_hole_forged_head_matching_a_truncated_log_is_caught_at_unseal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    for i in 0..6 {
        assert!(record(&auditor, request(&format!("r{i}"))));
    }
    auditor.close();
    truncate_to(&path, 4);
    let (seq, link) = last_record(&path);
    let forged = format!(
        "{{\"seq\":{seq},\"chain\":\"{link}\",\"tag\":\"{}\"}}",
        "ab".repeat(32)
    );
    std::fs::write(chain::head_path(&path), &forged).unwrap();
    // A sealed start and stop: nothing can be checked, nothing overwritten.
    let auditor = start_sealed(&path);
    assert!(record(&auditor, request("sealed")));
    auditor.close();
    assert_eq!(
        std::fs::read_to_string(chain::head_path(&path)).unwrap(),
        forged
    );
    // Unsealed: the tag does not verify; a gap, and an alert.
    let auditor = start(&path, &k, Rotation::default());
    assert!(record(&auditor, request("unsealed")));
    auditor.close();
    let report = verify(&path, &k);
    assert!(report.gap_problem, "{:?}", report.problem);
    assert_eq!(report.gaps[0].last, seq);
    assert!(alert_rules(&path).contains(&"audit_head_forged".to_string()));
    let gap = report.gaps[0].clone();
    let auditor = start(&path, &k, Rotation::default());
    ack(&auditor, &gap);
    auditor.close();
    assert!(verify(&path, &k).ok());

    // Untagged, naming a record written with the key: found at start.
    truncate_to(&path, lines(&path).len() - 2);
    let (seq, link) = last_record(&path);
    std::fs::write(
        chain::head_path(&path),
        format!("{{\"seq\":{seq},\"chain\":\"{link}\"}}"),
    )
    .unwrap();
    let auditor = start_sealed(&path);
    auditor.close();
    let report = verify(&path, &k);
    assert!(report.gap_problem, "{:?}", report.problem);
}

/// What the checks above must not catch: restarts, sealed or not, of an
/// intact log report no gap.
#[test]
fn head_hole_intact_restarts_sealed_or_not_report_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start_sealed(&path);
    assert!(record(&auditor, request("a")));
    auditor.close();
    let auditor = start_sealed(&path);
    assert!(record(&auditor, request("b")));
    auditor.close();
    for _ in 0..2 {
        let auditor = start(&path, &k, Rotation::default());
        assert!(record(&auditor, request("c")));
        auditor.close();
    }
    let auditor = start_sealed(&path);
    auditor.close();
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    let report = verify(&path, &k);
    assert!(
        report.ok() && report.gaps.is_empty(),
        "{:?}",
        report.problem
    );
    assert!(alert_rules(&path).is_empty(), "{:?}", alert_rules(&path));
}

/// The symbolic-link hole's neighbour: a FIFO planted at a head file's name
/// (or a rotated file's) blocked the server's start, and any verification,
/// on opening it. It is refused without blocking: a damaged head file.
#[test]
fn symlink_hole_fifo_at_head_file_does_not_block_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    assert!(record(&auditor, request("r")));
    auditor.close();
    let head = chain::head_path(&path);
    std::fs::remove_file(&head).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&head)
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let state = chain::read_head_file(&p, None);
        let auditor = start(&p, &key(), Rotation::default());
        auditor.close();
        let _ = tx.send(state);
    });
    let state = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the start blocked on the FIFO");
    assert_eq!(state, HeadFileState::Invalid);
    assert!(alert_rules(&path).contains(&"audit_head_missing".to_string()));
    // Queries refuse a FIFO in a log's place rather than block.
    let fifo = dir.path().join("other.log");
    std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(coffer_audit::open_chained(&[fifo]).is_err());
}

/// The head hole, sealed variant: records written with the key cut off,
/// and records "written while sealed" forged in their place (anyone can
/// link those) with an untagged head file naming the last. An untagged
/// head file is trusted only for a log never written with the key.
#[test]
fn head_hole_keyed_records_replaced_by_forged_sealed_ones_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    for i in 0..6 {
        assert!(record(&auditor, request(&format!("r{i}"))));
    }
    auditor.close();
    // The forger's sealed run: a real sealed server's lines, on a copy of
    // the log's first records.
    truncate_to(&path, 3);
    std::fs::remove_file(chain::head_path(&path)).unwrap();
    let copy = dir.path().join("copy.log");
    std::fs::copy(&path, &copy).unwrap();
    // Its own head file is replaced by hand with one naming its last record.
    let sealed = start_sealed(&copy);
    assert!(record(&sealed, request("forged")));
    sealed.close();
    std::fs::rename(&copy, &path).unwrap();
    let (seq, link) = last_record(&path);
    std::fs::write(
        chain::head_path(&path),
        format!("{{\"seq\":{seq},\"chain\":\"{link}\"}}"),
    )
    .unwrap();
    let _ = std::fs::remove_file(chain::head_path(&copy));
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    let report = verify(&path, &k);
    assert!(report.gap_problem, "{:?}", report.problem);
    assert!(alert_rules(&path).contains(&"audit_head_forged".to_string()));
}

/// What that must not catch: sealed in the middle of a run (the key gone),
/// stopped, started sealed and unsealed again.
#[test]
fn head_hole_sealed_mid_run_then_restarted_reports_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let current = Arc::new(std::sync::Mutex::new(Some(k.clone())));
    let c = current.clone();
    let auditor = Auditor::start(AuditorConfig {
        sinks: vec![SinkSpec::File(path.clone())],
        fsync: Fsync::Batch,
        rules: AlertRules::default(),
        key: Arc::new(move || c.lock().unwrap().clone()),
        rotation: Rotation::default(),
    })
    .unwrap()
    .0;
    assert!(record(&auditor, request("keyed")));
    std::thread::sleep(Duration::from_millis(500));
    *current.lock().unwrap() = None;
    assert!(record(&auditor, request("sealed")));
    std::thread::sleep(Duration::from_millis(500));
    auditor.close();
    let auditor = start_sealed(&path);
    assert!(record(&auditor, request("sealed again")));
    auditor.close();
    let auditor = start(&path, &k, Rotation::default());
    assert!(record(&auditor, request("unsealed")));
    auditor.close();
    let report = verify(&path, &k);
    assert!(
        report.ok() && report.gaps.is_empty(),
        "{:?}",
        report.problem
    );
    assert!(alert_rules(&path).is_empty(), "{:?}", alert_rules(&path));
}

/// A truncation found at a sealed start, and the server stopped again
/// before it was unsealed: the next starts report that gap once, not a
/// second one of their own making.
#[test]
fn head_hole_gap_found_sealed_then_restarted_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    for i in 0..6 {
        assert!(record(&auditor, request(&format!("r{i}"))));
    }
    auditor.close();
    truncate_to(&path, 4);
    let auditor = start_sealed(&path);
    assert!(record(&auditor, request("sealed")));
    std::thread::sleep(Duration::from_millis(500));
    auditor.close();
    let auditor = start_sealed(&path);
    auditor.close();
    let auditor = start(&path, &k, Rotation::default());
    assert!(record(&auditor, request("unsealed")));
    auditor.close();
    let report = verify(&path, &k);
    assert_eq!(report.gaps.len(), 1, "{:?}", report.gaps);
    assert_eq!(
        alert_rules(&path),
        ["audit_log_truncated"],
        "{:?}",
        alert_rules(&path)
    );
}

/// A log only ever written while sealed, its head file a little behind its
/// end (a crash before the last head file was written): no gap.
#[test]
fn head_hole_sealed_log_with_a_lagging_head_reports_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let auditor = start_sealed(&path);
    assert!(record(&auditor, request("a")));
    auditor.close();
    let head = std::fs::read(chain::head_path(&path)).unwrap();
    let auditor = start_sealed(&path);
    assert!(record(&auditor, request("b")));
    auditor.close();
    std::fs::write(chain::head_path(&path), head).unwrap();
    let k = key();
    let auditor = start(&path, &k, Rotation::default());
    auditor.close();
    let report = verify(&path, &k);
    assert!(report.gaps.is_empty(), "{:?}", report.gaps);
    assert!(alert_rules(&path).is_empty(), "{:?}", alert_rules(&path));
}

/// A log written with the key, then sealed, then rotated by size while
/// sealed: the new file (never written with the key) gets its head files,
/// and the next start finds no gap in it.
#[test]
fn head_hole_rotated_while_sealed_new_file_keeps_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let k = key();
    let current = Arc::new(std::sync::Mutex::new(Some(k.clone())));
    let c = current.clone();
    let auditor = Auditor::start(AuditorConfig {
        sinks: vec![SinkSpec::File(path.clone())],
        fsync: Fsync::Batch,
        rules: AlertRules::default(),
        key: Arc::new(move || c.lock().unwrap().clone()),
        rotation: Rotation::default(),
    })
    .unwrap()
    .0;
    assert!(record(&auditor, request("keyed")));
    *current.lock().unwrap() = None;
    assert!(record(&auditor, request("sealed")));
    auditor.rotate().unwrap();
    assert!(record(&auditor, request("sealed, new file")));
    std::thread::sleep(Duration::from_millis(500));
    auditor.close();
    assert!(
        chain::head_path(&path).exists(),
        "the new file has a head file"
    );
    let auditor = start_sealed(&path);
    auditor.close();
    assert!(alert_rules(&path).is_empty(), "{:?}", alert_rules(&path));
}
