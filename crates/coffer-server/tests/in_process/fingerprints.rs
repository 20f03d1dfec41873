//! `POST /api/v1/fingerprints` through the router in-process: `list` is
//! enough and `read` is not needed, hidden and forbidden secrets are left
//! out, weak values are never fingerprinted, protected environments are
//! included (the documented decision), the answer and the audit log hold
//! no value and no fingerprint, and hostile requests change nothing.
//! Matching is done with `coffer_client::KnownValues`, as `coffer scan
//! --known` does.

use crate::common;

use coffer_client::KnownValues;
use coffer_client::api::leak::FingerprintResponse;
use common::{Mode, Server, ok};
use serde_json::json;

/// A fresh random value of 128 bits, 32 hex digits: strong enough to be
/// fingerprinted.
fn strong() -> String {
    coffer_crypto::random::bytes::<16>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn put(server: &Server, root: &str, path: &str, value: serde_json::Value) -> u64 {
    let body = json!({ "value": value }).to_string();
    let r = server.http(
        "PUT",
        &format!("/api/v1/secrets/{path}"),
        Some(root),
        Some(body.as_bytes()),
    );
    ok(&r, path)["version"].as_u64().unwrap()
}

fn policy(server: &Server, root: &str, name: &str, source: &str) {
    let body = json!({ "policy": source }).to_string();
    let r = server.http(
        "PUT",
        &format!("/api/v1/sys/policies/{name}"),
        Some(root),
        Some(body.as_bytes()),
    );
    ok(&r, name);
}

fn service_token(server: &Server, root: &str, policies: &[&str]) -> String {
    let body = json!({ "policies": policies }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(root),
        Some(body.as_bytes()),
    );
    ok(&r, "token")["token"].as_str().unwrap().to_string()
}

fn fingerprints(server: &Server, token: &str, prefix: &str) -> common::Response {
    let body = json!({ "prefix": prefix }).to_string();
    server.http(
        "POST",
        "/api/v1/fingerprints",
        Some(token),
        Some(body.as_bytes()),
    )
}

fn known(r: &common::Response) -> KnownValues {
    let answer: FingerprintResponse = serde_json::from_slice(&r.body).unwrap();
    let mut k = KnownValues::new();
    k.add(answer).unwrap();
    k
}

/// (path, version, field, part) of what `value` matches.
fn places(k: &KnownValues, value: &str) -> Vec<(String, u64, Option<String>, String)> {
    k.matches(value)
        .into_iter()
        .map(|p| (p.path.clone(), p.version, p.field.clone(), p.part.clone()))
        .collect()
}

fn place(
    path: &str,
    version: u64,
    field: Option<&str>,
    part: &str,
) -> (String, u64, Option<String>, String) {
    (
        path.to_string(),
        version,
        field.map(str::to_string),
        part.to_string(),
    )
}

#[test]
fn list_is_enough_and_every_version_not_destroyed_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let (v1, v2, v3) = (strong(), strong(), strong());
    let password = strong();
    put(&server, &root, "app/dev/API_KEY", json!(v1));
    put(&server, &root, "app/dev/API_KEY", json!(v2));
    put(&server, &root, "app/dev/API_KEY", json!(format!("{v3}\n")));
    put(
        &server,
        &root,
        "app/dev/db",
        json!({ "user": "app", "host": "db.internal", "password": password }),
    );
    let deleted = strong();
    put(&server, &root, "app/dev/OLD", json!(deleted));
    let destroyed = strong();
    put(&server, &root, "app/dev/OLD", json!(destroyed));
    ok(
        &server.http(
            "POST",
            "/api/v1/destroy/app/dev/OLD",
            Some(&root),
            Some(br#"{"versions":[2]}"#),
        ),
        "destroy",
    );
    ok(
        &server.http(
            "DELETE",
            "/api/v1/secrets/app/dev/OLD?versions=1",
            Some(&root),
            None,
        ),
        "delete",
    );
    policy(
        &server,
        &root,
        "lister",
        r#"path "app/dev/" { capabilities = ["list"] }
           path "app/dev/*" { capabilities = ["list"] }"#,
    );
    let lister = service_token(&server, &root, &["lister"]);
    // The lister reads no value...
    let r = server.http(
        "GET",
        "/api/v1/secrets/app/dev/API_KEY",
        Some(&lister),
        None,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // ...but gets the fingerprints.
    let r = fingerprints(&server, &lister, "app/dev/");
    let body = ok(&r, "fingerprints");
    assert_eq!(body["prefix"], "app/dev/");
    assert_eq!(body["algorithm"], "coffer.fingerprint.v1");
    assert_eq!(body["min_bits"], 80.0);
    assert_eq!(body["secrets"], 3);
    // Three of API_KEY, one of db, the deleted one of OLD (not the destroyed).
    assert_eq!(body["versions"], 5);
    let text = r.text();
    for value in [&v1, &v2, &v3, &password, &deleted, &destroyed] {
        assert!(!text.contains(value.as_str()), "a value in the answer");
    }
    let k = known(&r);
    assert_eq!(
        places(&k, &v1),
        [place("app/dev/API_KEY", 1, None, "value")]
    );
    assert_eq!(
        places(&k, &v2),
        [place("app/dev/API_KEY", 2, None, "value")]
    );
    // Values are fingerprinted trimmed, as they appear in files.
    assert_eq!(
        places(&k, &v3),
        [place("app/dev/API_KEY", 3, None, "value")]
    );
    assert_eq!(
        places(&k, &password),
        [place("app/dev/db", 1, Some("password"), "value")]
    );
    assert_eq!(
        places(&k, &deleted),
        [place("app/dev/OLD", 1, None, "value")]
    );
    assert!(places(&k, &destroyed).is_empty(), "a destroyed version");
    // The weak fields are never fingerprinted: the lister cannot confirm them.
    for guess in ["app", "db.internal", "hunter2"] {
        assert!(places(&k, guess).is_empty(), "{guess}");
    }
    assert_eq!(k.places(), 5);
    // A near miss matches nothing.
    let mut near = v1.clone();
    near.pop();
    near.push(if v1.ends_with('0') { '1' } else { '0' });
    assert!(places(&k, &near).is_empty());
    // A second request has a fresh key: its tags are unrelated to the first's.
    let again = ok(&fingerprints(&server, &lister, "app/dev/"), "again");
    assert_ne!(again["key"], body["key"]);
    let first: std::collections::HashSet<_> = body["tags"].as_array().unwrap().iter().collect();
    assert!(
        again["tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| !first.contains(t))
    );
}

#[test]
fn equal_values_share_a_tag_but_not_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let shared = strong();
    put(&server, &root, "app/dev/A", json!(shared));
    put(&server, &root, "app/prod/A", json!(shared));
    let r = fingerprints(&server, &root, "app/");
    let body = ok(&r, "fingerprints");
    // One tag for the one value: the set does not say which secrets hold it.
    assert_eq!(body["tags"].as_array().unwrap().len(), 1);
    let labels: Vec<&str> = body["places"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 2);
    assert_ne!(labels[0], labels[1]);
    let k = known(&r);
    assert_eq!(
        places(&k, &shared),
        [
            place("app/dev/A", 1, None, "value"),
            place("app/prod/A", 1, None, "value")
        ]
    );
}

#[test]
fn weak_values_are_never_fingerprinted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let weak = [
        "hunter2",
        "Summer2024!",
        "correct-horse-battery-staple-1",
        "correcthorsebatterystaple",
        "Password123Password123Password123",
        // 64 bits of hex: fine to store, not to fingerprint.
        "9f86d081884c7d65",
        // Strong to store, but under 25 characters.
        "kX9#mP2$vL8@nQ5!wR7^",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    for (i, v) in weak.iter().enumerate() {
        put(&server, &root, &format!("weak/dev/V{i}"), json!(v));
    }
    put(
        &server,
        &root,
        "weak/dev/F",
        json!({ "password": "letmein123", "user": "admin" }),
    );
    let r = fingerprints(&server, &root, "weak/");
    let body = ok(&r, "fingerprints");
    assert_eq!(body["secrets"], weak.len() + 1);
    assert_eq!(body["tags"], json!([]));
    assert_eq!(body["places"], json!([]));
    let text = r.text();
    for v in weak {
        assert!(!text.contains(v), "{v}");
    }
    // A lister guessing offline has nothing to check guesses against.
    let k = known(&r);
    for v in weak.iter().chain(&["letmein123", "admin"]) {
        assert!(places(&k, v).is_empty(), "{v}");
    }
}

#[test]
fn multi_line_values_are_found_whole_and_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let lines = [strong() + &strong(), strong() + &strong()];
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----\n",
        lines[0], lines[1]
    );
    put(&server, &root, "app/dev/TLS_KEY", json!(pem));
    let k = known(&fingerprints(&server, &root, "app/"));
    assert_eq!(
        places(&k, pem.trim()),
        [place("app/dev/TLS_KEY", 1, None, "value")]
    );
    for line in &lines {
        assert_eq!(
            places(&k, line),
            [place("app/dev/TLS_KEY", 1, None, "line")]
        );
    }
    // The armour lines are weak and never fingerprinted.
    assert!(places(&k, "-----BEGIN PRIVATE KEY-----").is_empty());
    // In a file, line by line, or whole in a double-quoted .env value.
    let found = k.find_in(&format!("key: |\n  {}\n  {}\n", lines[0], lines[1]));
    assert_eq!(found.len(), 2);
    let escaped = format!("TLS_KEY=\"{}\"\n", pem.trim().replace('\n', "\\n"));
    let found = k.find_in(&escaped);
    assert!(found.iter().any(|(_, p)| p.part == "value"), "{found:?}");
}

