//! In-process tests of the request edge with chosen peer addresses: the
//! per-source throttles, where `init` may come from, and HTTP/2's
//! `:authority`. (Raw-socket tests against the real binary are in
//! coffer-cli's `tests/hostile_http.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Version};
use coffer_core::{Coffer, CoreOptions, InviteRequest};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::serve::Peer;
use crate::{AppState, RouterOptions, router};

const LISTEN: &str = "127.0.0.1:8270";

struct Fixture {
    coffer: Arc<Coffer>,
    state: AppState,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = coffer_store::SqliteStore::open(&dir.path().join("coffer.db")).unwrap();
    let coffer = Arc::new(
        Coffer::open(Arc::new(store), CoreOptions::default())
            .await
            .unwrap(),
    );
    let key_source = {
        let coffer = coffer.clone();
        Arc::new(move || coffer.audit_key())
    };
    let (auditor, _alerts) = coffer_audit::Auditor::start(coffer_audit::AuditorConfig {
        sinks: vec![coffer_audit::SinkSpec::File(dir.path().join("audit.log"))],
        fsync: coffer_audit::Fsync::Interval(std::time::Duration::from_secs(1)),
        rules: coffer_audit::AlertRules::default(),
        key: key_source,
        rotation: coffer_audit::Rotation::default(),
    })
    .unwrap();
    let state = AppState::new(coffer.clone(), Arc::new(auditor));
    Fixture {
        coffer,
        state,
        _dir: dir,
    }
}

fn app_with(f: &Fixture, options: RouterOptions) -> Router {
    router(f.state.clone(), options)
}

fn default_app(f: &Fixture) -> Router {
    app_with(f, RouterOptions::new(1 << 20, LISTEN.parse().unwrap()))
}

struct Answer {
    status: u16,
    code: String,
    retry_after: Option<u64>,
}

async fn send(app: &Router, from: Option<&str>, method: &str, path: &str, body: &str) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", LISTEN);
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let mut req = req.body(Body::from(body.to_string())).unwrap();
    if let Some(from) = from {
        let addr: SocketAddr = from.parse().unwrap();
        let mut peer = Peer::new(addr);
        peer.local = Some(LISTEN.parse().unwrap());
        req.extensions_mut().insert(peer);
    }
    answer(app, req).await
}

async fn answer(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let code = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    Answer {
        status,
        code,
        retry_after,
    }
}

fn login_body(user: &str, password: &str) -> String {
    serde_json::json!({ "user": user, "password": password }).to_string()
}

/// Initialises and unseals `f` and invites `alice` with a policy `dev` of
/// `policy`; returns her password.
async fn unsealed_with_alice(f: &Fixture, policy: &str) -> &'static str {
    let init = f.coffer.init(1, 1).await.unwrap();
    f.coffer
        .unseal(init.unseal_keys[0].expose_secret())
        .await
        .unwrap();
    let root = f
        .coffer
        .authenticate(init.root_token.expose_secret(), None)
        .await
        .unwrap();
    f.coffer.write_policy(&root, "dev", policy).await.unwrap();
    let (code, _) = f
        .coffer
        .create_invite(
            &root,
            &InviteRequest {
                policies: vec!["dev".into()],
                ttl: None,
            },
        )
        .await
        .unwrap();
    let password = "correct horse battery staple";
    f.coffer
        .accept_invite(code.expose_secret(), "alice", password)
        .await
        .unwrap();
    password
}

