//! Accepting connections: plain HTTP on loopback, TLS (rustls, TLS 1.2 and
//! 1.3 only) everywhere else, HTTP/1.1 and HTTP/2, and graceful shutdown that
//! stops accepting, lets requests in flight finish, then returns.
//!
//! Connections are held only while they are used: a connection must deliver
//! each request's headers within the idle timeout (counted from its start,
//! or from the end of its previous response), each request body within the
//! body timeout, and one source may hold only so many connections at once.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The other end of a connection, as each of its requests sees it (a
/// request extension). Forwarding headers are not trusted, so behind a
/// proxy this is the proxy.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The peer's address.
    pub(crate) addr: SocketAddr,
    /// Its IP address as audit records write it (IPv4-mapped IPv6
    /// addresses as IPv4), formatted once per connection rather than once
    /// per request.
    pub(crate) source: Arc<str>,
    /// The local address the connection arrived at.
    pub local: Option<SocketAddr>,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            source: addr.ip().to_canonical().to_string().into(),
            local: None,
        }
    }

    /// Whether the peer is this machine: a loopback address, or the very
    /// address the connection arrived at (a TCP handshake cannot be
    /// completed from elsewhere with that source address).
    pub(crate) fn is_this_machine(&self) -> bool {
        let ip = self.addr.ip().to_canonical();
        ip.is_loopback() || self.local.is_some_and(|l| l.ip().to_canonical() == ip)
    }
}

/// Largest HTTP/1 request head (and read buffer) a connection may use.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// How long connections may take and how many one source may hold.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// How long a connection may take to deliver a request's headers,
    /// counted from its start (TLS handshake included) or from the end of
    /// its previous response; an idle connection is closed after it, and so
    /// is one that has not read any of a response for that long.
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive, counted from the end
    /// of its headers; a slower body is cut off with 408.
    pub body_timeout: Duration,
    /// Connections one source (an IPv4 address, an IPv6 /64) may hold at
    /// once; further ones are closed as soon as they are accepted.
    pub max_connections_per_address: usize,
    /// How long requests in flight may take to finish on shutdown.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections_per_address: 256,
            grace: Duration::from_secs(30),
        }
    }
}

/// Set (in the request's extensions) when its body was cut off for taking
/// longer than the body timeout, so the answer can say so (408).
#[derive(Clone, Default)]
pub(crate) struct BodyTimedOut(pub(crate) Arc<AtomicBool>);

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

/// The error of a body cut off by its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimeout;

impl HttpBody for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(Box::new(BodyTimeout))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a connection is doing, for its idle timer.
struct Activity {
    in_flight: AtomicUsize,
    /// When the connection last became idle (its start, or the end of its
    /// last response).
    idle_since: Mutex<Instant>,
    /// Responses whose bodies are being sent.
    sending: AtomicUsize,
    /// Of those, the ones waiting for their next piece from the server
    /// (a backup being read from storage): not the client's doing.
    producing: AtomicUsize,
    /// When a response body last moved: its start, or the last frame the
    /// connection took from it. A client that does not read (an HTTP/2
    /// window left shut, a full TCP buffer) stops this clock.
    progress: Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            sending: AtomicUsize::new(0),
            producing: AtomicUsize::new(0),
            progress: Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn moved(&self) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn start_sending(self: &Arc<Self>) -> Sending {
        self.moved();
        self.sending.fetch_add(1, Ordering::AcqRel);
        Sending {
            activity: self.clone(),
            producing: false,
        }
    }
}

/// A response body being sent, until it is done or dropped.
struct Sending {
    activity: Arc<Activity>,
    /// Whether its last poll found nothing ready on the server's side.
    producing: bool,
}

