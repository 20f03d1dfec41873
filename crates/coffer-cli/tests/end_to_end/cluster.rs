//! Several coffer nodes on one PostgreSQL: the real binary, twice, against a
//! real PostgreSQL server that the tests start themselves (see
//! `coffer-testpg`; a test fails if it cannot get one).

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Mode, Server, http, init_and_unseal};

/// A node's configuration: the shared database, its password kept out of
/// the URL (in a file), and the lifecycle scheduler on a short interval.
fn node_config(dir: &std::path::Path, db_url: &str) -> String {
    let password_file = dir.join("db-password");
    std::fs::write(&password_file, coffer_testpg::SUPERUSER_PASSWORD).unwrap();
    let url = db_url.replace(&format!(":{}@", coffer_testpg::SUPERUSER_PASSWORD), "@");
    format!(
        "lifecycle_interval_secs = 1\n[storage]\nurl = {url:?}\npassword_file = {:?}\npool_size = 8\n",
        password_file.display().to_string()
    )
}

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    db: String,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Cluster {
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            db: coffer_testpg::database_blocking(),
        }
    }

    fn start(&self, i: usize) -> Server {
        let dir = self.dirs[i].path();
        Server::start(dir, Mode::Config(&node_config(dir, &self.db)))
    }
}

fn read(server: &Server, token: &str, path: &str) -> (u16, serde_json::Value) {
    let r = server.http("GET", &format!("/api/v1/secrets/{path}"), Some(token), None);
    let body = if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        r.json()
    };
    (r.status, body)
}

fn write(server: &Server, token: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let r = server.http(
        "PUT",
        &format!("/api/v1/secrets/{path}"),
        Some(token),
        Some(body.as_bytes()),
    );
    (r.status, r.json())
}

