//! The audit record of each request, through the router in-process: every
//! request recorded exactly once, with its operation name, who made it, what
//! it touched and its outcome, and tokens only as their HMAC tags. (The
//! audit log end to end, `coffer audit` commands, failing sinks, rotation,
//! alerts and restarts, is tested against the binary in coffer-cli's
//! `tests/audit.rs`.)

use crate::common;

use common::{Mode, Server, ok};
use serde_json::Value;

/// The audit tag of `value`, as `POST /sys/audit/hash` (and so `coffer
/// audit hash`) gives it.
fn hash(server: &Server, root: &str, value: &str) -> String {
    let body = serde_json::json!({ "value": value }).to_string();
    ok(
        &server.http(
            "POST",
            "/api/v1/sys/audit/hash",
            Some(root),
            Some(body.as_bytes()),
        ),
        "audit hash",
    )["hmac"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn every_request_is_recorded_once_with_who_what_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let body = br#"{"value":"v1"}"#;
    // (request, expected op, expected outcome, expected status)
    let cases: Vec<(common::Response, &str, &str, u16)> = vec![
        (
            server.http("PUT", "/api/v1/secrets/app/dev/db", Some(&root), Some(body)),
            "secret.write",
            "ok",
            200,
        ),
        (
            server.http("GET", "/api/v1/secrets/app/dev/db", Some(&root), None),
            "secret.read",
            "ok",
            200,
        ),
        (
            server.http(
                "GET",
                "/api/v1/secrets/app/dev/db",
                Some("cft_not_a_token"),
                None,
            ),
            "secret.read",
            "denied",
            401,
        ),
        (
            server.http("GET", "/api/v1/secrets/app/dev/nope", Some(&root), None),
            "secret.read",
            "error",
            404,
        ),
        (
            server.http(
                "PUT",
                "/api/v1/secrets/app/dev/db",
                Some(&root),
                Some(b"{not json"),
            ),
            "secret.write",
            "error",
            400,
        ),
        (
            server.request(
                "PUT",
                "/api/v1/secrets/app/dev/db",
                Some(&root),
                Some(b"{}"),
                &[("Content-Length", "999999999")],
            ),
            "secret.write",
            "error",
            413,
        ),
        (
            server.http("GET", "/api/v1/no/such/route", None, None),
            "unmatched",
            "error",
            404,
        ),
        (
            server.http("POST", "/api/v1/sys/keyring", Some(&root), None),
            "unmatched",
            "error",
            405,
        ),
    ];
    let health = server.http("GET", "/api/v1/sys/health", None, None);
    let status = server.http("GET", "/api/v1/sys/status", None, None);
    let log = server.audit_records();
    let by_id = |id: &str| -> Vec<&Value> {
        log.iter()
            .filter(|r| r["request_id"].as_str() == Some(id))
            .collect()
    };
    for (resp, op, outcome, code) in &cases {
        assert_eq!(resp.status, *code, "{op}: {}", resp.text());
        let id = resp.header("x-request-id").unwrap();
        let found = by_id(id);
        assert_eq!(
            found.len(),
            1,
            "{op} {code}: recorded {} times",
            found.len()
        );
        let r = found[0];
        assert_eq!(r["op"], *op);
        assert_eq!(r["outcome"], *outcome);
        assert_eq!(r["status"], *code);
        assert_eq!(r["source"], "127.0.0.1");
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
        assert!(r["duration_us"].is_u64());
    }
    for exempt in [&health, &status] {
        assert!(by_id(exempt.header("x-request-id").unwrap()).is_empty());
    }
    // Who, what and which version, for the successful read.
    let read = by_id(cases[1].0.header("x-request-id").unwrap())[0];
    assert_eq!(read["actor"]["name"], "root");
    assert_eq!(read["actor"]["kind"], "service");
    assert!(
        read["actor"]["accessor"]
            .as_str()
            .unwrap()
            .starts_with("acc_")
    );
    assert_eq!(read["path"], "app/dev/db");
    assert_eq!(read["decision"], "read");
    assert_eq!(read["version"], 1);
    // Tokens appear only as HMACs, the ones the audit API's hash gives
    // (what `coffer audit hash` prints).
    let bad = by_id(cases[2].0.header("x-request-id").unwrap())[0];
    assert!(bad["actor"].is_null());
    let tag = hash(&server, &root, "cft_not_a_token");
    assert_eq!(bad["token"], tag);
    // A token that authenticated is tagged once and the tag kept with the
    // cached token: every request it made carries the same tag.
    let root_tag = hash(&server, &root, &root);
    assert_eq!(read["token"], root_tag);
    let by_root: Vec<&Value> = log
        .iter()
        .filter(|r| r["actor"]["accessor"] == read["actor"]["accessor"])
        .collect();
    assert!(by_root.len() > 3, "{by_root:?}");
    for r in by_root {
        assert_eq!(r["token"], root_tag, "{r}");
    }
    let raw = std::fs::read_to_string(server.audit_log()).unwrap();
    assert!(!raw.contains(&root) && !raw.contains("cft_not_a_token"));
    let oversized = by_id(cases[5].0.header("x-request-id").unwrap())[0];
    assert_eq!(oversized["error"], "too_large");
    // The first record says the log opened.
    assert_eq!(log[0]["type"], "notice");
    assert_eq!(log[0]["seq"], 1);
}

#[test]
fn a_record_tags_the_token_presented_not_the_one_a_login_hands_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let tag_of = |v: &str| hash(&server, &root, v);
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/reader",
            Some(&root),
            Some(br#"{"policy":"path \"app/*\" { capabilities = [\"read\"] }"}"#),
        ),
        "policy write",
    );
    let code = ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites",
            Some(&root),
            Some(br#"{"policies":["reader"]}"#),
        ),
        "invite create",
    )["code"]
        .as_str()
        .unwrap()
        .to_string();
    let password = "correct horse battery staple";
    let accept = serde_json::json!({ "code": code, "user": "tess", "password": password });
    ok(
        &server.http(
            "POST",
            "/api/v1/auth/invites/accept",
            None,
            Some(accept.to_string().as_bytes()),
        ),
        "invite accept",
    );
    let body = format!(r#"{{"user":"tess","password":"{password}"}}"#);
    // One login presents no token, one presents root's (it is not needed,
    // and must not be confused with the token the login creates).
    let bare = server.http("POST", "/api/v1/auth/login", None, Some(body.as_bytes()));
    let with_root = server.http(
        "POST",
        "/api/v1/auth/login",
        Some(&root),
        Some(body.as_bytes()),
    );
    assert_eq!(bare.status, 200, "{}", bare.text());
    assert_eq!(with_root.status, 200, "{}", with_root.text());
    let new_token = with_root.json()["token"].as_str().unwrap().to_string();
    // The new token's first request: it is tagged as itself.
    let read = server.http("GET", "/api/v1/auth/token/self", Some(&new_token), None);
    assert_eq!(read.status, 200, "{}", read.text());

    let log = server.audit_records();
    let by_id = |r: &common::Response| -> Value {
        let id = r.header("x-request-id").unwrap();
        let found: Vec<&Value> = log
            .iter()
            .filter(|x| x["request_id"].as_str() == Some(id))
            .collect();
        assert_eq!(found.len(), 1);
        found[0].clone()
    };
    let (bare, with_root, read) = (by_id(&bare), by_id(&with_root), by_id(&read));
    assert_eq!(bare["op"], "auth.login");
    assert_eq!(bare["actor"]["name"], "tess");
    assert!(bare.get("token").is_none(), "{bare}");
    assert_eq!(with_root["actor"]["name"], "tess");
    assert_eq!(with_root["token"], tag_of(&root), "{with_root}");
    assert_eq!(read["actor"]["name"], "tess");
    assert_eq!(read["token"], tag_of(&new_token), "{read}");
    assert_ne!(read["token"], with_root["token"]);
}
