//! Accepting connections: plain HTTP on loopback, TLS (rustls, TLS 1.2 and
//! 1.3 only) everywhere else, HTTP/1.1 and HTTP/2, and graceful shutdown that
//! stops accepting, lets requests in flight finish, then returns.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The other end of a connection, as each of its requests sees it (a
/// request extension). Forwarding headers are not trusted, so behind a
/// proxy this is the proxy.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// The peer's address.
    pub(crate) addr: SocketAddr,
    /// Its IP address as audit records write it (IPv4-mapped IPv6
    /// addresses as IPv4), formatted once per connection rather than once
    /// per request.
    pub(crate) source: Arc<str>,
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            source: addr.ip().to_canonical().to_string().into(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without TLS.
    #[error(
        "refusing to listen on {0} without TLS: configure [tls] cert_file and key_file, or listen on a loopback address"
    )]
    TlsRequired(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key could not be loaded.
    #[error("TLS configuration error: {0}")]
    Tls(String),
}

/// TLS certificate and key files (PEM).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// A bound listener, ready to serve.
pub struct BoundListener {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    addr: SocketAddr,
}

impl BoundListener {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Binds `addr`, refusing a non-loopback address without TLS.
pub async fn bind(addr: SocketAddr, tls: Option<&TlsFiles>) -> Result<BoundListener, ServeError> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::TlsRequired(addr));
    }
    let acceptor = tls.map(load_tls).transpose()?.map(TlsAcceptor::from);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok(BoundListener {
        listener,
        tls: acceptor,
        addr,
    })
}

fn load_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(std::io::BufReader::new)
            .map_err(|e| ServeError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut open(&files.cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.cert_file.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{} contains no certificate",
            files.cert_file.display()
        )));
    }
    warn_if_readable_by_others(&files.key_file);
    let key = rustls_pemfile::private_key(&mut open(&files.key_file)?)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.key_file.display())))?
        .ok_or_else(|| {
            ServeError::Tls(format!(
                "{} contains no private key",
                files.key_file.display()
            ))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "TLS private key is readable by group or others; chmod 600 it"
        );
    }
}

/// Serves `app` until `shutdown` completes, then waits up to `grace` for
/// requests in flight to finish.
///
/// Thread per core: this task only accepts connections and hands them out
/// round-robin to one single-threaded runtime per core, which serves each
/// connection from start to end. A request's work then never migrates
/// between cores (no cross-core wake-ups, no shared run queue), which is
/// where a multi-threaded work-stealing runtime spends much of its time on
/// short requests. Shared state (`Coffer`) is already safe across threads.
pub async fn serve(
    bound: BoundListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let BoundListener { listener, tls, .. } = bound;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut queues = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        queues.push(tx);
        let (app, tls, stop) = (app.clone(), tls.clone(), stop_rx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("coffer-http-{i}"))
            .spawn(move || worker(rx, app, tls, stop, grace));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "cannot start an HTTP worker thread"),
        }
    }
    if threads.is_empty() {
        return;
    }
    tokio::pin!(shutdown);
    let mut next = 0usize;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Moving a socket between runtimes goes through the std type.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let _ = queues[next % queues.len()].send((stream, peer));
        next = next.wrapping_add(1);
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    let _ = stop_tx.send(true);
    drop(queues);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
}

type Handoff = (std::net::TcpStream, SocketAddr);

/// One core's runtime: serves the connections handed to it until told to
/// stop, then gives those in flight up to `grace` to finish.
fn worker(
    mut connections: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
    app: Router,
    tls: Option<TlsAcceptor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start an HTTP worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // Slow-loris protection: a client gets this long to send its headers.
            .header_read_timeout(Duration::from_secs(30));
        loop {
            let (stream, peer) = tokio::select! {
                handed = connections.recv() => match handed {
                    Some(h) => h,
                    None => break,
                },
                _ = stop.changed() => break,
            };
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let peer_ext = Peer::new(peer);
            let svc = app
                .clone()
                .map_request(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(peer_ext.clone());
                    req
                });
            let svc = TowerToHyperService::new(svc);
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = tls.clone();
            tokio::spawn(async move {
                let result = match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        let stream = match tokio::time::timeout(
                            Duration::from_secs(10),
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        watcher.watch(conn.into_owned()).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "requests still in flight after the grace period; closing anyway"
            );
        }
    });
}
