//! A running coffer node: the store, the core, the audit log with its
//! alert delivery, the background jobs and the HTTP listener, started in
//! order by [`Node::start`] and stopped in the reverse order by
//! [`Node::shutdown`].
//!
//! `coffer server` is this plus logging and signals; a test or an
//! embedding program starts a node the same way, in its own process.

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffer_audit::Auditor;
use coffer_core::{Coffer, CoreError, CoreOptions};
use coffer_store::{PostgresOptions, PostgresStore, SqliteStore, Storage, StoreError};
use tokio::task::JoinHandle;

use crate::config::{ServerConfig, StorageConfig};
use crate::jobs::Jobs;
use crate::serve::ServeError;
use crate::webhook::{SigningKeyError, Webhooks};
use crate::{AppState, dev};

/// The SQLite store's file, in the data directory.
pub const DB_FILE: &str = "coffer.db";
/// The lock file a SQLite node holds in the data directory.
pub const LOCK_FILE: &str = "coffer.lock";

/// How long a stopping node waits for its last webhook deliveries.
const WEBHOOKS_AT_STOP: Duration = Duration::from_secs(5);

/// How a node starts, beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Dev mode: loopback only; the data directory initialises itself on
    /// first start and unseals itself on every start (see
    /// [`dev::ROOT_TOKEN_FILE`]).
    pub dev: bool,
    /// SIGHUP rotates the audit log files. For a process's own server: a
    /// node started inside another program leaves its signals alone.
    pub rotate_audit_on_hangup: bool,
}

/// Why a node could not start or stop cleanly. Messages name files and
/// addresses (a storage URL without its credentials), never a key, a
/// token or a value.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A setting the node cannot start with.
    #[error("{0}")]
    Config(String),
    /// The webhook signing key could not be loaded.
    #[error(transparent)]
    WebhookKey(SigningKeyError),
    /// Another server holds the data directory's lock.
    #[error("another coffer server is already using {}; stop it first", .0.display())]
    Locked(PathBuf),
    /// A file or directory of the node's could not be used.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done ("cannot open").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file the node writes is something else where it should be: a
    /// device, a pipe, a directory, or a link to one (which renaming the
    /// file over would silently replace).
    #[error(
        "{} is not a regular file (a device, a pipe, a directory, or a link to one): nothing written; to write to standard output, leave out --out",
        .0.display()
    )]
    NotRegularFile(PathBuf),
    /// The store could not be opened.
    #[error("cannot open the store at {shown}")]
    Store {
        /// Where, as logs may show it (no password).
        shown: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The core failed (opening, or dev mode's init and unseal).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Dev mode found a coffer in its directory without the unseal key.
    #[error(
        "{} holds a coffer but its dev unseal key {} cannot be read ({error}); \
                 it was not created by `coffer server --dev`, or the key file was removed",
        dir.display(),
        key_file.display()
    )]
    DevKey {
        /// The data directory.
        dir: PathBuf,
        /// The key's file.
        key_file: PathBuf,
        /// Why it cannot be read.
        error: std::io::Error,
    },
    /// No audit sink could be opened.
    #[error("cannot start the audit log: {0}")]
    Audit(coffer_audit::StartError),
    /// The listener could not be bound.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The store could not be flushed and closed on shutdown.
    #[error("flushing the store on shutdown")]
    Close(#[source] CoreError),
}

impl NodeError {
    /// Whether the configuration (or the command line that made it) is at
    /// fault, rather than the machine or the store.
    pub fn is_config(&self) -> bool {
        matches!(self, NodeError::Config(_) | NodeError::WebhookKey(_))
    }
}