#[test]
fn hidden_and_forbidden_secrets_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let (dev, denied, other) = (strong(), strong(), strong());
    put(&server, &root, "app/dev/KEY", json!(dev));
    put(&server, &root, "app/dev/DENIED", json!(denied));
    put(&server, &root, "other/dev/KEY", json!(other));
    policy(
        &server,
        &root,
        "partial",
        r#"path "app/" { capabilities = ["list"] }
           path "app/*" { capabilities = ["list"] }
           path "app/dev/DENIED" { capabilities = ["deny"] }"#,
    );
    let token = service_token(&server, &root, &["partial"]);
    let r = fingerprints(&server, &token, "app/");
    let body = ok(&r, "fingerprints");
    assert_eq!(body["secrets"], 1);
    let k = known(&r);
    assert_eq!(places(&k, &dev), [place("app/dev/KEY", 1, None, "value")]);
    assert!(places(&k, &denied).is_empty(), "a denied secret");
    assert!(!r.text().contains("DENIED"), "a denied name");
    // Without `list` on the prefix: refused, and nothing is said.
    for prefix in ["other/", "other/dev/", ""] {
        let r = fingerprints(&server, &token, prefix);
        assert_eq!(r.status, 403, "{prefix}: {}", r.text());
        assert_eq!(r.error_code(), "forbidden");
        assert!(!r.text().contains(&other));
    }
    // Below the denied name there is nothing to show.
    let r = fingerprints(&server, &token, "app/dev/DENIED/");
    assert_eq!(ok(&r, "below the denied")["places"], json!([]));
}

