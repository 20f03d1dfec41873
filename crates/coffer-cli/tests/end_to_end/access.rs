//! Tokens, users, protected environments and break-glass through the real
//! binary and server: lifecycles, limits, refusals and bad input.

use crate::common;

use common::{Mode, Server, ok};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn put_policy(server: &Server, root: &str, name: &str, source: &str) {
    let body = json!({ "policy": source }).to_string();
    ok(
        &server.http(
            "PUT",
            &format!("/api/v1/sys/policies/{name}"),
            Some(root),
            Some(body.as_bytes()),
        ),
        name,
    );
}

fn put_secret(server: &Server, root: &str, path: &str, value: &str) {
    let body = json!({ "value": value }).to_string();
    ok(
        &server.http(
            "PUT",
            &format!("/api/v1/secrets/{path}"),
            Some(root),
            Some(body.as_bytes()),
        ),
        path,
    );
}

fn status_with(server: &Server, token: &str) -> u16 {
    server
        .http("GET", "/api/v1/secrets/app/dev/db", Some(token), None)
        .status
}

/// Invites `user` with `policies`, accepts with `password`, and returns a login token.
fn join(server: &Server, root: &str, user: &str, password: &str, policies: &[&str]) -> String {
    let mut args = vec!["invite", "create", "--json"];
    for p in policies {
        args.extend(["--policy", p]);
    }
    let code = server.cli().token(root).run(&args).expect(0).json()["code"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &code, "--user", user])
        .expect(0);
    login(server, user, password, None)
}

fn login(server: &Server, user: &str, password: &str, totp: Option<&str>) -> String {
    let body = match totp {
        Some(code) => json!({ "user": user, "password": password, "totp": code }),
        None => json!({ "user": user, "password": password }),
    }
    .to_string();
    let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
    ok(&r, "login")["token"].as_str().unwrap().to_string()
}

