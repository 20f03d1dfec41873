//! End-to-end checks against tiny hyper servers on 127.0.0.1:0, started in-process.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use coffer_loadgen::{Config, PacerMode, parse_header, run};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How the test server answers.
#[derive(Clone, Copy)]
enum Answer {
    /// `200 ok` at once, but `401` without the `x-token: t` header.
    Ok,
    /// `200 ok` after this long (tokio's timer: about a millisecond more).
    Delay(Duration),
    /// `503` at once.
    Unavailable,
}

/// Start a server on its own thread and runtime; it lives until the test process ends.
fn server(answer: Answer) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                stream.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| async move {
                        let status = match answer {
                            Answer::Ok
                                if req.headers().get("x-token").is_some_and(|v| v == "t") =>
                            {
                                StatusCode::OK
                            }
                            Answer::Ok => StatusCode::UNAUTHORIZED,
                            Answer::Delay(d) => {
                                tokio::time::sleep(d).await;
                                StatusCode::OK
                            }
                            Answer::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                        };
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                        *resp.status_mut() = status;
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// Held by the tests whose bounds are about time (the rate kept, the
/// elapsed time), so they do not share the machine with each other.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn timing() -> std::sync::MutexGuard<'static, ()> {
    // A failed test poisons the lock; the others still run one at a time.
    TIMING.lock().unwrap_or_else(|p| p.into_inner())
}

fn config(addr: SocketAddr, rate: f64, duration_ms: u64, connections: usize) -> Config {
    let mut cfg = Config::new(
        format!("http://{addr}/v1/x"),
        rate,
        Duration::from_millis(duration_ms),
        connections,
    );
    cfg.headers.push(parse_header("x-token: t").unwrap());
    cfg
}

#[test]
fn achieves_the_requested_rate_with_sane_percentiles() {
    achieves_the_requested_rate(PacerMode::Timerfd);
}

#[test]
fn the_pacer_thread_of_the_first_design_still_keeps_the_schedule() {
    achieves_the_requested_rate(PacerMode::Thread);
}

fn achieves_the_requested_rate(pacer: PacerMode) {
    let _alone = timing();
    let addr = server(Answer::Ok);
    let mut cfg = config(addr, 2000.0, 1000, 4);
    cfg.warmup = Duration::from_millis(200);
    cfg.pacer_mode = pacer;
    let r = run(&cfg).unwrap();

    assert_eq!(
        (r.scheduled, r.requests, r.ok),
        (2000, 2000, 2000),
        "{r:#?}"
    );
    assert_eq!((r.warmup.scheduled, r.warmup.counts.ok()), (400, 400));
    assert!(!r.has_errors() && !r.stopped_early, "{r:#?}");
    // Open loop: the last request is due 0.9995 s after the first, so the rate can
    // only fall short by what the last response takes.
    assert!(
        (r.achieved_rate - 2000.0).abs() < 2000.0 * 0.05,
        "achieved {}",
        r.achieved_rate
    );
    assert!(
        (0.99..1.1).contains(&r.elapsed_s),
        "elapsed {}",
        r.elapsed_s
    );
    let l = &r.latency_ms;
    assert!(
        0.0 < l.min && l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99,
        "{l:?}"
    );
    assert!(
        l.p99 <= l.p99_9 && l.p99_9 <= l.max && l.min <= l.mean && l.mean <= l.max,
        "{l:?}"
    );
    // A local no-op server: generous bounds, so a busy test machine does not fail it.
    assert!(l.p50 < 20.0, "p50 {} ms", l.p50);
    assert!(
        r.send_lag_ms.p50 <= l.p50,
        "send lag counts from the same due time"
    );
    assert_eq!(r.per_second.len(), 1);
    assert_eq!(r.per_second[0].requests, 2000);
}

