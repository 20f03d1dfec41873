//! `POST /api/v1/compromise/{path}` through the router in-process: the
//! mark needs `rotate` and no `read`, is kept once, shows in the metadata
//! and the fingerprints, is audited with an alert, and a compromised
//! version never becomes current again (rollback, promotion, copy and
//! undelete refuse it with 409 `compromised`).

use crate::common;

use common::{Mode, Server, ok};
use serde_json::{Value, json};

fn put(server: &Server, root: &str, path: &str, value: &str) -> u64 {
    let body = json!({ "value": value }).to_string();
    let r = server.http(
        "PUT",
        &format!("/api/v1/secrets/{path}"),
        Some(root),
        Some(body.as_bytes()),
    );
    ok(&r, path)["version"].as_u64().unwrap()
}

fn compromise(server: &Server, token: &str, path: &str, body: Value) -> common::Response {
    server.http(
        "POST",
        &format!("/api/v1/compromise/{path}"),
        Some(token),
        Some(body.to_string().as_bytes()),
    )
}

fn versions(server: &Server, root: &str, path: &str) -> Vec<Value> {
    let r = server.http("GET", &format!("/api/v1/metadata/{path}"), Some(root), None);
    ok(&r, "metadata")["versions"].as_array().unwrap().clone()
}

fn assert_compromised(r: &common::Response, version: u64) {
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.error_code(), "compromised");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&format!("version {version} of ")) && message.contains("compromised"),
        "{message}"
    );
}

