//! Hostile HTTP against the real binary, over raw sockets: requests a web
//! page could make a browser send (DNS rebinding, cross-site simple
//! requests), proxy-style targets, and clients that hold connections open.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Mode, Server};

/// A response read from a raw socket until the server closes it.
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn code(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// Sends `request` as is and reads until the server closes the connection.
fn raw(host_port: &str, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(host_port).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no response to {:?}: {text:?}",
                String::from_utf8_lossy(request)
            )
        });
    Raw {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn post(host_port: &str, path: &str, host: &str, content_type: Option<&str>, body: &str) -> Raw {
    let ct = content_type.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
    raw(
        host_port,
        format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn status_with_host(host_port: &str, host: &str) -> Raw {
    raw(
        host_port,
        format!("GET /api/v1/sys/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn audit_log(server: &Server) -> String {
    std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap_or_default()
}

fn port(server: &Server) -> u16 {
    server
        .host_port()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn fresh_server_cannot_be_initialised_from_a_web_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config(""));
    let hp = server.host_port().to_string();
    let p = port(&server);
    let body = r#"{"shares":1,"threshold":1}"#;
    let evil = format!("evil.example:{p}");
    // What a rebound page sends: its own name in Host, a simple content type.
    for (host, ct, status, code) in [
        (evil.as_str(), Some("text/plain"), 400, "bad_host"),
        (evil.as_str(), Some("application/json"), 400, "bad_host"),
        (
            hp.as_str(),
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            hp.as_str(),
            Some("text/plain;charset=UTF-8"),
            415,
            "unsupported_media_type",
        ),
        (
            hp.as_str(),
            Some("application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
        ),
        (
            hp.as_str(),
            Some("multipart/form-data; boundary=x"),
            415,
            "unsupported_media_type",
        ),
        (
            hp.as_str(),
            Some("application/json; charset=latin1"),
            415,
            "unsupported_media_type",
        ),
        (hp.as_str(), None, 415, "unsupported_media_type"),
    ] {
        for path in ["/api/v1/sys/init", "/api/v1/sys/unseal"] {
            let r = post(&hp, path, host, ct, body);
            assert_eq!(
                (r.status, r.code().as_str()),
                (status, code),
                "{path} Host {host} Content-Type {ct:?}: {}",
                r.body
            );
            assert!(r.body.contains("request_id"), "{}", r.body);
        }
    }
    let st = server.http("GET", "/api/v1/sys/status", None, None).json();
    assert_eq!(st["initialized"], false, "nothing was initialised");
    // Every refusal was audited.
    let audit = audit_log(&server);
    assert!(audit.contains("\"bad_host\""), "{audit}");
    assert!(audit.contains("\"unsupported_media_type\""), "{audit}");
    assert!(audit.contains("sys.init"), "{audit}");

    // The real thing, from this machine, with JSON, works (the CLI sends
    // exactly that); `charset=utf-8` is fine.
    let r = post(
        &hp,
        "/api/v1/sys/init",
        &format!("localhost:{p}"),
        Some("application/json; charset=utf-8"),
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let key = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["unseal_keys"][0]
        .as_str()
        .unwrap()
        .to_string();
    server
        .cli()
        .stdin(&key)
        .run(&["operator", "unseal"])
        .expect(0);
    server.cli().run(&["status"]).expect(0);
}

#[test]
fn host_header_spellings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let hp = server.host_port().to_string();
    let p = port(&server);
    for good in [
        format!("127.0.0.1:{p}"),
        format!("localhost:{p}"),
        format!("LOCALHOST:{p}"),
        format!("[::1]:{p}"),
        format!("[0:0:0:0:0:0:0:1]:{p}"),
        format!("127.0.0.1:{p} "),
    ] {
        let r = status_with_host(&hp, &good);
        assert_eq!(r.status, 200, "Host {good:?}: {}", r.body);
    }
    for bad in [
        format!("evil.example:{p}"),
        format!("EVIL.example:{p}"),
        format!("127.0.0.1:{}", p.wrapping_add(1)),
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "[::1]".to_string(),
        format!("localhost.:{p}"),
        format!("127.0.0.1.:{p}"),
        format!("a@127.0.0.1:{p}"),
        format!("localhost.evil.example:{p}"),
        format!("127.0.0.1.nip.io:{p}"),
        format!("2130706433:{p}"),
        format!("0x7f000001:{p}"),
        format!("0177.0.0.1:{p}"),
        format!("127.1:{p}"),
        format!("127.0.0.1 :{p}"),
        format!("127.0.0.1:{p}:{p}"),
        format!("127.0.0.1:+{p}"),
        format!("127.0.0.1:{p}/x"),
        format!("[::1%lo]:{p}"),
        format!("[::ffff:7f00:1]x:{p}"),
        format!("localhost:{p}, evil.example"),
        String::new(),
    ] {
        let r = status_with_host(&hp, &bad);
        assert_eq!(r.status, 400, "Host {bad:?}: {}", r.body);
        assert_eq!(r.code(), "bad_host", "Host {bad:?}: {}", r.body);
    }
    // No Host at all, in HTTP/1.1 and HTTP/1.0.
    for req in [
        "GET /api/v1/sys/status HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /api/v1/sys/status HTTP/1.0\r\n\r\n",
    ] {
        let r = raw(&hp, req.as_bytes());
        assert_eq!((r.status, r.code().as_str()), (400, "bad_host"), "{req:?}");
    }
    // HTTP/1.0 with a good Host is fine.
    let r = raw(
        &hp,
        format!("GET /api/v1/sys/status HTTP/1.0\r\nHost: {hp}\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Two Host headers, even two good ones, or one good and one bad.
    for second in [hp.clone(), format!("evil.example:{p}")] {
        let r = raw(
            &hp,
            format!(
                "GET /api/v1/sys/status HTTP/1.1\r\nHost: {hp}\r\nHost: {second}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!((r.status, r.code().as_str()), (400, "bad_host"), "{second}");
    }
    // Refusals of unaudited routes (status) are audited too.
    assert!(audit_log(&server).contains("\"bad_host\""));
    // The CLI, with COFFER_ADDR spelt either way, still works.
    server
        .cli()
        .token(&server.root_token())
        .run(&["status"])
        .expect(0);
    Server::cli(&server)
        .env("COFFER_ADDR", &format!("http://localhost:{p}"))
        .run(&["status"])
        .expect(0);
}

#[test]
fn absolute_form_targets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let hp = server.host_port().to_string();
    for target in [
        "http://evil.example/api/v1/sys/status".to_string(),
        format!("http://{hp}/api/v1/sys/status"),
        format!("https://{hp}/api/v1/sys/status"),
        "*".to_string(),
    ] {
        for method in ["GET", "OPTIONS"] {
            let r = raw(
                &hp,
                format!("{method} {target} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            assert_eq!(r.status, 400, "{method} {target}: {}", r.body);
            if !r.body.is_empty() {
                assert_eq!(
                    r.code(),
                    "bad_request_target",
                    "{method} {target}: {}",
                    r.body
                );
            }
        }
    }
    // A CORS preflight is never approved, so a page cannot send JSON or
    // an Authorization header cross-site.
    let r = raw(
        &hp,
        format!("OPTIONS /api/v1/sys/init HTTP/1.1\r\nHost: {hp}\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(r.status >= 400, "{}", r.head);
    assert!(
        !r.head.to_ascii_lowercase().contains("access-control-allow"),
        "{}",
        r.head
    );
    // CONNECT (authority form) is refused too, one way or another.
    let r = raw(
        &hp,
        format!("CONNECT {hp} HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(r.status >= 400, "{}", r.head);
    assert!(audit_log(&server).contains("\"bad_request_target\""));
}

#[test]
fn body_less_posts_need_no_content_type_but_a_declared_one_must_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let hp = server.host_port().to_string();
    let root = server.root_token();
    // No body, no content type: reaches the handler (401 without a token).
    let r = raw(
        &hp,
        format!("POST /api/v1/sys/seal HTTP/1.1\r\nHost: {hp}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!((r.status, r.code().as_str()), (401, "unauthenticated"));
    // No body but a non-JSON content type: refused.
    let r = raw(
        &hp,
        format!("POST /api/v1/sys/seal HTTP/1.1\r\nHost: {hp}\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "unsupported_media_type")
    );
    // A chunked body without a content type: refused, and nothing written.
    let r = raw(
        &hp,
        format!(
            "PUT /api/v1/secrets/app/dev/x HTTP/1.1\r\nHost: {hp}\r\nAuthorization: Bearer {root}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            r#"{"value":"v"}"#.len(),
            r#"{"value":"v"}"#
        )
        .as_bytes(),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "unsupported_media_type")
    );
    assert_eq!(
        server
            .http("GET", "/api/v1/secrets/app/dev/x", Some(&root), None)
            .status,
        404
    );
    // Two content types: refused.
    let r = raw(
        &hp,
        format!("POST /api/v1/sys/unseal HTTP/1.1\r\nHost: {hp}\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").as_bytes(),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "unsupported_media_type")
    );
}

/// Reads until the server closes the connection (or `limit` passes);
/// whether it closed.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config("idle_timeout_secs = 1"));
    let hp = server.host_port().to_string();
    // A connection that never says anything.
    let mut silent = TcpStream::connect(&hp).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(10)));
    // One that starts an HTTP/2 preface and stops.
    let mut h2 = TcpStream::connect(&hp).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    assert!(closed_within(&mut h2, Duration::from_secs(10)));
    // One that trickles its headers.
    let mut slow = TcpStream::connect(&hp).unwrap();
    let head = format!("GET /api/v1/sys/status HTTP/1.1\r\nHost: {hp}\r\n");
    let start = Instant::now();
    let mut closed = false;
    for b in head.bytes().chain(std::iter::repeat(b'x')) {
        if slow.write_all(&[b]).is_err() || start.elapsed() > Duration::from_secs(10) {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        slow.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut buf = [0u8; 1024];
        if let Ok(0) = slow.read(&mut buf) {
            closed = true;
            break;
        }
    }
    assert!(closed && start.elapsed() < Duration::from_secs(10));
    // A keep-alive connection idle after its first answer.
    let mut kept = TcpStream::connect(&hp).unwrap();
    kept.write_all(format!("GET /api/v1/sys/status HTTP/1.1\r\nHost: {hp}\r\n\r\n").as_bytes())
        .unwrap();
    assert!(closed_within(&mut kept, Duration::from_secs(10)));
    // The server still answers.
    assert_eq!(
        server.http("GET", "/api/v1/sys/status", None, None).status,
        200
    );
}

#[test]
fn trickled_body_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config("body_timeout_secs = 1"));
    let hp = server.host_port().to_string();
    let mut s = TcpStream::connect(&hp).unwrap();
    let body = r#"{"user":"alice","password":"correct horse battery staple"}"#;
    s.write_all(
        format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: {hp}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    for b in body.bytes() {
        if s.write_all(&[b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        let mut buf = [0u8; 4096];
        if let Ok(n) = s.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
            if n == 0 || !got.is_empty() {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still open after 10 s"
        );
    }
    let _ = closed_within(&mut s, Duration::from_secs(5));
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let _ = s.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(audit_log(&server).contains("\"request_timeout\""));
}

#[test]
fn connections_per_address_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config("max_connections_per_address = 3"));
    let hp = server.host_port().to_string();
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&hp).unwrap()).collect();
    // The fourth is closed at once, without an answer.
    let mut extra = TcpStream::connect(&hp).unwrap();
    let _ = extra
        .write_all(format!("GET /api/v1/sys/status HTTP/1.1\r\nHost: {hp}\r\n\r\n").as_bytes());
    assert!(closed_within(&mut extra, Duration::from_secs(10)));
    // Once one is given back, a new connection is served again.
    drop(held);
    common::wait_until(Duration::from_secs(10), "a freed connection slot", || {
        let mut s = TcpStream::connect(&hp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(
            format!("GET /api/v1/sys/status HTTP/1.1\r\nHost: {hp}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out.starts_with(b"HTTP/1.1 200")
    });
}

#[test]
fn unseal_attempts_are_throttled_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config(""));
    let cli = || server.cli();
    let init = cli()
        .run(&[
            "operator",
            "init",
            "--shares",
            "3",
            "--threshold",
            "2",
            "--json",
        ])
        .expect(0)
        .json();
    let keys: Vec<String> = init["unseal_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    // An operator provides one share; then somebody sends junk.
    cli().stdin(&keys[0]).run(&["operator", "unseal"]).expect(0);
    let bad = r#"{"key":"not a share"}"#;
    for i in 0..5 {
        let r = server.http("POST", "/api/v1/sys/unseal", None, Some(bad.as_bytes()));
        assert_eq!(r.status, 400, "attempt {i}: {}", r.text());
    }
    let r = server.http("POST", "/api/v1/sys/unseal", None, Some(bad.as_bytes()));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "rate_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=300).contains(&wait));
    // Even a right share waits its turn from this address.
    let r = server.http(
        "POST",
        "/api/v1/sys/unseal",
        None,
        Some(format!(r#"{{"key":"{}"}}"#, keys[1]).as_bytes()),
    );
    assert_eq!(r.status, 429);
    // The junk did not spoil the progress: after the wait, the next share
    // unseals.
    std::thread::sleep(Duration::from_secs(wait));
    cli().stdin(&keys[1]).run(&["operator", "unseal"]).expect(0);
    let st = server.http("GET", "/api/v1/sys/status", None, None).json();
    assert_eq!(st["sealed"], false, "{st}");
    assert!(audit_log(&server).contains("\"rate_limited\""));
}

fn openssl(args: &[&str], dir: &std::path::Path, stdin: &[u8]) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the openssl command is needed to make test certificates");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A CA and a certificate for `localhost` and 127.0.0.1 signed by it.
fn make_certs(dir: &std::path::Path) {
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let run = |args: String| {
        let args: Vec<&str> = args.split_whitespace().collect();
        openssl(&args, dir, b"")
    };
    run(format!(
        "req -x509 -days 1 -subj /CN=coffer-test-ca -keyout ca.key -out ca.pem {ec}"
    ));
    run(format!(
        "req -subj /CN=localhost -keyout key.pem -out leaf.csr {ec}"
    ));
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run("x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile leaf.ext -out cert.pem".into());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(dir.join("cert.pem").exists(), "openssl made no certificate");
}

#[test]
fn tls_listener_answers_to_its_certificate_names_only() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let config = format!(
        "listen = \"0.0.0.0:0\"\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        dir.path().join("cert.pem").display().to_string(),
        dir.path().join("key.pem").display().to_string()
    );
    let server = Server::start(dir.path(), Mode::Config(&config));
    let p = port(&server);
    let cacert = dir.path().join("ca.pem").display().to_string();
    // The listener is not loopback, so `localhost` is accepted only because
    // the certificate is valid for it.
    let by_name = format!("https://localhost:{p}");
    let cli = || {
        server
            .cli()
            .env("COFFER_ADDR", &by_name)
            .env("COFFER_CACERT", &cacert)
    };
    common::init_and_unseal(cli);
    cli().run(&["status"]).expect(0);
    // By IP: the address the connection arrived at.
    server
        .cli()
        .env("COFFER_ADDR", &format!("https://127.0.0.1:{p}"))
        .env("COFFER_CACERT", &cacert)
        .run(&["status"])
        .expect(0);
    // Raw TLS: a Host that is neither.
    let ask = |servername: Option<&str>, host: &str| {
        let connect = format!("127.0.0.1:{p}");
        let mut args = vec![
            "s_client", "-quiet", "-connect", &connect, "-CAfile", &cacert,
        ];
        match servername {
            Some(n) => args.extend(["-servername", n]),
            None => args.push("-noservername"),
        }
        openssl(
            &args,
            dir.path(),
            format!("GET /api/v1/sys/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    for (sni, host) in [
        (Some("localhost"), format!("localhost:{p}")),
        (Some("localhost"), format!("LOCALHOST:{p}")),
        (None, format!("localhost:{p}")),
        (None, format!("127.0.0.1:{p}")),
    ] {
        let out = ask(sni, &host);
        assert!(
            out.contains("HTTP/1.1 200"),
            "SNI {sni:?} Host {host}: {out}"
        );
    }
    // The name a client asks for in the handshake proves nothing (only a
    // browser refuses a certificate that does not cover it): the Host must
    // be a name the certificate covers.
    for (sni, host) in [
        (Some("localhost"), format!("evil.example:{p}")),
        (Some("evil.example"), format!("evil.example:{p}")),
        (
            Some("localhost"),
            format!("localhost:{}", p.wrapping_add(1)),
        ),
        (None, format!("coffer-test-ca:{p}")),
        (None, format!("sub.localhost:{p}")),
    ] {
        let out = ask(sni, &host);
        assert!(
            out.contains("HTTP/1.1 400"),
            "SNI {sni:?} Host {host}: {out}"
        );
        assert!(out.contains("bad_host"), "SNI {sni:?} Host {host}: {out}");
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config("idle_timeout_secs = 1"));
    let hp = server.host_port().to_string();
    // 200 pipelined requests for the OpenAPI document (about 130 KiB each):
    // far more than the socket buffers hold, and never read.
    let n = 200;
    let mut s = TcpStream::connect(&hp).unwrap();
    let one = format!("GET /api/v1/openapi.json HTTP/1.1\r\nHost: {hp}\r\n\r\n");
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(one.repeat(n).as_bytes());
    std::thread::sleep(Duration::from_secs(4));
    // Now read what there is: the server gave up on the stalled client
    // instead of holding the connection until it reads everything.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    let mut answers = 0;
    let mut buf = vec![0u8; 1 << 16];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                tail.extend_from_slice(&buf[..k]);
                answers += tail.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
                let keep = tail.len().saturating_sub(14);
                tail.drain(..keep);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "still streaming");
    }
    assert!(
        answers < n,
        "all {answers} answers were delivered to a stalled client"
    );
    assert_eq!(
        server.http("GET", "/api/v1/sys/status", None, None).status,
        200
    );
}

/// One HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A HEADERS block of literal fields (HPACK, no indexing, no Huffman).
fn hpack_literals(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        assert!(name.len() < 127 && value.len() < 127);
        out.push(0);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

#[test]
fn a_client_that_stops_reading_is_cut_off_over_http2_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Config("idle_timeout_secs = 1"));
    let hp = server.host_port().to_string();
    // Prior-knowledge HTTP/2 whose SETTINGS shut the flow-control window
    // (SETTINGS_INITIAL_WINDOW_SIZE = 0): the server can send headers but
    // no byte of any body, so every response stays "in flight".
    let mut s = TcpStream::connect(&hp).unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    for (i, path) in ["/api/v1/openapi.json", "/api/v1/sys/status"]
        .iter()
        .enumerate()
    {
        let block = hpack_literals(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", path),
            (":authority", &hp),
        ]);
        // END_STREAM | END_HEADERS.
        hello.extend(h2_frame(1, 0x5, 1 + 2 * i as u32, &block));
    }
    s.write_all(&hello).unwrap();
    let start = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(10)),
        "an HTTP/2 connection whose responses are never read was held open"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        server.http("GET", "/api/v1/sys/status", None, None).status,
        200
    );
}

#[test]
fn oversized_request_heads_are_refused_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Mode::Dev);
    let hp = server.host_port().to_string();
    let ask = |filler: usize| {
        raw(
            &hp,
            format!(
                "GET /api/v1/sys/status HTTP/1.1\r\nHost: {hp}\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
                "a".repeat(filler)
            )
            .as_bytes(),
        )
    };
    // A head of a few KiB is fine; hundreds of KiB per connection are not.
    assert_eq!(ask(8 * 1024).status, 200);
    assert_eq!(ask(100 * 1024).status, 431);
    // A malformed request line is refused by the HTTP parser too. Neither
    // reaches the router (no audit record), so both are logged, without
    // the request's bytes.
    let bad = raw(
        &hp,
        format!("GET /api/v1/sys/status<canary-7f3a> HTTP/1.1\r\nHost: {hp}\r\n\r\n").as_bytes(),
    );
    assert_eq!(bad.status, 400);
    common::wait_until(Duration::from_secs(10), "both refusals logged", || {
        let logs = server.logs();
        logs.contains("request refused before routing: its head is too large")
            && logs.contains("request refused before routing: malformed HTTP")
    });
    assert!(!server.logs().contains("canary-7f3a"));
}