#[test]
fn token_lifecycle_ttl_renew_uses_cidr_and_cascade() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "dev",
        r#"path "app/dev/*" { capabilities = ["read", "list"] }"#,
    );
    put_secret(&server, &root, "app/dev/db", "s3cret-db");
    let create = |token: &str, extra: &[&str]| -> Value {
        let mut args = vec!["token", "create", "--policy", "dev", "--json"];
        args.extend_from_slice(extra);
        server.cli().token(token).run(&args).expect(0).json()
    };

    // The JSON has the token and its accessor; the token works.
    let t = create(&root, &["--display-name", "ci-deploy"]);
    let tok = t["token"].as_str().unwrap().to_string();
    assert!(tok.starts_with("cft_"));
    assert!(t["accessor"].as_str().unwrap().starts_with("acc_"));
    assert_eq!(t["display_name"], "ci-deploy");
    assert_eq!(status_with(&server, &tok), 200);
    let looked = server
        .cli()
        .token(&tok)
        .run(&["token", "lookup", "--json"])
        .expect(0)
        .json();
    assert_eq!(looked["accessor"], t["accessor"]);
    assert_eq!(looked["policies"], json!(["dev"]));
    assert_eq!(looked["kind"], "service");

    // Times below count from just after a token was created, so they are
    // past its expiry however slowly the machine ran the commands.
    let sleep_until = |t: Instant| std::thread::sleep(t.saturating_duration_since(Instant::now()));

    // TTL: refused once expired.
    let short = create(&root, &["--ttl", "3s"]);
    let created = Instant::now();
    let short_tok = short["token"].as_str().unwrap();
    assert_eq!(status_with(&server, short_tok), 200);
    sleep_until(created + Duration::from_millis(3300));
    assert_eq!(status_with(&server, short_tok), 401);

    // Renew: extends by the ttl, never past max ttl.
    let r = create(&root, &["--ttl", "4s", "--max-ttl", "8s"]);
    let created = Instant::now();
    let r_tok = r["token"].as_str().unwrap();
    let before = r["expires_at"].as_str().unwrap().to_string();
    sleep_until(created + Duration::from_millis(2500));
    let renewed = server
        .cli()
        .token(r_tok)
        .run(&["token", "renew", "--json"])
        .expect(0)
        .json();
    assert!(renewed["expires_at"].as_str().unwrap() > before.as_str());
    // Past the first expiry, before the renewed one (at least 6.5 s).
    sleep_until(created + Duration::from_millis(4500));
    assert_eq!(status_with(&server, r_tok), 200, "renewal kept it alive");
    sleep_until(created + Duration::from_millis(8300));
    assert_eq!(status_with(&server, r_tok), 401, "max ttl is a hard limit");
    // Bad ttl combinations are refused.
    let e = server
        .cli()
        .token(&root)
        .run(&[
            "token",
            "create",
            "--policy",
            "dev",
            "--ttl",
            "2h",
            "--max-ttl",
            "1h",
        ])
        .expect(7);
    assert!(e.stderr().contains("max ttl"), "{}", e.stderr());

    // Uses: exactly N requests, then refused.
    let u = create(&root, &["--uses", "2"]);
    let u_tok = u["token"].as_str().unwrap();
    assert_eq!(status_with(&server, u_tok), 200);
    assert_eq!(status_with(&server, u_tok), 200);
    assert_eq!(status_with(&server, u_tok), 401);
    // A use-limited token cannot create children.
    let u2 = create(&root, &["--uses", "5"]);
    server
        .cli()
        .token(u2["token"].as_str().unwrap())
        .run(&["token", "create", "--policy", "dev"])
        .expect(7);

    // CIDR: bound to a network the request does not come from: refused.
    let far = create(&root, &["--cidr", "10.0.0.0/8"]);
    assert_eq!(status_with(&server, far["token"].as_str().unwrap()), 401);
    let near = create(&root, &["--cidr", "127.0.0.0/8", "--cidr", "::1/128"]);
    let near_tok = near["token"].as_str().unwrap();
    assert_eq!(status_with(&server, near_tok), 200);
    // A child cannot widen its parent's networks; by default it inherits them.
    let e = server
        .cli()
        .token(near_tok)
        .run(&["token", "create", "--policy", "dev", "--cidr", "0.0.0.0/0"])
        .expect(4);
    assert!(e.stderr().contains("outside"), "{}", e.stderr());
    let child = create(near_tok, &[]);
    assert_eq!(child["cidrs"], json!(["127.0.0.0/8", "::1/128"]));

    // A child never has more than its parent.
    put_policy(
        &server,
        &root,
        "prod",
        r#"path "app/prod/*" { capabilities = ["read"] }"#,
    );
    let e = server
        .cli()
        .token(&tok)
        .run(&["token", "create", "--policy", "prod"])
        .expect(4);
    assert!(
        e.stderr().contains("does not hold policy prod"),
        "{}",
        e.stderr()
    );
    let limited = create(&root, &["--ttl", "1h"]);
    let long_child = create(limited["token"].as_str().unwrap(), &["--ttl", "100h"]);
    assert!(
        long_child["expires_at"].as_str().unwrap() <= limited["expires_at"].as_str().unwrap(),
        "a child cannot outlive its parent"
    );

    // Revoke cascades: root -> a -> b -> c; revoking a kills b and c.
    let a = create(&root, &["--display-name", "a"]);
    let a_tok = a["token"].as_str().unwrap();
    let b = create(a_tok, &["--display-name", "b"]);
    let b_tok = b["token"].as_str().unwrap();
    let c = create(b_tok, &["--display-name", "c"]);
    let c_tok = c["token"].as_str().unwrap();
    let sibling = create(&root, &["--display-name", "sibling"]);
    // Owners act by accessor; others may not, and cannot tell whether it exists.
    let b_acc = b["accessor"].as_str().unwrap();
    server
        .cli()
        .token(a_tok)
        .run(&["token", "lookup", b_acc])
        .expect(0);
    server
        .cli()
        .token(c_tok)
        .run(&["token", "lookup", b_acc])
        .expect(4);
    server
        .cli()
        .token(sibling["token"].as_str().unwrap())
        .run(&["token", "revoke", b_acc])
        .expect(4);
    server
        .cli()
        .token(sibling["token"].as_str().unwrap())
        .run(&["token", "lookup", "acc_000000000000000000000000"])
        .expect(4);
    server
        .cli()
        .token(&root)
        .run(&["token", "revoke", a["accessor"].as_str().unwrap()])
        .expect(0);
    for (name, t) in [("a", a_tok), ("b", b_tok), ("c", c_tok)] {
        assert_eq!(status_with(&server, t), 401, "{name} must be revoked");
    }
    assert_eq!(
        status_with(&server, sibling["token"].as_str().unwrap()),
        200
    );
    // Revoking oneself; the token list (admin) no longer shows it.
    server
        .cli()
        .token(&tok)
        .run(&["token", "revoke", "--self"])
        .expect(0);
    assert_eq!(status_with(&server, &tok), 401);
    let list = server
        .cli()
        .token(&root)
        .run(&["token", "list", "--json"])
        .expect(0)
        .json();
    let accessors: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["accessor"].as_str().unwrap())
        .collect();
    assert!(!accessors.contains(&t["accessor"].as_str().unwrap()));
    assert!(accessors.contains(&sibling["accessor"].as_str().unwrap()));
    server
        .cli()
        .token(sibling["token"].as_str().unwrap())
        .run(&["token", "list"])
        .expect(4);

    // Revocation survives a restart (it is in storage, not only in a cache).
    let server = {
        server.stop();
        Server::start(dir.path(), Mode::Dev)
    };
    assert_eq!(status_with(&server, c_tok), 401);
    assert_eq!(
        status_with(&server, sibling["token"].as_str().unwrap()),
        200
    );
}

