//! The served OpenAPI document describes the routes that exist: every
//! documented operation reaches a handler (not the unknown-route fallback),
//! and routes the server answers are documented.

use crate::common;

use common::{Mode, Response, Server};

const POLICY: &str = "ops";
const PASSWORD: &str = "correct horse battery staple";

/// Creates (or rewrites) the policy `ops`, which `{name}` and new tokens use.
fn ensure_policy(server: &Server, token: &str) {
    let r = server.http(
        "PUT",
        &format!("/api/v1/sys/policies/{POLICY}"),
        Some(token),
        Some(br#"{"policy":"path \"a/*\" { capabilities = [\"read\"] }"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A new child token of `token`: (token, accessor).
fn child_token(server: &Server, token: &str) -> (String, String) {
    let r = server.http(
        "POST",
        "/api/v1/auth/tokens",
        Some(token),
        Some(br#"{"policies":["ops"],"display_name":"openapi-test"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    (
        j["token"].as_str().unwrap().to_string(),
        j["accessor"].as_str().unwrap().to_string(),
    )
}

/// An invitation code for the policy `ops`.
/// A share body with an id of its own (`n` makes it unique).
fn share_body(n: u32) -> String {
    format!(
        r#"{{"id":"{:A>21}A","ciphertext":"{}"}}"#,
        n,
        "B".repeat(40)
    )
}

/// A live share's id.
fn fresh_share(server: &Server, token: &str, n: &mut u32) -> String {
    *n += 1;
    let body = share_body(*n);
    let r = server.http("POST", "/api/v1/shares", Some(token), Some(body.as_bytes()));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn invite(server: &Server, token: &str) -> String {
    let r = server.http(
        "POST",
        "/api/v1/auth/invites",
        Some(token),
        Some(br#"{"policies":["ops"]}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["code"].as_str().unwrap().to_string()
}

/// A new user (through an invitation), so `/sys/users/{name}` finds someone.
fn new_user(server: &Server, token: &str, name: &str) {
    let body = serde_json::json!({
        "code": invite(server, token),
        "user": name,
        "password": PASSWORD,
    });
    let r = server.http(
        "POST",
        "/api/v1/auth/invites/accept",
        None,
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A new secret with two versions, at a path no other operation touches, so
/// the lifecycle operations find it in a known state whatever ran before.
fn fresh_secret(server: &Server, token: &str, n: &mut u32) -> String {
    *n += 1;
    let path = format!("life/dev/KEY{n}");
    for value in ["first value", "second value"] {
        let body = serde_json::json!({ "value": value });
        let r = server.http(
            "PUT",
            &format!("/api/v1/secrets/{path}"),
            Some(token),
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    path
}

/// Stages a rotation of `path`, so it has a pending version.
fn stage_rotation(server: &Server, token: &str, path: &str) {
    let r = server.http(
        "POST",
        &format!("/api/v1/rotate/{path}"),
        Some(token),
        Some(br#"{"generate":"hex","stage":true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["labels"]["pending"].is_u64(), "{}", r.text());
}

/// Checks that `resp` reached a handler and that its status is documented.
fn check_documented(method: &str, path: &str, op: &serde_json::Value, resp: &Response) {
    assert_ne!(
        resp.status, 405,
        "{method} {path} is documented but not routed"
    );
    if resp.status == 404 {
        assert_ne!(
            resp.json()["error"]["message"],
            "no such API route; see /api/v1/openapi.json",
            "{method} {path} is documented but not routed"
        );
    }
    let documented = op["responses"].as_object().unwrap();
    assert!(
        documented.contains_key(&resp.status.to_string()),
        "{method} {path} answered {} which is not documented: {}",
        resp.status,
        resp.text()
    );
}

#[test]
fn openapi_document_matches_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let token = server.root_token();
    let r = server.http("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 48, "{} paths documented", paths.len());

    // Put a secret where the sample path points, so handlers get past lookups.
    let put = server.http(
        "PUT",
        "/api/v1/secrets/app/dev/KEY",
        Some(&token),
        Some(br#"{"value":"w"}"#),
    );
    assert_eq!(put.status, 200);
    let root_accessor = {
        let r = server.http("GET", "/api/v1/auth/token/self", Some(&token), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["accessor"].as_str().unwrap().to_string()
    };

    let mut operations = 0;
    let mut users = 0;
    let mut secrets = 0;
    for (path, item) in paths {
        for method in ["get", "put", "patch", "post", "delete"] {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            // Skip the operations that would end the server's usefulness for
            // the other checks.
            if matches!(path.as_str(), "/api/v1/sys/seal" | "/api/v1/sys/init") {
                continue;
            }

            // Set up what the operation needs, fresh each time, so the order
            // of the operations does not matter (deletes consume their target).
            ensure_policy(&server, &token);
            let mut bearer = token.clone();
            let mut concrete = path
                .replace("{path}", "app/dev/KEY")
                .replace("{prefix}", "app");
            if path.contains("{accessor}") {
                // Never the root's accessor: revoking it would end the test.
                let (_, accessor) = child_token(&server, &token);
                assert_ne!(accessor, root_accessor);
                concrete = concrete.replace("{accessor}", &accessor);
            }
            if path.contains("{id}") {
                concrete = concrete.replace("{id}", &fresh_share(&server, &token, &mut secrets));
            }
            if path.starts_with("/api/v1/sys/users/{name}") {
                users += 1;
                let name = format!("user{users}");
                new_user(&server, &token, &name);
                concrete = concrete.replace("{name}", &name);
            } else {
                concrete = concrete.replace("{name}", POLICY);
            }
            let mut body: Option<Vec<u8>> = None;
            match (method, path.as_str()) {
                // Revoking the calling token: call it with a child, not root.
                ("delete", "/api/v1/auth/token/self") => {
                    bearer = child_token(&server, &token).0;
                }
                ("delete", "/api/v1/sys/protected") => {
                    let r = server.http(
                        "POST",
                        "/api/v1/sys/protected",
                        Some(&token),
                        Some(br#"{"pattern":"*/prod/*"}"#),
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                    concrete.push_str("?pattern=*/prod/*");
                }
                // The lifecycle operations get a secret of their own each.
                ("post", "/api/v1/rotate/{path}") => {
                    let p = fresh_secret(&server, &token, &mut secrets);
                    concrete = format!("/api/v1/rotate/{p}");
                    body = Some(br#"{"generate":"hex","grace":"1h"}"#.to_vec());
                }
                ("delete", "/api/v1/rotate/{path}") => {
                    let p = fresh_secret(&server, &token, &mut secrets);
                    stage_rotation(&server, &token, &p);
                    concrete = format!("/api/v1/rotate/{p}");
                }
                ("post", "/api/v1/promote/{path}") => {
                    let p = fresh_secret(&server, &token, &mut secrets);
                    stage_rotation(&server, &token, &p);
                    concrete = format!("/api/v1/promote/{p}");
                    body = Some(br#"{"grace":"2h"}"#.to_vec());
                }
                ("put", "/api/v1/expiry/{path}") => {
                    let p = fresh_secret(&server, &token, &mut secrets);
                    concrete = format!("/api/v1/expiry/{p}");
                    body = Some(br#"{"expires_in":"1d"}"#.to_vec());
                }
                ("post", "/api/v1/rollback/{path}") => {
                    let p = fresh_secret(&server, &token, &mut secrets);
                    concrete = format!("/api/v1/rollback/{p}");
                    body = Some(br#"{"version":1}"#.to_vec());
                }
                ("post", "/api/v1/copy") => {
                    let from = fresh_secret(&server, &token, &mut secrets);
                    let copy = serde_json::json!({
                        "from": from,
                        "to": format!("life/copies/KEY{secrets}"),
                    });
                    body = Some(copy.to_string().into_bytes());
                }
                ("post", "/api/v1/promote-env") => {
                    body = Some(br#"{"from":"app/dev","to":"app/test"}"#.to_vec());
                }
                ("post", "/api/v1/fingerprints") => {
                    body = Some(br#"{"prefix":"app/"}"#.to_vec());
                }
                ("post", "/api/v1/compromise/{path}") => {
                    let p = fresh_secret(&server, &token, &mut secrets);
                    concrete = format!("/api/v1/compromise/{p}");
                    body = Some(br#"{"reason":"pasted in a ticket"}"#.to_vec());
                }
                ("put", "/api/v1/sys/lifecycle") => {
                    body = Some(br#"{"pattern":"*/prod/*","min_bits":64}"#.to_vec());
                }
                ("delete", "/api/v1/sys/lifecycle") => {
                    let r = server.http(
                        "PUT",
                        "/api/v1/sys/lifecycle",
                        Some(&token),
                        Some(br#"{"pattern":"*/prod/*","min_bits":64}"#),
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                    concrete.push_str("?pattern=*/prod/*");
                }
                ("put", p) if p.starts_with("/api/v1/sys/policies/") => {
                    body = Some(
                        br#"{"policy":"path \"a/*\" { capabilities = [\"read\", \"list\"] }"}"#
                            .to_vec(),
                    );
                }
                ("put", _) => body = Some(br#"{"value":"w"}"#.to_vec()),
                ("post", "/api/v1/sys/unseal") => body = Some(br#"{"reset":true}"#.to_vec()),
                ("post", "/api/v1/shares") => {
                    secrets += 1;
                    body = Some(share_body(secrets).into_bytes());
                }
                ("post", "/api/v1/auth/tokens") | ("post", "/api/v1/auth/invites") => {
                    body = Some(br#"{"policies":["ops"]}"#.to_vec());
                }
                ("post", "/api/v1/auth/login") => {
                    body = Some(br#"{"user":"nobody","password":"x"}"#.to_vec());
                }
                ("post", "/api/v1/auth/invites/accept") => {
                    let accept = serde_json::json!({
                        "code": invite(&server, &token),
                        "user": "invitee",
                        "password": PASSWORD,
                    });
                    body = Some(accept.to_string().into_bytes());
                }
                ("post", "/api/v1/auth/totp/confirm") | ("post", "/api/v1/auth/totp/disable") => {
                    body = Some(br#"{"code":"123456"}"#.to_vec());
                }
                ("post", "/api/v1/sys/protected") => {
                    body = Some(br#"{"pattern":"*/prod/*"}"#.to_vec());
                }
                ("post", "/api/v1/sys/breakglass") => {
                    body = Some(br#"{"path":"app/prod/KEY","reason":"incident 42"}"#.to_vec());
                }
                ("patch", "/api/v1/sys/users/{name}") => {
                    body = Some(br#"{"policies":["ops"],"reset_totp":true}"#.to_vec());
                }
                ("post", _) => body = Some(b"{}".to_vec()),
                _ => {}
            }
            let resp = server.http(
                &method.to_uppercase(),
                &concrete,
                Some(&bearer),
                body.as_deref(),
            );
            check_documented(method, path, op, &resp);
            // Where the outcome is certain, check it too, so a route that
            // answers an error for everything does not pass unnoticed.
            let expected = match (method, path.as_str()) {
                ("post", "/api/v1/auth/login") => Some(401),
                // Root is a service token: no one-time codes, no break-glass.
                ("post", "/api/v1/sys/breakglass") => Some(400),
                ("post", "/api/v1/auth/totp") => Some(400),
                // Root does not expire, so there is nothing to renew.
                ("post", "/api/v1/auth/token/self/renew") => Some(400),
                ("post", "/api/v1/auth/invites/accept") => Some(200),
                ("post", "/api/v1/shares") => Some(201),
                ("get", "/api/v1/shares") | ("post", "/api/v1/shares/{id}/open") => Some(200),
                ("delete", "/api/v1/shares/{id}") => Some(204),
                ("delete", "/api/v1/auth/token/self") => Some(204),
                ("delete", "/api/v1/auth/tokens/{accessor}") => Some(204),
                ("post", "/api/v1/auth/tokens/{accessor}/renew") => Some(200),
                ("get", "/api/v1/auth/tokens/{accessor}") => Some(200),
                ("delete", "/api/v1/sys/policies/{name}") => Some(204),
                ("delete", "/api/v1/sys/users/{name}") => Some(204),
                ("delete", "/api/v1/sys/protected") => Some(204),
                ("delete", "/api/v1/sys/lifecycle") => Some(204),
                // Each lifecycle operation got a secret in the state it needs.
                ("post", "/api/v1/rotate/{path}")
                | ("delete", "/api/v1/rotate/{path}")
                | ("post", "/api/v1/promote/{path}")
                | ("put", "/api/v1/expiry/{path}")
                | ("post", "/api/v1/rollback/{path}")
                | ("post", "/api/v1/copy")
                | ("post", "/api/v1/promote-env")
                | ("post", "/api/v1/fingerprints")
                | ("post", "/api/v1/compromise/{path}")
                | ("get", "/api/v1/rotation/status")
                | ("get", "/api/v1/rotation/status/{prefix}")
                | (_, "/api/v1/sys/lifecycle") => Some(200),
                (_, p)
                    if p.starts_with("/api/v1/sys/policies")
                        || p.starts_with("/api/v1/sys/users")
                        || p == "/api/v1/sys/protected"
                        || p == "/api/v1/auth/tokens"
                        || p == "/api/v1/auth/invites"
                        || p == "/api/v1/sys/breakglass" =>
                {
                    Some(200)
                }
                _ => None,
            };
            if let Some(expected) = expected {
                assert_eq!(
                    resp.status,
                    expected,
                    "{method} {concrete}: {}",
                    resp.text()
                );
            }
            // A rotation answers versions and labels, never the value.
            if (method, path.as_str()) == ("post", "/api/v1/rotate/{path}") {
                let j = resp.json();
                assert_eq!(j["version"], 3, "{j}");
                assert_eq!(j["generated"], true, "{j}");
                assert_eq!(j["labels"]["current"], 3, "{j}");
                assert_eq!(j["labels"]["previous"], 2, "{j}");
                assert!(j.get("value").is_none(), "{j}");
            }
        }
    }
    assert!(operations >= 63, "{operations} operations documented");

    // A user that does not exist is a documented 404.
    let r = server.http("GET", "/api/v1/sys/users/nobody", Some(&token), None);
    assert_eq!(r.status, 404, "{}", r.text());
    let op = &doc["paths"]["/api/v1/sys/users/{name}"]["get"];
    check_documented("get", "/api/v1/sys/users/{name}", op, &r);

    // The root token survived all of the above.
    let r = server.http("GET", "/api/v1/auth/token/self", Some(&token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accessor"], root_accessor.as_str());

    // Conversely: an undocumented route is the fallback.
    let r = server.http("GET", "/api/v1/secretz/app", Some(&token), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
}

/// The document's audit record schema names every field a record can
/// carry, nested objects included: a record with every field set, as the
/// writer serializes it, has no key the schema leaves out.
#[test]
fn audit_record_schema_names_every_field_a_record_carries() {
    use coffer_audit::record::{Actor, AlertInfo, Gap, Kind, ReadRef, Record, Workload};
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../src/openapi.json")).expect("the document parses");
    let schemas = &doc["components"]["schemas"];
    let read = ReadRef {
        path: "a/b".into(),
        version: 1,
    };
    let record = Record {
        seq: Some(1),
        unkeyed: true,
        missed: Some(1),
        v: Some(2),
        time: "2026-12-07T00:00:00.000Z".into(),
        kind: Kind::Request,
        request_id: Some("r".into()),
        actor: Some(Actor {
            kind: "service".into(),
            name: "n".into(),
            accessor: "acc_x".into(),
            via: Some("sia_x".into()),
        }),
        token: Some("t".into()),
        source: Some("127.0.0.1".into()),
        method: Some("GET".into()),
        route: Some("/api/v1/x".into()),
        op: Some("secret.read".into()),
        decision: Some("read".into()),
        path: Some("a/b".into()),
        version: Some(1),
        reads: vec![read.clone()],
        writes: vec![read],
        outcome: Some(coffer_audit::record::Outcome::Ok),
        status: Some(200),
        error: Some("e".into()),
        duration_us: Some(1),
        breakglass: true,
        protected: true,
        login: Some("l".into()),
        reason: Some("r".into()),
        workload: Some(Workload {
            method: "jwt".into(),
            role: "ci".into(),
            issuer: Some("https://issuer".into()),
            subject: Some("repo:x".into()),
            claims: [("repository".to_string(), "x".to_string())].into(),
        }),
        needs_binding: Some("audience".into()),
        alert: Some(AlertInfo {
            rule: "failure_burst".into(),
            subject: "s".into(),
            count: 1,
            window_secs: 60,
        }),
        gap: Some(Gap { first: 1, last: 2 }),
        acknowledges: Some("0".repeat(64)),
        message: Some("m".into()),
        chain: Some("0".repeat(64)),
    };
    let value = serde_json::to_value(&record).expect("a record serializes");
    let mut missing = Vec::new();
    check_keys(schemas, "AuditRecord", &value, &mut missing);
    assert!(
        missing.is_empty(),
        "the document's schemas lack {missing:?}"
    );
}

/// Adds to `missing` each key of `value` (an object) that the schema
/// `name` does not list, then does the same for the nested objects its
/// properties name by `$ref` (directly or as array items).
fn check_keys(
    schemas: &serde_json::Value,
    name: &str,
    value: &serde_json::Value,
    missing: &mut Vec<String>,
) {
    let props = &schemas[name]["properties"];
    for (key, field) in value.as_object().expect("an object") {
        let Some(prop) = props.get(key) else {
            missing.push(format!("{name}.{key}"));
            continue;
        };
        let target = prop
            .get("$ref")
            .or_else(|| prop.get("items").and_then(|i| i.get("$ref")))
            .and_then(|r| r.as_str())
            .and_then(|r| r.strip_prefix("#/components/schemas/"));
        if let Some(target) = target {
            let nested: Vec<&serde_json::Value> = match field {
                serde_json::Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for n in nested {
                check_keys(schemas, target, n, missing);
            }
        }
    }
}
