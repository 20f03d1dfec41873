//! Metrics as Prometheus reads them: scraped from a running server, with a
//! token and from the loopback listener, and parsed by the Python client's
//! OpenMetrics parser (`prometheus-client` from PyPI; `.ci/run` installs
//! it). Counters move with the requests made; labels are only the bounded
//! ones; the loopback listener answers while sealed, refuses other `Host`
//! names, and cannot be configured on another address.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::common::{self, Mode, Server};

/// Parses an exposition with prometheus_client's OpenMetrics parser and
/// returns its samples as `[name, {labels}, value]`.
fn parse(text: &str) -> Vec<serde_json::Value> {
    let script = "import sys, json\n\
                  from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
                  out = []\n\
                  for family in text_string_to_metric_families(sys.stdin.read()):\n\
                  \x20   for s in family.samples:\n\
                  \x20       out.append([s.name, s.labels, s.value])\n\
                  print(json.dumps(out))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the exposition (is prometheus-client installed? .ci/run installs it): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!samples.is_empty());
    samples
}

fn value(samples: &[serde_json::Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s[0] == name
                && labels.iter().all(|(k, v)| s[1][k] == *v)
                && s[1].as_object().unwrap().len() == labels.len()
        })
        .map_or(0.0, |s| s[2].as_f64().unwrap())
}

/// The loopback listener's address, from the line the server logs.
fn metrics_addr(server: &Server) -> String {
    let mut addr = None;
    common::wait_until(
        std::time::Duration::from_secs(10),
        "the metrics listener",
        || {
            addr = server
                .logs()
                .lines()
                .filter(|l| l.contains("metrics listening"))
                .find_map(|l| l.split("addr=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string);
            addr.is_some()
        },
    );
    addr.unwrap()
}

/// A raw GET with exactly this `Host`.
fn get_with_host(addr: &str, path: &str, host: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

const ALLOWED_LABELS: [&str; 6] = ["operation", "status", "result", "le", "backend", "kind"];

#[test]
fn prometheus_parses_what_the_server_exposes_and_counters_move() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config("metrics_listen = \"127.0.0.1:0\""));
    let loopback = metrics_addr(&server);

    // Not initialised yet: only the tokenless listener can say so.
    let (status, text) = get_with_host(&loopback, "/metrics", "127.0.0.1");
    assert_eq!(status, 200, "{text}");
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let samples = parse(body);
    assert_eq!(value(&samples, "coffer_initialized", &[]), 0.0);
    assert_eq!(value(&samples, "coffer_sealed", &[]), 1.0);

    let init = common::Cli::new(&server.addr, dir.path())
        .run(&[
            "operator",
            "init",
            "--shares",
            "1",
            "--threshold",
            "1",
            "--json",
        ])
        .expect(0)
        .json();
    let key = init["unseal_keys"][0].as_str().unwrap().to_string();
    let root = init["root_token"].as_str().unwrap().to_string();
    common::Cli::new(&server.addr, dir.path())
        .stdin(format!("{key}\n"))
        .run(&["operator", "unseal"])
        .expect(0);

    let scrape = || {
        let r = server.http("GET", "/api/v1/sys/metrics", Some(&root), None);
        assert_eq!(r.status, 200, "{}", r.text());
        parse(&r.text())
    };
    let before = scrape();
    for _ in 0..4 {
        assert_eq!(
            server.http("GET", "/api/v1/sys/health", None, None).status,
            200
        );
    }
    assert_eq!(
        server
            .http("GET", "/api/v1/secrets/app/dev/missing", Some(&root), None)
            .status,
        404
    );
    let after = scrape();
    let health = [("operation", "sys.health"), ("status", "200")];
    assert_eq!(
        value(&after, "coffer_http_requests_total", &health)
            - value(&before, "coffer_http_requests_total", &health),
        4.0
    );
    let missing = [("operation", "secret.read"), ("status", "404")];
    assert_eq!(value(&after, "coffer_http_requests_total", &missing), 1.0);
    // The store's latency moved with those requests (the secret's
    // metadata was looked up in SQLite), and the live tokens are the root
    // token alone.
    let get_meta = [("operation", "get_meta"), ("backend", "sqlite")];
    assert!(
        value(
            &after,
            "coffer_store_operation_duration_seconds_count",
            &get_meta
        ) > value(
            &before,
            "coffer_store_operation_duration_seconds_count",
            &get_meta
        ),
    );
    let token_reads = [("operation", "list_tokens"), ("backend", "sqlite")];
    assert!(
        value(
            &after,
            "coffer_store_operation_duration_seconds_count",
            &token_reads
        ) >= 1.0
    );
    // Live tokens are recounted at most every 15 seconds (the scrape before
    // `operator init` counted none): the root token shows within that.
    let mut live = value(&after, "coffer_tokens_live", &[("kind", "service")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while live != 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
        live = value(&scrape(), "coffer_tokens_live", &[("kind", "service")]);
    }
    assert_eq!(live, 1.0);
    assert_eq!(
        value(&after, "coffer_tokens_live", &[("kind", "user")]),
        0.0
    );
    for s in after.iter().filter(|s| {
        s[0].as_str()
            .is_some_and(|n| n.starts_with("coffer_store_") || n.starts_with("coffer_tokens_"))
    }) {
        let labels = s[1].as_object().unwrap();
        if let Some(backend) = labels.get("backend") {
            assert_eq!(backend, "sqlite", "{s}");
        }
        if let Some(kind) = labels.get("kind") {
            assert!(
                ["service", "user", "workload"].contains(&kind.as_str().unwrap()),
                "{s}"
            );
        }
    }
    assert_eq!(value(&after, "coffer_sealed", &[]), 0.0);
    assert_eq!(value(&after, "coffer_initialized", &[]), 1.0);
    assert!(value(&after, "process_cpu_seconds_total", &[]) > 0.0);
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 0.0);
    let (sum, count) = (
        value(
            &after,
            "coffer_http_request_duration_seconds_sum",
            &[("operation", "sys.health")],
        ),
        value(
            &after,
            "coffer_http_request_duration_seconds_count",
            &[("operation", "sys.health")],
        ),
    );
    assert!(count >= 4.0 && sum > 0.0, "{sum} {count}");
    for s in &after {
        for label in s[1].as_object().unwrap().keys() {
            assert!(ALLOWED_LABELS.contains(&label.as_str()), "{s}");
        }
    }

    // The loopback listener answers only to loopback names.
    for host in ["localhost", &loopback] {
        assert_eq!(get_with_host(&loopback, "/metrics", host).0, 200, "{host}");
    }
    for host in [
        "evil.example",
        "coffer.example.com:8270",
        "127.0.0.1.nip.io",
    ] {
        assert_eq!(get_with_host(&loopback, "/metrics", host).0, 421, "{host}");
    }
    assert_eq!(
        get_with_host(&loopback, "/api/v1/sys/status", "localhost").0,
        404
    );
    server.stop();
}

#[test]
fn the_tokenless_listener_cannot_leave_loopback() {
    let dir = tempfile::tempdir().unwrap();
    for addr in ["0.0.0.0:9270", "10.1.2.3:9270", "[::]:9270"] {
        let err = match Server::try_start(
            dir.path(),
            Mode::Config(&format!("metrics_listen = \"{addr}\"")),
        ) {
            Ok(server) => {
                server.stop();
                panic!("started with metrics_listen = {addr}");
            }
            Err(e) => e,
        };
        assert!(
            err.contains("metrics_listen must be a loopback address"),
            "{err}"
        );
    }
}