#[test]
fn queueing_behind_a_slow_server_counts_from_the_due_time() {
    // One connection, 10 ms per response (~11 ms with tokio's timer), 200 requests/s:
    // the server manages under 100/s, so request i waits behind all earlier ones and
    // finishes at about (i + 1) * 11 ms, while it was due at i * 5 ms. A closed-loop
    // tool would report ~11 ms for every request; from the due time, the median is
    // ~300 ms and the last is ~600 ms late.
    let addr = server(Answer::Delay(Duration::from_millis(10)));
    let mut cfg = config(addr, 200.0, 500, 1);
    cfg.timeout = Duration::from_secs(5);
    let r = run(&cfg).unwrap();

    assert_eq!((r.requests, r.ok), (100, 100), "{r:#?}");
    assert!(
        r.latency_ms.min >= 10.0 && r.latency_ms.min < 40.0,
        "{:?}",
        r.latency_ms
    );
    assert!(r.latency_ms.p50 > 200.0, "{:?}", r.latency_ms);
    assert!(r.latency_ms.max > 450.0, "{:?}", r.latency_ms);
    // The wait for the one busy connection shows as send lag too.
    assert!(r.send_lag_ms.max > 400.0, "{:?}", r.send_lag_ms);
    assert!(
        r.achieved_rate < 0.6 * 200.0,
        "achieved {}",
        r.achieved_rate
    );
}

#[test]
fn stops_at_the_first_non_2xx_unless_allowed() {
    let addr = server(Answer::Unavailable);
    let r = run(&config(addr, 1000.0, 500, 2)).unwrap();
    assert!(r.stopped_early && r.has_errors(), "{r:#?}");
    assert!(r.counts.non_2xx >= 1 && r.requests < 100, "{r:#?}");
    assert_eq!(r.ok, 0);

    let mut cfg = config(addr, 1000.0, 200, 2);
    cfg.allow_errors = true;
    let r = run(&cfg).unwrap();
    assert!(!r.stopped_early && r.has_errors());
    assert_eq!(
        (
            r.requests,
            r.counts.non_2xx,
            r.counts.status.get(&503).copied()
        ),
        (200, 200, Some(200))
    );
}

#[test]
fn no_listener_is_an_error() {
    // Bind, note the port, close: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = run(&Config::new(
        format!("http://127.0.0.1:{port}/"),
        100.0,
        Duration::from_millis(100),
        1,
    ))
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("connecting to 127.0.0.1"),
        "{err:#}"
    );
}

