//! PostgreSQL role rotation against a real PostgreSQL server (started by the
//! tests, see `coffer-testpg`): the real binary manages two alternating
//! roles, and real clients log in with the credentials it serves.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Mode, Server, contains, files_under, init_and_unseal, read_listed};

/// Credentials as coffer serves them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Creds {
    version: u64,
    username: String,
    password: String,
    url: String,
}

fn creds(body: &serde_json::Value) -> Creds {
    let v = &body["value"];
    Creds {
        version: body["version"].as_u64().unwrap(),
        username: v["username"].as_str().unwrap().to_string(),
        password: v["password"].as_str().unwrap().to_string(),
        url: v["url"].as_str().unwrap().to_string(),
    }
}

/// Reads the credentials (by label) over HTTP.
fn read(server: &Server, token: &str, path: &str, label: &str) -> Result<Creds, String> {
    let r = server.http(
        "GET",
        &format!("/api/v1/secrets/{path}?label={label}"),
        Some(token),
        None,
    );
    if r.status == 200 {
        Ok(creds(&r.json()))
    } else {
        Err(format!("{} {}", r.status, r.text()))
    }
}

/// Logs in with the URL coffer serves; `Ok(false)` for a refused password.
async fn login(url: &str) -> Result<bool, String> {
    // The served URL has no sslmode: the test server is on loopback.
    let url = format!("{url}?sslmode=disable");
    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| e.to_string())?;
            Ok(true)
        }
        Err(e) if e.code().map(|c| c.code()) == Some("28P01") => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

fn login_blocking(url: &str) -> Result<bool, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(login(url))
}