#[test]
fn protected_environments_are_fingerprinted_for_people_who_may_list_them() {
    // Documented decision: a fingerprint of a strong value tells nothing to
    // whoever does not hold it, and a production value found on a
    // developer's machine is the leak that most needs finding; reads stay
    // refused.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let prod = strong();
    put(&server, &root, "app/prod/KEY", json!(prod));
    ok(
        &server.http(
            "POST",
            "/api/v1/sys/protected",
            Some(&root),
            Some(br#"{"pattern":"*/prod/*"}"#),
        ),
        "protect",
    );
    policy(
        &server,
        &root,
        "prod-reader",
        r#"path "app/prod/" { capabilities = ["list"] }
           path "app/prod/*" { capabilities = ["read", "list"] }"#,
    );
    let invite = ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites",
            Some(&root),
            Some(br#"{"policies":["prod-reader"]}"#),
        ),
        "invite",
    )["code"]
        .as_str()
        .unwrap()
        .to_string();
    let password = "correct horse battery staple of hugo";
    let accept = json!({ "code": invite, "user": "hugo", "password": password }).to_string();
    ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites/accept",
            None,
            Some(accept.as_bytes()),
        ),
        "accept",
    );
    let login = json!({ "user": "hugo", "password": password }).to_string();
    let human = ok(
        &server.http("POST", "/api/v1/auth/login", None, Some(login.as_bytes())),
        "login",
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = server.http("GET", "/api/v1/secrets/app/prod/KEY", Some(&human), None);
    assert_eq!(r.status, 403, "a person reads no production value");
    let r = fingerprints(&server, &human, "app/prod/");
    let k = known(&r);
    assert_eq!(places(&k, &prod), [place("app/prod/KEY", 1, None, "value")]);
    assert!(!r.text().contains(&prod));
}

