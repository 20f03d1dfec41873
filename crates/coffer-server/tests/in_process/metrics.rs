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

/// Every series of `family` (a metric name followed by `{`), as its label
/// text.
fn label_sets<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(family)?.strip_prefix('{'))
        .filter_map(|rest| rest.split_once('}').map(|(labels, _)| labels))
        .collect()
}

/// The values of label `name` in `labels` (`a="x",b="y"`).
fn label<'a>(labels: &'a str, name: &str) -> &'a str {
    labels
        .split(',')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix("=\""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no {name} in {labels}"))
}

#[test]
fn store_latency_and_live_tokens_move_with_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let (scraper, _) = token_with_policy(
        &server,
        &root,
        "scrape",
        r#"path "sys/metrics" { capabilities = ["read"] }"#,
    );
    let scrape = || {
        let r = server.http("GET", "/api/v1/sys/metrics", Some(&scraper), None);
        assert_eq!(r.status, 200);
        r.text()
    };
    let before = scrape();
    let commits =
        r#"coffer_store_operation_duration_seconds_count{operation="commit",backend="sqlite"}"#;
    let service = r#"coffer_tokens_live{kind="service"}"#;
    // The root token and the scraper's are live service tokens; every kind
    // is reported, at zero too.
    assert_eq!(sample(&before, service), 2.0, "{before}");
    assert_eq!(sample(&before, r#"coffer_tokens_live{kind="user"}"#), 0.0);
    assert!(before.contains(r#"coffer_tokens_live{kind="workload"} 0"#));

    let secret_path = "payments/prod/STORE_CANARY_KEY";
    let body = json!({ "value": "v" }).to_string();
    for _ in 0..2 {
        ok(
            &server.http(
                "PUT",
                &format!("/api/v1/secrets/{secret_path}"),
                Some(&root),
                Some(body.as_bytes()),
            ),
            "write",
        );
    }
    let (_a, _) = token_with_policy(
        &server,
        &root,
        "a",
        r#"path "a/*" { capabilities = ["read"] }"#,
    );
    let (_b, b_accessor) = token_with_policy(
        &server,
        &root,
        "b",
        r#"path "b/*" { capabilities = ["read"] }"#,
    );
    let revoked = server.http(
        "DELETE",
        &format!("/api/v1/auth/tokens/{b_accessor}"),
        Some(&root),
        None,
    );
    assert!(revoked.status < 300, "{}", revoked.text());
    let list_tokens = r#"coffer_store_operation_duration_seconds_count{operation="list_tokens",backend="sqlite"}"#;
    // Token commits do not force a recount: scrapes within the interval
    // reuse the count and read no token records.
    let mut last = String::new();
    for _ in 0..5 {
        last = scrape();
        assert_eq!(sample(&last, service), 2.0, "{last}");
        assert_eq!(
            sample(&last, list_tokens),
            sample(&before, list_tokens),
            "{last}"
        );
    }
    assert!(
        sample(&last, commits) - sample(&before, commits) >= 5.0,
        "two writes, two policies, two tokens and a revocation are commits:\n{last}"
    );
    // After the interval (15 s), one scrape recounts.
    std::thread::sleep(std::time::Duration::from_millis(15_500));
    let after = scrape();
    assert_eq!(
        sample(&after, service),
        3.0,
        "two tokens created, one revoked: three live, once the interval is over"
    );
    // The scrape itself counts the tokens through the metered store.
    assert_eq!(
        sample(&after, list_tokens),
        sample(&before, list_tokens) + 1.0,
        "{after}"
    );

    // Every store series carries a fixed operation word and the backend;
    // every token series a fixed kind.
    let ops = [
        "get_system",
        "get_meta",
        "get_metas",
        "get_version",
        "history",
        "versions_sealed_elsewhere",
        "list",
        "get_token",
        "list_tokens",
        "get_object",
        "list_objects",
        "commit",
        "sync",
        "lead",
        "housekeeping",
        "is_empty",
        "export",
        "import",
    ];
    for family in [
        "coffer_store_operation_duration_seconds_bucket",
        "coffer_store_operation_duration_seconds_count",
        "coffer_store_operation_errors_total",
    ] {
        let sets = label_sets(&after, family);
        assert!(!sets.is_empty(), "{family}");
        for labels in sets {
            assert!(ops.contains(&label(labels, "operation")), "{labels}");
            assert_eq!(label(labels, "backend"), "sqlite", "{labels}");
        }
    }
    let kinds = label_sets(&after, "coffer_tokens_live");
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for labels in kinds {
        assert!(
            ["service", "user", "workload"].contains(&label(labels, "kind")),
            "{labels}"
        );
    }
    for hidden in [
        "payments",
        "STORE_CANARY_KEY",
        "scraper-bot",
        b_accessor.as_str(),
    ] {
        assert!(!after.contains(hidden), "{hidden} in the metrics");
    }
}

/// Hostile request paths (unknown routes, control characters, bidi
/// overrides, quotes and braces that would break the exposition, long
/// random names) never become label values: the number of series stays
/// what it was after the first such request.
#[test]
fn hostile_paths_and_methods_add_no_series() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let root = server.root_token();
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    let scrape = || {
        let r = server.http("GET", "/api/v1/sys/metrics", Some(&root), None);
        assert_eq!(r.status, 200);
        r.text()
    };
    let hostile = |i: usize| {
        [
            format!("/api/v1/no-such-{i}"),
            format!("/api/v1/secrets/%0a%0dx{i}\"}}%20evil"),
            format!("/api/v1/secrets/%E2%80%AEx{i}/%00"),
            format!("/api/v1/sys/{}{i}", "A".repeat(500)),
            format!("/v1/secret/data/x{i}%22%7D%20coffer_sealed%201"),
            format!("/ui/%7B{i}%7D"),
        ]
    };
    let send = |i: usize| {
        for url in hostile(i) {
            let _ = server.http("GET", &url, Some(&root), None);
            let _ = server.http("DELETE", &url, None, None);
        }
    };
    // The first round and a scrape add every series these requests can.
    send(0);
    let _ = scrape();
    let first = scrape();
    for i in 1..40 {
        send(i);
    }
    let again = scrape();
    assert_eq!(series(&first), series(&again), "{again}");
    for leaked in ["no-such-", "evil", "AAAA", "\u{202e}", "x39"] {
        assert!(!again.contains(leaked), "{leaked} in the metrics");
    }
    // The exposition is still well formed: no line broken by a value.
    for line in again.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}
