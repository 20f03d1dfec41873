//! `GET /api/v1/sys/metrics`: who may scrape it, that counters move with
//! the requests made (the status actually sent included), and that no label
//! or value names a secret path, a user, a token or an address. The text
//! format itself is parsed by Prometheus' own Python parser in coffer-cli's
//! end-to-end `metrics` tests.

use crate::common;

use common::{Mode, Server, ok};
use serde_json::json;

fn token_with_policy(server: &Server, root: &str, name: &str, hcl: &str) -> (String, String) {
    let body = json!({ "policy": hcl }).to_string();
    ok(
        &server.http(
            "PUT",
            &format!("/api/v1/sys/policies/{name}"),
            Some(root),
            Some(body.as_bytes()),
        ),
        "policy",
    );
    let body = json!({ "policies": [name], "display_name": "scraper-bot" }).to_string();
    let created = ok(
        &server.http(
            "POST",
            "/api/v1/auth/tokens",
            Some(root),
            Some(body.as_bytes()),
        ),
        "token",
    );
    (
        created["token"].as_str().unwrap().to_string(),
        created["accessor"].as_str().unwrap().to_string(),
    )
}

/// The value of the sample `name{labels}` (labels as written, in order),
/// or 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[test]
fn scraping_needs_read_on_sys_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let (none, _) = token_with_policy(
        &server,
        &root,
        "nothing",
        r#"path "app/*" { capabilities = ["read"] }"#,
    );
    let (reader, _) = token_with_policy(
        &server,
        &root,
        "scrape",
        r#"path "sys/metrics" { capabilities = ["read"] }"#,
    );
    let (denied, _) = token_with_policy(
        &server,
        &root,
        "scrape-denied",
        r#"path "sys/*" { capabilities = ["read"] }
           path "sys/metrics" { capabilities = ["deny"] }"#,
    );
    assert_eq!(
        server.http("GET", "/api/v1/sys/metrics", None, None).status,
        401
    );
    assert_eq!(
        server
            .http("GET", "/api/v1/sys/metrics", Some(&none), None)
            .status,
        403
    );
    assert_eq!(
        server
            .http("GET", "/api/v1/sys/metrics", Some(&denied), None)
            .status,
        403
    );
    let r = server.http("GET", "/api/v1/sys/metrics", Some(&reader), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    // Every scrape is audited like any request, allowed or not.
    let scrapes: Vec<_> = server
        .audit_records()
        .into_iter()
        .filter(|r| r["op"] == "sys.metrics")
        .collect();
    assert_eq!(scrapes.len(), 4, "{scrapes:?}");
}

#[test]
fn counters_move_with_requests_and_labels_name_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let secret_path = "payments/prod/STRIPE_SECRET_KEY_CANARY";
    let (reader, accessor) = token_with_policy(
        &server,
        &root,
        "scrape",
        r#"path "sys/metrics" { capabilities = ["read"] }"#,
    );
    let scrape = || {
        let r = server.http("GET", "/api/v1/sys/metrics", Some(&reader), None);
        assert_eq!(r.status, 200);
        r.text()
    };
    let before = scrape();
    let read = r#"coffer_http_requests_total{operation="secret.read",status="200"}"#;
    let missing = r#"coffer_http_requests_total{operation="secret.read",status="404"}"#;
    let forbidden = r#"coffer_http_requests_total{operation="secret.read",status="403"}"#;
    let unmatched = r#"coffer_http_requests_total{operation="unmatched",status="404"}"#;
    let health = r#"coffer_http_requests_total{operation="sys.health",status="200"}"#;

    let body = json!({ "value": "v" }).to_string();
    ok(
        &server.http(
            "PUT",
            &format!("/api/v1/secrets/{secret_path}"),
            Some(&root),
            Some(body.as_bytes()),
        ),
        "write",
    );
    for _ in 0..3 {
        ok(
            &server.http(
                "GET",
                &format!("/api/v1/secrets/{secret_path}"),
                Some(&root),
                None,
            ),
            "read",
        );
    }
    assert_eq!(
        server
            .http(
                "GET",
                "/api/v1/secrets/payments/prod/NOPE",
                Some(&root),
                None
            )
            .status,
        404
    );
    assert_eq!(
        server
            .http(
                "GET",
                &format!("/api/v1/secrets/{secret_path}"),
                Some(&reader),
                None
            )
            .status,
        403
    );
    assert_eq!(
        server
            .http("GET", "/api/v1/no/such/route", Some(&root), None)
            .status,
        404
    );
    assert_eq!(
        server.http("GET", "/api/v1/sys/health", None, None).status,
        200
    );

    let after = scrape();
    assert_eq!(sample(&after, read) - sample(&before, read), 3.0, "{after}");
    assert_eq!(sample(&after, missing) - sample(&before, missing), 1.0);
    assert_eq!(sample(&after, forbidden) - sample(&before, forbidden), 1.0);
    assert_eq!(sample(&after, unmatched) - sample(&before, unmatched), 1.0);
    assert_eq!(sample(&after, health) - sample(&before, health), 1.0);
    let count = r#"coffer_http_request_duration_seconds_count{operation="secret.read"}"#;
    assert_eq!(sample(&after, count) - sample(&before, count), 5.0);

    assert_eq!(sample(&after, "coffer_sealed"), 0.0);
    assert_eq!(sample(&after, "coffer_initialized"), 1.0);
    assert_eq!(sample(&after, "coffer_audit_available"), 1.0);
    assert!(sample(&after, "coffer_audit_log_size_bytes") > 0.0);
    assert!(sample(&after, "coffer_audit_log_records") > 0.0);
    assert!(sample(&after, "process_resident_memory_bytes") > 0.0);
    assert!(sample(&after, "process_open_fds") > 0.0);

    // Nothing that names a secret, a person, a token or an address.
    for hidden in [
        "payments",
        "STRIPE_SECRET_KEY_CANARY",
        "NOPE",
        "no/such/route",
        "scraper-bot",
        "root",
        accessor.as_str(),
        reader.as_str(),
        "127.0.0.1",
    ] {
        assert!(!after.contains(hidden), "{hidden} in the metrics:\n{after}");
    }
}