#[test]
fn the_audit_record_names_the_prefix_never_a_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let value = strong();
    put(&server, &root, "app/dev/KEY", json!(value));
    let r = fingerprints(&server, &root, "app/dev/");
    let body = ok(&r, "fingerprints");
    let record = server
        .audit_records()
        .into_iter()
        .rev()
        .find(|r| r["op"] == "secret.fingerprints")
        .expect("a record");
    assert_eq!(record["path"], "app/dev/");
    assert_eq!(record["outcome"], "ok");
    let log = std::fs::read_to_string(server.audit_log()).unwrap();
    assert!(!log.contains(&value));
    assert!(!log.contains(body["key"].as_str().unwrap()), "the key");
    for t in body["tags"].as_array().unwrap() {
        assert!(!log.contains(t.as_str().unwrap()), "a tag");
    }
    for p in body["places"].as_array().unwrap() {
        assert!(!log.contains(p["label"].as_str().unwrap()), "a label");
    }
}

#[test]
fn hostile_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(&server, &root, "app/dev/KEY", json!(strong()));
    for (body, status) in [
        (r#"{"prefix":"../"}"#, 400),
        (r#"{"prefix":"app/../sys/"}"#, 400),
        (r#"{"prefix":"app//"}"#, 400),
        (r#"{"prefix":"app/\u0000/"}"#, 400),
        (r#"{"prefix":"app/\u202e/"}"#, 400),
        (
            r#"{"prefix":"cft_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/"}"#,
            400,
        ),
        (r#"{"prefix":"app/","key":"00"}"#, 400),
        (r#"{"prefix":7}"#, 400),
        (r#"{}"#, 400),
        (r#"not json"#, 400),
    ] {
        let r = server.http(
            "POST",
            "/api/v1/fingerprints",
            Some(&root),
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(!r.text().contains("cft_AAAA"), "{body}: echoed");
    }
    // Only JSON is accepted.
    let r = server.request(
        "POST",
        "/api/v1/fingerprints",
        Some(&root),
        Some(br#"{"prefix":"app/"}"#),
        &[("content-type", "text/plain")],
    );
    assert_eq!(r.status, 415, "{}", r.text());
    // No token, a bad token.
    assert_eq!(
        server
            .http(
                "POST",
                "/api/v1/fingerprints",
                None,
                Some(br#"{"prefix":""}"#)
            )
            .status,
        401
    );
    assert_eq!(
        server
            .http(
                "POST",
                "/api/v1/fingerprints",
                Some("cft_not_a_token"),
                Some(br#"{"prefix":""}"#)
            )
            .status,
        401
    );
    // The other method on the route.
    assert_eq!(
        server
            .http("GET", "/api/v1/fingerprints", Some(&root), None)
            .status,
        405
    );
    // Requests at once each get their own key.
    let keys: std::collections::HashSet<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    ok(&fingerprints(&server, &root, "app/"), "parallel")["key"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(keys.len(), 8);
}