#[tokio::test]
async fn login_lockout_cannot_be_forced_on_an_owner() {
    let f = fixture().await;
    let password = unsealed_with_alice(&f, r#"path "app/dev/*" { capabilities = ["read"] }"#).await;
    let app = default_app(&f);
    let login = |from: String, pw: &'static str| {
        let app = app.clone();
        async move {
            send(
                &app,
                Some(&from),
                "POST",
                "/api/v1/auth/login",
                &login_body("alice", pw),
            )
            .await
        }
    };

    // One address guessing: ten failures, then it must wait.
    let attacker = "203.0.113.9:40000".to_string();
    for i in 0..10 {
        assert_eq!(
            login(attacker.clone(), "guess").await.status,
            401,
            "guess {i}"
        );
    }
    let r = login(attacker.clone(), "guess").await;
    assert_eq!((r.status, r.code.as_str()), (429, "rate_limited"));
    assert_eq!(r.retry_after, Some(1));
    // Even with the right password, from that address.
    assert_eq!(login(attacker.clone(), password).await.status, 429);
    // The owner, elsewhere, is not affected.
    assert_eq!(login("192.0.2.10:50000".into(), password).await.status, 200);
    // The same /64 is the same source; another /64 is not.
    for i in 0..10 {
        let from = format!("[2001:db8:1:2::{i}]:40000");
        assert_eq!(login(from, "guess").await.status, 401);
    }
    assert_eq!(
        login("[2001:db8:1:2:ffff::1]:1".into(), "guess")
            .await
            .status,
        429
    );
    assert_eq!(
        login("[2001:db8:1:3::1]:1".into(), "guess").await.status,
        401
    );

    // Many addresses guessing at one name: past 100 failures an hour the
    // name is paced (one attempt per 5 s after a failure), not locked. The
    // 21 failures above count too: the owner's login did not clear them.
    for i in 0..100 {
        let from = format!("198.51.{}.{}:1", 100 + i / 200, i % 200 + 1);
        let r = login(from, "guess").await;
        assert!(
            r.status == 401 || (r.status == 429 && i >= 79),
            "guess {i}: {}",
            r.status
        );
    }
    let r = login("192.0.2.11:1".into(), password).await;
    assert_eq!((r.status, r.code.as_str()), (429, "rate_limited"));
    let wait = r.retry_after.expect("Retry-After");
    assert!((1..=5).contains(&wait), "{wait}");
    // The owner gets in once the pace allows, not an hour later.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(login("192.0.2.11:1".into(), password).await.status, 200);
}

#[tokio::test]
async fn a_paced_account_stays_open_to_its_owner_and_knocking_costs_the_knocker() {
    let f = fixture().await;
    let password = unsealed_with_alice(&f, r#"path "app/*" { capabilities = ["read"] }"#).await;
    let app = default_app(&f);
    let login = |from: &str, pw: &str| {
        let (app, from, body) = (app.clone(), from.to_string(), login_body("alice", pw));
        async move { send(&app, Some(&from), "POST", "/api/v1/auth/login", &body).await }
    };
    // The owner logs in from home.
    let home = "192.0.2.10:50000";
    assert_eq!(login(home, password).await.status, 200);
    // Many addresses push the name past its ceiling.
    for i in 0..100 {
        let from = format!("198.51.{}.{}:1", 100 + i / 200, i % 200 + 1);
        assert_eq!(login(&from, "guess").await.status, 401, "guess {i}");
    }
    // An address knocking on the paced name is refused by the name's pace
    // (Retry-After 5) ... but each knock counts against it, so after its
    // ten it is held back itself (Retry-After 1, then doubling).
    let knocker = "198.51.200.1:1";
    for i in 0..10 {
        let r = login(knocker, "guess").await;
        assert_eq!((r.status, r.retry_after), (429, Some(5)), "knock {i}");
    }
    let r = login(knocker, "guess").await;
    assert_eq!((r.status, r.retry_after), (429, Some(1)));
    // The owner, from where they logged in before, gets in at once, and
    // that does not clear the name's failures for the guessers.
    assert_eq!(login(home, password).await.status, 200);
    assert_eq!(login("198.51.200.2:1", "guess").await.status, 429);
    // Another of the owner's addresses, never used to log in, waits its
    // turn like anyone.
    assert_eq!(login("192.0.2.99:1", password).await.status, 429);
}

/// `share` with its y bytes changed (same x): a well-formed wrong share.
fn spoiled(share: &str) -> String {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::STANDARD;
    let mut raw = e.decode(share).unwrap();
    for b in &mut raw[1..] {
        *b ^= 0x5a;
    }
    e.encode(raw)
}

fn unseal_body(key: &str) -> String {
    serde_json::json!({ "key": key }).to_string()
}

#[tokio::test]
async fn unseal_attempts_are_throttled_per_source() {
    let f = fixture().await;
    let init = f.coffer.init(3, 2).await.unwrap();
    let keys: Vec<String> = init
        .unseal_keys
        .iter()
        .map(|k| k.expose_secret().to_string())
        .collect();
    let app = default_app(&f);
    let unseal = |from: &'static str, body: String| {
        let app = app.clone();
        async move { send(&app, Some(from), "POST", "/api/v1/sys/unseal", &body).await }
    };
    for i in 0..5 {
        let r = unseal("203.0.113.9:1", unseal_body("not a share!")).await;
        assert_eq!(r.status, 400, "attempt {i}");
    }
    let r = unseal("203.0.113.9:1", unseal_body(&keys[0])).await;
    assert_eq!((r.status, r.code.as_str()), (429, "rate_limited"));
    assert!(r.retry_after.is_some());
    // Other addresses go on.
    let r = unseal("192.0.2.1:1", unseal_body(&keys[0])).await;
    assert_eq!(r.status, 200);
    let r = unseal("192.0.2.2:1", unseal_body(&keys[1])).await;
    assert_eq!(r.status, 200);
    assert!(!f.coffer.status().sealed);
}