/// Role names are global to the PostgreSQL server: unique per test.
fn role(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The URL without `?...` (the test database URL carries sslmode=disable).
fn base_of(url: &str) -> String {
    url.split('?').next().unwrap().to_string()
}

/// The database's URL without credentials or parameters.
fn server_url(url: &str) -> String {
    let base = base_of(url);
    let (scheme, rest) = base.split_once("://").unwrap();
    format!("{scheme}://{}", rest.rsplit_once('@').unwrap().1)
}

struct Setup {
    server: Server,
    root: String,
    _dir: tempfile::TempDir,
    db: String,
    roles: [String; 2],
}

/// A server (scheduler every second), the administrator URL stored at
/// `app/prod/DB_ADMIN` and `app/prod/DB` managing two new roles.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config("lifecycle_interval_secs = 1\n"));
    let (_, root) = init_and_unseal(|| server.cli());
    let db = coffer_testpg::database_blocking();
    server
        .cli()
        .token(&root)
        .stdin(&db)
        .run(&["set", "app/prod/DB_ADMIN"])
        .expect(0);
    let roles = [role("app_blue"), role("app_green")];
    let r = server
        .cli()
        .token(&root)
        .run(&[
            "pg",
            "manage",
            "app/prod/DB",
            "--admin",
            "app/prod/DB_ADMIN",
            "--roles",
            &format!("{},{}", roles[0], roles[1]),
            "--connect-url",
            &server_url(&db),
            "--create-roles",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(r["version"], 1, "{r}");
    assert_eq!(r["role"], roles[0].as_str(), "{r}");
    assert_eq!(r["created"].as_array().unwrap().len(), 2, "{r}");
    Setup {
        server,
        root,
        _dir: dir,
        db,
        roles,
    }
}

#[test]
fn clients_never_fail_across_rotations_and_retired_passwords_stop_working() {
    let s = setup();
    let reader = s.server.token_with_policy(
        &s.root,
        "db-reader",
        r#"path "app/prod/DB" { capabilities = ["read"] }"#,
    );
    let first = read(&s.server, &reader, "app/prod/DB", "current").unwrap();
    assert_eq!(first.username, s.roles[0]);
    assert_eq!(
        first.password.len(),
        43,
        "alnum:32 carries 32 bytes of randomness"
    );
    assert!(first.password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(login_blocking(&first.url), Ok(true));
    // The second role has no password yet.
    let other = first.url.replacen(&s.roles[0], &s.roles[1], 1);
    assert_eq!(login_blocking(&other), Ok(false));

    // Clients that re-read the credentials every 100 ms and log in with
    // what they hold, as fast as they can, through every rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let logins = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Vec::<Creds>::new()));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, failures, logins, seen) =
                (stop.clone(), failures.clone(), logins.clone(), seen.clone());
            let addr = s.server.host_port().to_string();
            let reader = reader.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut held: Option<Creds> = None;
                let mut read_at = Instant::now() - Duration::from_secs(1);
                while !stop.load(Ordering::Relaxed) {
                    if read_at.elapsed() >= Duration::from_millis(100) {
                        let r = common::http(
                            &addr,
                            "GET",
                            "/api/v1/secrets/app/prod/DB",
                            Some(&reader),
                            None,
                            &[],
                        );
                        if r.status != 200 {
                            failures.lock().unwrap().push(format!(
                                "read: {} {}",
                                r.status,
                                r.text()
                            ));
                            continue;
                        }
                        let c = creds(&r.json());
                        let mut seen = seen.lock().unwrap();
                        if !seen.contains(&c) {
                            seen.push(c.clone());
                        }
                        held = Some(c);
                        read_at = Instant::now();
                    }
                    let c = held.as_ref().unwrap();
                    match rt.block_on(login(&c.url)) {
                        Ok(true) => {
                            logins.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => failures.lock().unwrap().push(format!(
                            "password refused for {} (version {})",
                            c.username, c.version
                        )),
                        Err(e) => failures.lock().unwrap().push(format!("login: {e}")),
                    }
                }
            })
        })
        .collect();

    // Ten rotations, each as soon as the previous one's grace period is
    // over. The grace (3 s) leaves a loaded machine time to run the checks
    // below, and the clients (which re-read every 100 ms) time to move on.
    let rotations = 10;
    let mut last = first.clone();
    let mut retired = Vec::new();
    for i in 0..rotations {
        let r = s
            .server
            .cli()
            .token(&s.root)
            .run(&["rotate", "app/prod/DB", "--grace", "3s", "--json"])
            .expect(0)
            .json();
        assert_eq!(r["version"], 2 + i, "{r}");
        assert_eq!(r["generated"], true, "{r}");
        let now = read(&s.server, &s.root, "app/prod/DB", "current").unwrap();
        let previous = read(&s.server, &s.root, "app/prod/DB", "previous").unwrap();
        assert_eq!(previous, last, "previous is what was current");
        assert_ne!(now.username, last.username, "the roles alternate");
        assert_ne!(now.password, last.password);
        // During the grace period both work.
        assert_eq!(login_blocking(&now.url), Ok(true));
        assert_eq!(login_blocking(&previous.url), Ok(true), "rotation {i}");
        retired.push(last);
        last = now;
        // Wait out the grace period (the next rotation would be refused
        // before it ends).
        std::thread::sleep(Duration::from_millis(3100));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures in {} logins: {:?}",
        failures.len(),
        logins.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)]
    );
    assert!(
        logins.load(Ordering::Relaxed) > 100,
        "the clients logged in"
    );
    let seen = seen.lock().unwrap().len();
    assert!(
        seen >= rotations as usize,
        "the clients saw {seen} credentials"
    );

    // Every retired password stops working once its grace period is over,
    // and `previous` is no longer served.
    for c in &retired {
        assert_eq!(
            login_blocking(&c.url),
            Ok(false),
            "{} v{}",
            c.username,
            c.version
        );
    }
    assert_eq!(login_blocking(&last.url), Ok(true));
    let e = read(&s.server, &s.root, "app/prod/DB", "previous").unwrap_err();
    assert!(e.contains("no longer served"), "{e}");

    // Nothing served by coffer holds a password but the reads: not the
    // logs, the audit log, the store, nor PostgreSQL's catalog.
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    places.push((
        "server stdout".into(),
        std::fs::read(&s.server.stdout_log).unwrap(),
    ));
    places.push((
        "server stderr".into(),
        std::fs::read(&s.server.stderr_log).unwrap(),
    ));
    for f in files_under(&s.server.data_dir()) {
        if let Some(bytes) = read_listed(&f) {
            places.push((f.display().to_string(), bytes));
        }
    }
    let catalog = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (client, conn) = tokio_postgres::connect(&s.db, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let rows = client
                .query(
                    "SELECT rolname::text, coalesce(rolpassword, '') FROM pg_authid \
                     WHERE rolname = ANY($1)",
                    &[&s.roles.to_vec()],
                )
                .await
                .unwrap();
            rows.iter()
                .map(|r| format!("{}={}\n", r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<String>()
        });
    assert!(catalog.contains("SCRAM-SHA-256$"), "{catalog}");
    places.push(("pg_authid".into(), catalog.into_bytes()));
    for c in retired.iter().chain([&last, &first]) {
        for (name, bytes) in &places {
            assert!(
                !contains(bytes, c.password.as_bytes()),
                "a password of {} is in {name}",
                c.username
            );
        }
    }
    // Nor the administrator's password (held in the administrator secret).
    for (name, bytes) in &places[..places.len() - 1] {
        assert!(
            !contains(bytes, coffer_testpg::SUPERUSER_PASSWORD.as_bytes()),
            "the administrator password is in {name}"
        );
    }
}