/// RFC 4648 base32 (no padding), as authenticator apps read it.
fn base32_decode(s: &str) -> Vec<u8> {
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        } as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn invitations_logins_lockout_totp_and_disabling() {
    let dir = tempfile::tempdir().unwrap();
    // Every attempt below comes from 127.0.0.1: lift the per-address backoff
    // so that what is tested is the per-account limit.
    let server = Server::start(
        dir.path(),
        Mode::Config("login_failures_per_address = 100000"),
    );
    let (_, root) = common::init_and_unseal(|| server.cli());
    put_policy(
        &server,
        &root,
        "dev",
        r#"path "app/dev/*" { capabilities = ["read", "list"] }"#,
    );
    put_secret(&server, &root, "app/dev/db", "s3cret-db");
    let password = "correct horse battery staple";

    // A code is printed once and works once.
    let code = server
        .cli()
        .token(&root)
        .run(&["invite", "create", "--policy", "dev", "--json"])
        .expect(0)
        .json()["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(code.starts_with("cfi_"));
    let accepted = server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &code, "--user", "Alice", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        accepted["name"], "alice",
        "names are stored in canonical form"
    );
    let again = server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &code, "--user", "bob"])
        .expect(7);
    assert!(
        again.stderr().contains("invalid, expired or already used"),
        "{}",
        again.stderr()
    );
    // A guessed (well-formed, random) code gets the same answer.
    let guess = coffer_crypto::token::generate_invite_code();
    let r = server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", guess.expose_secret(), "--user", "bob"])
        .expect(7);
    assert_eq!(r.stderr(), again.stderr());
    // An expired code.
    let short = server
        .cli()
        .token(&root)
        .run(&[
            "invite", "create", "--policy", "dev", "--ttl", "1s", "--json",
        ])
        .expect(0)
        .json()["code"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(1300));
    let r = server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &short, "--user", "carol"])
        .expect(7);
    assert_eq!(r.stderr(), again.stderr());
    // Weak passwords and odd names are refused before the code is spent.
    let fresh = server
        .cli()
        .token(&root)
        .run(&["invite", "create", "--policy", "dev", "--json"])
        .expect(0)
        .json()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let r = server
        .cli()
        .stdin("short")
        .run(&["invite", "accept", &fresh, "--user", "dave"])
        .expect(7);
    assert!(r.stderr().contains("12"), "{}", r.stderr());
    server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &fresh, "--user", "da\u{200b}ve"])
        .expect(7);
    // A taken name (any spelling of it) is refused; the code still works after.
    let r = server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &fresh, "--user", " ALICE "])
        .expect(8);
    assert!(r.stderr().contains("taken"), "{}", r.stderr());
    server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &fresh, "--user", "dave"])
        .expect(0);
    // Inviting with a policy the inviter does not hold, or that does not exist, is refused.
    server
        .cli()
        .token(&root)
        .run(&["invite", "create", "--policy", "nope"])
        .expect(7);

    // Login through the CLI saves a human token.
    let out = server
        .cli()
        .stdin(password)
        .run(&["login", "--user", "alice", "--json"])
        .expect(0)
        .json();
    assert_eq!(out["user"], "alice");
    let saved = server
        .cli()
        .run(&["token", "lookup", "--json"])
        .expect(0)
        .json();
    assert_eq!(saved["kind"], "human");
    assert_eq!(saved["user"], "alice");
    server.cli().run(&["get", "app/dev/db"]).expect(0);

    // No enumeration: unknown user, wrong password, disabled user look alike.
    let attempt = |user: &str, pw: &str| {
        let body = json!({ "user": user, "password": pw }).to_string();
        let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
        (
            r.status,
            r.json()["error"]["code"].clone(),
            r.json()["error"]["message"].clone(),
        )
    };
    let wrong = attempt("alice", "wrong password entirely");
    let unknown = attempt("nobody-here", "wrong password entirely");
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown);

    // Past 100 failures an hour per account (counted on the canonical
    // name, so spelling variants share one counter), attempts are paced:
    // one within 5 s of the last failure is refused.
    let variants = ["alice", "Alice", " ALICE ", "\u{FF41}lice", "alic\u{0065}"];
    let mut failures = 1; // the one above
    while failures < 100 {
        let v = variants[failures % variants.len()];
        assert_eq!(
            attempt(v, "not the password!!").0,
            401,
            "failure {failures} as {v:?}"
        );
        failures += 1;
    }
    // Right after a failure, even the right password is refused, under
    // every spelling.
    for v in variants {
        let body = json!({ "user": v, "password": password }).to_string();
        let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
        assert_eq!(r.status, 429, "{v:?}: {}", r.text());
    }
    let r = server
        .cli()
        .stdin(password)
        .run(&["login", "--user", "alice"])
        .expect(4);
    assert!(
        r.stderr().contains("too many failed logins"),
        "{}",
        r.stderr()
    );
    // Unknown names lock the same way, so a lockout says nothing about existence.
    for _ in 0..100 {
        attempt("ghost", "not the password!!");
    }
    assert_eq!(attempt("ghost", "not the password!!").0, 429);
    // Other accounts are unaffected.
    let dave = login(&server, "dave", password, None);
    assert_eq!(status_with(&server, &dave), 200);

    // TOTP for dave: enroll, confirm, then required; each code works once.
    let enroll = server
        .cli()
        .token(&dave)
        .run(&["totp", "enable", "--json"])
        .expect(0)
        .json();
    let uri = enroll["uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Coffer:dave?"), "{uri}");
    let seed = coffer_crypto::totp::TotpSecret::from_bytes(&base32_decode(
        enroll["secret"].as_str().unwrap(),
    ))
    .unwrap();
    server
        .cli()
        .token(&dave)
        .run(&["totp", "confirm", "000000"])
        .expect(7);
    let now = now_secs();
    server
        .cli()
        .token(&dave)
        .run(&["totp", "confirm", &seed.code_at(now)])
        .expect(0);
    // Without a code, or with the code already used to confirm: refused.
    let body = json!({ "user": "dave", "password": password }).to_string();
    let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
    assert_eq!(r.status, 401);
    let body =
        json!({ "user": "dave", "password": password, "totp": seed.code_at(now) }).to_string();
    assert_eq!(
        server
            .http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()))
            .status,
        401
    );
    // The next step's code works once.
    let next = seed.code_at(now + 30);
    let t = login(&server, "dave", password, Some(&next));
    assert_eq!(status_with(&server, &t), 200);
    let body = json!({ "user": "dave", "password": password, "totp": next }).to_string();
    assert_eq!(
        server
            .http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()))
            .status,
        401
    );
    let users = server
        .cli()
        .token(&root)
        .run(&["user", "list", "--json"])
        .expect(0)
        .json();
    let dave_row = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "dave")
        .unwrap()
        .clone();
    assert_eq!(dave_row["totp"], true);
    assert!(dave_row.get("password_hash").is_none());

    // Disabling a user revokes every token of theirs at once, children too.
    let child = server
        .cli()
        .token(&dave)
        .run(&["token", "create", "--policy", "dev", "--json"])
        .expect(0)
        .json();
    let child_tok = child["token"].as_str().unwrap();
    assert_eq!(child["kind"], "human", "a person's child token stays human");
    assert_eq!(status_with(&server, child_tok), 200);
    server
        .cli()
        .token(&root)
        .run(&["user", "disable", "DAVE"])
        .expect(0);
    for t in [&dave, &t, &child_tok.to_string()] {
        assert_eq!(status_with(&server, t), 401);
    }
    let body =
        json!({ "user": "dave", "password": password, "totp": seed.code_at(now + 60) }).to_string();
    let r = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
    assert_eq!(r.status, 401, "a disabled user cannot log in");
    server
        .cli()
        .token(&root)
        .run(&["user", "enable", "dave"])
        .expect(0);
    assert_eq!(status_with(&server, &dave), 401, "old tokens stay revoked");
    // Removing.
    server
        .cli()
        .token(&root)
        .run(&["user", "remove", "dave"])
        .expect(0);
    server
        .cli()
        .token(&root)
        .run(&["user", "show", "dave"])
        .expect(3);

    // Nothing secret reached the logs: passwords, codes, tokens, seeds.
    let logs = server.logs();
    for needle in [
        password,
        &code,
        &fresh,
        &dave,
        enroll["secret"].as_str().unwrap(),
        "not the password!!",
    ] {
        assert!(
            !logs.contains(needle),
            "the server log contains a secret: {needle}"
        );
    }
    // A name that is no account (often a password typed into the wrong
    // field) is not logged; a real account's failures are.
    assert!(
        !logs.contains("ghost"),
        "unknown login names must not be logged"
    );
    assert!(logs.contains("login_locked"));
    // Nor the database file.
    let db = std::fs::read(server.data_dir().join("coffer.db")).unwrap();
    for needle in [
        password.as_bytes(),
        code.as_bytes(),
        enroll["secret"].as_str().unwrap().as_bytes(),
        &seed.expose_bytes().to_vec()[..],
    ] {
        assert!(
            !common::contains(&db, needle),
            "the database holds a secret in clear"
        );
    }
}