#[tokio::test]
async fn unseal_progress_cannot_be_reset_or_poisoned_by_others() {
    let f = fixture().await;
    let init = f.coffer.init(3, 2).await.unwrap();
    let keys: Vec<String> = init
        .unseal_keys
        .iter()
        .map(|k| k.expose_secret().to_string())
        .collect();
    let app = default_app(&f);
    let unseal = |from: &'static str, body: String| {
        let app = app.clone();
        async move { send(&app, Some(from), "POST", "/api/v1/sys/unseal", &body).await }
    };
    let (operator, attacker) = ("192.0.2.1:1", "203.0.113.9:1");
    assert_eq!(unseal(operator, unseal_body(&keys[0])).await.status, 200);
    // A wrong share with the x of the operator's next one, then a reset.
    let r = unseal(attacker, unseal_body(&spoiled(&keys[1]))).await;
    assert_eq!(r.status, 400, "the pair does not open it");
    let r = unseal(attacker, r#"{"reset":true}"#.into()).await;
    assert_eq!(r.status, 200);
    assert_eq!(f.coffer.status().progress, 1, "the operator's share stays");
    let r = unseal(attacker, unseal_body(&spoiled(&keys[2]))).await;
    assert_eq!(r.status, 400);
    // The operator's second share unseals, whatever else is pending.
    assert_eq!(unseal(operator, unseal_body(&keys[1])).await.status, 200);
    assert!(!f.coffer.status().sealed);
}

#[tokio::test]
async fn unseal_cannot_be_blocked_by_filling_the_pending_shares() {
    let f = fixture().await;
    let init = f.coffer.init(5, 5).await.unwrap();
    let keys: Vec<String> = init
        .unseal_keys
        .iter()
        .map(|k| k.expose_secret().to_string())
        .collect();
    let app = default_app(&f);
    let unseal = |from: String, body: String| {
        let app = app.clone();
        async move { send(&app, Some(&from), "POST", "/api/v1/sys/unseal", &body).await }
    };
    // Six sources each send five wrong shares: past 17 pending, the
    // combinations a remote share would cost exceed the remote cap and
    // further remote shares are refused.
    for source in 0..6 {
        for key in &keys {
            let from = format!("[2001:db8:{source}::1]:1");
            let r = unseal(from, unseal_body(&spoiled(key))).await;
            assert!(r.status == 200 || r.status == 400, "{}", r.status);
        }
    }
    assert!(f.coffer.status().progress >= 17);
    let r = unseal("192.0.2.1:1".into(), unseal_body(&keys[0])).await;
    assert_eq!(
        r.status, 400,
        "a remote share is refused while the cap is hit"
    );
    // On the server itself the operator can still unseal: its shares are
    // tried among themselves, whatever others left pending.
    for (i, key) in keys.iter().enumerate() {
        let r = unseal("127.0.0.1:1".into(), unseal_body(key)).await;
        assert_eq!(r.status, 200, "share {i} from this machine");
    }
    assert!(!f.coffer.status().sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unseal_cannot_be_delayed_by_a_queue_of_remote_attempts() {
    let f = fixture().await;
    let init = f.coffer.init(3, 2).await.unwrap();
    let keys: Vec<String> = init
        .unseal_keys
        .iter()
        .map(|k| k.expose_secret().to_string())
        .collect();
    let app = default_app(&f);
    // The operator's first share, from the server machine: pending, so
    // every later share makes a combination search.
    let r = send(
        &app,
        Some("127.0.0.1:1"),
        "POST",
        "/api/v1/sys/unseal",
        &unseal_body(&keys[0]),
    )
    .await;
    assert_eq!(r.status, 200);
    // Each search holds the unseal lock for a while (as a search at the
    // combination cap does).
    f.coffer
        .set_unseal_search_delay_for_tests(std::time::Duration::from_millis(150));
    // Twenty wrong shares a second, each from a new address: served one
    // after another they would queue without bound (each search holds the
    // lock for longer than the next one takes to arrive).
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (stop, busy) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let flood = {
        let (app, stop, busy, body) = (
            app.clone(),
            stop.clone(),
            busy.clone(),
            unseal_body(&spoiled(&keys[1])),
        );
        tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) && i < 2_000 {
                let (app, busy, body) = (app.clone(), busy.clone(), body.clone());
                sent.push(tokio::spawn(async move {
                    let from = format!("[2001:db8:{:x}:{:x}::1]:1", i >> 16, i & 0xffff);
                    let r = send(&app, Some(&from), "POST", "/api/v1/sys/unseal", &body).await;
                    if r.status == 429 {
                        busy.fetch_add(1, Ordering::SeqCst);
                    }
                    r
                }));
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            sent
        })
    };
    // The queue is full: remote attempts that cannot take the lock in time
    // are being refused as busy.
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while busy.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("remote attempts that wait too long are refused as busy");
    assert!(f.coffer.status().sealed);
    // The operator's second share, from the server machine, waits behind at
    // most one remote attempt and unseals while the flood goes on.
    let r = send(
        &app,
        Some("127.0.0.1:1"),
        "POST",
        "/api/v1/sys/unseal",
        &unseal_body(&keys[1]),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!f.coffer.status().sealed);
    stop.store(true, Ordering::SeqCst);
    let sent = flood.await.unwrap();
    // Every remote attempt ends: answered, or refused as busy with a time
    // to retry; none waits without bound.
    for task in sent {
        let r = tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("a remote attempt ends")
            .unwrap();
        match r.status {
            429 => {
                assert_eq!(r.code, "rate_limited");
                assert!(r.retry_after.is_some());
            }
            200 | 400 => {}
            other => panic!("remote attempt answered {other}"),
        }
    }
}

