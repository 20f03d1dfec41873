//! Test harness: a whole coffer node in this process, driven through its
//! router with `tower::ServiceExt::oneshot`.
//!
//! A [`Server`] is assembled as `coffer server` assembles one: a real
//! `Coffer` on a SQLite store in a temporary directory, a real
//! `coffer_audit::Auditor` writing the audit log file there, and the router
//! with the options the server derives from its configuration. The socket
//! is missing: each request carries the [`Peer`] extension the server would
//! set for a connection from `127.0.0.1`, and a `Host` header naming the
//! listen address. So are the node's background jobs (sweeps, the lifecycle
//! scheduler, webhook delivery). What needs a socket, a process or those
//! jobs (HTTP framing, timeouts, TLS, signals, restarts, the process log,
//! the CLI) is tested against the binary in coffer-cli's tests.
//!
//! The calls are blocking, like the binary suites' were, so a test reads as
//! a sequence of requests; the server's own runtime runs the router.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use coffer_core::{Coffer, CoreOptions};
use coffer_server::{AppState, Peer, RouterOptions, ServerConfig, body_limit_for, router};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The address requests come from: this machine, as for the binary suites.
const PEER: &str = "127.0.0.1:50000";

/// A coffer node running in this process.
pub struct Server {
    rt: tokio::runtime::Runtime,
    app: Router,
    coffer: Arc<Coffer>,
    auditor: Arc<coffer_audit::Auditor>,
    dir: PathBuf,
    listen: SocketAddr,
    root: Option<String>,
}

/// How to start a server.
pub enum Mode<'a> {
    /// As `coffer server --dev`: initialised with one key share and
    /// unsealed; [`Server::root_token`] is the dev root token.
    Dev,
    /// As `coffer server --config FILE` with this TOML (`data_dir` is
    /// added): not initialised.
    Config(&'a str),
}

impl Server {
    /// Starts a node with its data in `dir/data`.
    pub fn start(dir: &Path, mode: Mode<'_>) -> Server {
        Self::start_tuned(dir, mode, |_| {})
    }

    /// Starts a node as [`Server::start`] does, with its core's options
    /// changed by `tune` first.
    pub fn start_tuned(dir: &Path, mode: Mode<'_>, tune: impl FnOnce(&mut CoreOptions)) -> Server {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let extra = match mode {
            Mode::Dev => "",
            Mode::Config(extra) => extra,
        };
        let config = ServerConfig::parse(&format!(
            "data_dir = {:?}\n{extra}\n",
            data.display().to_string()
        ))
        .unwrap_or_else(|e| panic!("bad test configuration: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = coffer_store::SqliteStore::open(&data.join("coffer.db")).unwrap();
        let mut options = CoreOptions {
            max_value_bytes: config.max_value_bytes,
            key_max_encryptions: config.key_max_encryptions,
            ..CoreOptions::default()
        };
        tune(&mut options);
        // As the node does: every storage call timed in the node's metrics.
        let metrics = Arc::new(coffer_server::metrics::Metrics::new());
        let store = metrics.metered(Arc::new(store));
        let coffer = Arc::new(rt.block_on(Coffer::open(store, options)).unwrap());
        let mut root = None;
        if matches!(mode, Mode::Dev) {
            rt.block_on(async {
                let init = coffer.init(1, 1).await.unwrap();
                coffer
                    .unseal(init.unseal_keys[0].expose_secret())
                    .await
                    .unwrap();
                root = Some(init.root_token.expose_secret().to_string());
            });
        }
        let key_source = {
            let coffer = coffer.clone();
            Arc::new(move || coffer.audit_key())
        };
        // Alerts go nowhere: webhook delivery is the binary's.
        let (auditor, _alerts) = coffer_audit::Auditor::start(coffer_audit::AuditorConfig {
            sinks: config.audit.sinks(&config.data_dir),
            fsync: config.audit.fsync_policy(),
            rules: config.audit.alerts.clone(),
            key: key_source,
            rotation: config.audit.rotation(),
        })
        .unwrap();
        let auditor = Arc::new(auditor);
        // As `ServerConfig::router_options` derives them for a plain-HTTP
        // listener bound to the configured address.
        let options = RouterOptions {
            hosts: config.host_rules().unwrap(),
            allow_remote_init: config.allow_remote_init,
            login_failures_per_address: config.login_failures_per_address,
            unseal_failures_per_address: config.unseal_failures_per_address,
            ..RouterOptions::new(body_limit_for(config.max_value_bytes), config.listen)
        };
        let state = AppState {
            metrics,
            ..AppState::new(coffer.clone(), auditor.clone())
        };
        let app = router(state, options);
        Server {
            rt,
            app,
            coffer,
            auditor,
            dir: dir.to_path_buf(),
            listen: config.listen,
            root,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The audit log file.
    pub fn audit_log(&self) -> PathBuf {
        self.data_dir().join(coffer_server::DEFAULT_AUDIT_FILE)
    }

    /// The node's core (for what only a test does: writing a record as
    /// an older version stored it, running a future on the node's runtime).
    pub fn coffer(&self) -> &Arc<Coffer> {
        &self.coffer
    }

    /// Runs `f` on the node's runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The dev root token.
    pub fn root_token(&self) -> String {
        self.root.clone().expect("a dev server has a root token")
    }

    /// `host:port`.
    pub fn host_port(&self) -> String {
        self.listen.to_string()
    }

    /// A request with a bearer token and a JSON body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Response {
        self.request(method, path, token, body, &[])
    }

    /// A request as a client sends it: `Host` naming the listen address
    /// (unless `headers` has one), the token as `Authorization: Bearer`,
    /// a body with its `Content-Length` and a JSON `Content-Type` (unless
    /// `headers` has them), then `headers`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Response {
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let mut req = Request::builder().method(method).uri(path);
        if !has("host") {
            req = req.header("host", self.host_port());
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            if !has("content-length") {
                req = req.header("content-length", b.len());
            }
            if !has("content-type") {
                req = req.header("content-type", "application/json");
            }
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body.map(|b| Body::from(b.to_vec())).unwrap_or_default();
        self.send(req.body(body).unwrap())
    }

    /// Sends `req` as it is, from this machine's loopback address (unless
    /// it carries a [`Peer`] already), and reads the whole answer.
    pub fn send(&self, mut req: Request<Body>) -> Response {
        if req.extensions().get::<Peer>().is_none() {
            let mut peer = Peer::new(PEER.parse().unwrap());
            peer.local = Some(self.listen);
            req.extensions_mut().insert(peer);
        }
        let app = self.app.clone();
        self.rt.block_on(async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            Response {
                status,
                headers,
                body: body.to_vec(),
            }
        })
    }

    /// Every record of the audit log so far. The response to a request
    /// leaves only once a sink has its record, so a request's record is
    /// here when its answer has arrived.
    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        records(&self.audit_log())
    }

    /// The audit log file as it is on disk.
    pub fn audit_log_text(&self) -> String {
        std::fs::read_to_string(self.audit_log()).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // As the server stops: the audit log's queue, closing notice and
        // head files, then the store.
        self.auditor.close();
        let _ = self.rt.block_on(self.coffer.close());
    }
}

/// The records of an audit log file.
fn records(file: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// Asserts a 2xx answer and returns its JSON body (`null` when empty).
pub fn ok(r: &Response, what: &str) -> serde_json::Value {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
    if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        r.json()
    }
}