#[test]
fn two_nodes_serve_one_store_and_changes_take_effect_at_the_next_request() {
    let cluster = Cluster::new(2);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let (key, root) = init_and_unseal(|| a.cli());
    // B notices the initialisation and is unsealed on its own.
    let status = b.cli().run(&["status", "--json"]).expect(5).json();
    assert_eq!(status["initialized"], true, "{status}");
    assert_eq!(status["sealed"], true, "{status}");
    assert_eq!(status["storage"], "postgres", "{status}");
    b.cli().stdin(&key).run(&["operator", "unseal"]).expect(0);

    // Write on A, read on B; write on B, read on A (which cached its own write).
    a.cli()
        .token(&root)
        .stdin("value-one")
        .run(&["set", "app/prod/DB_PASSWORD"])
        .expect(0);
    let got = b
        .cli()
        .token(&root)
        .run(&["get", "app/prod/DB_PASSWORD"])
        .expect(0)
        .stdout();
    assert_eq!(got, "value-one");
    b.cli()
        .token(&root)
        .stdin("value-two")
        .run(&["set", "app/prod/DB_PASSWORD"])
        .expect(0);
    for node in [&a, &b] {
        let got = node
            .cli()
            .token(&root)
            .run(&["get", "app/prod/DB_PASSWORD"])
            .expect(0)
            .stdout();
        assert_eq!(got, "value-two");
    }

    // A token revoked on A is refused by B at its next request.
    let reader = a.token_with_policy(
        &root,
        "reader",
        r#"path "app/*" { capabilities = ["read", "list"] }"#,
    );
    assert_eq!(read(&b, &reader, "app/prod/DB_PASSWORD").0, 200);
    a.cli()
        .token(&reader)
        .run(&["token", "revoke", "--self"])
        .expect(0);
    assert_eq!(read(&b, &reader, "app/prod/DB_PASSWORD").0, 401);

    // A policy narrowed on A binds on B at its next request.
    let reader = a.token_with_policy(
        &root,
        "reader",
        r#"path "app/*" { capabilities = ["read", "list"] }"#,
    );
    assert_eq!(read(&b, &reader, "app/prod/DB_PASSWORD").0, 200);
    let narrowed = cluster.dirs[0].path().join("narrow.hcl");
    std::fs::write(&narrowed, r#"path "app/dev/*" { capabilities = ["read"] }"#).unwrap();
    a.cli()
        .token(&root)
        .run(&["policy", "write", "reader", narrowed.to_str().unwrap()])
        .expect(0);
    assert_eq!(read(&b, &reader, "app/prod/DB_PASSWORD").0, 403);

    // A keyring key added on A is used by B at once.
    a.cli().token(&root).run(&["operator", "rotate"]).expect(0);
    b.cli()
        .token(&root)
        .stdin("value-three")
        .run(&["set", "app/prod/DB_PASSWORD"])
        .expect(0);
    let (_, meta) = {
        let r = a.http(
            "GET",
            "/api/v1/metadata/app/prod/DB_PASSWORD",
            Some(&root),
            None,
        );
        (r.status, r.json())
    };
    assert_eq!(meta["current_version"], 3, "{meta}");
    let got = a
        .cli()
        .token(&root)
        .run(&["get", "app/prod/DB_PASSWORD"])
        .expect(0)
        .stdout();
    assert_eq!(got, "value-three");
    let keyring = b
        .cli()
        .token(&root)
        .run(&["operator", "keyring", "--json"])
        .expect(0)
        .json();
    assert_eq!(keyring["active_key"], 2, "{keyring}");

    // The database password never reaches a log.
    for node in [&a, &b] {
        let logs = node.logs();
        assert!(
            !logs.contains(coffer_testpg::SUPERUSER_PASSWORD),
            "the database password was logged:\n{logs}"
        );
    }
}

#[test]
fn concurrent_check_and_set_writers_on_two_nodes_lose_no_update() {
    let cluster = Cluster::new(2);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let (key, root) = init_and_unseal(|| a.cli());
    b.cli().stdin(&key).run(&["operator", "unseal"]).expect(0);
    assert_eq!(
        write(&a, &root, "counter/n", r#"{"value":"0","cas":0}"#).0,
        200
    );
    let per_writer = 25u64;
    let conflicts = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = [a.host_port().to_string(), b.host_port().to_string()]
        .into_iter()
        .flat_map(|h| [h.clone(), h])
        .map(|host| {
            let (root, conflicts) = (root.clone(), conflicts.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                while done < per_writer {
                    let r = http(
                        &host,
                        "GET",
                        "/api/v1/secrets/counter/n",
                        Some(&root),
                        None,
                        &[],
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                    let body = r.json();
                    let n: u64 = body["value"].as_str().unwrap().parse().unwrap();
                    let version = body["version"].as_u64().unwrap();
                    let w = http(
                        &host,
                        "PUT",
                        "/api/v1/secrets/counter/n",
                        Some(&root),
                        Some(format!(r#"{{"value":"{}","cas":{version}}}"#, n + 1).as_bytes()),
                        &[],
                    );
                    match w.status {
                        200 => done += 1,
                        409 => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        s => panic!("unexpected {s}: {}", w.text()),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (_, body) = read(&b, &root, "counter/n");
    assert_eq!(body["value"], (4 * per_writer).to_string(), "{body}");
    assert_eq!(body["version"], 4 * per_writer + 1, "{body}");
    assert!(
        conflicts.load(Ordering::Relaxed) > 0,
        "the writers never raced, so the test proved nothing"
    );
}

#[test]
fn kill_9_of_a_node_loses_no_acknowledged_write() {
    let cluster = Cluster::new(2);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let (key, root) = init_and_unseal(|| a.cli());
    b.cli().stdin(&key).run(&["operator", "unseal"]).expect(0);
    let host = a.host_port().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(String, u64, String)>::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (host, root, stop, acked) =
                (host.clone(), root.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("dur/w{w}/k{}", i % 5);
                    let value = format!("w{w}-i{i}");
                    let body = format!(r#"{{"value":"{value}"}}"#);
                    let result = std::panic::catch_unwind(|| {
                        http(
                            &host,
                            "PUT",
                            &format!("/api/v1/secrets/{path}"),
                            Some(&root),
                            Some(body.as_bytes()),
                            &[],
                        )
                    });
                    match result {
                        Ok(r) if r.status == 200 => {
                            let version = r.json()["version"].as_u64().unwrap();
                            acked.lock().unwrap().push((path, version, value));
                        }
                        // The node died mid-request: never acknowledged.
                        _ => return,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    common::wait_until(Duration::from_secs(30), "20 acknowledged writes", || {
        acked.lock().unwrap().len() > 20
    });
    std::thread::sleep(Duration::from_millis(500));
    a.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    for (path, version, value) in &acked {
        let r = b.http(
            "GET",
            &format!("/api/v1/secrets/{path}?version={version}"),
            Some(&root),
            None,
        );
        assert_eq!(r.status, 200, "acknowledged {path} v{version} is gone");
        assert_eq!(r.json()["value"], value.as_str());
    }
}

/// Versions the scheduler wrote, per node, from each node's audit log.
fn scheduled_rotations(server: &Server) -> usize {
    let log = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("\"secret_rotated\""))
        .count()
}

#[test]
fn the_scheduler_runs_on_one_node_and_moves_when_that_node_dies() {
    let cluster = Cluster::new(2);
    let a = cluster.start(0);
    let b = cluster.start(1);
    let (key, root) = init_and_unseal(|| a.cli());
    b.cli().stdin(&key).run(&["operator", "unseal"]).expect(0);
    a.cli()
        .token(&root)
        .run(&[
            "lifecycle",
            "set",
            "sched/*",
            "--rotate-every",
            "1s",
            "--generator",
            "alnum:24",
        ])
        .expect(0);
    a.cli()
        .token(&root)
        .run(&["set", "sched/TOKEN", "--generate"])
        .expect(0);
    let version = |node: &Server| -> u64 {
        let r = node.http("GET", "/api/v1/metadata/sched/TOKEN", Some(&root), None);
        r.json()["current_version"].as_u64().unwrap()
    };
    // Rotations happen, and only one node's audit log records them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while version(&b) < 4 {
        assert!(Instant::now() < deadline, "no scheduled rotations");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (on_a, on_b) = (scheduled_rotations(&a), scheduled_rotations(&b));
    assert!(
        (on_a > 0) != (on_b > 0),
        "exactly one node runs the scheduler (a: {on_a}, b: {on_b})"
    );
    let (leader, survivor) = if on_a > 0 { (a, b) } else { (b, a) };
    // A sealed node gives the role up: the other one takes it.
    leader
        .cli()
        .token(&root)
        .run(&["operator", "seal"])
        .expect(0);
    let before = scheduled_rotations(&survivor);
    let deadline = Instant::now() + Duration::from_secs(30);
    while scheduled_rotations(&survivor) < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the scheduler did not leave the sealed node:\n{}",
            survivor.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Back to the first node when it is unsealed and the other dies.
    leader
        .cli()
        .stdin(&key)
        .run(&["operator", "unseal"])
        .expect(0);
    let (leader, survivor) = (survivor, leader);
    leader.kill9();
    let before = version(&survivor);
    let killed = Instant::now();
    // The survivor checks the role every second and runs a pass at once when
    // it takes it (PostgreSQL frees a dead session's lock as soon as its
    // connection drops), and rotations are due every second: a few seconds,
    // printed below. What is checked is that it happens; the deadline only
    // ends a test that would otherwise wait forever, with room for a busy
    // machine, like the ones above.
    let deadline = killed + Duration::from_secs(30);
    while version(&survivor) < before + 2 {
        assert!(
            Instant::now() < deadline,
            "the scheduler did not move to the surviving node:\n{}",
            survivor.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = killed.elapsed();
    assert!(scheduled_rotations(&survivor) > 0);
    eprintln!("the scheduler moved to the surviving node in {took:?}");
}

#[test]
fn a_bad_storage_url_or_password_is_a_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let db = coffer_testpg::database_blocking();
    let wrong = db.replace(
        coffer_testpg::SUPERUSER_PASSWORD,
        "canary-wrong-db-password",
    );
    let err = Server::try_start(
        dir.path(),
        Mode::Config(&format!("[storage]\nurl = {wrong:?}\n")),
    )
    .err()
    .expect("a wrong password does not start");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(err.contains("<redacted>"), "{err}");
    assert!(!err.contains("canary-wrong-db-password"), "{err}");

    let err = Server::try_start(
        dir.path(),
        Mode::Config("[storage]\nurl = \"mysql://u:canary-pw@h/d\"\n"),
    )
    .err()
    .expect("an unknown scheme does not start");
    assert!(err.contains("storage.url must be"), "{err}");
    assert!(!err.contains("canary-pw"), "{err}");

    // A password on the command line works, with a warning.
    let dir2 = tempfile::tempdir().unwrap();
    let data = dir2.path().join("data");
    let out = std::process::Command::new(common::BIN)
        .args(["server", "--dev", "--listen", "127.0.0.1:0", "--storage"])
        .arg(wrong)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("visible") || stderr.contains("can"),
        "{stderr}"
    );
    assert!(!stderr.contains("canary-wrong-db-password"), "{stderr}");
}

/// Runs `sql` as the test server's administrator.
fn admin_sql(sql: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(coffer_testpg::admin_sql(sql))
        .unwrap();
}

/// Makes the database unreachable (no new connections, every open one cut)
/// or reachable again.
fn set_reachable(db_url: &str, reachable: bool) {
    let name = db_url
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .unwrap();
    admin_sql(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {reachable}"
    ));
    if !reachable {
        admin_sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ));
    }
}

/// Regression (fault injection, bench/faults/postgres.py): while its
/// PostgreSQL was unreachable, a node failed every write but its health
/// check answered 200, so neither a load balancer nor monitoring noticed.
/// Now health answers 503 with `storage_available: false`; writes fail
/// closed meanwhile and work again, without a restart, once the database
/// is back; nothing acknowledged before is lost.
#[test]
fn health_is_503_while_postgres_is_unreachable_and_service_resumes_after() {
    let cluster = Cluster::new(1);
    let a = cluster.start(0);
    let (_key, root) = init_and_unseal(|| a.cli());
    assert_eq!(
        write(&a, &root, "app/prod/before", r#"{"value":"one"}"#).0,
        200
    );
    let health = a.http("GET", "/api/v1/sys/health", None, None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["storage_available"], true);

    set_reachable(&cluster.db, false);
    let (status, body) = write(&a, &root, "app/prod/during", r#"{"value":"two"}"#);
    assert!(
        status >= 500,
        "a write without its database answered {status} {body}"
    );
    // Health answers from a probe at most a second old (see
    // `STORAGE_PROBE_FRESH`): within a few seconds it says so.
    let wait_for_health = |code: u16| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let health = a.http("GET", "/api/v1/sys/health", None, None);
            if health.status == code {
                return health;
            }
            assert!(
                Instant::now() < deadline,
                "health stayed {} instead of {code}",
                health.status
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let health = wait_for_health(503);
    let h = health.json();
    assert_eq!(h["storage_available"], false, "{h}");
    assert_eq!(h["sealed"], false, "{h}");
    let status = a.http("GET", "/api/v1/sys/status", None, None);
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["storage_available"], false);

    set_reachable(&cluster.db, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = write(&a, &root, "app/prod/after", r#"{"value":"three"}"#);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let health = wait_for_health(200);
    assert_eq!(health.json()["storage_available"], true);
    let (status, body) = read(&a, &root, "app/prod/before");
    assert_eq!(
        (status, body["value"].as_str()),
        (200, Some("one")),
        "{body}"
    );
    // The refused write left nothing behind.
    assert_eq!(read(&a, &root, "app/prod/during").0, 404);
    // The outage and its end are alerts in the audit log, once each.
    let log = std::fs::read_to_string(a.data_dir().join("audit.log")).unwrap();
    let rules: Vec<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| r["alert"]["rule"].as_str().map(str::to_owned))
        .filter(|r| r.starts_with("storage_"))
        .collect();
    assert_eq!(rules, ["storage_unavailable", "storage_recovered"], "{log}");
}
