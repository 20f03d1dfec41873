//! App roles through the router in-process: the login's contract (one
//! answer for every refusal, the reason in the audit record), secret-id
//! uses, expiry, networks, revocation, role deletion, concurrent logins
//! with a one-use secret id, hostile input, and the identity the audit log
//! records for an app-role token. (The CLI, and PostgreSQL, are tested
//! against the binary in coffer-cli's `tests/end_to_end/approle.rs`.)

use crate::common;

use axum::body::Body;
use axum::http::Request;
use coffer_server::Peer;
use common::{Mode, Server, ok};
use serde_json::{Value, json};

const READER: &str = r#"path "app/*" { capabilities = ["read", "list"] }"#;

fn setup() -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let body = json!({ "policy": READER }).to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/reader",
            Some(&root),
            Some(body.as_bytes()),
        ),
        "policy",
    );
    let body = json!({ "value": "s3cr3t-value" }).to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/secrets/app/dev/KEY",
            Some(&root),
            Some(body.as_bytes()),
        ),
        "secret",
    );
    (dir, server, root)
}

/// Creates role `name` with `extra` fields and returns its role id.
fn create_role(server: &Server, root: &str, name: &str, extra: Value) -> String {
    let mut body = json!({ "policies": ["reader"] });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = server.http(
        "PUT",
        &format!("/api/v1/auth/approle/roles/{name}"),
        Some(root),
        Some(body.to_string().as_bytes()),
    );
    ok(&r, "create role")["role_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Creates a secret id for `name`: (secret id, accessor).
fn secret_id(server: &Server, root: &str, name: &str) -> (String, String) {
    let r = server.http(
        "POST",
        &format!("/api/v1/auth/approle/roles/{name}/secret-ids"),
        Some(root),
        None,
    );
    let j = ok(&r, "secret id");
    (
        j["secret_id"].as_str().unwrap().to_string(),
        j["accessor"].as_str().unwrap().to_string(),
    )
}

fn login(server: &Server, role_id: &str, secret_id: &str) -> common::Response {
    let body = json!({ "role_id": role_id, "secret_id": secret_id }).to_string();
    server.http(
        "POST",
        "/api/v1/auth/approle/login",
        None,
        Some(body.as_bytes()),
    )
}

fn login_from(server: &Server, peer: &str, role_id: &str, secret_id: &str) -> common::Response {
    let body = json!({ "role_id": role_id, "secret_id": secret_id }).to_string();
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/approle/login")
        .header("host", server.host_port())
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let mut p = Peer::new(peer.parse().unwrap());
    p.local = Some(server.host_port().parse().unwrap());
    req.extensions_mut().insert(p);
    server.send(req)
}

/// The one answer every refused login gets.
fn assert_refused(r: &common::Response) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.error_code(), "unauthenticated");
    assert_eq!(
        r.json()["error"]["message"],
        "app-role login failed: wrong role id or secret id, or the secret id expired, was used \
         up or is not valid from this network"
    );
}

fn login_records(server: &Server) -> Vec<Value> {
    server
        .audit_records()
        .into_iter()
        .filter(|r| r["op"] == "approle.login")
        .collect()
}