#[test]
fn protected_environments_and_breakglass_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "prod-read",
        r#"path "*/prod/*" { capabilities = ["read", "list"] }"#,
    );
    put_policy(
        &server,
        &root,
        "oncall",
        r#"
        path "app/prod/*" { capabilities = ["list", "breakglass"] }
        path "app/dev/*" { capabilities = ["read"] }
        "#,
    );
    put_secret(&server, &root, "app/prod/db", "prod-db-value");
    put_secret(&server, &root, "app/prod/api", "prod-api-value");
    put_secret(&server, &root, "app/dev/db", "dev-db-value");
    server
        .cli()
        .token(&root)
        .run(&["protected", "add", "*/prod/*"])
        .expect(0);
    let listed = server
        .cli()
        .token(&root)
        .run(&["protected", "list", "--json"])
        .expect(0)
        .json();
    assert_eq!(listed["protected"][0]["pattern"], "*/prod/*");
    server
        .cli()
        .token(&root)
        .run(&["protected", "add", "a*b"])
        .expect(7);

    let pw = "a long enough password";
    let reader = join(&server, &root, "rita", pw, &["prod-read"]);
    let oncall = join(&server, &root, "omar", pw, &["oncall"]);
    let service = server
        .cli()
        .token(&root)
        .run(&["token", "create", "--policy", "prod-read", "--json"])
        .expect(0)
        .json()["token"]
        .as_str()
        .unwrap()
        .to_string();

    // People cannot read values under the prefix, whatever their policies;
    // they can list and see metadata. Services can read.
    let r = server
        .cli()
        .token(&reader)
        .run(&["get", "app/prod/db"])
        .expect(4);
    assert!(
        r.stderr().contains("protected environment"),
        "{}",
        r.stderr()
    );
    assert!(!r.stdout().contains("prod-db-value"));
    server
        .cli()
        .token(&reader)
        .run(&["ls", "app/prod"])
        .expect(0);
    server
        .cli()
        .token(&reader)
        .run(&["history", "app/prod/db"])
        .expect(0);
    let v = server
        .cli()
        .token(&service)
        .run(&["get", "app/prod/db"])
        .expect(0);
    assert_eq!(v.stdout().trim_end(), "prod-db-value");

    // Break-glass: needs the capability and a reason; only people ask for it.
    let r = server
        .cli()
        .token(&reader)
        .run(&[
            "breakglass",
            "app/prod/db",
            "--reason",
            "INC-7 database down",
        ])
        .expect(4);
    assert!(r.stderr().contains("breakglass"), "{}", r.stderr());
    server
        .cli()
        .token(&oncall)
        .run(&["breakglass", "app/prod/db", "--reason", ""])
        .expect(7);
    server
        .cli()
        .token(&oncall)
        .run(&[
            "breakglass",
            "app/prod/db",
            "--reason",
            "INC-7",
            "--ttl",
            "5h",
        ])
        .expect(7);
    server
        .cli()
        .token(&service)
        .run(&[
            "breakglass",
            "app/prod/db",
            "--reason",
            "INC-7 database down",
        ])
        .expect(7);
    // No breakglass capability there: refused before anything else.
    server
        .cli()
        .token(&oncall)
        .run(&[
            "breakglass",
            "app/dev/db",
            "--reason",
            "INC-7 database down",
        ])
        .expect(4);
    server
        .cli()
        .token(&oncall)
        .run(&["get", "app/prod/db"])
        .expect(4);
    let grant = server
        .cli()
        .token(&oncall)
        .run(&[
            "breakglass",
            "app/prod/db",
            "--reason",
            "INC-7 database down",
            "--ttl",
            "8s",
            "--json",
        ])
        .expect(0)
        .json();
    // Times count from just after the grant, so the checks below fall in
    // its lifetime, and the last past it, however slow the machine is.
    let granted = Instant::now();
    assert_eq!(grant["user"], "omar");
    let v = server
        .cli()
        .token(&oncall)
        .run(&["get", "app/prod/db"])
        .expect(0);
    assert_eq!(v.stdout().trim_end(), "prod-db-value");
    // Only the granted path, only for that person.
    server
        .cli()
        .token(&oncall)
        .run(&["get", "app/prod/api"])
        .expect(4);
    server
        .cli()
        .token(&reader)
        .run(&["get", "app/prod/db"])
        .expect(4);
    let grants = server
        .cli()
        .token(&root)
        .run(&["breakglass", "--list", "--json"])
        .expect(0)
        .json();
    assert_eq!(grants["grants"][0]["reason"], "INC-7 database down");
    assert!(
        granted.elapsed() < Duration::from_secs(8),
        "the checks above took longer than the grant lasts"
    );
    // It expires.
    std::thread::sleep(
        (granted + Duration::from_millis(8300)).saturating_duration_since(Instant::now()),
    );
    server
        .cli()
        .token(&oncall)
        .run(&["get", "app/prod/db"])
        .expect(4);
    // A folder grant covers everything below it.
    server
        .cli()
        .token(&oncall)
        .run(&[
            "breakglass",
            "app/prod/",
            "--reason",
            "INC-8 rotate everything",
        ])
        .expect(0);
    server
        .cli()
        .token(&oncall)
        .run(&["get", "app/prod/api"])
        .expect(0);

    // Each grant and each break-glass read is raised as an alert.
    let logs = server.logs();
    assert!(logs.contains("breakglass_granted"), "{logs}");
    assert!(logs.contains("breakglass_read"), "{logs}");
    assert!(!logs.contains("prod-db-value"));

    // Unprotecting restores what the policies say.
    server
        .cli()
        .token(&root)
        .run(&["protected", "remove", "*/prod/*"])
        .expect(0);
    let v = server
        .cli()
        .token(&reader)
        .run(&["get", "app/prod/db"])
        .expect(0);
    assert_eq!(v.stdout().trim_end(), "prod-db-value");
    server
        .cli()
        .token(&root)
        .run(&["protected", "remove", "*/prod/*"])
        .expect(3);
}