#[test]
fn staged_forced_scheduled_and_refused_rotations() {
    let s = setup();
    let cli = || s.server.cli().token(&s.root);
    let current = || read(&s.server, &s.root, "app/prod/DB", "current").unwrap();
    let v1 = current();

    // A staged rotation sets the other role's password at once; current
    // stays; cancelling takes that password away again.
    let r = cli()
        .run(&["rotate", "app/prod/DB", "--stage", "--json"])
        .expect(0)
        .json();
    assert_eq!(r["labels"]["pending"], 2, "{r}");
    assert_eq!(r["labels"]["current"], 1, "{r}");
    let staged = read(&s.server, &s.root, "app/prod/DB", "pending").unwrap();
    assert_eq!(staged.username, s.roles[1]);
    assert_eq!(login_blocking(&staged.url), Ok(true));
    assert_eq!(login_blocking(&v1.url), Ok(true));
    cli().run(&["rotate", "app/prod/DB", "--cancel"]).expect(0);
    assert_eq!(login_blocking(&staged.url), Ok(false));
    assert_eq!(login_blocking(&v1.url), Ok(true));
    assert_eq!(current(), v1);

    // Staged again and promoted: the new role is current, the old one is
    // served as previous through the grace period, then stops working.
    cli().run(&["rotate", "app/prod/DB", "--stage"]).expect(0);
    let staged = read(&s.server, &s.root, "app/prod/DB", "pending").unwrap();
    let r = cli()
        .run(&["promote", "app/prod/DB", "--grace", "30s", "--json"])
        .expect(0)
        .json();
    assert_eq!(r["labels"]["current"], 3, "{r}");
    assert_eq!(r["labels"]["previous"], 1, "{r}");
    assert_eq!(current(), staged);
    assert_eq!(login_blocking(&v1.url), Ok(true));

    // Within the grace period another rotation is refused (it would take
    // the previous role's password away) and changes nothing...
    let run = cli().run(&["rotate", "app/prod/DB"]);
    assert_eq!(run.code(), 8, "{}", run.stderr());
    assert!(run.stderr().contains("--force"), "{}", run.stderr());
    assert_eq!(current(), staged);
    assert_eq!(login_blocking(&v1.url), Ok(true));
    // ...unless forced: the previous credentials stop working at once.
    let r = cli()
        .run(&[
            "rotate",
            "app/prod/DB",
            "--force",
            "--grace",
            "0s",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(r["version"], 4, "{r}");
    let v4 = current();
    assert_eq!(v4.username, s.roles[0]);
    assert_eq!(login_blocking(&v4.url), Ok(true));
    assert_eq!(login_blocking(&v1.url), Ok(false));
    // Grace 0s: the credentials of version 3 expired at once too.
    assert_eq!(login_blocking(&staged.url), Ok(false));

    // Versions come only from rotations.
    for (args, stdin) in [
        (vec!["set", "app/prod/DB"], Some("postgres://x:y@h/d")),
        (vec!["rollback", "app/prod/DB", "1"], None),
        (vec!["cp", "app/prod/DB", "app/prod/DB_COPY"], None),
        (vec!["mv", "app/prod/DB", "app/prod/DB_MOVED"], None),
        (
            vec!["rotate", "app/prod/DB", "--stdin"],
            Some("hand-made-password"),
        ),
    ] {
        let mut c = cli();
        if let Some(input) = stdin {
            c = c.stdin(input);
        }
        let run = c.run(&args);
        assert_eq!(run.code(), 7, "{args:?}: {}", run.stderr());
        assert!(
            run.stderr().contains("PostgreSQL"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    assert_eq!(current(), v4);
    cli().run(&["get", "app/prod/DB_COPY"]).expect(3);

    // `pg show` names the binding, never a value.
    let show = cli()
        .run(&["pg", "show", "app/prod/DB", "--json"])
        .expect(0);
    let info = show.json();
    assert_eq!(info["admin"], "app/prod/DB_ADMIN");
    assert_eq!(info["roles"][0], s.roles[0].as_str());
    assert_eq!(info["labels"]["current"], 4);
    assert!(!show.stdout().contains(&v4.password));
    cli().run(&["pg", "show", "app/prod/DB_ADMIN"]).expect(3);

    // The scheduler rotates it by the lifecycle rules.
    cli()
        .run(&[
            "lifecycle",
            "set",
            "app/prod/DB",
            "--rotate-every",
            "2s",
            "--grace",
            "1s",
        ])
        .expect(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut scheduled = Vec::new();
    while scheduled.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the scheduler did not rotate: {scheduled:?}"
        );
        let body = s
            .server
            .http("GET", "/api/v1/secrets/app/prod/DB", Some(&s.root), None)
            .json();
        if body["created_by"] == "coffer-scheduler"
            && !scheduled
                .iter()
                .any(|c: &Creds| c.version == body["version"])
        {
            let c = creds(&body);
            assert_eq!(login_blocking(&c.url), Ok(true), "scheduled v{}", c.version);
            // The roles alternate from version 4 (the first role's) on, so
            // a version's role follows from its number, whichever
            // rotations this poll saw.
            let role = &s.roles[((c.version - 4) % 2) as usize];
            assert_eq!(&c.username, role, "scheduled v{}", c.version);
            scheduled.push(c);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cli().run(&["lifecycle", "rm", "app/prod/DB"]).expect(0);
    // A scheduler pass under way when the rule went may still rotate once:
    // wait until the version holds still with no grace period running
    // (during one, a rotation is refused for another reason).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settled_at: Option<u64> = None;
    loop {
        let version = current().version;
        let in_grace = read(&s.server, &s.root, "app/prod/DB", "previous").is_ok();
        if !in_grace && settled_at == Some(version) {
            break;
        }
        settled_at = (!in_grace).then_some(version);
        assert!(
            Instant::now() < deadline,
            "the rotations did not stop after the rule was removed"
        );
        std::thread::sleep(Duration::from_millis(1200));
    }

    // When PostgreSQL refuses the administrator, a rotation fails with the
    // reason and changes nothing.
    let before = current();
    let wrong =
        s.db.replace(coffer_testpg::SUPERUSER_PASSWORD, "wrong-admin-password");
    cli()
        .stdin(&wrong)
        .run(&["set", "app/prod/DB_ADMIN"])
        .expect(0);
    let run = cli().run(&["rotate", "app/prod/DB"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(run.stderr().contains("PostgreSQL"), "{}", run.stderr());
    assert!(run.stderr().contains("<redacted>"), "{}", run.stderr());
    assert!(
        !run.stderr().contains("wrong-admin-password"),
        "{}",
        run.stderr()
    );
    assert_eq!(current(), before);
    assert!(read(&s.server, &s.root, "app/prod/DB", "pending").is_err());
    assert_eq!(login_blocking(&before.url), Ok(true));
}

#[test]
fn setting_up_is_checked_and_needs_the_administrator_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let db = coffer_testpg::database_blocking();
    server
        .cli()
        .token(&root)
        .stdin(&db)
        .run(&["set", "app/prod/DB_ADMIN"])
        .expect(0);
    let (a, b) = (role("setup_a"), role("setup_b"));
    let roles = format!("{a},{b}");
    let manage = |token: &str, extra: &[&str]| {
        let mut args = vec![
            "pg",
            "manage",
            "app/prod/DB",
            "--admin",
            "app/prod/DB_ADMIN",
        ];
        args.extend_from_slice(extra);
        server.cli().token(token).run(&args)
    };

    // Someone who may create the secret but not read the administrator
    // credentials cannot borrow them.
    let creator = server.token_with_policy(
        &root,
        "creator",
        r#"path "app/prod/DB" { capabilities = ["create", "read", "update", "rotate"] }"#,
    );
    let run = manage(&creator, &["--roles", &roles, "--create-roles"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(
        run.stderr().contains("app/prod/DB_ADMIN"),
        "{}",
        run.stderr()
    );

    // Bad input is refused before anything is done.
    for (extra, code, needle) in [
        (vec!["--roles", "only_one"], 2, "two roles"),
        (vec!["--roles", "same_x,same_x"], 7, "two different roles"),
        (vec!["--roles", "Bad-Name,other"], 7, "not a role name"),
        (vec!["--roles", "pg_monitor,other"], 7, "reserved"),
        (
            vec!["--roles", "coffer,other"],
            7,
            "administrator's own role",
        ),
        (vec!["--roles", &roles], 3, "--create-roles"),
        (
            vec!["--roles", &roles, "--connect-url", "postgres://u:p@h/d"],
            7,
            "without a user or password",
        ),
        (
            vec![
                "--roles",
                &roles,
                "--connect-url",
                "postgres://h/d?password=p",
            ],
            7,
            "without a user or password",
        ),
        (
            vec!["--roles", &roles, "--generate", "rot13"],
            2,
            "unknown generator",
        ),
    ] {
        let run = manage(&root, &extra);
        assert_eq!(run.code(), code, "{extra:?}: {}", run.stderr());
        assert!(run.stderr().contains(needle), "{extra:?}: {}", run.stderr());
    }
    // A superuser's credentials are never handed out.
    let superuser = role("super");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(coffer_testpg::admin_sql(&format!(
            "CREATE ROLE {superuser} LOGIN SUPERUSER"
        )))
        .unwrap();
    let run = manage(
        &root,
        &["--roles", &format!("{superuser},{b}"), "--create-roles"],
    );
    assert_eq!(run.code(), 7, "{}", run.stderr());
    assert!(run.stderr().contains("superuser"), "{}", run.stderr());
    // None of that created anything.
    server
        .cli()
        .token(&root)
        .run(&["get", "app/prod/DB"])
        .expect(3);

    // A missing or unusable administrator secret is a clear error.
    let run = server.cli().token(&root).run(&[
        "pg",
        "manage",
        "app/prod/DB",
        "--admin",
        "app/prod/NOPE",
        "--roles",
        &roles,
    ]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    server
        .cli()
        .token(&root)
        .stdin("not a url")
        .run(&["set", "app/prod/NOT_A_URL"])
        .expect(0);
    let run = server.cli().token(&root).run(&[
        "pg",
        "manage",
        "app/prod/DB",
        "--admin",
        "app/prod/NOT_A_URL",
        "--roles",
        &roles,
    ]);
    assert_eq!(run.code(), 7, "{}", run.stderr());
    assert!(run.stderr().contains("postgres://"), "{}", run.stderr());

    // The administrator secret may also hold fields url and password; the
    // connect URL then defaults to the administrator's server and database.
    let bare = db.replace(&format!(":{}@", coffer_testpg::SUPERUSER_PASSWORD), "@");
    let body = serde_json::json!({
        "value": {"url": bare, "password": coffer_testpg::SUPERUSER_PASSWORD}
    });
    common::ok(
        &server.http(
            "PUT",
            "/api/v1/secrets/app/prod/DB_ADMIN2",
            Some(&root),
            Some(body.to_string().as_bytes()),
        ),
        "admin fields",
    );
    let out = server
        .cli()
        .token(&root)
        .run(&[
            "pg",
            "manage",
            "app/prod/DB",
            "--admin",
            "app/prod/DB_ADMIN2",
            "--roles",
            &roles,
            "--create-roles",
        ])
        .expect(0);
    assert!(out.stdout().contains(&a), "{}", out.stdout());
    let c = read(&server, &root, "app/prod/DB", "current").unwrap();
    assert!(c.url.ends_with("?sslmode=disable"), "{}", c.url);
    assert!(!c.url.contains(coffer_testpg::SUPERUSER_PASSWORD));
    assert_eq!(login_blocking(&base_of(&c.url)), Ok(true));
    // A second setup at the same path is refused.
    let run = manage(&root, &["--roles", &roles]);
    assert_eq!(run.code(), 8, "{}", run.stderr());
    // Every request was audited, none with a password.
    let audit = std::fs::read(server.data_dir().join("audit.log")).unwrap();
    let text = String::from_utf8_lossy(&audit);
    assert!(text.contains("postgres.manage"), "audit has the setup");
    assert!(!contains(&audit, c.password.as_bytes()));
    assert!(!contains(
        &audit,
        coffer_testpg::SUPERUSER_PASSWORD.as_bytes()
    ));
}

/// `coffer leak` of a managed secret marks the version and rotates the
/// roles: the other role gets a new password and becomes current, and the
/// leaked credentials keep working only for the grace period.
#[test]
fn a_leak_of_managed_credentials_rotates_the_roles() {
    let s = setup();
    let first = read(&s.server, &s.root, "app/prod/DB", "current").unwrap();
    assert_eq!(first.username, s.roles[0]);
    let out = s
        .server
        .cli()
        .token(&s.root)
        .run(&[
            "leak",
            "app/prod/DB",
            "--reason",
            "credentials pasted in a chat",
            "--grace",
            "1h",
        ])
        .expect(0)
        .stdout();
    assert!(
        out.contains("Marked version 1 of app/prod/DB compromised"),
        "{out}"
    );
    assert!(
        out.contains("Rotated app/prod/DB: current is version 2."),
        "{out}"
    );
    assert!(!out.contains(&first.password));
    let second = read(&s.server, &s.root, "app/prod/DB", "current").unwrap();
    assert_eq!(second.username, s.roles[1]);
    assert_ne!(second.password, first.password);
    assert_eq!(login_blocking(&second.url), Ok(true));
    // The leaked credentials are `previous` for the grace period.
    assert_eq!(login_blocking(&first.url), Ok(true));
    let h = s
        .server
        .cli()
        .token(&s.root)
        .run(&["history", "app/prod/DB", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        h["versions"][0]["compromised_reason"],
        "credentials pasted in a chat"
    );
    assert!(h["versions"][1].get("compromised_at").is_none());
    let _ = &s.db;
}