fn last_reason(server: &Server) -> String {
    login_records(server).last().unwrap()["reason"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_login_returns_a_token_with_exactly_the_roles_policies_ttl_and_networks() {
    let (_dir, server, root) = setup();
    let role_id = create_role(
        &server,
        &root,
        "web",
        json!({ "token_ttl": "10m", "token_uses": 5, "cidrs": ["127.0.0.0/8"] }),
    );
    assert!(
        role_id.starts_with("rid_") && role_id.len() == 28,
        "{role_id}"
    );
    let (sid, accessor) = secret_id(&server, &root, "web");
    assert!(sid.starts_with("cfs_") && sid.len() == 53, "{sid}");
    assert!(accessor.starts_with("sia_"), "{accessor}");
    let j = ok(&login(&server, &role_id, &sid), "login");
    assert_eq!(j["policies"], json!(["reader"]));
    assert_eq!(j["ttl"], "10m");
    assert_eq!(j["uses_limit"], 5);
    assert_eq!(j["cidrs"], json!(["127.0.0.0/8"]));
    assert_eq!(j["kind"], "service");
    assert_eq!(j["user"], "approle:web");
    // On the workload model, like a JWT login: method, role, and the
    // secret id's accessor (never the secret id).
    assert_eq!(
        j["workload"],
        json!({"method": "approle", "role": "web", "subject": accessor})
    );
    assert_eq!(j["expires_at"], j["max_expires_at"]);
    let token = j["token"].as_str().unwrap();
    let read = server.http("GET", "/api/v1/secrets/app/dev/KEY", Some(token), None);
    assert_eq!(ok(&read, "read")["value"], "s3cr3t-value");
    // Nothing beyond the role's policies.
    let denied = server.http("GET", "/api/v1/sys/policies", Some(token), None);
    assert_eq!(denied.status, 403);

    // The audit log names the caller approle:web, with the secret id's
    // accessor; `audit query --actor` and `audit readers` find it.
    let records = server.audit_records();
    let read_record = records
        .iter()
        .rev()
        .find(|r| r["op"] == "secret.read")
        .unwrap();
    assert_eq!(read_record["actor"]["name"], "approle:web");
    assert_eq!(read_record["actor"]["via"], accessor.as_str());
    assert_eq!(
        read_record["workload"]["method"], "approle",
        "{read_record}"
    );
    assert_eq!(read_record["workload"]["role"], "web");
    assert_eq!(read_record["workload"]["subject"], accessor.as_str());
    let q = server.http(
        "GET",
        "/api/v1/sys/audit/records?actor=approle:web",
        Some(&root),
        None,
    );
    let q = ok(&q, "query");
    assert!(!q["records"].as_array().unwrap().is_empty(), "{q}");
    let readers = server.http(
        "GET",
        "/api/v1/sys/audit/readers?path=app/dev/KEY",
        Some(&root),
        None,
    );
    let readers = ok(&readers, "readers").to_string();
    assert!(readers.contains("approle:web"), "{readers}");
    // The secret id is nowhere in the audit log.
    let log = std::fs::read_to_string(server.audit_log()).unwrap();
    assert!(!log.contains(&sid) && !log.contains(&sid[4..20]));
}

#[test]
fn a_one_use_secret_id_logs_in_once_and_every_refusal_answers_alike() {
    let (_dir, server, root) = setup();
    let role_id = create_role(&server, &root, "web", json!({}));
    let other_id = create_role(&server, &root, "other", json!({}));
    let (sid, accessor) = secret_id(&server, &root, "web");
    ok(&login(&server, &role_id, &sid), "first login");
    assert_refused(&login(&server, &role_id, &sid));
    assert_eq!(
        last_reason(&server),
        format!("secret_id_used_up role=web secret_id={accessor}"),
        "a replay of a spent one-use secret id"
    );
    let (sid2, acc2) = secret_id(&server, &root, "web");
    // Another role's role id with this secret id.
    assert_refused(&login(&server, &other_id, &sid2));
    assert_eq!(
        last_reason(&server),
        format!("secret_id_of_another_role role=other secret_id={acc2}")
    );
    // An unknown role id, a malformed one, a token in place of a secret id.
    let unknown_role = format!("rid_{}", "A".repeat(24));
    assert_refused(&login(&server, &unknown_role, &sid2));
    assert_eq!(last_reason(&server), "unknown_role_id");
    assert_refused(&login(&server, "web", &sid2));
    assert_refused(&login(&server, &role_id, &root));
    assert_eq!(last_reason(&server), "unknown_secret_id role=web");
    // sid2 was not spent by the refusals.
    ok(&login(&server, &role_id, &sid2), "second secret id");
    let listed = server.http(
        "GET",
        "/api/v1/auth/approle/roles/web/secret-ids",
        Some(&root),
        None,
    );
    let listed = ok(&listed, "list").to_string();
    assert!(
        !listed.contains(&accessor) && !listed.contains("cfs_"),
        "{listed}"
    );
    // Refused logins are denials in the log, with no secret id in them.
    let log = std::fs::read_to_string(server.audit_log()).unwrap();
    for s in [&sid, &sid2, &root] {
        assert!(!log.contains(s.as_str()));
    }
    assert!(
        login_records(&server)
            .iter()
            .filter(|r| r["status"] == 401)
            .all(|r| r["outcome"] == "denied")
    );
}

#[test]
fn multi_use_secret_ids_count_down_and_are_listed_by_accessor() {
    let (_dir, server, root) = setup();
    let role_id = create_role(&server, &root, "batch", json!({ "secret_id_uses": 3 }));
    let (sid, accessor) = secret_id(&server, &root, "batch");
    for left in [2, 1] {
        ok(&login(&server, &role_id, &sid), "login");
        let l = server.http(
            "GET",
            "/api/v1/auth/approle/roles/batch/secret-ids",
            Some(&root),
            None,
        );
        let l = ok(&l, "list");
        assert_eq!(l["secret_ids"][0]["accessor"], accessor.as_str());
        assert_eq!(l["secret_ids"][0]["uses_left"], left);
    }
    ok(&login(&server, &role_id, &sid), "last use");
    assert_refused(&login(&server, &role_id, &sid));
}

#[test]
fn an_expired_secret_id_is_refused_by_the_servers_clock() {
    let (_dir, server, root) = setup();
    let role_id = create_role(&server, &root, "short", json!({ "secret_id_ttl": "1s" }));
    let (sid, accessor) = secret_id(&server, &root, "short");
    // Past the expiry the server set (no timing is asserted: only that
    // after it, the server refuses).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_refused(&login(&server, &role_id, &sid));
    assert_eq!(
        last_reason(&server),
        format!("secret_id_expired role=short secret_id={accessor}")
    );
}

#[test]
fn logins_from_outside_the_roles_networks_are_refused_and_the_token_is_bound() {
    let (_dir, server, root) = setup();
    let role_id = create_role(
        &server,
        &root,
        "net",
        json!({ "cidrs": ["10.1.0.0/16"], "secret_id_uses": 2 }),
    );
    let (sid, accessor) = secret_id(&server, &root, "net");
    assert_refused(&login(&server, &role_id, &sid));
    assert_eq!(
        last_reason(&server),
        format!("network_not_allowed role=net secret_id={accessor}")
    );
    let r = login_from(&server, "10.1.2.3:4000", &role_id, &sid);
    let token = ok(&r, "login from inside")["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The token is refused from this machine's address (outside 10.1/16).
    let read = server.http("GET", "/api/v1/secrets/app/dev/KEY", Some(&token), None);
    assert_eq!(read.status, 401, "{}", read.text());
}

#[test]
fn revoking_a_secret_id_revokes_its_tokens_and_deleting_a_role_revokes_all() {
    let (_dir, server, root) = setup();
    let role_id = create_role(&server, &root, "web", json!({ "secret_id_uses": 5 }));
    let (sid1, acc1) = secret_id(&server, &root, "web");
    let (sid2, _) = secret_id(&server, &root, "web");
    let t1 = ok(&login(&server, &role_id, &sid1), "1")["token"]
        .as_str()
        .unwrap()
        .to_string();
    let t2 = ok(&login(&server, &role_id, &sid2), "2")["token"]
        .as_str()
        .unwrap()
        .to_string();
    let read = |t: &str| {
        server
            .http("GET", "/api/v1/secrets/app/dev/KEY", Some(t), None)
            .status
    };
    assert_eq!((read(&t1), read(&t2)), (200, 200));
    let body = json!({ "accessor": acc1 }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/approle/roles/web/secret-ids/revoke",
        Some(&root),
        Some(body.as_bytes()),
    );
    ok(&r, "revoke");
    assert_eq!((read(&t1), read(&t2)), (401, 200));
    assert_refused(&login(&server, &role_id, &sid1));
    // Revoking it again: not found, nothing changed.
    let again = server.http(
        "POST",
        "/api/v1/auth/approle/roles/web/secret-ids/revoke",
        Some(&root),
        Some(body.as_bytes()),
    );
    assert_eq!(again.status, 404, "{}", again.text());

    let r = server.http(
        "DELETE",
        "/api/v1/auth/approle/roles/web",
        Some(&root),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(read(&t2), 401);
    assert_refused(&login(&server, &role_id, &sid2));
    assert_eq!(last_reason(&server), "unknown_role_id");
    // A role of the same name again gets a new role id; the old secret id
    // does not work for it.
    let new_id = create_role(&server, &root, "web", json!({}));
    assert_ne!(new_id, role_id);
    assert_refused(&login(&server, &new_id, &sid2));
}

#[test]
fn concurrent_logins_with_a_one_use_secret_id_get_exactly_one_token() {
    let (_dir, server, root) = setup();
    let role_id = create_role(&server, &root, "race", json!({}));
    for round in 0..3 {
        let (sid, _) = secret_id(&server, &root, "race");
        let statuses: Vec<u16> = std::thread::scope(|s| {
            // Each from an address of its own, so the per-address backoff
            // of failed logins does not decide the outcome.
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (server, role_id, sid) = (&server, &role_id, &sid);
                    s.spawn(move || {
                        login_from(server, &format!("10.9.{round}.{i}:5000"), role_id, sid).status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wins = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!(wins, 1, "round {round}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 401),
            "{statuses:?}"
        );
    }
}

#[test]
fn managing_app_roles_needs_admin_on_sys_auth_approle() {
    let (_dir, server, root) = setup();
    create_role(&server, &root, "web", json!({}));
    let body = json!({ "policy": r#"path "sys/auth/approle/web" { capabilities = ["admin"] }
path "app/*" { capabilities = ["read"] }"# })
    .to_string();
    ok(
        &server.http(
            "PUT",
            "/api/v1/sys/policies/web-admin",
            Some(&root),
            Some(body.as_bytes()),
        ),
        "policy",
    );
    let body = json!({ "policies": ["web-admin"] }).to_string();
    let t = ok(
        &server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(&root),
            Some(body.as_bytes()),
        ),
        "token",
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let s = |m: &str, p: &str, b: Option<&[u8]>| server.http(m, p, Some(&t), b).status;
    assert_eq!(s("GET", "/api/v1/auth/approle/roles/web", None), 200);
    assert_eq!(
        s("POST", "/api/v1/auth/approle/roles/web/secret-ids", None),
        200
    );
    assert_eq!(s("GET", "/api/v1/auth/approle/roles", None), 403);
    assert_eq!(s("GET", "/api/v1/auth/approle/roles/other", None), 403);
    // It may not hand out a policy it does not hold.
    let body = json!({ "policies": ["reader"] }).to_string();
    assert_eq!(
        s(
            "PUT",
            "/api/v1/auth/approle/roles/web2",
            Some(body.as_bytes())
        ),
        403
    );
    // No token at all.
    assert_eq!(
        server
            .http("GET", "/api/v1/auth/approle/roles/web", None, None)
            .status,
        401
    );
    // A token may not claim an app role's identity by its display name.
    let body = json!({ "policies": ["reader"], "display_name": "approle:web" }).to_string();
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(&root),
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn hostile_input_is_refused_and_changes_nothing() {
    let (_dir, server, root) = setup();
    let role_id = create_role(&server, &root, "web", json!({}));
    let (sid, _) = secret_id(&server, &root, "web");
    let put = |name: &str, body: &str| {
        server.http(
            "PUT",
            &format!("/api/v1/auth/approle/roles/{name}"),
            Some(&root),
            Some(body.as_bytes()),
        )
    };
    // Names: controls, bidi overrides, slashes, token shapes, too long.
    for name in [
        "a%0Ab",
        "a%1Bb",
        "%E2%80%AEevil",
        "a%2Fb",
        "..",
        "-lead",
        &"x".repeat(65),
        &root,
    ] {
        let r = put(name, r#"{"policies":["reader"]}"#);
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert!(!r.text().contains(&root));
    }
    // Bodies: wrong types, unknown fields, bad values, limits.
    for body in [
        r#"{"policies":"reader"}"#,
        r#"{"policies":[1]}"#,
        r#"{"policies":["reader"],"token_ttl":5}"#,
        r#"{"policies":["reader"],"secret_id_uses":-1}"#,
        r#"{"policies":["reader"],"secret_id_uses":0}"#,
        r#"{"policies":["reader"],"token_uses":0}"#,
        r#"{"policies":["reader"],"token_ttl":"25h"}"#,
        r#"{"policies":["reader"],"token_ttl":"0s"}"#,
        r#"{"policies":["reader"],"secret_id_ttl":"0s"}"#,
        r#"{"policies":["reader"],"secret_id_ttl":"2161h"}"#,
        r#"{"policies":["reader"],"cidrs":["not a network"]}"#,
        r#"{"policies":["reader"],"extra":true}"#,
        r#"{"policies":[]}"#,
        r#"{"policies":["no-such-policy"]}"#,
        "not json",
    ] {
        let r = put("fresh", body);
        assert!(
            r.status == 400 || r.status == 422,
            "{body}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(
        server
            .http("GET", "/api/v1/auth/approle/roles/fresh", Some(&root), None)
            .status,
        404
    );
    // An existing role is not replaced.
    let r = put("web", r#"{"policies":["reader"],"token_ttl":"1h"}"#);
    assert_eq!(r.status, 409, "{}", r.text());
    // Logins: non-string fields, missing fields, extra fields, a huge body.
    for body in [
        json!({ "role_id": 1, "secret_id": sid }).to_string(),
        json!({ "role_id": role_id, "secret_id": ["x"] }).to_string(),
        json!({ "role_id": role_id }).to_string(),
        json!({ "role_id": role_id, "secret_id": sid, "x": 1 }).to_string(),
        format!(
            r#"{{"role_id":"{role_id}","secret_id":"{}"}}"#,
            "A".repeat(64 << 20)
        ),
    ] {
        let r = server.http(
            "POST",
            "/api/v1/auth/approle/login",
            None,
            Some(body.as_bytes()),
        );
        assert!(
            r.status == 400 || r.status == 413,
            "{}: {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains(&sid));
    }
    // Another Host, a body that is not declared JSON: refused at the edge.
    let body = json!({ "role_id": role_id, "secret_id": sid }).to_string();
    for headers in [
        &[("host", "evil.example")][..],
        &[("content-type", "text/plain")][..],
        &[("content-type", "application/x-www-form-urlencoded")][..],
    ] {
        let r = server.request(
            "POST",
            "/api/v1/auth/approle/login",
            None,
            Some(body.as_bytes()),
            headers,
        );
        assert!(
            (400..500).contains(&r.status) && r.status != 401,
            "{headers:?}: {} {}",
            r.status,
            r.text()
        );
    }
    // None of that spent the one-use secret id.
    ok(
        &login(&server, &role_id, &sid),
        "login after the hostile ones",
    );
    // Control characters in a secret id are just a wrong secret id.
    assert_refused(&login(&server, &role_id, "cfs_\u{202e}\n\u{1b}[2J"));
    let bad = server.http(
        "POST",
        "/api/v1/auth/approle/roles/web/secret-ids/revoke",
        Some(&root),
        Some(br#"{"accessor":"sia_\u001b[2J"}"#),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(!bad.text().contains('\u{1b}'));
}

#[test]
fn the_store_holds_only_a_keyed_hash_of_a_secret_id() {
    let (dir, server, root) = setup();
    let role_id = create_role(&server, &root, "web", json!({ "secret_id_uses": 2 }));
    let (sid, _) = secret_id(&server, &root, "web");
    ok(&login(&server, &role_id, &sid), "login");
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("coffer.db")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [&sid[..], &sid[4..], &sid[20..40]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds the secret id",
                f.display()
            );
        }
    }
}