impl Sending {
    fn polled(&mut self, ready: bool) {
        if ready {
            self.activity.moved();
        }
        if self.producing == ready {
            // Pending -> Ready or Ready -> Pending.
            self.producing = !ready;
            if ready {
                self.activity.producing.fetch_sub(1, Ordering::AcqRel);
            } else {
                self.activity.producing.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        if self.producing {
            self.activity.producing.fetch_sub(1, Ordering::AcqRel);
        }
        self.activity.sending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request in flight on a connection, until its response body is done.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight, and
/// notes each frame the connection takes from it.
struct TrackedBody {
    inner: Body,
    sending: Sending,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.sending.polled(polled.is_ready());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Completes once the connection has been idle (no request in flight) for
/// `idle`, or a response it is sending has not moved for `idle` (the
/// client stopped reading: without this, an HTTP/2 client that never opens
/// its flow-control window, or one that stops reading a streamed backup,
/// would hold the connection for ever).
async fn idle_for(activity: Arc<Activity>, idle: Duration) {
    loop {
        // In-flight first: a request ending stamps its end before it stops
        // counting, so a zero read here is followed by a fresh stamp.
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            let sending = activity.sending.load(Ordering::Acquire);
            if sending <= activity.producing.load(Ordering::Acquire) {
                // Still being handled (or its body read, which the body
                // timeout bounds), or its answer is waiting on the server.
                tokio::time::sleep(idle).await;
                continue;
            }
            let moved = *activity.progress.lock().unwrap_or_else(|p| p.into_inner());
            let deadline = moved + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
            continue;
        }
        let since = *activity
            .idle_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let deadline = since + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
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
    leaf: Option<rustls::pki_types::CertificateDer<'static>>,
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

    /// The TLS certificate (the leaf), if connections use TLS.
    pub fn certificate(&self) -> Option<&rustls::pki_types::CertificateDer<'static>> {
        self.leaf.as_ref()
    }
}

/// Binds `addr`, refusing a non-loopback address without TLS.
pub async fn bind(addr: SocketAddr, tls: Option<&TlsFiles>) -> Result<BoundListener, ServeError> {
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::TlsRequired(addr));
    }
    let (acceptor, leaf) = match tls.map(load_tls).transpose()? {
        Some((config, leaf)) => (Some(TlsAcceptor::from(config)), Some(leaf)),
        None => (None, None),
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok(BoundListener {
        listener,
        tls: acceptor,
        leaf,
        addr,
    })
}

type LoadedTls = (
    Arc<rustls::ServerConfig>,
    rustls::pki_types::CertificateDer<'static>,
);

fn load_tls(files: &TlsFiles) -> Result<LoadedTls, ServeError> {
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
    let leaf = certs[0].clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), leaf))
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

/// Serves `app` until `shutdown` completes, then waits up to
/// `options.grace` for requests in flight to finish.
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
    options: ServeOptions,
) {
    let BoundListener { listener, tls, .. } = bound;
    let limit = crate::throttle::ConnectionLimit::new(options.max_connections_per_address);
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
            .spawn(move || worker(rx, app, tls, stop, options));
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
        let Some(slot) = limit.acquire(peer.ip()) else {
            // Closed at once: the source already holds its share.
            tracing::debug!(%peer, "connection refused: too many from this address");
            drop(stream);
            continue;
        };
        // Moving a socket between runtimes goes through the std type.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let _ = queues[next % queues.len()].send((stream, peer, slot));
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

type Handoff = (
    std::net::TcpStream,
    SocketAddr,
    crate::throttle::ConnectionSlot,
);

/// One core's runtime: serves the connections handed to it until told to
/// stop, then gives those in flight up to `grace` to finish.
fn worker(
    mut connections: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
    app: Router,
    tls: Option<TlsAcceptor>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    options: ServeOptions,
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
            // Slow-loris protection: a client gets this long to send its
            // headers (the idle timer below covers HTTP/2 and the time
            // before the protocol is known).
            .header_read_timeout(options.idle_timeout)
            // A request head (line and headers) larger than this is refused
            // (431) rather than buffered: hyper's default is about 400 KiB
            // per connection. HTTP/2 already caps header lists at 16 KiB.
            .max_buf_size(MAX_REQUEST_HEAD);
        loop {
            let (stream, peer, slot) = tokio::select! {
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
            let local = stream.local_addr().ok();
            let (app, builder, watcher, tls) = (
                app.clone(),
                builder.clone(),
                graceful.watcher(),
                tls.clone(),
            );
            tokio::spawn(async move {
                let _slot = slot;
                let activity = Arc::new(Activity::new());
                let idle = idle_for(activity.clone(), options.idle_timeout);
                let service = || {
                    let mut peer_ext = Peer::new(peer);
                    peer_ext.local = local;
                    let activity = activity.clone();
                    let body_timeout = options.body_timeout;
                    let svc = tower::service_fn(move |req: hyper::Request<Incoming>| {
                        let in_flight = activity.begin();
                        // A request whose body has already ended (a GET,
                        // most reads) has nothing to time out: no timer,
                        // no wrapper, on the hot path.
                        let mut req = if req.body().is_end_stream() {
                            req.map(Body::new)
                        } else {
                            let timed_out = BodyTimedOut::default();
                            let mut req = req.map(|inner| {
                                Body::new(DeadlineBody {
                                    inner,
                                    sleep: Box::pin(tokio::time::sleep(body_timeout)),
                                    timed_out: timed_out.0.clone(),
                                })
                            });
                            req.extensions_mut().insert(timed_out);
                            req
                        };
                        req.extensions_mut().insert(peer_ext.clone());
                        let call = app.clone().oneshot(req);
                        let activity = activity.clone();
                        async move {
                            let resp = call.await?;
                            Ok::<_, std::convert::Infallible>(resp.map(|inner| {
                                Body::new(TrackedBody {
                                    inner,
                                    sending: activity.start_sending(),
                                    _in_flight: in_flight,
                                })
                            }))
                        }
                    });
                    TowerToHyperService::new(svc)
                };
                let work = async {
                    match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service());
                            watcher.watch(conn.into_owned()).await
                        }
                        Some(acceptor) => {
                            // The handshake is part of the idle time, and
                            // gets at most 10 s of it.
                            let handshake = tokio::time::timeout(
                                options.idle_timeout.min(Duration::from_secs(10)),
                                acceptor.accept(stream),
                            );
                            let stream = match handshake.await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return Ok(());
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return Ok(());
                                }
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), service());
                            watcher.watch(conn.into_owned()).await
                        }
                    }
                };
                let result = tokio::select! {
                    r = work => r,
                    () = idle => {
                        tracing::debug!(%peer, "idle or stalled connection closed");
                        Ok(())
                    }
                };
                if let Err(e) = result {
                    // A request hyper refused itself (a malformed request
                    // line or header, a head over the limit) never reaches
                    // the router, so it has no audit record: note it here.
                    // Only the kind is logged, never the request's bytes.
                    match e.downcast_ref::<hyper::Error>() {
                        Some(h) if h.is_parse_too_large() => tracing::info!(
                            %peer,
                            "request refused before routing: its head is too large (431)"
                        ),
                        Some(h) if h.is_parse() => tracing::info!(
                            %peer,
                            "request refused before routing: malformed HTTP (400)"
                        ),
                        _ => tracing::debug!(%peer, error = %e, "connection ended with an error"),
                    }
                }
            });
        }
        if tokio::time::timeout(options.grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace = ?options.grace,
                "requests still in flight after the grace period; closing anyway"
            );
        }
    });
}