/// Holds the SQLite data directory's lock for as long as it lives.
#[derive(Debug)]
pub struct DataDirLock(#[allow(dead_code, reason = "held, never read")] std::fs::File);

/// A running node. Stop it with [`Node::shutdown`].
///
/// A node dropped without `shutdown` still stops, in the background and in
/// the same order: its listener closes (requests in flight get the grace
/// period), its jobs end, its audit log is closed, the last alerts get
/// their try at the webhooks, the store is flushed and closed, and only
/// then is the data directory's lock let go.
pub struct Node {
    coffer: Arc<Coffer>,
    auditor: Arc<Auditor>,
    local_addr: SocketAddr,
    tls: bool,
    audit_files: Vec<PathBuf>,
    /// What `shutdown` stops; `None` once it has.
    running: Option<Running>,
}

/// The parts of a node that run on their own.
struct Running {
    /// Tells the node to stop (dropped, too).
    stop: tokio::sync::oneshot::Sender<()>,
    /// The listener, then the stop in order ([`run`]): it ends once the
    /// node has stopped and let the data directory's lock go.
    task: JoinHandle<Result<(), NodeError>>,
}

/// What [`run`] stops, in order, after the listener.
struct Parts {
    /// The loopback metrics listener, if configured.
    metrics_listener: Option<JoinHandle<()>>,
    jobs: Jobs,
    auditor: Arc<Auditor>,
    webhooks: Webhooks,
    coffer: Arc<Coffer>,
    lock: Option<DataDirLock>,
}

/// Serves until told to stop (or until the node is dropped), then stops
/// the rest in order: requests in flight get the grace period, the
/// background jobs stop, the audit log writes what is queued, its head
/// files and syncs, the last alerts get one more try at the webhooks, the
/// store is flushed and closed, and the data directory's lock goes last.
/// Run as a task of its own, so a node dropped, or a shutdown cut short,
/// stops in the same order.
async fn run(
    bound: crate::BoundListener,
    app: axum::Router,
    stopped: tokio::sync::oneshot::Receiver<()>,
    options: crate::ServeOptions,
    parts: Parts,
) -> Result<(), NodeError> {
    let stopped = async move {
        // Sent, or the node dropped: either way the node stops.
        let _ = stopped.await;
    };
    crate::serve(bound, app, stopped, options).await;
    let Parts {
        metrics_listener,
        jobs,
        auditor,
        webhooks,
        coffer,
        lock,
    } = parts;
    if let Some(listener) = metrics_listener {
        listener.abort();
    }
    jobs.stop();
    // Write what is queued, the head files, and sync.
    let _ = tokio::task::spawn_blocking(move || auditor.close()).await;
    // The last alerts (the closing ones among them) and those waiting for a
    // retry get one more try.
    webhooks.finish(WEBHOOKS_AT_STOP).await;
    coffer.close().await.map_err(NodeError::Close)?;
    drop(lock);
    tracing::info!("coffer stopped");
    Ok(())
}

impl Node {
    /// Opens the store (SQLite in `data_dir`, holding its lock, or
    /// PostgreSQL) and the core, bootstraps dev mode, starts the audit log
    /// and its alert delivery to the webhooks, binds the listener, starts
    /// the background jobs and serves, until [`Node::shutdown`].
    pub async fn start(config: ServerConfig, options: NodeOptions) -> Result<Node, NodeError> {
        let webhook_key = crate::webhook::signing_key(config.audit.webhook_secret_file.as_deref())
            .map_err(NodeError::WebhookKey)?;
        if webhook_key.is_none() && !config.audit.webhooks.is_empty() {
            tracing::warn!(
                "alerts go to the webhooks unsigned: set audit.webhook_secret_file (or COFFER_WEBHOOK_SECRET) so receivers can tell them from forgeries"
            );
        }
        if options.dev && !config.listen.ip().is_loopback() {
            return Err(NodeError::Config(format!(
                "dev mode listens on loopback only; {} is not a loopback address",
                config.listen
            )));
        }

        create_private_dir(&config.data_dir)?;
        let (store, lock) = open_store(&config.storage, &config.data_dir).await?;
        // Every storage call is timed from here on, the core's and the
        // background jobs' alike.
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let store = metrics.metered(store);
        let coffer = Arc::new(
            Coffer::open(
                store,
                CoreOptions {
                    max_value_bytes: config.max_value_bytes,
                    key_max_encryptions: config.key_max_encryptions,
                    ..CoreOptions::default()
                },
            )
            .await?,
        );
        if options.dev {
            dev::bootstrap(&coffer, &config.data_dir).await?;
        }

        let sinks = config.audit.sinks(&config.data_dir);
        let audit_files: Vec<PathBuf> = sinks
            .iter()
            .filter_map(|s| match s {
                coffer_audit::SinkSpec::File(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        let key_source = {
            let coffer = coffer.clone();
            Arc::new(move || coffer.audit_key())
        };
        let (auditor, alerts) = Auditor::start(coffer_audit::AuditorConfig {
            sinks,
            fsync: config.audit.fsync_policy(),
            rules: config.audit.alerts.clone(),
            key: key_source,
            rotation: config.audit.rotation(),
        })
        .map_err(NodeError::Audit)?;
        let auditor = Arc::new(auditor);

        let bound = crate::bind(config.listen, config.tls.as_ref()).await?;
        let (local_addr, tls) = (bound.local_addr(), bound.is_tls());
        let router_options = config.router_options(&bound).map_err(NodeError::Config)?;
        let state = AppState {
            metrics,
            ..AppState::new(coffer.clone(), auditor.clone())
        };
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(crate::metrics::serve_loopback(addr, state.clone()).await?),
            None => None,
        };
        let metrics = state.metrics.clone();
        let app = crate::router(state, router_options);
        let webhooks = crate::webhook::start(
            alerts,
            config.audit.webhooks.clone(),
            webhook_key,
            metrics.clone(),
        );
        let jobs = Jobs::start(
            &coffer,
            &auditor,
            Duration::from_secs(config.sweep_interval_secs.max(1)),
            Duration::from_secs(config.lifecycle_interval_secs.max(1)),
            options.rotate_audit_on_hangup,
            &metrics,
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let parts = Parts {
            metrics_listener,
            jobs,
            auditor: auditor.clone(),
            webhooks,
            coffer: coffer.clone(),
            lock,
        };
        let task = tokio::spawn(run(bound, app, stopped, config.serve_options(), parts));
        Ok(Node {
            coffer,
            auditor,
            local_addr,
            tls,
            audit_files,
            running: Some(Running { stop, task }),
        })
    }

    /// The core this node serves.
    pub fn coffer(&self) -> &Arc<Coffer> {
        &self.coffer
    }

    /// The audit log this node records to.
    pub fn auditor(&self) -> &Arc<Auditor> {
        &self.auditor
    }

    /// The address the listener is bound to (with its real port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the listener serves TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The URL clients reach this node at: `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The audit log files records are written to.
    pub fn audit_files(&self) -> &[PathBuf] {
        &self.audit_files
    }

    /// Stops the node: new connections are refused and requests in flight
    /// get the configured grace period; then the background jobs stop, the
    /// audit log writes what is queued, its head files and syncs, the last
    /// alerts get one more try at the webhooks, and the store is flushed
    /// and closed (releasing the data directory's lock last).
    ///
    /// The node stops in that order even if this is cut short (or the node
    /// is dropped): the rest happens in the background.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let Some(Running { stop, task }) = self.running.take() else {
            return Ok(());
        };
        let _ = stop.send(());
        match task.await {
            Ok(stopped) => stopped,
            Err(e) => {
                tracing::error!(error = %e, "the node's task failed");
                // Whatever it did not get to, the audit log is closed.
                let closing = self.auditor.clone();
                let _ = tokio::task::spawn_blocking(move || closing.close()).await;
                Ok(())
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Dropping `stop` stops the node, in the background, in the order
        // `shutdown` does.
        self.running.take();
    }
}

/// Opens the configured store. SQLite also takes the data directory's lock,
/// held as long as the returned [`DataDirLock`]: a second server on the
/// same file would serve from its own, stale cache. PostgreSQL is shared by
/// design. The PostgreSQL password comes from `COFFER_STORAGE_PASSWORD`,
/// `storage.password_file` or the URL, in that order.
pub async fn open_store(
    storage: &StorageConfig,
    data_dir: &Path,
) -> Result<(Arc<dyn Storage>, Option<DataDirLock>), NodeError> {
    if storage.is_postgres() {
        let url = storage.url.clone().unwrap_or_default();
        let password = match (
            &storage.password_file,
            std::env::var("COFFER_STORAGE_PASSWORD"),
        ) {
            (_, Ok(p)) if !p.is_empty() => Some(p),
            (Some(file), _) => Some(
                std::fs::read_to_string(file)
                    .map_err(|source| NodeError::Io {
                        action: "cannot read storage.password_file",
                        path: file.clone(),
                        source,
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            _ => None,
        };
        let shown = coffer_store::postgres::redact_url(&url);
        let store = PostgresStore::connect(&PostgresOptions {
            url,
            password,
            pool_size: storage.pool_size.unwrap_or(16),
        })
        .await
        .map_err(|source| NodeError::Store {
            shown: shown.clone(),
            source,
        })?;
        tracing::info!(storage = %shown, "using PostgreSQL storage");
        return Ok((Arc::new(store), None));
    }
    let lock = lock_data_dir(data_dir)?;
    let db = data_dir.join(DB_FILE);
    let store = SqliteStore::open(&db).map_err(|source| NodeError::Store {
        shown: db.display().to_string(),
        source,
    })?;
    Ok((Arc::new(store), Some(lock)))
}

/// Creates `dir` (and missing parents) accessible by its owner only; its
/// mode is set through a handle opened without following a symbolic link.
/// A directory that exists is left as it is.
fn create_private_dir(dir: &Path) -> Result<(), NodeError> {
    use std::os::unix::fs::PermissionsExt;
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let failed = |action| {
        move |source| NodeError::Io {
            action,
            path: dir.to_path_buf(),
            source,
        }
    };
    // Every directory created on the way is 0700, not only the last.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed("cannot create"))?;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::DIRECTORY;
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(dir)
        .map_err(failed("cannot open"))?;
    handle
        .set_permissions(std::fs::Permissions::from_mode(0o700))
        .map_err(failed("cannot set the mode of"))
}

/// Takes an exclusive lock on `DIR/coffer.lock`, or explains who holds it.
fn lock_data_dir(dir: &Path) -> Result<DataDirLock, NodeError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A link planted at the lock's name is refused, not followed.
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|source| NodeError::Io {
            action: "cannot open",
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(NodeError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(NodeError::Io {
            action: "cannot lock",
            path,
            source,
        }),
    }
}