#[test]
fn binary_prints_one_json_object_and_fails_on_errors() {
    let _alone = timing();
    let addr = server(Answer::Ok);
    let bin = env!("CARGO_BIN_EXE_coffer-loadgen");
    let url = format!("http://{addr}/v1/x");
    let common = [
        "--rate",
        "500",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
        "--connections",
        "2",
    ];

    // The header from a file (-H @FILE), as bench/run.sh passes its tokens.
    let header_file =
        std::env::temp_dir().join(format!("coffer-loadgen-test-{}.h", std::process::id()));
    std::fs::write(&header_file, "x-token: t\n").unwrap();
    let header_arg = format!("@{}", header_file.display());
    let out = Command::new(bin)
        .args(common)
        .args(["--url", &url, "--header", &header_arg, "--json"])
        .output()
        .unwrap();
    std::fs::remove_file(&header_file).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["requested_rate"], 500.0);
    assert_eq!(v["requests"], 150);
    assert_eq!(v["ok"], 150);
    assert_eq!(v["non_2xx"], 0);
    assert_eq!(v["errors"], serde_json::json!({}));
    for k in ["p50", "p90", "p99", "p99.9", "max"] {
        assert!(
            v["latency_ms"][k].as_f64().unwrap() > 0.0,
            "latency_ms.{k}: {v}"
        );
        assert!(v["send_lag_ms"][k].is_number(), "send_lag_ms.{k}: {v}");
    }
    // The rate achieved depends on how busy the machine is: reported, not judged.
    assert!(v["achieved_rate"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("x-token"),
        "headers must not be echoed"
    );

    // Without the header the server answers 401: non-zero exit, JSON still
    // printed. One connection, so no second request is in flight when the
    // first one's answer stops the run.
    let out = Command::new(bin)
        .args(&common[..6])
        .args(["--connections", "1", "--url", &url, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The very first request (a warm-up one) fails, which stops the run and fails it.
    assert_eq!(v["warmup"]["status"]["401"], 1, "{v}");
    assert_eq!(v["warmup"]["non_2xx"], 1, "{v}");
    assert_eq!(v["stopped_early"], true, "{v}");

    // Bad arguments: clap's usage error.
    let out = Command::new(bin)
        .args(["--url", &url, "--rate", "10", "--duration", "1x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin)
        .args([
            "--url",
            "https://127.0.0.1/",
            "--rate",
            "10",
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A server written on raw sockets, answering every request with `pieces`,
/// written one after the other with a millisecond between them (so the client
/// sees partial heads and bodies), then closing the connection if `close`.
/// Returns its address and a count of the connections it accepted.
fn raw_server(
    pieces: &'static [&'static [u8]],
    close: bool,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            count.fetch_add(1, Ordering::Relaxed);
            stream.set_nodelay(true).unwrap();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    // One request head (no body: the generator only sends GET).
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.clear();
                    for (i, p) in pieces.iter().enumerate() {
                        if i > 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        if stream.write_all(p).is_err() {
                            return;
                        }
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[test]
fn chunked_bodies_split_across_reads_are_read_whole() {
    let (addr, accepted) = raw_server(
        &[
            b"HTTP/1.1 200 OK\r\nTransfer-Enc",
            b"oding: chunked\r\n\r\n5\r\nhel",
            b"lo\r\n6;x=y\r\n world\r\n0\r\n",
            b"Trailer: t\r\n\r\n",
        ],
        false,
    );
    let r = run(&config(addr, 200.0, 250, 2)).unwrap();
    assert_eq!((r.requests, r.ok), (50, 50), "{r:#?}");
    assert!(!r.has_errors(), "{r:#?}");
    // Kept alive: no connection was opened beyond the first two.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 2);
    // Each response took at least the three pauses between its pieces.
    assert!(r.from_send_ms.min >= 3.0, "{:?}", r.from_send_ms);
}

#[test]
fn a_server_that_closes_after_each_response_is_reconnected_to() {
    // `Connection: close` with a length, and HTTP/1.0 with the body ending at the close.
    const WITH_LENGTH: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
        b"ok",
    ];
    const UNTIL_CLOSE: &[&[u8]] = &[
        b"HTTP/1.0 200 OK\r\n\r\nthe body ends",
        b" when the connection does",
    ];
    for pieces in [WITH_LENGTH, UNTIL_CLOSE] {
        let (addr, accepted) = raw_server(pieces, true);
        let r = run(&config(addr, 200.0, 250, 2)).unwrap();
        assert_eq!((r.requests, r.ok), (50, 50), "{r:#?}");
        assert!(!r.has_errors(), "{r:#?}");
        // One connection per request, the last reopened after its response
        // on each of the two connections.
        assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 52);
    }
}

#[test]
fn broken_responses_are_errors() {
    const CASES: &[(&[&[u8]], &str)] = &[
        // Not HTTP/1.x.
        (&[b"SSH-2.0-OpenSSH_9.6\r\n\r\n"], "send"),
        // Closed before the head ended.
        (&[b"HTTP/1.1 200 OK\r\nContent-Le"], "send"),
        // Closed before the body ended.
        (
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
            "body",
        ),
        // A bad chunk size.
        (
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
            "body",
        ),
        // More than the response.
        (
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"],
            "body",
        ),
    ];
    for &(pieces, kind) in CASES {
        let (addr, _) = raw_server(pieces, true);
        let mut cfg = config(addr, 200.0, 100, 1);
        cfg.allow_errors = true;
        let r = run(&cfg).unwrap();
        assert_eq!(r.ok, 0, "{pieces:?}: {r:#?}");
        assert_eq!(r.counts.errors.get(kind), Some(&20), "{pieces:?}: {r:#?}");
    }
}