#[test]
fn bad_access_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "dev",
        r#"path "app/dev/*" { capabilities = ["read"] }"#,
    );
    let policies_before = server
        .cli()
        .token(&root)
        .run(&["policy", "list", "--json"])
        .expect(0)
        .stdout();
    let source_before = server
        .cli()
        .token(&root)
        .run(&["policy", "read", "dev"])
        .expect(0)
        .stdout();

    for (source, fragment) in [
        (
            r#"path "app/*" { capabilities = ["reed"] }"#,
            "unknown capability",
        ),
        (r#"path "app/*" { capabilities = ["Read"] }"#, "lowercase"),
        (r#"path "app/*" { capabilities = [] }"#, "empty"),
        (r#"path "app/*" { policy = "read" }"#, "capabilities"),
        (r#"path "app/*" { capabilities = ["read"]"#, "line 1"),
        (r#"path "a*b" { capabilities = ["read"] }"#, "*"),
        (r#"path "app/../x" { capabilities = ["read"] }"#, ".."),
        (
            "path \"app/*\" {\n  capabilities = [\"read\",\n  \"bogus\"]\n}",
            "line 3",
        ),
    ] {
        let r = server
            .cli()
            .token(&root)
            .stdin(source)
            .run(&["policy", "write", "dev"])
            .expect(7);
        assert!(r.stderr().contains(fragment), "{source}: {}", r.stderr());
        let r = server
            .cli()
            .token(&root)
            .stdin(source)
            .run(&["policy", "write", "newpol"])
            .expect(7);
        assert!(!r.stderr().contains('\n') || r.stderr().lines().count() == 1);
    }
    for bad_name in ["Dev", "root", "a b", "_x", &"p".repeat(65)] {
        server
            .cli()
            .token(&root)
            .stdin(r#"path "x/*" { capabilities = ["read"] }"#)
            .run(&["policy", "write", bad_name])
            .expect(7);
    }
    // Nothing changed.
    assert_eq!(
        server
            .cli()
            .token(&root)
            .run(&["policy", "list", "--json"])
            .expect(0)
            .stdout(),
        policies_before
    );
    assert_eq!(
        server
            .cli()
            .token(&root)
            .run(&["policy", "read", "dev"])
            .expect(0)
            .stdout(),
        source_before
    );

    let tokens_before = server
        .cli()
        .token(&root)
        .run(&["token", "list", "--json"])
        .expect(0)
        .json()["tokens"]
        .as_array()
        .unwrap()
        .len();
    for (args, fragment) in [
        (vec!["--ttl", "5x"], "invalid duration"),
        (vec!["--ttl", "0s"], "longer than zero"),
        (vec!["--ttl=-1h"], "invalid duration"),
        (vec!["--max-ttl", "forever"], "invalid duration"),
        (vec!["--uses", "0"], "at least 1"),
        (vec!["--cidr", "banana"], "CIDR"),
        (vec!["--cidr", "10.0.0.0/33"], "CIDR"),
        (vec!["--display-name", "two\nlines"], "control"),
    ] {
        let mut full = vec!["token", "create", "--policy", "dev"];
        full.extend(args.iter().copied());
        let r = server.cli().token(&root).run(&full).expect(7);
        assert!(r.stderr().contains(fragment), "{args:?}: {}", r.stderr());
    }
    let r = server
        .cli()
        .token(&root)
        .run(&["token", "create", "--policy", "nosuch"])
        .expect(7);
    assert!(r.stderr().contains("no policy named"), "{}", r.stderr());
    server
        .cli()
        .token(&root)
        .run(&["token", "lookup", "not-an-accessor"])
        .expect(7);
    server
        .cli()
        .token(&root)
        .run(&["invite", "create", "--policy", "dev", "--ttl", "31d"])
        .expect(7);
    server
        .cli()
        .token(&root)
        .run(&["token", "create"])
        .expect(2);
    let tokens_after = server
        .cli()
        .token(&root)
        .run(&["token", "list", "--json"])
        .expect(0)
        .json()["tokens"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(tokens_before, tokens_after);

    // Unknown fields in access requests are refused, not ignored.
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(br#"{"policies":["dev"],"policy":"root"}"#),
    );
    assert_eq!(r.status, 400);
    let r = server.http(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(br#"{"user":"a","password":"b","admin":true}"#),
    );
    assert_eq!(r.status, 400);
    // A password sent in a malformed body is not echoed.
    let r = server.http(
        "POST",
        "/api/v1/auth/login",
        None,
        Some(br#"{"user":"a","password":12345678901234}"#),
    );
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("12345678901234"), "{}", r.text());
}

#[test]
fn the_server_sweeps_expired_access_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config("sweep_interval_secs = 1"));
    let (_, root) = common::init_and_unseal(|| server.cli());
    put_policy(
        &server,
        &root,
        "dev",
        r#"path "app/dev/*" { capabilities = ["read"] }"#,
    );
    let create = |ttl: &str| -> Value {
        server
            .cli()
            .token(&root)
            .run(&["token", "create", "--policy", "dev", "--ttl", ttl, "--json"])
            .expect(0)
            .json()
    };
    // Long enough for the next three commands on a loaded machine.
    let short = create("5s");
    let short_child = server
        .cli()
        .token(short["token"].as_str().unwrap())
        .run(&["token", "create", "--policy", "dev", "--json"])
        .expect(0)
        .json();
    let long = create("1h");
    let listed = || -> Vec<String> {
        server
            .cli()
            .token(&root)
            .run(&["token", "list", "--json"])
            .expect(0)
            .json()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["accessor"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(listed().contains(&short["accessor"].as_str().unwrap().to_string()));
    // Within a few sweeps, the expired token and its child are gone from
    // storage; the live one stays.
    let gone = |a: &Value| !listed().contains(&a["accessor"].as_str().unwrap().to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(gone(&short) && gone(&short_child)) {
        assert!(Instant::now() < deadline, "expired tokens were not swept");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!gone(&long));
    assert_eq!(status_with(&server, long["token"].as_str().unwrap()), 404);
}

#[test]
fn admins_change_a_users_policies_and_reset_lost_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "dev",
        r#"path "app/dev/*" { capabilities = ["read"] }"#,
    );
    put_policy(
        &server,
        &root,
        "ops",
        r#"path "app/ops/*" { capabilities = ["read"] }"#,
    );
    put_secret(&server, &root, "app/dev/db", "dev-db");
    put_secret(&server, &root, "app/ops/key", "ops-key");
    let pw = "a long enough password";
    let erin = join(&server, &root, "erin", pw, &["dev"]);
    assert_eq!(status_with(&server, &erin), 200);
    let enroll = server
        .cli()
        .token(&erin)
        .run(&["totp", "enable", "--json"])
        .expect(0)
        .json();
    let seed = coffer_crypto::totp::TotpSecret::from_bytes(&base32_decode(
        enroll["secret"].as_str().unwrap(),
    ))
    .unwrap();
    server
        .cli()
        .token(&erin)
        .run(&["totp", "confirm", &seed.code_at(now_secs())])
        .expect(0);

    // Only admins; nothing to change is an error; unknown policies are refused.
    server
        .cli()
        .token(&erin)
        .run(&["user", "update", "erin", "--policy", "ops"])
        .expect(4);
    server
        .cli()
        .token(&root)
        .run(&["user", "update", "erin"])
        .expect(7);
    server
        .cli()
        .token(&root)
        .run(&["user", "update", "erin", "--policy", "nosuch"])
        .expect(7);
    assert_eq!(status_with(&server, &erin), 200, "refusals changed nothing");

    // New policies: the old token is revoked at once; the next login has them.
    let u = server
        .cli()
        .token(&root)
        .run(&["user", "update", "Erin", "--policy", "ops", "--json"])
        .expect(0)
        .json();
    assert_eq!(u["policies"], json!(["ops"]));
    assert_eq!(status_with(&server, &erin), 401);
    let erin = login(&server, "erin", pw, Some(&seed.code_at(now_secs() + 30)));
    assert_eq!(status_with(&server, &erin), 403);
    let r = server.http("GET", "/api/v1/secrets/app/ops/key", Some(&erin), None);
    assert_eq!(r.status, 200);

    // A lost authenticator: the admin turns codes off; a password login works.
    server
        .cli()
        .token(&root)
        .run(&["user", "update", "erin", "--reset-totp"])
        .expect(0);
    assert_eq!(
        server
            .http("GET", "/api/v1/secrets/app/ops/key", Some(&erin), None)
            .status,
        401
    );
    let erin = login(&server, "erin", pw, None);
    let shown = server
        .cli()
        .token(&root)
        .run(&["user", "show", "erin", "--json"])
        .expect(0)
        .json();
    assert_eq!(shown["totp"], false);
    assert_eq!(
        server
            .http("GET", "/api/v1/secrets/app/ops/key", Some(&erin), None)
            .status,
        200
    );
}

/// `coffer token create` refuses a reserved name with the server's
/// message. (Every reserved spelling, over the API, is checked in-process
/// in coffer-server's `tests/access.rs`.)
#[test]
fn token_create_refuses_a_root_name_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(&server, &root, "nothing", "");
    let run = server.cli().token(&root).run(&[
        "token",
        "create",
        "--policy",
        "nothing",
        "--display-name",
        "ROOT",
    ]);
    assert_ne!(run.code(), 0);
    assert!(
        run.stderr().contains("coffer writes that name"),
        "{}",
        run.stderr()
    );
}

/// `coffer history` names who wrote each version, of which kind, with
/// which token. (The API's fields are checked in-process in coffer-server's
/// `tests/access.rs`.)
#[test]
fn history_shows_kind_and_accessor() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(
        &server,
        &root,
        "writer",
        r#"path "app/*" { capabilities = ["read", "list", "create", "update"] }"#,
    );
    let body = json!({ "policies": ["writer"], "display_name": "deployer" }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(body.as_bytes()),
    );
    let created = ok(&r, "token");
    let token = created["token"].as_str().unwrap().to_string();
    let accessor = created["accessor"].as_str().unwrap().to_string();
    let root_accessor = ok(
        &server.http("GET", "/api/v1/auth/token/self", Some(&root), None),
        "self",
    )["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    put_secret(&server, &root, "app/dev/KEY", "first-Xy7#kQ2!vR9z");
    put_secret(&server, &token, "app/dev/KEY", "second-Xy7#kQ2!vR9z");
    let human = join(
        &server,
        &root,
        "alice",
        "correct horse battery staple",
        &["writer"],
    );
    let alice_accessor = ok(
        &server.http("GET", "/api/v1/auth/token/self", Some(&human), None),
        "self",
    )["accessor"]
        .as_str()
        .unwrap()
        .to_string();
    put_secret(&server, &human, "app/dev/KEY", "third-Xy7#kQ2!vR9z");

    // The CLI's history table.
    let out = server
        .cli()
        .token(&root)
        .run(&["history", "app/dev/KEY"])
        .expect(0)
        .stdout();
    for line in [
        format!("root (service {root_accessor})"),
        format!("deployer (service {accessor})"),
        format!("alice (human {alice_accessor})"),
    ] {
        assert!(out.contains(&line), "history lacks {line:?}:\n{out}");
    }
}

#[test]
fn invite_code_in_argv_warns_and_from_the_environment_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put_policy(&server, &root, "nothing", "");
    let code = || {
        server
            .cli()
            .token(&root)
            .run(&["invite", "create", "--policy", "nothing", "--json"])
            .expect(0)
            .json()["code"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let password = "correct horse battery staple 42";
    let first = code();
    let r = server
        .cli()
        .stdin(password)
        .run(&["invite", "accept", &first, "--user", "argv-user"])
        .expect(0);
    assert!(
        r.stderr()
            .contains("warning: an invitation code on the command line"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains(&first[4..]), "{}", r.stderr());
    let second = code();
    let r = server
        .cli()
        .env("COFFER_INVITE_CODE", &second)
        .stdin(password)
        .run(&["invite", "accept", "--user", "env-user"])
        .expect(0);
    assert!(!r.stderr().contains("warning"), "{}", r.stderr());
}
