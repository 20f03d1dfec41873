//! The secret lifecycle end to end, through the real binary: generation,
//! strength rules, labels and rotation (immediate, staged, cancelled), the
//! grace period, zero-downtime rotation under a live consumer, the
//! scheduler and its alerts, expiry, rollback, copy and move, environment
//! promotion, bad input, and the canary scan over all of it.

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::canary::Canary;
use common::{Mode, Server, init_and_unseal, ok, webhook_receiver};
use serde_json::{Value, json};

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

/// The audit log's records.
fn audit_records(server: &Server) -> Vec<Value> {
    std::fs::read_to_string(server.data_dir().join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn generate_prints_each_format_and_refuses_bad_specs() {
    let dir = tempfile::tempdir().unwrap();
    let cli = || common::Cli::new("http://127.0.0.1:9", dir.path());
    type Alphabet = fn(char) -> bool;
    let cases: &[(&[&str], usize, Alphabet)] = &[
        (&[], 44, |c| c.is_ascii_alphanumeric() || "+/=".contains(c)),
        (&["--format", "hex", "--bytes", "16"], 32, |c| {
            c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
        }),
        (&["--format", "urlsafe"], 43, |c| {
            c.is_ascii_alphanumeric() || "-_".contains(c)
        }),
        (&["--format", "alnum", "--bytes", "24"], 33, |c| {
            c.is_ascii_alphanumeric()
        }),
    ];
    for (args, len, ok) in cases {
        let mut seen = HashSet::new();
        for _ in 0..5 {
            let mut a = vec!["generate"];
            a.extend_from_slice(args);
            let out = cli().run(&a).expect(0).stdout();
            assert_eq!(out.len(), *len, "{args:?}: {out:?}");
            assert!(out.chars().all(ok), "{args:?}: {out:?}");
            assert!(seen.insert(out), "a repeat for {args:?}");
        }
    }
    let words = cli()
        .run(&["generate", "--format", "words", "--words", "6"])
        .expect(0)
        .stdout();
    // Six words joined by '-'; four words of the list (drop-down, felt-tip,
    // t-shirt, yo-yo) carry a hyphen of their own, so up to twelve pieces.
    let pieces = words.split('-').count();
    assert!((6..=12).contains(&pieces), "{words}");
    assert!(
        words
            .split('-')
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
    );
    for bad in [
        &["generate", "--format", "rot13"][..],
        &["generate", "--bytes", "4"],
        &["generate", "--bytes", "5000"],
        &["generate", "--format", "words", "--bytes", "16"],
        &["generate", "--words", "6"],
        &["generate", "--format", "words", "--words", "2"],
    ] {
        let r = cli().run(bad).expect(2);
        assert!(r.stdout().is_empty(), "{bad:?} printed {:?}", r.stdout());
    }
}

#[test]
fn strength_rules_refuse_weak_values_where_they_apply_and_warn_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let cli = || server.cli().token(&root);

    cli()
        .run(&["lifecycle", "set", "*/prod/*", "--min-bits", "128"])
        .expect(0);
    for weak in [
        "password123",
        "hunter2",
        "correcthorsebattery",
        "Summer2024!",
    ] {
        let r = cli()
            .stdin(weak)
            .run(&["set", "shop/prod/DB_PASSWORD"])
            .expect(7);
        assert!(r.stderr().contains("too weak"), "{}", r.stderr());
        assert!(r.stderr().contains("*/prod/*"), "{}", r.stderr());
        assert!(!r.stderr().contains(weak), "the refusal quoted the value");
    }
    // Nothing was written.
    cli().run(&["history", "shop/prod/DB_PASSWORD"]).expect(3);
    // Accepted elsewhere, with a warning that does not quote it.
    let r = cli()
        .stdin("password123")
        .run(&["set", "shop/dev/DB_PASSWORD"])
        .expect(0);
    assert!(
        r.stderr().contains("warning") && r.stderr().contains("weak"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("password123"));
    // A strong typed value and a generated one pass the rule.
    cli()
        .stdin("vT9#qLr2$Wm8!xZp4&Kd7@Hs3^Bn6*Fy")
        .run(&["set", "shop/prod/API_KEY"])
        .expect(0);
    cli()
        .run(&["set", "shop/prod/SESSION", "--generate", "hex:16"])
        .expect(0);
    // Too few bits generated is refused like a typed value.
    let r = cli()
        .run(&["set", "shop/prod/PIN", "--generate", "hex:8"])
        .expect(7);
    assert!(r.stderr().contains("about 64 bits"), "{}", r.stderr());
    // Fields: only credential-like fields are judged.
    cli()
        .stdin(r#"{"user":"app","host":"db","password":"abc"}"#)
        .run(&["set", "shop/prod/db", "--fields"])
        .expect(7);
    cli()
        .stdin(r#"{"user":"app","host":"db","password":"vT9#qLr2$Wm8!xZp4&Kd7@Hs3^Bn6*Fy"}"#)
        .run(&["set", "shop/prod/db", "--fields"])
        .expect(0);
    // An import into prod is refused as a whole for one weak value.
    let env = dir.path().join("weak.env");
    std::fs::write(&env, "GOOD=vT9#qLr2$Wm8!xZp4&Kd7@Hs3^Bn6*Fy\nBAD=letmein\n").unwrap();
    let r = cli()
        .run(&["import", env.to_str().unwrap(), "--path", "shop/prod"])
        .expect(7);
    assert!(r.stderr().contains("shop/prod/BAD"), "{}", r.stderr());
    cli().run(&["get", "shop/prod/GOOD"]).expect(3);
    // The rule is listed and can be removed; then the weak value passes with a warning.
    let rules = cli().run(&["lifecycle", "ls", "--json"]).expect(0).json();
    assert_eq!(rules["rules"][0]["pattern"], "*/prod/*");
    assert_eq!(rules["rules"][0]["min_bits"], 128);
    cli().run(&["lifecycle", "rm", "*/prod/*"]).expect(0);
    cli().run(&["lifecycle", "rm", "*/prod/*"]).expect(3);
    cli()
        .stdin("hunter2")
        .run(&["set", "shop/prod/DB_PASSWORD"])
        .expect(0);
}

#[test]
fn rotation_labels_staging_promotion_and_grace() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let cli = || server.cli().token(&root);
    let get = |args: &[&str]| {
        let mut a = vec!["get", "app/prod/JWT_KEY"];
        a.extend_from_slice(args);
        cli().run(&a)
    };

    cli()
        .run(&["set", "app/prod/JWT_KEY", "--generate", "hex:32"])
        .expect(0);
    let v1 = get(&[]).expect(0).stdout();
    assert_eq!(v1.len(), 64);
    // A rotation generates the same way the secret was generated.
    let r = cli()
        .run(&["rotate", "app/prod/JWT_KEY", "--json"])
        .expect(0)
        .json();
    assert_eq!(r["version"], 2);
    assert_eq!(r["generated"], true);
    assert_eq!(r["labels"]["previous"], 1);
    assert!(r["labels"]["previous_until"].is_string(), "{r}");
    assert!(!r.to_string().contains(&v1));
    let v2 = get(&[]).expect(0).stdout();
    assert_eq!(v2.len(), 64);
    assert_ne!(v1, v2);
    assert_eq!(get(&["--label", "previous"]).expect(0).stdout(), v1);
    assert_eq!(get(&["--label", "current"]).expect(0).stdout(), v2);
    get(&["--label", "pending"]).expect(3);

    // Staged: pending only; current and previous do not move.
    let r = cli()
        .run(&["rotate", "app/prod/JWT_KEY", "--stage", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        (r["version"].clone(), r["labels"]["current"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(r["labels"]["pending"], 3);
    let v3 = get(&["--label", "pending"]).expect(0).stdout();
    assert_eq!(get(&[]).expect(0).stdout(), v2);
    // The bundle (what `coffer run` reads) serves current for the prefix.
    let b = ok(
        &server.http(
            "POST",
            "/api/v1/bundle",
            Some(&root),
            Some(&body(json!({"prefixes": ["app/prod"],
                "secrets": [{"path": "app/prod/JWT_KEY", "label": "pending"}]}))),
        ),
        "bundle",
    );
    assert_eq!(b["secrets"][0]["version"], 2);
    assert_eq!(b["secrets"][1]["version"], 3);
    assert_eq!(b["secrets"][1]["label"], "pending");
    // A plain write while a rotation is staged is refused.
    let r = cli()
        .stdin("vT9#qLr2$Wm8!xZp4&Kd7@Hs3^Bn6*Fy")
        .run(&["set", "app/prod/JWT_KEY"])
        .expect(8);
    assert!(r.stderr().contains("staged rotation"), "{}", r.stderr());
    cli()
        .run(&["rotate", "app/prod/JWT_KEY", "--stage"])
        .expect(8);
    // Promote: pending becomes current, current becomes previous, at once.
    let promoting = Instant::now();
    let r = cli()
        .run(&["promote", "app/prod/JWT_KEY", "--grace", "6s", "--json"])
        .expect(0)
        .json();
    assert_eq!(r["labels"]["current"], 3);
    assert_eq!(r["labels"]["previous"], 2);
    assert!(r["labels"].get("pending").is_none(), "{r}");
    assert_eq!(get(&[]).expect(0).stdout(), v3);
    assert_eq!(get(&["--label", "previous"]).expect(0).stdout(), v2);
    cli().run(&["promote", "app/prod/JWT_KEY"]).expect(8);
    assert!(
        promoting.elapsed() < Duration::from_secs(6),
        "the checks above took longer than the grace period"
    );
    // After the grace period, previous is no longer served.
    std::thread::sleep(
        (promoting + Duration::from_millis(6300)).saturating_duration_since(Instant::now()),
    );
    let r = get(&["--label", "previous"]).expect(3);
    assert!(r.stderr().contains("grace period ended"), "{}", r.stderr());
    // Versions stay readable by number for whoever may read them.
    assert_eq!(get(&["--version", "1"]).expect(0).stdout(), v1);

    // Cancel: pending is dropped, current stays, writes work again.
    cli()
        .stdin("qW3$eR5^tY7&uI9*oP1!aS2@dF4#gH6%")
        .run(&["rotate", "app/prod/JWT_KEY", "--stdin", "--stage"])
        .expect(0);
    let r = cli()
        .run(&["rotate", "app/prod/JWT_KEY", "--cancel", "--json"])
        .expect(0)
        .json();
    assert_eq!(r["labels"]["current"], 3);
    assert!(r["labels"].get("pending").is_none(), "{r}");
    assert_eq!(get(&[]).expect(0).stdout(), v3);
    cli()
        .run(&["rotate", "app/prod/JWT_KEY", "--cancel"])
        .expect(8);
    let r = cli()
        .stdin("zX8&cV6^bN4%mL2$kJ0#hG9@fD7!sA5*")
        .run(&["set", "app/prod/JWT_KEY", "--json"])
        .expect(0)
        .json();
    assert_eq!(r["version"], 5);
    assert_eq!(get(&["--label", "previous"]).expect(0).stdout(), v3);
    let h = cli()
        .run(&["history", "app/prod/JWT_KEY"])
        .expect(0)
        .stdout();
    assert!(h.contains("[current]") && h.contains("[previous"), "{h}");
    // `coffer run` resolves label references.
    let run = cli()
        .env("OLD", "coffer://app/prod/JWT_KEY#previous")
        .env("NEW", "coffer://app/prod/JWT_KEY")
        .run(&["run", "--", "sh", "-c", "printf '%s %s' \"$OLD\" \"$NEW\""])
        .expect(0);
    assert_eq!(
        run.stdout(),
        format!("{v3} zX8&cV6^bN4%mL2$kJ0#hG9@fD7!sA5*")
    );
    // The rotate capability alone can rotate, but not read.
    let t = server.token_with_policy(
        &root,
        "rotator",
        "path \"app/prod/*\" { capabilities = [\"rotate\"] }\n",
    );
    server
        .cli()
        .token(&t)
        .run(&["rotate", "app/prod/JWT_KEY", "--generate", "base64"])
        .expect(0);
    server
        .cli()
        .token(&t)
        .run(&["get", "app/prod/JWT_KEY"])
        .expect(4);
    server
        .cli()
        .token(&t)
        .run(&["rotate", "app/dev/JWT_KEY", "--generate", "base64"])
        .expect(4);
}

/// A consumer that accepts the current or the previous key (like a JWT
/// verifier holding both) never fails across repeated rotations, while a
/// producer signs with whatever is current when it asks.
#[test]
fn rotation_has_no_downtime_for_consumers_that_accept_both() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(dir.path(), Mode::Dev));
    let root = server.root_token();
    let path = "/api/v1/secrets/svc/prod/SIGNING_KEY";
    server
        .cli()
        .token(&root)
        .run(&["set", "svc/prod/SIGNING_KEY", "--generate"])
        .expect(0);
    // From the first rotation on there is always a previous key.
    server
        .cli()
        .token(&root)
        .run(&["rotate", "svc/prod/SIGNING_KEY", "--grace", "10m"])
        .expect(0);
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let consumer = {
        let (server, root, stop, checks, failures) = (
            server.clone(),
            root.clone(),
            stop.clone(),
            checks.clone(),
            failures.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Sign with the current key...
                let signed = ok(&server.http("GET", path, Some(&root), None), "sign");
                let key = signed["value"].as_str().unwrap().to_string();
                // ...and verify with what the verifier fetches now: current
                // and previous, in one request.
                let both = server.http(
                    "POST",
                    "/api/v1/bundle",
                    Some(&root),
                    Some(&body(json!({"secrets": [
                        {"path": "svc/prod/SIGNING_KEY"},
                        {"path": "svc/prod/SIGNING_KEY", "label": "previous"}
                    ]}))),
                );
                let accepted: Vec<String> = ok(&both, "verify")["secrets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["value"].as_str().unwrap().to_string())
                    .collect();
                if !accepted.contains(&key) {
                    failures.lock().unwrap().push(signed["version"].clone());
                }
                checks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for _ in 0..12 {
        // Wait for the consumer to complete a couple of checks between
        // rotations, as a consumer that refreshes its keys would.
        let seen = checks.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(20);
        while checks.load(Ordering::Relaxed) < seen + 2 {
            assert!(Instant::now() < deadline, "the consumer stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
        server
            .cli()
            .token(&root)
            .run(&["rotate", "svc/prod/SIGNING_KEY", "--grace", "10m"])
            .expect(0);
    }
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
    assert!(checks.load(Ordering::Relaxed) >= 24);
    assert!(
        failures.lock().unwrap().is_empty(),
        "verification failed for versions {:?}",
        failures.lock().unwrap()
    );
}

#[test]
fn the_scheduler_rotates_on_time_and_reports_what_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (port, bodies) = webhook_receiver();
    let config = format!(
        "lifecycle_interval_secs = 1\n[audit]\nwebhooks = [\"http://127.0.0.1:{port}/hook\"]\n"
    );
    let server = Server::start(dir.path(), Mode::Config(&config));
    let (_, root) = init_and_unseal(|| server.cli());
    let cli = || server.cli().token(&root);
    cli()
        .run(&[
            "lifecycle",
            "set",
            "sched/auto/*",
            "--rotate-every",
            "2s",
            "--generator",
            "urlsafe:24",
            "--grace",
            "1s",
        ])
        .expect(0);
    cli()
        .run(&["lifecycle", "set", "sched/manual/*", "--rotate-every", "2s"])
        .expect(0);
    let canary = "CANARY-scheduled-3f9a1c7e5b2d4860aa17";
    cli()
        .stdin(canary)
        .run(&["set", "sched/auto/TOKEN"])
        .expect(0);
    cli()
        .stdin("kJ7$mN2^pQ9&rS4*tU6!vW8@xY0#zA3%")
        .run(&["set", "sched/manual/PARTNER_KEY"])
        .expect(0);
    let before = cli()
        .run(&["rotation", "status", "sched", "--json"])
        .expect(0)
        .json();
    assert_eq!(before["secrets"].as_array().unwrap().len(), 2, "{before}");
    // Two scheduled rotations within a generous bound (interval 2s, passes every 1s).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let md = cli()
            .run(&["history", "sched/auto/TOKEN", "--json"])
            .expect(0)
            .json();
        if md["current_version"].as_u64().unwrap() >= 3 {
            let last = md["versions"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["created_by"], "coffer-scheduler");
            // The system's own writes say so, with no token behind them.
            assert_eq!(last["created_by_kind"], "system");
            assert!(last.get("created_by_accessor").is_none(), "{last}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not rotated on time: {md}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let value = cli().run(&["get", "sched/auto/TOKEN"]).expect(0).stdout();
    assert_eq!(value.len(), 32, "urlsafe:24 from the rule's generator");
    // The manual one is overdue and reported, not rotated.
    let status = cli()
        .run(&["rotation", "status", "sched", "--json"])
        .expect(0)
        .json();
    let manual = status["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "sched/manual/PARTNER_KEY")
        .unwrap()
        .clone();
    assert_eq!(manual["status"], "overdue", "{status}");
    assert_eq!(manual["automatic"], false);
    assert_eq!(manual["current"], 1);
    cli()
        .run(&["rotation", "status", "sched", "--check"])
        .expect(7);
    let table = cli()
        .run(&["rotation", "status", "sched"])
        .expect(0)
        .stdout();
    assert!(
        table.contains("OVERDUE") && table.contains("by hand"),
        "{table}"
    );
    // Alerts: in the audit log and at the webhook, never with a value.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = bodies.lock().unwrap().concat();
        if got.contains("secret_rotated") && got.contains("rotation_due") {
            assert!(!got.contains(canary) && !got.contains(&value));
            break;
        }
        assert!(Instant::now() < deadline, "alerts not delivered: {got}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let records = audit_records(&server);
    let rotated: Vec<&Value> = records
        .iter()
        .filter(|r| r["alert"]["rule"] == "secret_rotated")
        .collect();
    assert!(rotated.len() >= 2);
    assert_eq!(rotated[0]["actor"]["name"], "coffer-scheduler");
    assert_eq!(rotated[0]["path"], "sched/auto/TOKEN");
    let due: Vec<&Value> = records
        .iter()
        .filter(|r| r["alert"]["rule"] == "rotation_due")
        .collect();
    assert_eq!(due.len(), 1, "one alert per due date, not one per pass");
    let log = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    assert!(!log.contains(canary) && !log.contains(&value));
    cli().run(&["audit", "verify"]).expect(0);
    // A rotation by hand resets the manual one's schedule.
    cli()
        .stdin("aB1!cD2@eF3#gH4$iJ5%kL6^mN7&oP8*")
        .run(&["rotate", "sched/manual/PARTNER_KEY", "--stdin"])
        .expect(0);
    let status = cli()
        .run(&["rotation", "status", "sched/manual", "--json"])
        .expect(0)
        .json();
    // The schedule counts from the hand rotation: no longer overdue (a
    // loaded machine may already be in the last tenth of the 2 s interval,
    // where it is "due" again), and the due date moved on.
    let entry = &status["secrets"][0];
    assert_eq!(entry["current"], 2, "{status}");
    assert!(
        entry["status"] == "ok" || entry["status"] == "due",
        "{status}"
    );
    assert!(
        entry["due_at"].as_str().unwrap() > manual["due_at"].as_str().unwrap(),
        "{status}"
    );
}

#[test]
fn expired_secrets_are_refused_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let cli = || server.cli().token(&root);
    cli()
        .stdin("pQ2@wE4#rT6$yU8%iO0^aS1&dF3*gH5!")
        .run(&["set", "partner/prod/API_KEY"])
        .expect(0);
    let r = cli()
        .run(&["expire", "partner/prod/API_KEY", "--in", "30d", "--json"])
        .expect(0)
        .json();
    assert!(r["labels"]["expires_at"].is_string());
    let status = cli()
        .run(&["rotation", "status", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["secrets"][0]["status"], "ok");
    cli()
        .run(&[
            "expire",
            "partner/prod/API_KEY",
            "--at",
            "2030-01-01T00:00:00Z",
        ])
        .expect(0);
    cli()
        .run(&[
            "expire",
            "partner/prod/API_KEY",
            "--at",
            "2020-01-01T00:00:00Z",
        ])
        .expect(0);
    let r = cli().run(&["get", "partner/prod/API_KEY"]).expect(4);
    assert!(
        r.stderr().contains("expired at 2020-01-01"),
        "{}",
        r.stderr()
    );
    assert!(r.stdout().is_empty());
    let r = server.http(
        "GET",
        "/api/v1/secrets/partner/prod/API_KEY",
        Some(&root),
        None,
    );
    assert_eq!((r.status, r.error_code()), (403, "expired".to_string()));
    cli()
        .run(&["run", "--path", "partner/prod", "--no-cache", "--", "true"])
        .expect(4);
    let status = cli()
        .run(&["rotation", "status", "--json"])
        .expect(0)
        .json();
    assert_eq!(status["secrets"][0]["status"], "expired");
    // Audited as a refused use of an expired secret.
    let refused: Vec<Value> = audit_records(&server)
        .into_iter()
        .filter(|r| r["error"] == "expired")
        .collect();
    assert!(refused.len() >= 2, "{refused:?}");
    assert_eq!(refused[0]["outcome"], "denied");
    assert_eq!(refused[0]["path"], "partner/prod/API_KEY");
    // Bad input changes nothing.
    for bad in [
        &["expire", "partner/prod/API_KEY", "--in", "soon"][..],
        &["expire", "partner/prod/API_KEY", "--at", "tomorrow"],
    ] {
        cli().run(bad).expect(7);
    }
    cli().run(&["expire", "partner/prod/API_KEY"]).expect(2);
    cli()
        .run(&["expire", "partner/prod/NOPE", "--in", "1d"])
        .expect(3);
    cli().run(&["get", "partner/prod/API_KEY"]).expect(4);
    cli()
        .run(&["expire", "partner/prod/API_KEY", "--never"])
        .expect(0);
    cli().run(&["get", "partner/prod/API_KEY"]).expect(0);
}

#[test]
fn rollback_copy_move_and_environment_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let cli = || server.cli().token(&root);
    let set = |path: &str, v: &str| cli().stdin(v).run(&["set", path]).expect(0);
    let get = |path: &str| cli().run(&["get", path]).expect(0).stdout();

    // Rollback writes a new version equal to the old one.
    set("app/staging/DB_URL", "postgres://staging-1");
    set("app/staging/DB_URL", "postgres://staging-2");
    let r = cli()
        .run(&["rollback", "app/staging/DB_URL", "1", "--json"])
        .expect(0)
        .json();
    assert_eq!(r["version"], 3);
    assert_eq!(get("app/staging/DB_URL"), "postgres://staging-1");
    cli()
        .run(&["rollback", "app/staging/DB_URL", "9"])
        .expect(3);
    cli().run(&["rollback", "app/staging/NOPE", "1"]).expect(3);

    // Copy keeps the whole history, re-sealed for the new path.
    cli()
        .run(&["rm", "app/staging/DB_URL", "--version", "2"])
        .expect(0);
    cli()
        .run(&["cp", "app/staging/DB_URL", "app/archive/DB_URL"])
        .expect(0);
    let a = cli()
        .run(&["history", "app/staging/DB_URL", "--json"])
        .expect(0)
        .json();
    let b = cli()
        .run(&["history", "app/archive/DB_URL", "--json"])
        .expect(0)
        .json();
    let shape = |md: &Value| {
        md["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["version"].clone(),
                    v["state"].clone(),
                    v["created_by"].clone(),
                    v["created_at"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(&a), shape(&b));
    for v in ["1", "3"] {
        assert_eq!(
            cli()
                .run(&["get", "app/archive/DB_URL", "--version", v])
                .expect(0)
                .stdout(),
            cli()
                .run(&["get", "app/staging/DB_URL", "--version", v])
                .expect(0)
                .stdout()
        );
    }
    cli()
        .run(&["get", "app/archive/DB_URL", "--version", "2"])
        .expect(3);
    // Onto an existing path: refused, nothing changes.
    cli()
        .run(&["cp", "app/staging/DB_URL", "app/archive/DB_URL"])
        .expect(8);
    // Move: the source is gone, the target has the history.
    cli()
        .run(&["mv", "app/archive/DB_URL", "app/archive/DATABASE_URL"])
        .expect(0);
    cli().run(&["history", "app/archive/DB_URL"]).expect(3);
    assert_eq!(get("app/archive/DATABASE_URL"), "postgres://staging-1");
    let moved = cli()
        .run(&["history", "app/archive/DATABASE_URL", "--json"])
        .expect(0)
        .json();
    assert_eq!(shape(&moved), shape(&a));
    cli().run(&["mv", "app/nope/X", "app/nope/Y"]).expect(3);
    // A copy needs read on the source: a token that may only create
    // elsewhere cannot launder a value through a copy.
    let t = server.token_with_policy(
        &root,
        "writer",
        "path \"app/archive/*\" { capabilities = [\"create\", \"list\"] }\n",
    );
    server
        .cli()
        .token(&t)
        .run(&["cp", "app/staging/DB_URL", "app/archive/STOLEN"])
        .expect(4);
    cli().run(&["history", "app/archive/STOLEN"]).expect(3);

    // Environment promotion: preview names only, then apply.
    set("app/staging/API_KEY", "staging-api-key-value-1");
    set("app/staging/NEW_FLAG", "on");
    set("app/prod/API_KEY", "prod-api-key-value-old");
    set("app/prod/DB_URL", "postgres://staging-1");
    set("app/prod/ONLY_PROD", "prod-only");
    let preview = cli()
        .run(&["env", "promote", "app/staging", "app/prod", "--dry-run"])
        .expect(0);
    let text = preview.stdout();
    for (name, action) in [
        ("API_KEY", "update"),
        ("NEW_FLAG", "create"),
        ("DB_URL", "unchanged"),
        ("ONLY_PROD", "left alone"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && l.contains(action)),
            "{name} {action}: {text}"
        );
    }
    for v in [
        "staging-api-key-value-1",
        "prod-api-key-value-old",
        "postgres://",
        "prod-only",
    ] {
        assert!(
            !text.contains(v) && !preview.stderr().contains(v),
            "{v} shown"
        );
    }
    assert_eq!(get("app/prod/API_KEY"), "prod-api-key-value-old");
    // Without a terminal and without --yes, nothing is written.
    let r = cli()
        .run(&["env", "promote", "app/staging", "app/prod"])
        .expect(0);
    assert!(r.stderr().contains("--yes"), "{}", r.stderr());
    assert_eq!(get("app/prod/API_KEY"), "prod-api-key-value-old");
    // A plan that no longer matches is refused whole.
    let plan = ok(
        &server.http(
            "POST",
            "/api/v1/promote-env",
            Some(&root),
            Some(&body(json!({"from": "app/staging", "to": "app/prod"}))),
        ),
        "preview",
    )["plan"]
        .clone();
    set("app/prod/API_KEY", "prod-api-key-value-newer");
    let r = server.http(
        "POST",
        "/api/v1/promote-env",
        Some(&root),
        Some(&body(
            json!({"from": "app/staging", "to": "app/prod", "apply": plan}),
        )),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    cli().run(&["get", "app/prod/NEW_FLAG"]).expect(3);
    let done = cli()
        .run(&[
            "env",
            "promote",
            "app/staging",
            "app/prod",
            "--yes",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(done["written"].as_array().unwrap().len(), 2, "{done}");
    assert_eq!(get("app/prod/API_KEY"), "staging-api-key-value-1");
    assert_eq!(get("app/prod/NEW_FLAG"), "on");
    assert_eq!(get("app/prod/ONLY_PROD"), "prod-only");
    let again = cli()
        .run(&["env", "promote", "app/staging", "app/prod", "--yes"])
        .expect(0);
    assert!(again.stdout().contains("up to date"), "{}", again.stdout());
    // The promotion is audited as the writes it made.
    let writes: Vec<Value> = audit_records(&server)
        .into_iter()
        .filter(|r| r["op"] == "secret.promote_env" && r["outcome"] == "ok")
        .filter(|r| r.get("writes").is_some())
        .collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0]["writes"].as_array().unwrap().len(), 2);
    cli()
        .run(&["env", "promote", "app/staging", "app/staging/sub"])
        .expect(7);
}

#[test]
fn bad_lifecycle_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let cli = || server.cli().token(&root);
    cli()
        .run(&["lifecycle", "set", "app/*", "--rotate-every", "90d"])
        .expect(0);
    for bad in [
        &["lifecycle", "set", "app/*", "--rotate-every", "0s"][..],
        &["lifecycle", "set", "app/*", "--rotate-every", "banana"],
        &[
            "lifecycle",
            "set",
            "app/*",
            "--rotate-every",
            "1m",
            "--grace",
            "1h",
        ],
        &["lifecycle", "set", "app/*", "--generator", "base32"],
        &["lifecycle", "set", "app/*", "--generator", "hex:2"],
        &["lifecycle", "set", "app/*", "--min-bits", "0"],
        &["lifecycle", "set", "app/*"],
        &["lifecycle", "set", "a*b", "--min-bits", "64"],
    ] {
        let r = cli().run(bad).expect(7);
        assert!(!r.stderr().is_empty());
    }
    let rules = cli().run(&["lifecycle", "ls", "--json"]).expect(0).json();
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1);
    assert_eq!(rules["rules"][0]["rotate_every"], "90d");
    // Rotating what does not exist creates nothing.
    let r = cli()
        .run(&["rotate", "app/dev/NOPE", "--generate", "hex"])
        .expect(3);
    assert!(r.stderr().contains("app/dev/NOPE"), "{}", r.stderr());
    cli().run(&["history", "app/dev/NOPE"]).expect(3);
    cli()
        .run(&["set", "app/dev/X", "--generate", "rot13"])
        .expect(2);
    cli().run(&["history", "app/dev/X"]).expect(3);
    cli()
        .run(&["set", "app/dev/X", "--generate", "hex"])
        .expect(0);
    cli()
        .run(&[
            "rotate",
            "app/dev/X",
            "--generate",
            "hex",
            "--grace",
            "forever",
        ])
        .expect(7);
    cli()
        .run(&["get", "app/dev/X", "--label", "older"])
        .expect(2);
    let r = server.http(
        "GET",
        "/api/v1/secrets/app/dev/X?label=older",
        Some(&root),
        None,
    );
    assert_eq!(r.status, 400);
    let r = server.http(
        "GET",
        "/api/v1/secrets/app/dev/X?label=previous&version=1",
        Some(&root),
        None,
    );
    assert_eq!(r.status, 400);
    for neither_or_both in [
        &br#"{"value":"abc","generate":"hex"}"#[..],
        br#"{}"#,
        br#"{"value":null}"#,
        br#"{"generate":"hex:4"}"#,
    ] {
        let r = server.http(
            "PUT",
            "/api/v1/secrets/app/dev/X",
            Some(&root),
            Some(neither_or_both),
        );
        assert_eq!(r.status, 400, "{}", r.text());
    }
    let md = cli()
        .run(&["history", "app/dev/X", "--json"])
        .expect(0)
        .json();
    assert_eq!(md["current_version"], 1);
    // Only admins manage rules.
    let t = server.token_with_policy(
        &root,
        "dev",
        "path \"app/*\" { capabilities = [\"read\", \"create\", \"update\", \"list\"] }\n",
    );
    server
        .cli()
        .token(&t)
        .run(&["lifecycle", "set", "app/*", "--min-bits", "1"])
        .expect(4);
    server.cli().token(&t).run(&["lifecycle", "ls"]).expect(4);
    server
        .cli()
        .token(&t)
        .run(&["rotate", "app/dev/X"])
        .expect(4);
}

/// Key hygiene: a key that has sealed its share is replaced automatically,
/// and the scheduler moves every older version to the newest key, with no
/// value changing and no reader noticing.
#[test]
fn keyring_keys_rotate_by_use_and_old_versions_are_rewrapped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        Mode::Config("lifecycle_interval_secs = 1\nkey_max_encryptions = 16\n"),
    );
    let (_, root) = init_and_unseal(|| server.cli());
    let cli = || server.cli().token(&root);
    let mut expected = Vec::new();
    for i in 0..30 {
        let v = format!("value-{i}-Qm7#vX2$kL9!");
        cli()
            .stdin(&v)
            .run(&["set", &format!("kh/app/S{i:02}")])
            .expect(0);
        expected.push(v);
    }
    let env = dir.path().join("batch.env");
    std::fs::write(
        &env,
        (0..20)
            .map(|i| format!("B{i:02}=batch-{i}-Zr4&pW8^"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    cli()
        .run(&["import", env.to_str().unwrap(), "--path", "kh/batch"])
        .expect(0);
    let status = cli()
        .run(&["operator", "keyring", "--json"])
        .expect(0)
        .json();
    let keys = status["keys"].as_array().unwrap().len();
    assert!(keys >= 3, "50 encryptions at 16 per key: {status}");
    let active = status["active_key"].as_u64().unwrap();
    // Within a few passes every version is sealed under the active key.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stale: Vec<String> = (0..30)
            .map(|i| format!("kh/app/S{i:02}"))
            .chain((0..20).map(|i| format!("kh/batch/B{i:02}")))
            .filter(|p| {
                let md = cli().run(&["history", p, "--json"]).expect(0).json();
                md["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["key_id"].as_u64().unwrap() < active)
            })
            .collect();
        if stale.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not re-wrapped: {stale:?}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for (i, v) in expected.iter().enumerate() {
        assert_eq!(
            &cli()
                .run(&["get", &format!("kh/app/S{i:02}")])
                .expect(0)
                .stdout(),
            v
        );
    }
    assert_eq!(
        cli().run(&["get", "kh/batch/B07"]).expect(0).stdout(),
        "batch-7-Zr4&pW8^"
    );
    let rotated = audit_records(&server)
        .into_iter()
        .filter(|r| r["alert"]["rule"] == "keyring_rotated")
        .count();
    assert!(rotated >= 2, "each automatic key is an alert");
    cli().run(&["audit", "verify"]).expect(0);
    // A limit below the floor is refused at start.
    let bad = tempfile::tempdir().unwrap();
    let err = Server::try_start(bad.path(), Mode::Config("key_max_encryptions = 4\n"))
        .err()
        .unwrap();
    assert!(err.contains("key_max_encryptions"), "{err}");
}

/// A canary value sent through every lifecycle path: rotation from stdin,
/// staging, promotion, rollback, copy, move, environment promotion, a
/// strength refusal and warnings. It must appear only where a value is
/// asked for.
#[test]
fn canary_appears_only_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let mut canary = Canary::new("lifecycle");
    let c = canary.value.clone();
    let cli = || server.cli().token(&root);

    cli().run(&["set", "can/staging/K", "--generate"]).expect(0);
    let r = cli()
        .stdin(&c)
        .run(&["rotate", "can/staging/K", "--stdin", "--stage", "--json"])
        .expect(0);
    canary.search_run("rotate --stage", &r);
    let r = cli()
        .run(&["get", "can/staging/K", "--label", "pending"])
        .expect(0);
    canary.search_run_allowing_stdout("get pending", &r);
    let r = cli().run(&["promote", "can/staging/K"]).expect(0);
    canary.search_run("promote", &r);
    let r = cli()
        .run(&["rotate", "can/staging/K", "--generate", "hex"])
        .expect(0);
    canary.search_run("rotate", &r);
    let r = cli()
        .run(&["get", "can/staging/K", "--label", "previous"])
        .expect(0);
    canary.search_run_allowing_stdout("get previous", &r);
    let r = cli().run(&["rollback", "can/staging/K", "2"]).expect(0);
    canary.search_run("rollback", &r);
    let r = cli().run(&["cp", "can/staging/K", "can/other/K"]).expect(0);
    canary.search_run("cp", &r);
    let r = cli().run(&["mv", "can/other/K", "can/other/K2"]).expect(0);
    canary.search_run("mv", &r);
    let r = cli()
        .run(&["env", "promote", "can/staging", "can/prod", "--yes"])
        .expect(0);
    canary.search_run("env promote", &r);
    let r = cli().run(&["history", "can/prod/K"]).expect(0);
    canary.search_run("history", &r);
    let r = cli().run(&["rotation", "status", "--json"]).expect(0);
    canary.search_run("rotation status", &r);
    // A refusal and a warning about the canary-bearing value.
    cli()
        .run(&["lifecycle", "set", "can/locked/*", "--min-bits", "1000"])
        .expect(0);
    let r = cli().stdin(&c).run(&["set", "can/locked/K"]).expect(7);
    canary.search_run("weak refusal", &r);
    let weak = c.clone();
    let r = server.http(
        "POST",
        "/api/v1/rotate/can/staging/K",
        Some(&root),
        Some(&body(json!({"value": weak, "grace": "nonsense"}))),
    );
    assert_eq!(r.status, 400);
    canary.search_response("rotate with bad grace", &r);
    let r = server.http(
        "POST",
        "/api/v1/rotate/can/staging/K",
        Some(&root),
        Some(format!(r#"{{"value": "{c}", "bogus": 1}}"#).as_bytes()),
    );
    assert_eq!(r.status, 400);
    canary.search_response("rotate with an unknown field", &r);
    let logs = server.logs();
    canary.search("server logs", logs);
    canary.search(
        "audit log",
        std::fs::read(server.data_dir().join("audit.log")).unwrap(),
    );
    canary.search_dir(&server.data_dir());
    canary.assert_nowhere_else();
}