#[tokio::test]
async fn init_is_accepted_only_from_loopback_unless_allowed() {
    let f = fixture().await;
    let app = default_app(&f);
    let body = r#"{"shares":1,"threshold":1}"#;
    for from in [Some("192.0.2.1:1"), Some("[2001:db8::1]:1"), None] {
        let r = send(&app, from, "POST", "/api/v1/sys/init", body).await;
        assert_eq!((r.status, r.code.as_str()), (403, "forbidden"), "{from:?}");
    }
    assert!(!f.coffer.status().initialized);
    let open = app_with(
        &f,
        RouterOptions {
            allow_remote_init: true,
            ..RouterOptions::new(1 << 20, LISTEN.parse().unwrap())
        },
    );
    let r = send(&open, Some("192.0.2.1:1"), "POST", "/api/v1/sys/init", body).await;
    assert_eq!(r.status, 200);
    // From this machine by its own address (the peer is the address the
    // connection arrived at).
    let h = fixture().await;
    let mut req = Request::post("/api/v1/sys/init")
        .header("host", "10.0.0.5:8270")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let mut peer = Peer::new("10.0.0.5:40000".parse().unwrap());
    peer.local = Some("10.0.0.5:8270".parse().unwrap());
    req.extensions_mut().insert(peer);
    let listen_all = app_with(
        &h,
        RouterOptions::new(1 << 20, "0.0.0.0:8270".parse().unwrap()),
    );
    assert_eq!(answer(&listen_all, req).await.status, 200);
    // And from loopback with the default.
    let g = fixture().await;
    let r = send(
        &default_app(&g),
        Some("[::ffff:127.0.0.1]:1"),
        "POST",
        "/api/v1/sys/init",
        body,
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn http2_authority_and_host_must_agree() {
    let f = fixture().await;
    let app = default_app(&f);
    let h2 = |uri: &str, host: Option<&str>| {
        let mut b = Request::builder().uri(uri).version(Version::HTTP_2);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(Body::empty()).unwrap()
    };
    let ok = answer(&app, h2("http://127.0.0.1:8270/api/v1/sys/status", None)).await;
    assert_eq!(ok.status, 200);
    for (uri, host) in [
        ("http://evil.example:8270/api/v1/sys/status", None),
        (
            "http://evil.example:8270/api/v1/sys/status",
            Some("127.0.0.1:8270"),
        ),
        (
            "http://127.0.0.1:8270/api/v1/sys/status",
            Some("evil.example:8270"),
        ),
        ("/api/v1/sys/status", None),
    ] {
        let r = answer(&app, h2(uri, host)).await;
        assert_eq!(
            (r.status, r.code.as_str()),
            (400, "bad_host"),
            "{uri} {host:?}"
        );
    }
}

#[tokio::test]
async fn configured_names_are_accepted_on_their_ports() {
    let f = fixture().await;
    let listen: SocketAddr = "0.0.0.0:8200".parse().unwrap();
    let app = app_with(
        &f,
        RouterOptions {
            tls: true,
            hosts: vec![
                crate::HostRule::from_url("https://coffer.example.com").unwrap(),
                crate::HostRule::parse("alias.example").unwrap(),
            ],
            ..RouterOptions::new(1 << 20, listen)
        },
    );
    let get = |host: &str| {
        let mut req = Request::builder()
            .uri("/api/v1/sys/status")
            .header("host", host)
            .body(Body::empty())
            .unwrap();
        let mut peer = Peer::new("192.0.2.1:1".parse().unwrap());
        peer.local = Some("10.0.0.5:8200".parse().unwrap());
        req.extensions_mut().insert(peer);
        req
    };
    for (host, want) in [
        ("coffer.example.com", 200),
        ("coffer.example.com:443", 200),
        ("coffer.example.com:8200", 400),
        ("alias.example:1234", 200),
        ("10.0.0.5:8200", 200),
        ("0.0.0.0:8200", 400),
        ("node1.example:8200", 400),
        ("localhost:8200", 400),
        ("127.0.0.1:8200", 400),
    ] {
        let r = answer(&app, get(host)).await;
        assert_eq!(r.status, want, "{host}");
    }
}

/// The same over a real HTTP/2 connection (prior knowledge, as on a
/// loopback listener without TLS): hyper's server puts `:authority` in the
/// request target, and a `Host` that disagrees is refused.
#[tokio::test]
async fn http2_over_a_socket_checks_the_authority() {
    use hyper::body::Bytes;
    let f = fixture().await;
    let bound = crate::bind("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let addr = bound.local_addr();
    let app = app_with(&f, RouterOptions::new(1 << 20, addr));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(
        bound,
        app,
        async {
            let _ = stopped.await;
        },
        crate::ServeOptions {
            grace: std::time::Duration::from_secs(1),
            ..crate::ServeOptions::default()
        },
    ));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let port = addr.port();
    for (authority, host, want) in [
        (format!("127.0.0.1:{port}"), None, 200),
        (format!("localhost:{port}"), None, 200),
        (format!("evil.example:{port}"), None, 400),
        (
            format!("evil.example:{port}"),
            Some(format!("127.0.0.1:{port}")),
            400,
        ),
        (
            format!("127.0.0.1:{port}"),
            Some(format!("evil.example:{port}")),
            400,
        ),
        (format!("127.0.0.1:{}", port.wrapping_add(1)), None, 400),
    ] {
        let mut req = Request::get(format!("http://{authority}/api/v1/sys/status"));
        if let Some(h) = &host {
            req = req.header("host", h);
        }
        let req = req.body(http_body_util::Empty::<Bytes>::new()).unwrap();
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_eq!(resp.status().as_u16(), want, "{authority} {host:?}");
    }
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn unseal_from_the_servers_own_address_counts_as_this_machine() {
    // A server listening on all addresses, unsealed by an operator on it
    // through its network address: that is this machine, as for init.
    let f = fixture().await;
    let init = f.coffer.init(2, 2).await.unwrap();
    let key = init.unseal_keys[0].expose_secret().to_string();
    let app = default_app(&f);
    let r = send(
        &app,
        Some("192.0.2.1:1"),
        "POST",
        "/api/v1/sys/unseal",
        &unseal_body(&spoiled(&key)),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(f.coffer.status().progress, 1);
    let own = "192.0.2.10";
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/sys/unseal")
        .header("host", LISTEN)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"reset":true}"#))
        .unwrap();
    let mut peer = Peer::new(format!("{own}:40000").parse().unwrap());
    peer.local = Some(format!("{own}:8270").parse().unwrap());
    req.extensions_mut().insert(peer);
    assert_eq!(answer(&app, req).await.status, 200);
    assert_eq!(
        f.coffer.status().progress,
        0,
        "a reset from the server machine clears every pending key"
    );
}
