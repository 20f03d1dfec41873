//! Hostile and malformed requests over raw HTTP: each gets a clear error,
//! never echoes what it sent, changes nothing, and leaves nothing in the
//! server's log. (Limits the router checks alone are tested in-process in
//! coffer-server's `tests/bad_input.rs`.)

use crate::common;

use common::{Mode, Server, http};

const CANARY: &str = "CANARY-bad-input-7f3a9c";

/// Lists every secret (recursively, including deleted ones).
fn snapshot(server: &Server, token: &str) -> String {
    let r = server.http(
        "GET",
        "/api/v1/list?recursive=true&include_deleted=true",
        Some(token),
        None,
    );
    assert_eq!(r.status, 200);
    r.text()
}

/// method, path, body, expected status, expected error code
type Case = (&'static str, String, Option<Vec<u8>>, u16, &'static str);

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let token = server.root_token();
    let t = Some(token.as_str());
    let ok = server.http(
        "PUT",
        "/api/v1/secrets/app/dev/KEY",
        t,
        Some(br#"{"value":"original"}"#),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let before = snapshot(&server, &token);

    let canary_body = format!(r#"{{"value":"{CANARY}"}}"#);
    let cases: Vec<Case> = vec![
        // Paths.
        (
            "PUT",
            "/api/v1/secrets/app/../prod/KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/%2e%2e/prod/KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/%2E%2E/KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app//KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/./KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/de%00v/KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/de%0Av/KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/%ff/KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/*/KEY".into(),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            format!("/api/v1/secrets/{}", "a/".repeat(300)),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            format!("/api/v1/secrets/{}", "x".repeat(600)),
            Some(canary_body.clone().into()),
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/secrets/app/%2e%2e/dev/KEY".into(),
            None,
            400,
            "invalid",
        ),
        // Bodies.
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(b"{not json".to_vec()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(b"".to_vec()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(format!(r#"{{"value":{CANARY}}}"#).into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(br#"{"value":12345678901234}"#.to_vec()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(format!(r#"{{"value":{{"f":["{CANARY}"]}}}}"#).into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(format!(r#"{{"valu":"{CANARY}"}}"#).into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(format!(r#"{{"value":"{CANARY}","extra":1}}"#).into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(format!(r#"{{"value":{{"":"{CANARY}"}}}}"#).into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(format!(r#"{{"value":"{CANARY}","cas":-1}}"#).into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(format!(r#"{{"value":"{CANARY}","cas":7}}"#).into()),
            409,
            "conflict",
        ),
        // Sizes: value over 64 KiB, and a body over the body limit.
        (
            "PUT",
            "/api/v1/secrets/app/dev/BIG".into(),
            Some(format!(r#"{{"value":"{}"}}"#, "v".repeat(65537)).into()),
            413,
            "too_large",
        ),
        (
            "PUT",
            "/api/v1/secrets/app/dev/BIG".into(),
            Some(format!(r#"{{"value":"{}"}}"#, "v".repeat(200_000)).into()),
            413,
            "too_large",
        ),
        // Query strings.
        (
            "GET",
            "/api/v1/secrets/app/dev/KEY?version=abc".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/secrets/app/dev/KEY?version=-1".into(),
            None,
            400,
            "invalid",
        ),
        (
            "DELETE",
            "/api/v1/secrets/app/dev/KEY?versions=1,x".into(),
            None,
            400,
            "invalid",
        ),
        (
            "DELETE",
            "/api/v1/secrets/app/dev/KEY?versions=0".into(),
            None,
            400,
            "invalid",
        ),
        (
            "DELETE",
            "/api/v1/secrets/app/dev/KEY?versions=99".into(),
            None,
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/destroy/app/dev/KEY".into(),
            Some(br#"{"versions":"all"}"#.to_vec()),
            400,
            "invalid",
        ),
        // Routes and methods.
        ("GET", "/api/v1/nope".into(), None, 404, "not_found"),
        (
            "PATCH",
            "/api/v1/secrets/app/dev/KEY".into(),
            Some(b"{}".to_vec()),
            405,
            "method_not_allowed",
        ),
        // Init twice.
        (
            "POST",
            "/api/v1/sys/init".into(),
            Some(br#"{"shares":1,"threshold":1}"#.to_vec()),
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/sys/unseal".into(),
            Some(format!(r#"{{"key":"{CANARY}"}}"#).into()),
            400,
            "invalid",
        ),
    ];
    for (method, path, body, status, code) in &cases {
        let r = server.http(method, path, t, body.as_deref());
        assert_eq!(r.status, *status, "{method} {path}: {}", r.text());
        if !code.is_empty() {
            assert_eq!(r.error_code(), *code, "{method} {path}: {}", r.text());
            let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
            assert!(!msg.is_empty(), "{method} {path}: empty message");
            assert!(r.json()["error"]["request_id"].is_string());
        }
        assert!(
            !r.text().contains(CANARY),
            "{method} {path}: response echoes the body: {}",
            r.text()
        );
        assert!(
            !r.text().contains("12345678901234"),
            "{method} {path}: response echoes a value"
        );
        assert!(r.header("x-request-id").is_some());
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }

    // A huge declared length is refused without the server waiting for it.
    let r = http(
        server.host_port(),
        "PUT",
        "/api/v1/secrets/app/dev/HUGE",
        t,
        Some(b"{"),
        &[("Content-Length", "100000000")],
    );
    assert_eq!(r.status, 413, "{}", r.text());

    // Tokens: missing, garbage, well-formed but unknown, wrong scheme, in a query string.
    let fake = "cft_0000000000000000000000000000000000000000000abcdef";
    let token_cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing"),
        (Some("garbage".into()), "garbage"),
        (Some(fake.into()), "unknown"),
        (Some(format!("{token}x")), "extended"),
        (Some(token[..token.len() - 1].to_string()), "truncated"),
    ];
    for (tok, what) in &token_cases {
        let r = server.http("GET", "/api/v1/secrets/app/dev/KEY", tok.as_deref(), None);
        assert_eq!(r.status, 401, "{what} token: {}", r.text());
        assert_eq!(r.error_code(), "unauthenticated");
        assert_eq!(
            r.json()["error"]["message"],
            "missing or invalid token",
            "one message for every bad token, so none can be told apart"
        );
        let r = server.http(
            "PUT",
            "/api/v1/secrets/app/dev/KEY",
            tok.as_deref(),
            Some(canary_body.as_bytes()),
        );
        assert_eq!(r.status, 401, "{what} token on write");
    }
    let r = http(
        server.host_port(),
        "GET",
        "/api/v1/secrets/app/dev/KEY",
        None,
        None,
        &[("Authorization", &format!("Basic {token}"))],
    );
    assert_eq!(r.status, 401);

    // Nothing changed.
    assert_eq!(snapshot(&server, &token), before);
    let v = server
        .http("GET", "/api/v1/secrets/app/dev/KEY", t, None)
        .json();
    assert_eq!(v["value"], "original");
    assert_eq!(v["version"], 1);

    // And nothing of it reached the logs.
    let logs = server.logs();
    assert!(!logs.contains(CANARY), "the canary reached the server log");
    assert!(!logs.contains(&token), "the token reached the server log");
}
