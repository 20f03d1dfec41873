//! The served OpenAPI document describes the routes that exist: every
//! documented operation reaches a handler (not the unknown-route fallback),
//! and routes the server answers are documented.

mod common;

use common::{Mode, Server};

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
    assert!(paths.len() >= 15, "{} paths documented", paths.len());

    // Put a secret where the sample path points, so handlers get past lookups.
    let put = server.http(
        "PUT",
        "/api/v1/secrets/app/dev/KEY",
        Some(&token),
        Some(br#"{"value":"v"}"#),
    );
    assert_eq!(put.status, 200);

    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{path}", "app/dev/KEY")
            .replace("{prefix}", "app");
        for method in ["get", "put", "post", "delete"] {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            // Skip the operations that change server state for the other checks.
            if matches!(concrete.as_str(), "/api/v1/sys/seal" | "/api/v1/sys/init") {
                continue;
            }
            let body: Option<&[u8]> = match method {
                "put" => Some(br#"{"value":"w"}"#),
                "post" if concrete.ends_with("/unseal") => Some(br#"{"reset":true}"#),
                "post" => Some(b"{}"),
                _ => None,
            };
            let resp = server.http(&method.to_uppercase(), &concrete, Some(&token), body);
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
    }
    assert!(operations >= 17, "{operations} operations documented");

    // Conversely: an undocumented route is the fallback.
    let r = server.http("GET", "/api/v1/secretz/app", Some(&token), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
}