#[test]
fn a_version_is_marked_once_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "app/dev/KEY",
        "first-value-aaaaaaaaaaaaaaaaaaaaaa",
    );
    put(
        &server,
        &root,
        "app/dev/KEY",
        "second-value-bbbbbbbbbbbbbbbbbbbbb",
    );
    // `rotate` is enough: no `read`.
    let body = json!({ "policy": r#"path "app/dev/*" { capabilities = ["rotate"] }"# });
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/rotator",
            Some(&root),
            Some(body.to_string().as_bytes()),
        ),
        "policy",
    );
    let rotator = ok(
        &server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(&root),
            Some(br#"{"policies":["rotator"]}"#),
        ),
        "token",
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({ "policy": r#"path "app/dev/*" { capabilities = ["read", "list"] }"# });
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/reader",
            Some(&root),
            Some(body.to_string().as_bytes()),
        ),
        "policy",
    );
    let reader_only = ok(
        &server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(&root),
            Some(br#"{"policies":["reader"]}"#),
        ),
        "token",
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = compromise(
        &server,
        &reader_only,
        "app/dev/KEY",
        json!({"reason": "in a ticket"}),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = compromise(
        &server,
        &rotator,
        "app/dev/KEY",
        json!({"reason": "pasted in ticket 42"}),
    );
    let body = ok(&r, "compromise");
    assert_eq!(body["path"], "app/dev/KEY");
    assert_eq!(body["version"], 2);
    assert_eq!(body["newly_marked"], true);
    assert_eq!(body["is_current"], true);
    assert_eq!(body["reason"], "pasted in ticket 42");
    // Once: a second mark keeps the first.
    let again = ok(
        &compromise(
            &server,
            &rotator,
            "app/dev/KEY",
            json!({"version": 2, "reason": "again, later"}),
        ),
        "again",
    );
    assert_eq!(again["newly_marked"], false);
    assert_eq!(again["reason"], "pasted in ticket 42");
    assert_eq!(again["compromised_at"], body["compromised_at"]);
    let v = versions(&server, &root, "app/dev/KEY");
    assert!(v[0].get("compromised_at").is_none(), "{v:?}");
    assert_eq!(v[1]["compromised_at"], body["compromised_at"]);
    assert_eq!(v[1]["compromised_reason"], "pasted in ticket 42");
    // The value is still what readers get until a rotation.
    let r = server.http("GET", "/api/v1/secrets/app/dev/KEY", Some(&root), None);
    assert_eq!(ok(&r, "read")["version"], 2);
    // Audited, with the alert the webhooks get.
    let records = server.audit_records();
    let marks: Vec<&Value> = records
        .iter()
        .filter(|r| r["op"] == "secret.compromise" && r["alert"].is_null())
        .collect();
    assert_eq!(marks.len(), 3);
    assert_eq!(marks[1]["path"], "app/dev/KEY");
    assert_eq!(marks[1]["version"], 2);
    assert_eq!(marks[1]["outcome"], "ok");
    let alerts: Vec<&Value> = records
        .iter()
        .filter(|r| r["alert"]["rule"] == "version_compromised")
        .collect();
    // Both successful requests raise it (the second says nothing new, but
    // someone found the value again).
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[0]["path"], "app/dev/KEY");
    assert_eq!(alerts[0]["version"], 2);
    assert!(
        alerts[0]["message"]
            .as_str()
            .unwrap()
            .contains("marked version 2 of app/dev/KEY compromised"),
        "{:?}",
        alerts[0]
    );
    let log = std::fs::read_to_string(server.audit_log()).unwrap();
    assert!(!log.contains("second-value-bbbb"));
}

#[test]
fn a_compromised_version_never_becomes_current_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let p = "app/dev/KEY";
    put(&server, &root, p, "value-one-aaaaaaaaaaaaaaaaaaaaaaaaaa");
    put(&server, &root, p, "value-two-bbbbbbbbbbbbbbbbbbbbbbbbbb");
    ok(
        &compromise(
            &server,
            &root,
            p,
            json!({"version": 1, "reason": "old leak in a log"}),
        ),
        "mark 1",
    );
    // Rollback to it.
    let r = server.http(
        "POST",
        &format!("/api/v1/rollback/{p}"),
        Some(&root),
        Some(br#"{"version":1}"#),
    );
    assert_compromised(&r, 1);
    // A staged version that leaked is never promoted.
    ok(
        &server.http(
            "POST",
            &format!("/api/v1/rotate/{p}"),
            Some(&root),
            Some(br#"{"generate":"hex","stage":true}"#),
        ),
        "stage",
    );
    ok(
        &compromise(
            &server,
            &root,
            p,
            json!({"version": 3, "reason": "staged value leaked"}),
        ),
        "mark 3",
    );
    let r = server.http(
        "POST",
        &format!("/api/v1/promote/{p}"),
        Some(&root),
        Some(b"{}"),
    );
    assert_compromised(&r, 3);
    ok(
        &server.http("DELETE", &format!("/api/v1/rotate/{p}"), Some(&root), None),
        "cancel",
    );
    // Mark current (2): a copy or move would make it current at the target.
    ok(
        &compromise(&server, &root, p, json!({"reason": "current leaked too"})),
        "mark 2",
    );
    for moving in [false, true] {
        let body = json!({"from": p, "to": "app/dev/COPY", "move": moving}).to_string();
        let r = server.http("POST", "/api/v1/copy", Some(&root), Some(body.as_bytes()));
        assert_compromised(&r, 2);
    }
    // Undeleting it as current.
    ok(
        &server.http("DELETE", &format!("/api/v1/secrets/{p}"), Some(&root), None),
        "delete",
    );
    let r = server.http(
        "POST",
        &format!("/api/v1/undelete/{p}"),
        Some(&root),
        Some(br#"{"versions":[2]}"#),
    );
    assert_compromised(&r, 2);
    let r = server.http(
        "POST",
        &format!("/api/v1/undelete/{p}"),
        Some(&root),
        Some(br#"{}"#),
    );
    assert_compromised(&r, 2);
    // A rotation replaces it; after that a copy carries the marks along.
    ok(
        &server.http(
            "POST",
            &format!("/api/v1/rotate/{p}"),
            Some(&root),
            Some(br#"{"generate":"hex"}"#),
        ),
        "rotate",
    );
    let body = json!({"from": p, "to": "app/dev/COPY"}).to_string();
    ok(
        &server.http("POST", "/api/v1/copy", Some(&root), Some(body.as_bytes())),
        "copy",
    );
    let v = versions(&server, &root, "app/dev/COPY");
    let marked: Vec<u64> = v
        .iter()
        .filter(|v| v.get("compromised_at").is_some())
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(marked, [1, 2, 3]);
    let r = server.http(
        "POST",
        "/api/v1/rollback/app/dev/COPY",
        Some(&root),
        Some(br#"{"version":1}"#),
    );
    assert_compromised(&r, 1);
    // The fingerprints say which versions are compromised.
    let fp = ok(
        &server.http(
            "POST",
            "/api/v1/fingerprints",
            Some(&root),
            Some(br#"{"prefix":"app/dev/"}"#),
        ),
        "fingerprints",
    );
    let flags: Vec<(String, u64, bool)> = fp["places"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|place| place["path"] == p)
        .map(|place| {
            (
                place["path"].as_str().unwrap().to_string(),
                place["version"].as_u64().unwrap(),
                place["compromised"].as_bool().unwrap(),
            )
        })
        .collect();
    // The generated versions 3 (staged, compromised) and 4 (the rotation).
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(flags.iter().all(|(_, v, c)| *c == (*v <= 3)), "{flags:?}");
}

#[test]
fn bad_marks_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "app/dev/KEY",
        "value-one-aaaaaaaaaaaaaaaaaaaaaaaaaa",
    );
    for (path, body, status) in [
        ("app/dev/KEY", json!({"reason": ""}), 400),
        ("app/dev/KEY", json!({"reason": "  x "}), 400),
        ("app/dev/KEY", json!({"reason": "line one\nline two"}), 400),
        ("app/dev/KEY", json!({"reason": "right\u{202e}left"}), 400),
        (
            "app/dev/KEY",
            json!({"reason": "leaked cft_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
            400,
        ),
        ("app/dev/KEY", json!({"reason": "x".repeat(501)}), 400),
        (
            "app/dev/KEY",
            json!({"reason": "fine reason", "value": "v"}),
            400,
        ),
        (
            "app/dev/KEY",
            json!({"version": 9, "reason": "fine reason"}),
            404,
        ),
        (
            "app/dev/KEY",
            json!({"version": 0, "reason": "fine reason"}),
            404,
        ),
        ("app/dev/NOPE", json!({"reason": "fine reason"}), 404),
        ("app/../sys/x", json!({"reason": "fine reason"}), 400),
        ("app/dev/KEY", json!({}), 400),
    ] {
        let r = compromise(&server, &root, path, body.clone());
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert!(!r.text().contains("cft_AAAA"), "echoed");
    }
    let v = versions(&server, &root, "app/dev/KEY");
    assert!(v[0].get("compromised_at").is_none(), "{v:?}");
}

#[test]
fn a_mark_racing_a_promotion_never_leaves_a_compromised_version_current() {
    // Marking the staged version and promoting it, at once, on many
    // secrets: either the promotion came first (and the mark says the
    // version is current, to be rotated), or the mark did (and the
    // promotion is refused). Never a compromised version made current by a
    // promotion that did not see the mark.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let paths: Vec<String> = (0..12).map(|i| format!("race/dev/K{i}")).collect();
    for p in &paths {
        put(&server, &root, p, "value-one-aaaaaaaaaaaaaaaaaaaaaaaaaa");
        ok(
            &server.http(
                "POST",
                &format!("/api/v1/rotate/{p}"),
                Some(&root),
                Some(br#"{"generate":"hex","stage":true}"#),
            ),
            "stage",
        );
    }
    let outcomes: Vec<(common::Response, common::Response)> = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .iter()
            .map(|p| {
                let (server, root) = (&server, &root);
                s.spawn(move || {
                    std::thread::scope(|inner| {
                        let mark = inner.spawn(|| {
                            compromise(server, root, p, json!({"version": 2, "reason": "race"}))
                        });
                        let promote = inner.spawn(|| {
                            server.http(
                                "POST",
                                &format!("/api/v1/promote/{p}"),
                                Some(root),
                                Some(b"{}"),
                            )
                        });
                        (mark.join().unwrap(), promote.join().unwrap())
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (p, (mark, promote)) in paths.iter().zip(outcomes) {
        let mark = ok(&mark, "mark");
        let current = ok(
            &server.http("GET", &format!("/api/v1/metadata/{p}"), Some(&root), None),
            "metadata",
        )["labels"]["current"]
            .as_u64()
            .unwrap();
        if mark["is_current"] == true {
            assert_eq!(promote.status, 200, "{p}: {}", promote.text());
            assert_eq!(current, 2, "{p}");
        } else {
            assert_compromised(&promote, 2);
            assert_eq!(current, 1, "{p}");
        }
    }
}

/// Promoting an environment copies each secret's current value to the other
/// environment as a new version there, which would carry no mark: a
/// compromised current value is refused, in the preview already, and
/// nothing is written.
#[test]
fn an_environment_promotion_does_not_carry_a_compromised_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    put(
        &server,
        &root,
        "shop/staging/API_KEY",
        "staging-key-aaaaaaaaaaaaaaaaaaaaaaaa",
    );
    put(
        &server,
        &root,
        "shop/staging/OTHER",
        "staging-other-bbbbbbbbbbbbbbbbbbbbbb",
    );
    ok(
        &compromise(
            &server,
            &root,
            "shop/staging/API_KEY",
            json!({"reason": "pasted in a ticket"}),
        ),
        "mark",
    );
    let preview = json!({"from": "shop/staging", "to": "shop/prod"}).to_string();
    let r = server.http(
        "POST",
        "/api/v1/promote-env",
        Some(&root),
        Some(preview.as_bytes()),
    );
    assert_compromised(&r, 1);
    for name in ["API_KEY", "OTHER"] {
        let r = server.http(
            "GET",
            &format!("/api/v1/secrets/shop/prod/{name}"),
            Some(&root),
            None,
        );
        assert_eq!(r.status, 404, "nothing was written: {}", r.text());
    }
    // Rotated, the new current value promotes.
    put(
        &server,
        &root,
        "shop/staging/API_KEY",
        "staging-key-cccccccccccccccccccccccc",
    );
    let r = server.http(
        "POST",
        "/api/v1/promote-env",
        Some(&root),
        Some(preview.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
