//! The PostgreSQL backend: several coffer nodes share one database.
//!
//! Behaviour matches the SQLite backend (one conformance suite runs against
//! both). Every commit is one PostgreSQL transaction from a connection pool;
//! check-and-set conditions are evaluated inside it under row locks
//! (`SELECT ... FOR UPDATE`) or unique constraints, so writers on different
//! nodes never lose an update silently. Token-tree changes (creating a child
//! token, revoking a tree) also take a transaction-level advisory lock, so a
//! token cannot be created from one whose revocation is committing.
//!
//! **Changes across nodes.** Each commit also appends what it changed (paths,
//! "tokens", object and system keys; never bytes) to a `changes` table,
//! stamped with its transaction id. [`Storage::sync`] reads the rows from
//! transactions this node may not have seen yet: everything from
//! transactions newer than the oldest one that was still running at the
//! previous read (its snapshot's `xmin`). A transaction that commits late
//! with an old id is therefore still found, and a change is taken once (row
//! ids already seen are skipped). Concurrent callers share one read that
//! started after they called, so a change committed before a request arrived
//! is always applied before that request is answered.
//!
//! **Background jobs** run on the node that holds a session-level advisory
//! lock on a connection of its own; PostgreSQL releases it when that
//! connection ends, including when the node is killed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{Mutex as AsyncMutex, Notify, mpsc, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::model::{
    LevelScan, compromise_columns, compromise_from, prefix_upper_bound, state_columns,
    token_from_parts,
};
use crate::{
    Change, Expect, Exported, ListEntry, ListPage, ListQuery, Mutation, Result, RevokeScope,
    SecretMeta, Storage, StoreError, StoredObject, TokenRecord, VersionRecord, VersionState,
    VersionStateChange,
};

/// Schema migrations, applied in order under an advisory lock (so nodes
/// starting together do not race); `coffer_schema` records how many ran.
/// Never edit a migration that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the same shape as the SQLite schema. Text keys compare in byte
    // order (COLLATE "C"), as listings and pagination require.
    r#"CREATE TABLE system (
         key   TEXT COLLATE "C" PRIMARY KEY,
         value BYTEA NOT NULL
     );
     CREATE TABLE secrets (
         path            TEXT COLLATE "C" PRIMARY KEY,
         current_version BIGINT NOT NULL,
         live            BOOLEAN NOT NULL,
         created_at      BIGINT NOT NULL,
         updated_at      BIGINT NOT NULL
     );
     CREATE TABLE versions (
         path         TEXT COLLATE "C" NOT NULL,
         version      BIGINT NOT NULL,
         created_at   BIGINT NOT NULL,
         created_by   TEXT NOT NULL,
         deleted_at   BIGINT,
         destroyed_at BIGINT,
         key_id       BIGINT NOT NULL,
         ciphertext   BYTEA NOT NULL,
         PRIMARY KEY (path, version)
     );
     CREATE INDEX versions_key ON versions (key_id);
     CREATE TABLE tokens (
         hash       BYTEA PRIMARY KEY,
         accessor   TEXT COLLATE "C" NOT NULL UNIQUE,
         data       TEXT NOT NULL,
         parent     TEXT COLLATE "C",
         owner      TEXT COLLATE "C",
         uses_left  BIGINT,
         expires_at BIGINT
     );
     CREATE INDEX tokens_parent ON tokens (parent);
     CREATE INDEX tokens_owner ON tokens (owner);
     CREATE TABLE objects (
         kind     TEXT COLLATE "C" NOT NULL,
         key      TEXT COLLATE "C" NOT NULL,
         revision BIGINT NOT NULL,
         value    BYTEA NOT NULL,
         PRIMARY KEY (kind, key)
     );
     CREATE TABLE changes (
         id   BIGSERIAL PRIMARY KEY,
         xid  XID8 NOT NULL DEFAULT pg_current_xact_id(),
         node TEXT NOT NULL,
         at   BIGINT NOT NULL,
         kind TEXT NOT NULL,
         key  TEXT NOT NULL
     );
     CREATE INDEX changes_xid ON changes (xid);
     CREATE INDEX changes_at ON changes (at);"#,
    // 2: versions marked compromised (their value leaked), which never
    // become current again (SQLite's migration 4).
    "ALTER TABLE versions ADD COLUMN compromised_at BIGINT;
     ALTER TABLE versions ADD COLUMN compromised_reason TEXT;",
];

/// Advisory lock keys (an arbitrary, fixed namespace for coffer).
const MIGRATION_LOCK: i64 = 0x636f_6666_6572_0001;
const TOKEN_TREE_LOCK: i64 = 0x636f_6666_6572_0002;
const LEADER_LOCK: i64 = 0x636f_6666_6572_0003;

/// More changes than this in one read: forget everything instead.
const MAX_CHANGES_PER_SYNC: i64 = 5_000;
/// Change rows are kept this long (the leader prunes older ones); a node
/// that has not read them for half of it forgets everything instead.
const CHANGES_KEPT_MS: i64 = 60 * 60 * 1000;
/// How long a request waits for the change read before failing.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach PostgreSQL.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...&sslrootcert=FILE]`.
    /// `sslmode` is `disable`, `prefer` (the default: TLS if the server offers
    /// it), `require`, `verify-ca` or `verify-full`; whenever TLS is used the
    /// server certificate is verified (against `sslrootcert`, else the
    /// system's roots) and must name the host.
    pub url: String,
    /// The password, when it is not in the URL (from the environment or a
    /// file; it overrides one in the URL).
    pub password: Option<String>,
    /// Largest number of pooled connections.
    pub pool_size: usize,
}

// Hand-written: the URL may carry a password.
impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Splits a URL into scheme, authority (`USER[:PASSWORD]@HOST...`), path
/// and query.
fn url_parts(url: &str) -> Option<(&str, &str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    Some((scheme, authority, path, query))
}

/// The query with its `password` parameter replaced (`Some`) or dropped.
fn query_without_password(query: &str, replacement: Option<&str>) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| match pair.split_once('=') {
            Some(("password", _)) => replacement.map(|r| format!("password={r}")),
            _ => Some(pair.to_string()),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn join_url(scheme: &str, authority: &str, path: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{scheme}://{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}?{query}")
    }
}

/// The URL with any password (in the user part or a `password` parameter)
/// replaced by `<redacted>`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, authority, path, query)) = url_parts(url) else {
        return "<unparseable url>".into();
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:<redacted>@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    join_url(
        scheme,
        &authority,
        path,
        &query_without_password(query, Some("<redacted>")),
    )
}

/// The URL without user, password or `password` parameter: where to
/// connect, with nobody's credentials.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, authority, path, query)) = url_parts(url) else {
        return url.to_string();
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    join_url(scheme, host, path, &query_without_password(query, None))
}

/// Whether a URL names PostgreSQL.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether the URL carries a password.
pub fn url_has_password(url: &str) -> bool {
    redact_url(url).contains("<redacted>")
}

#[derive(Clone)]
enum Tls {
    Off,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    target: PgTarget,
    /// This process's id in the change log (its own changes are not
    /// applied twice).
    node: String,
    fence: Fence,
    leader: AsyncMutex<Option<Leader>>,
}

struct Leader {
    client: tokio_postgres::Client,
    held: bool,
}

/// Shares change reads between concurrent [`Storage::sync`] callers.
struct Fence {
    /// Reads started so far.
    started: AtomicU64,
    /// The last read finished: its number and whether it worked.
    done: watch::Sender<(u64, bool)>,
    wake: Notify,
    cursor: AsyncMutex<Cursor>,
    pending: std::sync::Mutex<Vec<Change>>,
}

struct Cursor {
    /// Changes of transactions with ids from here on may not have been seen.
    from_xid: u64,
    /// Row ids already taken, with their transaction ids (pruned as
    /// `from_xid` moves on).
    seen: HashMap<i64, u64>,
    /// When the change log was last read.
    last_read: Instant,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend_from(e.to_string(), e)
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict("a record with that key was written concurrently".into())
        }
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StoreError::Conflict("a concurrent writer got there first".into())
        }
        _ => match e.as_db_error() {
            // The message only: the error's DETAIL may quote a stored key.
            Some(db) => StoreError::backend_from(format!("postgres: {}", db.message()), e),
            None => {
                // The causes say what went wrong ("invalid peer certificate:
                // UnknownIssuer"); none of them holds the password.
                let mut message = format!("postgres: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                StoreError::backend_from(message, e)
            }
        },
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => StoreError::backend_from(format!("postgres connection pool: {other}"), other),
    }
}

/// Splits coffer's own URL parameters off and maps the libpq `sslmode`s that
/// tokio-postgres does not know (`verify-ca`, `verify-full`) to `require`:
/// coffer always verifies the certificate when TLS is used.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, Option<PathBuf>)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut root = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslrootcert" => root = Some(PathBuf::from(v)),
            "sslmode" if v == "verify-ca" || v == "verify-full" => {
                kept.push("sslmode=require".to_string())
            }
            _ => kept.push(pair.to_string()),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let config: tokio_postgres::Config = rebuilt.parse().map_err(|e| {
        StoreError::backend_from(
            format!("invalid PostgreSQL URL {}: {e}", redact_url(url)),
            e,
        )
    })?;
    Ok((config, root))
}

fn tls_for(config: &tokio_postgres::Config, root: Option<PathBuf>) -> Result<Tls> {
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        return Ok(Tls::Off);
    }
    let mut roots = rustls::RootCertStore::empty();
    match root {
        Some(path) => {
            let pem = std::fs::read(&path).map_err(|e| {
                StoreError::backend_from(
                    format!("cannot read sslrootcert {}: {e}", path.display()),
                    e,
                )
            })?;
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                let cert = cert.map_err(|e| {
                    StoreError::backend_from(format!("sslrootcert {}: {e}", path.display()), e)
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::backend_from(format!("sslrootcert {}: {e}", path.display()), e)
                })?;
            }
            if roots.is_empty() {
                return Err(StoreError::backend(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(backend)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(
        tls,
    )))
}

/// A PostgreSQL server to connect to: the URL's settings and the TLS that
/// goes with them (see [`PostgresOptions::url`] for the accepted `sslmode`s).
/// Used for coffer's own database and for servers whose roles coffer
/// manages.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    tls: Tls,
}

// Hand-written: the configuration may hold a password.
impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("user", &self.config.get_user())
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Parses a `postgres://` URL and prepares its TLS (reading
    /// `sslrootcert`). Connections time out after 10 s unless the URL says
    /// otherwise.
    pub fn parse(url: &str) -> Result<PgTarget> {
        let (mut config, root) = parse_url(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("coffer");
        let tls = tls_for(&config, root)?;
        Ok(PgTarget { config, tls })
    }

    /// Sets the password (overriding one in the URL).
    pub fn password(&mut self, password: &[u8]) -> &mut PgTarget {
        self.config.password(password);
        self
    }

    /// The user it connects as.
    pub fn user(&self) -> Option<&str> {
        self.config.get_user()
    }

    /// Opens one connection (its driver runs on a spawned task). A
    /// certificate that cannot be verified is refused with a hint.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        fn drive<S, T>(conn: tokio_postgres::Connection<S, T>)
        where
            S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
            T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        {
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "postgres connection ended");
                }
            });
        }
        let client = match &self.tls {
            Tls::Off => {
                let (client, conn) = self.config.connect(NoTls).await.map_err(pg_error)?;
                drive(conn);
                client
            }
            Tls::Rustls(t) => {
                let (client, conn) = self
                    .config
                    .connect(t.clone())
                    .await
                    .map_err(|e| certificate_hint(pg_error(e)))?;
                drive(conn);
                client
            }
        };
        Ok(client)
    }
}

/// Adds how to fix a certificate that failed verification.
fn certificate_hint(e: StoreError) -> StoreError {
    match e {
        StoreError::Backend { message, cause }
            if cause.as_ref().is_some_and(|c| refused_certificate(c.get())) =>
        {
            StoreError::Backend {
                message: format!(
                    "{message} (coffer verifies PostgreSQL's certificate whenever TLS is used: \
                     name the CA with sslrootcert=FILE, or use sslmode=disable on a trusted network)"
                ),
                cause,
            }
        }
        other => other,
    }
}

/// Whether `e`, or an error under it, is rustls refusing the server's
/// certificate. TLS errors reach here inside I/O errors, whose `source`
/// skips the error they wrap: that one is looked into too.
fn refused_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>()
            && matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && refused_certificate(inner)
        {
            return true;
        }
        next = err.source();
    }
    false
}

impl PostgresStore {
    /// Connects, applies pending migrations and starts the change reader.
    pub async fn connect(options: &PostgresOptions) -> Result<PostgresStore> {
        let mut target = PgTarget::parse(&options.url)?;
        if let Some(p) = &options.password {
            target.password(p.as_bytes());
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &target.tls {
            Tls::Off => Manager::from_config(target.config.clone(), NoTls, manager_config),
            Tls::Rustls(t) => {
                Manager::from_config(target.config.clone(), t.clone(), manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .build()
            .map_err(backend)?;
        let node = {
            use rand_core::RngCore;
            let mut b = [0u8; 8];
            rand_core::OsRng.fill_bytes(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        };
        {
            let mut client = pool
                .get()
                .await
                .map_err(|e| certificate_hint(pool_error(e)))?;
            migrate(&mut client).await?;
        }
        let from_xid = {
            let client = pool.get().await.map_err(pool_error)?;
            let row = client
                .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
                .await
                .map_err(pg_error)?;
            parse_xid(row.get(0))?
        };
        let (done, _) = watch::channel((0, true));
        let inner = Arc::new(Inner {
            pool,
            target,
            node,
            fence: Fence {
                started: AtomicU64::new(0),
                done,
                wake: Notify::new(),
                cursor: AsyncMutex::new(Cursor {
                    from_xid,
                    seen: HashMap::new(),
                    last_read: Instant::now(),
                }),
                pending: std::sync::Mutex::new(Vec::new()),
            },
            leader: AsyncMutex::new(None),
        });
        tokio::spawn(change_reader(Arc::downgrade(&inner)));
        Ok(PostgresStore { inner })
    }

    /// Deletes change-log rows older than the retention (the leader calls it).
    pub async fn prune_changes(&self, now_ms: i64) -> Result<u64> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM changes WHERE at < $1",
                &[&(now_ms - CHANGES_KEPT_MS)],
            )
            .await
            .map_err(pg_error)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.inner.pool.get().await.map_err(pool_error)
    }
}

impl Inner {
    async fn connect_one(&self) -> Result<tokio_postgres::Client> {
        self.target.connect().await
    }

    /// Reads the change log once: what other nodes committed in
    /// transactions this node may not have seen.
    async fn read_changes(&self) -> Result<()> {
        let mut cursor = self.fence.cursor.lock().await;
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin)
                 SELECT s.xmin, c.id, c.xid::text, c.kind, c.key
                 FROM s LEFT JOIN (
                     SELECT id, xid, kind, key FROM changes
                     WHERE xid >= $1::text::xid8 AND node <> $2
                     ORDER BY id LIMIT $3
                 ) c ON true",
                &[
                    &cursor.from_xid.to_string(),
                    &self.node,
                    &MAX_CHANGES_PER_SYNC,
                ],
            )
            .await
            .map_err(pg_error)?;
        let stale = cursor.last_read.elapsed() > Duration::from_millis(CHANGES_KEPT_MS as u64 / 2);
        let mut changes = Vec::new();
        let mut new_from = cursor.from_xid;
        let mut reset = stale || rows.len() as i64 >= MAX_CHANGES_PER_SYNC;
        for row in &rows {
            new_from = parse_xid(row.get(0))?;
            let Some(id) = row.get::<_, Option<i64>>(1) else {
                continue;
            };
            if cursor.seen.contains_key(&id) {
                continue;
            }
            let xid = parse_xid(row.get(2))?;
            cursor.seen.insert(id, xid);
            let kind: String = row.get(3);
            let key: String = row.get(4);
            match decode_change(&kind, key) {
                Some(c) => changes.push(c),
                None => reset = true,
            }
        }
        cursor.from_xid = new_from;
        cursor.seen.retain(|_, xid| *xid >= new_from);
        cursor.last_read = Instant::now();
        if reset {
            changes = vec![Change::Reset];
        }
        if !changes.is_empty() {
            let mut pending = self.fence.pending.lock().unwrap_or_else(|p| p.into_inner());
            if reset {
                pending.clear();
            }
            pending.extend(changes);
        }
        Ok(())
    }
}

/// Serves change reads until the store is dropped.
async fn change_reader(inner: Weak<Inner>) {
    loop {
        let notified = match inner.upgrade() {
            Some(i) => {
                // Owned, so that the store is not kept alive while waiting.
                let wake = async move { i.fence.wake.notified().await };
                tokio::time::timeout(Duration::from_secs(5), wake).await
            }
            None => return,
        };
        // Woken now and then only to notice that the store is gone.
        if notified.is_err() {
            continue;
        }
        let Some(i) = inner.upgrade() else { return };
        let round = i.fence.started.fetch_add(1, Ordering::AcqRel) + 1;
        let ok = match i.read_changes().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change log of other nodes");
                false
            }
        };
        i.fence.done.send_replace((round, ok));
    }
}

fn parse_xid(s: &str) -> Result<u64> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unexpected transaction id {s:?}")))
}

fn encode_change(c: &Change) -> (String, String) {
    match c {
        Change::Secret(p) => ("secret".into(), p.clone()),
        Change::Tokens => ("tokens".into(), String::new()),
        Change::Object { kind, key } => (format!("object:{kind}"), key.clone()),
        Change::System(k) => ("system".into(), k.clone()),
        Change::Reset => ("reset".into(), String::new()),
    }
}

fn decode_change(kind: &str, key: String) -> Option<Change> {
    Some(match kind {
        "secret" => Change::Secret(key),
        "tokens" => Change::Tokens,
        "system" => Change::System(key),
        "reset" => Change::Reset,
        k => Change::Object {
            kind: k.strip_prefix("object:")?.to_string(),
            key,
        },
    })
}

async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS coffer_schema (version INTEGER NOT NULL)")
        .await
        .map_err(pg_error)?;
    let current: i64 = match tx
        .query_opt("SELECT version FROM coffer_schema", &[])
        .await
        .map_err(pg_error)?
    {
        Some(r) => i64::from(r.get::<_, i32>(0)),
        None => {
            tx.execute("INSERT INTO coffer_schema (version) VALUES (0)", &[])
                .await
                .map_err(pg_error)?;
            0
        }
    };
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute(
            "UPDATE coffer_schema SET version = $1",
            &[&((i + 1) as i32)],
        )
        .await
        .map_err(pg_error)?;
        tracing::info!(version = i + 1, "applied storage migration");
    }
    tx.commit().await.map_err(pg_error)
}

const VERSION_COLUMNS: &str = "path, version, created_at, created_by, deleted_at, destroyed_at, \
     key_id, ciphertext, compromised_at, compromised_reason";

fn row_to_version(r: &Row) -> Result<VersionRecord> {
    let deleted_at: Option<i64> = r.get(4);
    let destroyed_at: Option<i64> = r.get(5);
    let state = match (deleted_at, destroyed_at) {
        (_, Some(t)) => VersionState::Destroyed(t),
        (Some(t), None) => VersionState::Deleted(t),
        (None, None) => VersionState::Active,
    };
    Ok(VersionRecord {
        path: r.get(0),
        version: r.get::<_, i64>(1) as u64,
        created_at: r.get(2),
        created_by: r.get(3),
        state,
        key_id: u32::try_from(r.get::<_, i64>(6))
            .map_err(|_| StoreError::Corrupt("a key id is out of range".into()))?,
        ciphertext: r.get(7),
        compromised: compromise_from(r.get(8), r.get(9)),
    })
}

/// Inserts a version row (a new version, a copy's or a restore's).
async fn insert_version<C: GenericClient>(tx: &C, v: &VersionRecord) -> Result<()> {
    let (deleted_at, destroyed_at) = state_columns(v.state);
    let (compromised_at, compromised_reason) = compromise_columns(v.compromised.as_ref());
    let insert = tx
        .prepare_cached(
            "INSERT INTO versions (path, version, created_at, created_by, deleted_at,
                                   destroyed_at, key_id, ciphertext, compromised_at,
                                   compromised_reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await
        .map_err(pg_error)?;
    tx.execute(
        &insert,
        &[
            &v.path,
            &(v.version as i64),
            &v.created_at,
            &v.created_by,
            &deleted_at,
            &destroyed_at,
            &i64::from(v.key_id),
            &v.ciphertext,
            &compromised_at,
            &compromised_reason,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

fn row_to_meta(r: &Row) -> SecretMeta {
    SecretMeta {
        path: r.get(0),
        current_version: r.get::<_, i64>(1) as u64,
        live: r.get(2),
        created_at: r.get(3),
        updated_at: r.get(4),
    }
}

fn row_to_object(r: &Row) -> StoredObject {
    StoredObject {
        kind: r.get(0),
        key: r.get(1),
        revision: r.get::<_, i64>(2) as u64,
        value: r.get(3),
    }
}

async fn insert_token<C: GenericClient>(tx: &C, t: &TokenRecord) -> Result<()> {
    let data = serde_json::to_string(t)
        .map_err(|e| StoreError::backend_from(format!("cannot encode token record: {e}"), e))?;
    tx.execute(
        "INSERT INTO tokens (hash, accessor, data, parent, owner, uses_left, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &&t.hash[..],
            &t.accessor,
            &data,
            &t.parent,
            &t.user,
            &t.uses_left.map(|u| u as i64),
            &t.expires_at,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

async fn check_object<C: GenericClient>(
    tx: &C,
    kind: &str,
    key: &str,
    expect: Expect,
) -> Result<u64> {
    let revision = tx
        .query_opt(
            "SELECT revision FROM objects WHERE kind = $1 AND key = $2 FOR UPDATE",
            &[&kind, &key],
        )
        .await
        .map_err(pg_error)?
        .map_or(0, |r| r.get::<_, i64>(0) as u64);
    let ok = match expect {
        Expect::Any => true,
        Expect::Absent => revision == 0,
        Expect::Revision(r) => revision == r,
    };
    if ok {
        Ok(revision)
    } else {
        Err(StoreError::Conflict(format!(
            "{kind} {key} changed concurrently (revision {revision})"
        )))
    }
}

async fn apply<C: GenericClient>(tx: &C, m: &Mutation) -> Result<()> {
    match m {
        Mutation::PutVersion {
            record,
            expected_current,
        } => {
            // Prepared once per connection: a bulk import runs these for
            // every secret of a batch, and an unprepared statement costs a
            // parse and a round trip more each time.
            let select = tx
                .prepare_cached("SELECT current_version FROM secrets WHERE path = $1 FOR UPDATE")
                .await
                .map_err(pg_error)?;
            let current = tx
                .query_opt(&select, &[&record.path])
                .await
                .map_err(pg_error)?
                .map_or(0, |r| r.get::<_, i64>(0) as u64);
            if current != *expected_current || record.version != expected_current + 1 {
                return Err(StoreError::Conflict(format!(
                    "{} is at version {current}, not {expected_current}",
                    record.path
                )));
            }
            insert_version(tx, record).await?;
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO secrets (path, current_version, live, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $4)
                     ON CONFLICT (path) DO UPDATE SET current_version = excluded.current_version,
                         live = excluded.live, updated_at = excluded.updated_at",
                )
                .await
                .map_err(pg_error)?;
            tx.execute(
                &upsert,
                &[
                    &record.path,
                    &(record.version as i64),
                    &(record.state == VersionState::Active),
                    &record.created_at,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        Mutation::SetVersionState {
            path,
            versions,
            change,
            at,
        } => {
            let versions: Vec<i64> = versions.iter().map(|v| *v as i64).collect();
            match change {
                VersionStateChange::Delete(t) => {
                    tx.execute(
                        "UPDATE versions SET deleted_at = $3 WHERE path = $1 AND version = ANY($2)
                           AND deleted_at IS NULL AND destroyed_at IS NULL",
                        &[path, &versions, t],
                    )
                    .await
                }
                VersionStateChange::Undelete => {
                    tx.execute(
                        "UPDATE versions SET deleted_at = NULL WHERE path = $1 AND version = ANY($2)
                           AND destroyed_at IS NULL",
                        &[path, &versions],
                    )
                    .await
                }
                VersionStateChange::Destroy(t) => {
                    tx.execute(
                        "UPDATE versions SET destroyed_at = $3, ciphertext = ''::bytea
                         WHERE path = $1 AND version = ANY($2) AND destroyed_at IS NULL",
                        &[path, &versions, t],
                    )
                    .await
                }
            }
            .map_err(pg_error)?;
            tx.execute(
                "UPDATE secrets SET updated_at = $2, live = COALESCE((
                     SELECT deleted_at IS NULL AND destroyed_at IS NULL FROM versions
                     WHERE versions.path = secrets.path
                       AND versions.version = secrets.current_version), false)
                 WHERE path = $1",
                &[path, at],
            )
            .await
            .map_err(pg_error)?;
        }
        Mutation::DeleteSecret {
            path,
            expected_current,
        } => {
            let current = tx
                .query_opt(
                    "SELECT current_version FROM secrets WHERE path = $1 FOR UPDATE",
                    &[path],
                )
                .await
                .map_err(pg_error)?
                .map(|r| r.get::<_, i64>(0) as u64);
            if current != Some(*expected_current) {
                return Err(StoreError::Conflict(format!(
                    "{path} is at version {}, not {expected_current}",
                    current.unwrap_or(0)
                )));
            }
            tx.execute("DELETE FROM versions WHERE path = $1", &[path])
                .await
                .map_err(pg_error)?;
            tx.execute("DELETE FROM secrets WHERE path = $1", &[path])
                .await
                .map_err(pg_error)?;
        }
        Mutation::MarkCompromised {
            path,
            version,
            mark,
        } => {
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM versions WHERE path = $1 AND version = $2 FOR UPDATE",
                    &[path, &(*version as i64)],
                )
                .await
                .map_err(pg_error)?
                .is_some();
            if !exists {
                return Err(StoreError::Conflict(format!(
                    "{path} has no version {version}"
                )));
            }
            tx.execute(
                "UPDATE versions SET compromised_at = $3, compromised_reason = $4
                 WHERE path = $1 AND version = $2 AND compromised_at IS NULL",
                &[path, &(*version as i64), &mark.at, &mark.reason],
            )
            .await
            .map_err(pg_error)?;
        }
        Mutation::ResealVersion {
            path,
            version,
            expected_key_id,
            key_id,
            ciphertext,
        } => {
            let changed = tx
                .execute(
                    "UPDATE versions SET key_id = $4, ciphertext = $5
                     WHERE path = $1 AND version = $2 AND key_id = $3 AND destroyed_at IS NULL",
                    &[
                        path,
                        &(*version as i64),
                        &i64::from(*expected_key_id),
                        &i64::from(*key_id),
                        ciphertext,
                    ],
                )
                .await
                .map_err(pg_error)?;
            if changed != 1 {
                return Err(StoreError::Conflict(format!(
                    "version {version} of {path} changed before its re-wrap"
                )));
            }
        }
        Mutation::InsertSystem { key, value } => {
            let inserted = tx
                .execute(
                    "INSERT INTO system (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[key, value],
                )
                .await
                .map_err(pg_error)?;
            if inserted != 1 {
                return Err(StoreError::Conflict(format!("{key} already exists")));
            }
        }
        Mutation::ReplaceSystem {
            key,
            expected,
            value,
        } => {
            let changed = tx
                .execute(
                    "UPDATE system SET value = $3 WHERE key = $1 AND value = $2",
                    &[key, expected, value],
                )
                .await
                .map_err(pg_error)?;
            if changed != 1 {
                return Err(StoreError::Conflict(format!("{key} changed concurrently")));
            }
        }
        Mutation::PutSystem { key, value } => {
            tx.execute(
                "INSERT INTO system (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[key, value],
            )
            .await
            .map_err(pg_error)?;
        }
        Mutation::PutToken(record) => {
            if let Some(parent) = &record.parent {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TOKEN_TREE_LOCK])
                    .await
                    .map_err(pg_error)?;
                let parent_exists = tx
                    .query_opt("SELECT 1 FROM tokens WHERE accessor = $1", &[parent])
                    .await
                    .map_err(pg_error)?
                    .is_some();
                if !parent_exists {
                    return Err(StoreError::Conflict("the parent token was revoked".into()));
                }
            }
            let taken = tx
                .query_opt(
                    "SELECT 1 FROM tokens WHERE hash = $1 OR accessor = $2",
                    &[&&record.hash[..], &record.accessor],
                )
                .await
                .map_err(pg_error)?
                .is_some();
            if taken {
                return Err(StoreError::Conflict("the token already exists".into()));
            }
            match insert_token(tx, record).await {
                Err(StoreError::Conflict(_)) => {
                    return Err(StoreError::Conflict("the token already exists".into()));
                }
                other => other?,
            }
        }
        Mutation::DeleteToken { accessor } => {
            tx.execute("DELETE FROM tokens WHERE accessor = $1", &[accessor])
                .await
                .map_err(pg_error)?;
        }
        Mutation::RevokeTokens(scope) => {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TOKEN_TREE_LOCK])
                .await
                .map_err(pg_error)?;
            let (roots, arg) = match scope {
                RevokeScope::Tree(a) => ("SELECT accessor FROM tokens WHERE accessor = $1", a),
                RevokeScope::User(u) => ("SELECT accessor FROM tokens WHERE owner = $1", u),
            };
            tx.execute(
                &format!(
                    "WITH RECURSIVE doomed(a) AS (
                         {roots}
                         UNION SELECT t.accessor FROM tokens t JOIN doomed d ON t.parent = d.a)
                     DELETE FROM tokens WHERE accessor IN (SELECT a FROM doomed)"
                ),
                &[arg],
            )
            .await
            .map_err(pg_error)?;
        }
        Mutation::DeleteExpiredTokens { now } => {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TOKEN_TREE_LOCK])
                .await
                .map_err(pg_error)?;
            tx.execute(
                "WITH RECURSIVE doomed(a) AS (
                     SELECT accessor FROM tokens WHERE expires_at <= $1 OR uses_left <= 0
                     UNION SELECT t.accessor FROM tokens t JOIN doomed d ON t.parent = d.a)
                 DELETE FROM tokens WHERE accessor IN (SELECT a FROM doomed)",
                &[now],
            )
            .await
            .map_err(pg_error)?;
        }
        Mutation::ConsumeTokenUse { accessor } => {
            let left: Option<Option<i64>> = tx
                .query_opt(
                    "SELECT uses_left FROM tokens WHERE accessor = $1 FOR UPDATE",
                    &[accessor],
                )
                .await
                .map_err(pg_error)?
                .map(|r| r.get(0));
            match left {
                None => return Err(StoreError::Conflict("the token was revoked".into())),
                Some(None) => {}
                Some(Some(n)) if n <= 0 => {
                    return Err(StoreError::Conflict("the token has no uses left".into()));
                }
                Some(Some(_)) => {
                    tx.execute(
                        "UPDATE tokens SET uses_left = uses_left - 1 WHERE accessor = $1",
                        &[accessor],
                    )
                    .await
                    .map_err(pg_error)?;
                }
            }
        }
        Mutation::SetTokenExpiry {
            accessor,
            expires_at,
        } => {
            let changed = tx
                .execute(
                    "UPDATE tokens SET expires_at = $2,
                         data = jsonb_set(data::jsonb, '{expires_at}', to_jsonb($2::bigint))::text
                     WHERE accessor = $1",
                    &[accessor, expires_at],
                )
                .await
                .map_err(pg_error)?;
            if changed == 0 {
                return Err(StoreError::Conflict("the token was revoked".into()));
            }
        }
        Mutation::PutObject {
            kind,
            key,
            value,
            expect,
        } => match expect {
            Expect::Absent => {
                let inserted = tx
                    .execute(
                        "INSERT INTO objects (kind, key, revision, value) VALUES ($1, $2, 1, $3)
                         ON CONFLICT (kind, key) DO NOTHING",
                        &[kind, key, value],
                    )
                    .await
                    .map_err(pg_error)?;
                if inserted != 1 {
                    return Err(StoreError::Conflict(format!(
                        "{kind} {key} changed concurrently"
                    )));
                }
            }
            Expect::Any | Expect::Revision(_) => {
                check_object(tx, kind, key, *expect).await?;
                tx.execute(
                    "INSERT INTO objects (kind, key, revision, value) VALUES ($1, $2, 1, $3)
                     ON CONFLICT (kind, key) DO UPDATE SET revision = objects.revision + 1,
                         value = excluded.value",
                    &[kind, key, value],
                )
                .await
                .map_err(pg_error)?;
            }
        },
        Mutation::DeleteObject { kind, key, expect } => {
            check_object(tx, kind, key, *expect).await?;
            tx.execute(
                "DELETE FROM objects WHERE kind = $1 AND key = $2",
                &[kind, key],
            )
            .await
            .map_err(pg_error)?;
        }
    }
    Ok(())
}

/// Commits with at least this many new versions are applied set-based.
/// Below it the statements per mutation are no more than the set-based
/// ones, so a single write keeps the path it always had.
const SET_BASED_FROM: usize = 2;

/// One mutation of a commit applied set-based.
enum SetItem<'a> {
    /// A [`Mutation::PutVersion`]: the record and the expected current version.
    Version(&'a VersionRecord, u64),
    /// A [`Mutation::PutObject`]: kind, key, value and condition.
    Object(&'a str, &'a str, &'a [u8], Expect),
}

/// The mutations of a commit that is applied with [`apply_set_based`], in
/// order, or `None`. It must write at least [`SET_BASED_FROM`] new
/// versions (a bulk import, a history, a copy) and nothing but new
/// versions and access-model records, each record at most once. Other
/// commits (a delete before a write, a token and its revocation, a record
/// written twice) depend on the order of their mutations beyond what
/// [`apply_set_based`] keeps, and take the per-mutation path.
fn set_based(mutations: &[Mutation]) -> Option<Vec<SetItem<'_>>> {
    let mut items = Vec::with_capacity(mutations.len());
    let mut versions = 0;
    let mut objects = HashSet::new();
    for m in mutations {
        match m {
            Mutation::PutVersion {
                record,
                expected_current,
            } => {
                versions += 1;
                items.push(SetItem::Version(record, *expected_current));
            }
            Mutation::PutObject {
                kind,
                key,
                value,
                expect,
            } => {
                if !objects.insert((kind.as_str(), key.as_str())) {
                    return None;
                }
                items.push(SetItem::Object(kind, key, value, *expect));
            }
            _ => return None,
        }
    }
    (versions >= SET_BASED_FROM).then_some(items)
}

/// Applies a commit of new versions and access-model records (see
/// [`set_based`]) with a few statements whatever its size, instead of two
/// or three per mutation, each a round trip. The outcome is the one
/// [`apply`] in order would give: the same rows, and the same conflict
/// (that of the first mutation in order whose condition fails).
///
/// The rows the conditions depend on are read and locked first (`FOR
/// UPDATE`, in key order, so two such commits lock in one order); the
/// conditions are then checked in mutation order against what was read
/// plus the commit's own earlier versions (a path may get several); then
/// every table is written by one statement over arrays. A path that did
/// not exist when read and is created meanwhile by another transaction
/// fails the version insert on its primary key, a conflict as in
/// [`apply`]. Versions and records live in different tables, so writing
/// them grouped by table changes nothing but the number of statements.
async fn apply_set_based<C: GenericClient>(tx: &C, items: &[SetItem<'_>]) -> Result<()> {
    let mut records: Vec<&VersionRecord> = Vec::new();
    let mut objects: Vec<(&str, &str, &[u8], Expect)> = Vec::new();
    for item in items {
        match *item {
            SetItem::Version(record, _) => records.push(record),
            SetItem::Object(kind, key, value, expect) => objects.push((kind, key, value, expect)),
        }
    }

    // Read and lock.
    let mut paths: Vec<&str> = records.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    let select = tx
        .prepare_cached(
            "SELECT path, current_version FROM secrets WHERE path = ANY($1::text[])
             ORDER BY path FOR UPDATE",
        )
        .await
        .map_err(pg_error)?;
    let mut current: HashMap<String, u64> = tx
        .query(&select, &[&paths])
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    let mut revisions: HashMap<(String, String), u64> = HashMap::new();
    if !objects.is_empty() {
        let (kinds, keys): (Vec<&str>, Vec<&str>) = objects
            .iter()
            .map(|(kind, key, _, _)| (*kind, *key))
            .unzip();
        let select = tx
            .prepare_cached(
                "SELECT o.kind, o.key, o.revision
                 FROM objects o JOIN unnest($1::text[], $2::text[]) AS u(kind, key)
                   ON o.kind = u.kind AND o.key = u.key
                 ORDER BY o.kind, o.key FOR UPDATE OF o",
            )
            .await
            .map_err(pg_error)?;
        revisions = tx
            .query(&select, &[&kinds, &keys])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| {
                (
                    (r.get::<_, String>(0), r.get::<_, String>(1)),
                    r.get::<_, i64>(2) as u64,
                )
            })
            .collect();
    }

    // Check, in order, with the messages `apply` gives.
    for item in items {
        match *item {
            SetItem::Version(record, expected_current) => {
                let at = current.entry(record.path.clone()).or_insert(0);
                if *at != expected_current || record.version != expected_current + 1 {
                    return Err(StoreError::Conflict(format!(
                        "{} is at version {at}, not {expected_current}",
                        record.path
                    )));
                }
                *at = record.version;
            }
            SetItem::Object(kind, key, _, expect) => {
                let revision = revisions
                    .get(&(kind.to_string(), key.to_string()))
                    .copied()
                    .unwrap_or(0);
                match expect {
                    Expect::Absent if revision != 0 => {
                        return Err(StoreError::Conflict(format!(
                            "{kind} {key} changed concurrently"
                        )));
                    }
                    Expect::Revision(r) if r != revision => {
                        return Err(StoreError::Conflict(format!(
                            "{kind} {key} changed concurrently (revision {revision})"
                        )));
                    }
                    _ => {}
                }
            }
        }
    }

    // Versions, in (path, version) order.
    records.sort_by(|a, b| (&a.path, a.version).cmp(&(&b.path, b.version)));
    let n = records.len();
    let mut v_path = Vec::with_capacity(n);
    let mut v_version = Vec::with_capacity(n);
    let mut v_created_at = Vec::with_capacity(n);
    let mut v_created_by = Vec::with_capacity(n);
    let mut v_deleted_at = Vec::with_capacity(n);
    let mut v_destroyed_at = Vec::with_capacity(n);
    let mut v_key_id = Vec::with_capacity(n);
    let mut v_ciphertext = Vec::with_capacity(n);
    let mut v_compromised_at = Vec::with_capacity(n);
    let mut v_compromised_reason = Vec::with_capacity(n);
    for v in &records {
        let (deleted_at, destroyed_at) = state_columns(v.state);
        let (compromised_at, compromised_reason) = compromise_columns(v.compromised.as_ref());
        v_path.push(v.path.as_str());
        v_version.push(v.version as i64);
        v_created_at.push(v.created_at);
        v_created_by.push(v.created_by.as_str());
        v_deleted_at.push(deleted_at);
        v_destroyed_at.push(destroyed_at);
        v_key_id.push(i64::from(v.key_id));
        v_ciphertext.push(v.ciphertext.as_slice());
        v_compromised_at.push(compromised_at);
        v_compromised_reason.push(compromised_reason);
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO versions (path, version, created_at, created_by, deleted_at,
                                   destroyed_at, key_id, ciphertext, compromised_at,
                                   compromised_reason)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::int8[],
                                  $6::int8[], $7::int8[], $8::bytea[], $9::int8[], $10::text[])",
        )
        .await
        .map_err(pg_error)?;
    tx.execute(
        &insert,
        &[
            &v_path,
            &v_version,
            &v_created_at,
            &v_created_by,
            &v_deleted_at,
            &v_destroyed_at,
            &v_key_id,
            &v_ciphertext,
            &v_compromised_at,
            &v_compromised_reason,
        ],
    )
    .await
    .map_err(pg_error)?;

    // One metadata row per path: what the upserts of its versions in order
    // leave (created at its first new version when new; the newest
    // version, its liveness and its time otherwise).
    let mut s_path: Vec<&str> = Vec::new();
    let mut s_version: Vec<i64> = Vec::new();
    let mut s_live: Vec<bool> = Vec::new();
    let mut s_created_at: Vec<i64> = Vec::new();
    let mut s_updated_at: Vec<i64> = Vec::new();
    for v in &records {
        if s_path.last() == Some(&v.path.as_str()) {
            *s_version.last_mut().expect("pushed together") = v.version as i64;
            *s_live.last_mut().expect("pushed together") = v.state == VersionState::Active;
            *s_updated_at.last_mut().expect("pushed together") = v.created_at;
        } else {
            s_path.push(&v.path);
            s_version.push(v.version as i64);
            s_live.push(v.state == VersionState::Active);
            s_created_at.push(v.created_at);
            s_updated_at.push(v.created_at);
        }
    }
    let upsert = tx
        .prepare_cached(
            "INSERT INTO secrets (path, current_version, live, created_at, updated_at)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::bool[], $4::int8[], $5::int8[])
             ON CONFLICT (path) DO UPDATE SET current_version = excluded.current_version,
                 live = excluded.live, updated_at = excluded.updated_at",
        )
        .await
        .map_err(pg_error)?;
    tx.execute(
        &upsert,
        &[&s_path, &s_version, &s_live, &s_created_at, &s_updated_at],
    )
    .await
    .map_err(pg_error)?;

    // Records: those that must be new (one statement, a conflict if one
    // appeared since it was read), then the others.
    objects.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    type Row<'a> = (&'a str, &'a str, &'a [u8], Expect);
    let (absent, others): (Vec<&Row<'_>>, Vec<&Row<'_>>) = objects
        .iter()
        .partition(|(_, _, _, expect)| *expect == Expect::Absent);
    if !absent.is_empty() {
        let kinds: Vec<&str> = absent.iter().map(|o| o.0).collect();
        let keys: Vec<&str> = absent.iter().map(|o| o.1).collect();
        let values: Vec<&[u8]> = absent.iter().map(|o| o.2).collect();
        let insert = tx
            .prepare_cached(
                "INSERT INTO objects (kind, key, revision, value)
                 SELECT k, v, 1, b FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(k, v, b)
                 ON CONFLICT (kind, key) DO NOTHING
                 RETURNING kind, key",
            )
            .await
            .map_err(pg_error)?;
        let inserted: HashSet<(String, String)> = tx
            .query(&insert, &[&kinds, &keys, &values])
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if inserted.len() != absent.len() {
            // The first in the commit's order, as `apply` would stop at.
            for item in items {
                if let SetItem::Object(kind, key, _, Expect::Absent) = *item
                    && !inserted.contains(&(kind.to_string(), key.to_string()))
                {
                    return Err(StoreError::Conflict(format!(
                        "{kind} {key} changed concurrently"
                    )));
                }
            }
        }
    }
    if !others.is_empty() {
        let kinds: Vec<&str> = others.iter().map(|o| o.0).collect();
        let keys: Vec<&str> = others.iter().map(|o| o.1).collect();
        let values: Vec<&[u8]> = others.iter().map(|o| o.2).collect();
        let upsert = tx
            .prepare_cached(
                "INSERT INTO objects (kind, key, revision, value)
                 SELECT k, v, 1, b FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(k, v, b)
                 ON CONFLICT (kind, key) DO UPDATE SET revision = objects.revision + 1,
                     value = excluded.value",
            )
            .await
            .map_err(pg_error)?;
        tx.execute(&upsert, &[&kinds, &keys, &values])
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

async fn import_one<C: GenericClient>(tx: &C, r: &Exported) -> Result<()> {
    match r {
        Exported::System { key, value } => {
            tx.execute(
                "INSERT INTO system (key, value) VALUES ($1, $2)",
                &[key, value],
            )
            .await
            .map_err(pg_error)?;
        }
        Exported::Secret(m) => {
            tx.execute(
                "INSERT INTO secrets (path, current_version, live, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &m.path,
                    &(m.current_version as i64),
                    &m.live,
                    &m.created_at,
                    &m.updated_at,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        Exported::Version(v) => {
            insert_version(tx, v).await?;
        }
        Exported::Token(t) => insert_token(tx, t).await?,
        Exported::Object(o) => {
            tx.execute(
                "INSERT INTO objects (kind, key, revision, value) VALUES ($1, $2, $3, $4)",
                &[&o.kind, &o.key, &(o.revision as i64), &o.value],
            )
            .await
            .map_err(pg_error)?;
        }
    }
    Ok(())
}

async fn list_page<C: GenericClient>(c: &C, q: &ListQuery) -> Result<ListPage> {
    let limit = q.limit.max(1);
    let upper = prefix_upper_bound(&q.prefix);
    let live_clause = if q.include_deleted { "" } else { " AND live" };
    // The prefix's end is a plain `path < $2` whenever there is one: a
    // generic plan of `($2 IS NULL OR path < $2)` bounds the index scan by
    // `$1` alone and filters the rest, so a scan asked for more rows than
    // the prefix held read on to the end of the table. Without an end (the
    // empty prefix) `$2::text IS NULL` keeps the parameters the same.
    let upper_clause = if upper.is_some() {
        "path < $2"
    } else {
        "$2::text IS NULL"
    };
    let sql_after = format!(
        "SELECT path FROM secrets WHERE path > $1 AND {upper_clause}{live_clause}
         ORDER BY path LIMIT $3"
    );
    let sql_from = format!(
        "SELECT path FROM secrets WHERE path >= $1 AND {upper_clause}{live_clause}
         ORDER BY path LIMIT $3"
    );
    let mut entries: Vec<ListEntry> = Vec::new();
    if q.recursive {
        let (sql, start) = match &q.after {
            Some(a) => (&sql_after, format!("{}{a}", q.prefix)),
            None => (&sql_from, q.prefix.clone()),
        };
        let stmt = c.prepare_cached(sql).await.map_err(pg_error)?;
        let rows = c
            .query(&stmt, &[&start, &upper, &((limit + 1) as i64)])
            .await
            .map_err(pg_error)?;
        for r in rows {
            let path: String = r.get(0);
            entries.push(ListEntry {
                name: path[q.prefix.len()..].to_string(),
                folder: false,
            });
        }
    } else {
        // Runs of rows in path order, skipping past each child folder (see
        // LevelScan): a folder of many secrets takes a few round trips,
        // not one per secret.
        let mut scan = LevelScan::new(q);
        let stmt_after = c.prepare_cached(&sql_after).await.map_err(pg_error)?;
        let stmt_from = c.prepare_cached(&sql_from).await.map_err(pg_error)?;
        while scan.wants_more() {
            let (inclusive, start) = &scan.cursor;
            let stmt = if *inclusive { &stmt_from } else { &stmt_after };
            let paths = c
                .query(stmt, &[start, &upper, &(scan.batch as i64)])
                .await
                .map_err(pg_error)?
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            scan.take(paths);
        }
        return Ok(scan.page());
    }
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.name.clone())
    } else {
        None
    };
    Ok(ListPage { entries, next })
}

async fn export_table<F>(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    out: &mpsc::Sender<Exported>,
    convert: F,
) -> Result<()>
where
    F: Fn(&Row) -> Result<Exported>,
{
    let params: [&(dyn ToSql + Sync); 0] = [];
    let portal = tx.bind(sql, &params).await.map_err(pg_error)?;
    loop {
        let rows = tx.query_portal(&portal, 256).await.map_err(pg_error)?;
        if rows.is_empty() {
            return Ok(());
        }
        for r in &rows {
            out.send(convert(r)?)
                .await
                .map_err(|_| StoreError::backend("the export was abandoned"))?;
        }
    }
}

#[async_trait]
impl Storage for PostgresStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    async fn get_system(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT value FROM system WHERE key = $1")
            .await
            .map_err(pg_error)?;
        Ok(c.query_opt(&stmt, &[&key])
            .await
            .map_err(pg_error)?
            .map(|r| r.get(0)))
    }

    async fn get_meta(&self, path: &str) -> Result<Option<SecretMeta>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT path, current_version, live, created_at, updated_at
                 FROM secrets WHERE path = $1",
            )
            .await
            .map_err(pg_error)?;
        Ok(c.query_opt(&stmt, &[&path])
            .await
            .map_err(pg_error)?
            .map(|r| row_to_meta(&r)))
    }

    async fn get_metas(&self, paths: &[String]) -> Result<Vec<SecretMeta>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT path, current_version, live, created_at, updated_at
                 FROM secrets WHERE path = ANY($1)",
            )
            .await
            .map_err(pg_error)?;
        Ok(c.query(&stmt, &[&paths])
            .await
            .map_err(pg_error)?
            .iter()
            .map(row_to_meta)
            .collect())
    }

    async fn get_version(&self, path: &str, version: u64) -> Result<Option<VersionRecord>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM versions WHERE path = $1 AND version = $2"
            ))
            .await
            .map_err(pg_error)?;
        c.query_opt(&stmt, &[&path, &(version as i64)])
            .await
            .map_err(pg_error)?
            .map(|r| row_to_version(&r))
            .transpose()
    }

    async fn history(&self, path: &str) -> Result<Vec<VersionRecord>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT path, version, created_at, created_by, deleted_at, destroyed_at,
                        key_id, ''::bytea, compromised_at, compromised_reason
                 FROM versions WHERE path = $1 ORDER BY version",
            )
            .await
            .map_err(pg_error)?;
        c.query(&stmt, &[&path])
            .await
            .map_err(pg_error)?
            .iter()
            .map(row_to_version)
            .collect()
    }

    async fn versions_sealed_elsewhere(
        &self,
        key_id: u32,
        limit: usize,
    ) -> Result<Vec<VersionRecord>> {
        let c = self.client().await?;
        c.query(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM versions
                 WHERE key_id < $1 AND destroyed_at IS NULL
                 ORDER BY path, version LIMIT $2"
            ),
            &[&i64::from(key_id), &(limit as i64)],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(row_to_version)
        .collect()
    }

    async fn list(&self, query: &ListQuery) -> Result<ListPage> {
        let c = self.client().await?;
        list_page(&c, query).await
    }

    async fn get_token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached("SELECT data, uses_left FROM tokens WHERE hash = $1")
            .await
            .map_err(pg_error)?;
        let row = c.query_opt(&stmt, &[&&hash[..]]).await.map_err(pg_error)?;
        row.map(|r| token_from_parts(hash, r.get(0), r.get(1)))
            .transpose()
    }

    async fn get_token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT hash, data, uses_left FROM tokens WHERE accessor = $1",
                &[&accessor],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| token_from_parts(r.get::<_, &[u8]>(0), r.get(1), r.get(2)))
            .transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let c = self.client().await?;
        c.query(
            "SELECT hash, data, uses_left FROM tokens ORDER BY accessor",
            &[],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| token_from_parts(r.get::<_, &[u8]>(0), r.get(1), r.get(2)))
        .collect()
    }

    async fn get_object(&self, kind: &str, key: &str) -> Result<Option<StoredObject>> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(
                "SELECT kind, key, revision, value FROM objects WHERE kind = $1 AND key = $2",
            )
            .await
            .map_err(pg_error)?;
        Ok(c.query_opt(&stmt, &[&kind, &key])
            .await
            .map_err(pg_error)?
            .map(|r| row_to_object(&r)))
    }

    async fn list_objects(&self, kind: &str) -> Result<Vec<StoredObject>> {
        let c = self.client().await?;
        Ok(c.query(
            "SELECT kind, key, revision, value FROM objects WHERE kind = $1 ORDER BY key",
            &[&kind],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(row_to_object)
        .collect())
    }

    async fn commit(&self, mutations: Vec<Mutation>) -> Result<()> {
        if mutations.is_empty() {
            return Ok(());
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        if let Some(items) = set_based(&mutations) {
            apply_set_based(&tx, &items).await?;
        } else {
            for m in &mutations {
                apply(&tx, m).await?;
            }
        }
        let mut seen = HashSet::new();
        let (kinds, keys): (Vec<String>, Vec<String>) = mutations
            .iter()
            .filter_map(Change::of)
            .filter(|c| seen.insert(c.clone()))
            .map(|c| encode_change(&c))
            .unzip();
        if !kinds.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            tx.execute(
                "INSERT INTO changes (node, at, kind, key)
                 SELECT $1, $2, k, v FROM unnest($3::text[], $4::text[]) AS c(k, v)",
                &[&self.inner.node, &now, &kinds, &keys],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn sync(&self) -> Result<()> {
        let fence = &self.inner.fence;
        let mut done = fence.done.subscribe();
        // The next read to start begins after this call did.
        let target = fence.started.load(Ordering::Acquire) + 1;
        fence.wake.notify_one();
        let outcome = tokio::time::timeout(SYNC_TIMEOUT, done.wait_for(|(n, _)| *n >= target))
            .await
            .map_err(|_| StoreError::backend("timed out reading the change log of other nodes"))?
            .map_err(|_| StoreError::Closed)?
            .1;
        if outcome {
            Ok(())
        } else {
            Err(StoreError::backend(
                "cannot read the change log of other nodes",
            ))
        }
    }

    fn take_changes(&self) -> Vec<Change> {
        std::mem::take(
            &mut *self
                .inner
                .fence
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    async fn lead(&self) -> Result<bool> {
        let mut leader = self.inner.leader.lock().await;
        if let Some(l) = leader.as_ref() {
            let alive = !l.client.is_closed() && l.client.simple_query("SELECT 1").await.is_ok();
            if !alive {
                if l.held {
                    tracing::warn!("lost the connection that held the leader lock");
                }
                *leader = None;
            } else if l.held {
                return Ok(true);
            }
        }
        if leader.is_none() {
            *leader = Some(Leader {
                client: self.inner.connect_one().await?,
                held: false,
            });
        }
        let l = leader.as_mut().expect("set above");
        let held: bool = l
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
            .await
            .map_err(pg_error)?
            .get(0);
        if held {
            tracing::info!("this node now runs the background jobs");
        }
        l.held = held;
        Ok(held)
    }

    async fn resign(&self) {
        let mut leader = self.inner.leader.lock().await;
        if leader.as_ref().is_some_and(|l| l.held) {
            tracing::info!("this node gives up running the background jobs");
        }
        // Closing the connection releases the session's advisory lock.
        *leader = None;
    }

    async fn housekeeping(&self) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let pruned = self.prune_changes(now).await?;
        tracing::debug!(pruned, "change log pruned");
        Ok(())
    }

    async fn is_empty(&self) -> Result<bool> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT 1 FROM system UNION ALL SELECT 1 FROM secrets
                 UNION ALL SELECT 1 FROM tokens UNION ALL SELECT 1 FROM objects LIMIT 1",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.is_none())
    }

    async fn export(&self, out: mpsc::Sender<Exported>) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        export_table(
            &tx,
            "SELECT key, value FROM system ORDER BY key",
            &out,
            |r| {
                Ok(Exported::System {
                    key: r.get(0),
                    value: r.get(1),
                })
            },
        )
        .await?;
        export_table(
            &tx,
            "SELECT path, current_version, live, created_at, updated_at FROM secrets ORDER BY path",
            &out,
            |r| Ok(Exported::Secret(row_to_meta(r))),
        )
        .await?;
        export_table(
            &tx,
            &format!("SELECT {VERSION_COLUMNS} FROM versions ORDER BY path, version"),
            &out,
            |r| Ok(Exported::Version(row_to_version(r)?)),
        )
        .await?;
        export_table(
            &tx,
            "SELECT hash, data, uses_left FROM tokens ORDER BY accessor",
            &out,
            |r| {
                Ok(Exported::Token(token_from_parts(
                    r.get::<_, &[u8]>(0),
                    r.get(1),
                    r.get(2),
                )?))
            },
        )
        .await?;
        export_table(
            &tx,
            "SELECT kind, key, revision, value FROM objects ORDER BY kind, key",
            &out,
            |r| Ok(Exported::Object(row_to_object(r))),
        )
        .await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn import(&self, records: Vec<Exported>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(pg_error)?;
        for r in &records {
            import_one(&tx, r).await?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn close(&self) -> Result<()> {
        // Release the leader lock now rather than when the process ends.
        *self.inner.leader.lock().await = None;
        self.inner.pool.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        for (url, want) in [
            (
                "postgres://coffer:s3cret@db:5432/coffer?sslmode=require",
                "postgres://coffer:<redacted>@db:5432/coffer?sslmode=require",
            ),
            (
                "postgresql://u:p%40ss@host/db",
                "postgresql://u:<redacted>@host/db",
            ),
            ("postgres://coffer@db/coffer", "postgres://coffer@db/coffer"),
            (
                "postgres://coffer@db/coffer?sslmode=disable&password=s3cret",
                "postgres://coffer@db/coffer?sslmode=disable&password=<redacted>",
            ),
            ("postgres://db/coffer", "postgres://db/coffer"),
            ("not a url", "<unparseable url>"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
        assert!(url_has_password("postgres://a:b@c/d"));
        assert!(url_has_password("postgres://a@c/d?password=b"));
        assert!(!url_has_password("postgres://a@c/d"));
        for (url, want) in [
            (
                "postgres://u:p@db:5432/app?sslmode=require&password=x",
                "postgres://db:5432/app?sslmode=require",
            ),
            ("postgres://u@db/app?password=x", "postgres://db/app"),
            ("postgres://db", "postgres://db"),
        ] {
            assert_eq!(without_credentials(url), want, "{url}");
        }
    }

    /// A store that cannot be opened says why, with its cause kept; neither
    /// its message nor its `Debug` shows the password, however it was given.
    #[tokio::test]
    async fn a_failing_connection_never_shows_the_password() {
        let secret = "hunter2SECRETpw";
        for (url, password) in [
            (format!("postgres://alice:{secret}@127.0.0.1:1/db"), None),
            (
                format!("postgres://alice@127.0.0.1:1/db?sslmode=disable&password={secret}"),
                None,
            ),
            (
                "postgres://alice@127.0.0.1:1/db".to_string(),
                Some(secret.to_string()),
            ),
            (
                format!("postgres://alice:{secret}@host.invalid/db?sslmode=verify-full"),
                None,
            ),
            (
                format!("postgres://alice:{secret}@127.0.0.1:1/db?connect_timeout=zz"),
                None,
            ),
            (
                format!(
                    "postgres://alice:{secret}@127.0.0.1:1/db?sslrootcert=/nonexistent/ca.pem&sslmode=verify-full"
                ),
                None,
            ),
        ] {
            let err = PostgresStore::connect(&PostgresOptions {
                url: url.clone(),
                password,
                pool_size: 1,
            })
            .await
            .err()
            .expect("nothing listens there");
            let shown = format!("{err} | {err:?}");
            assert!(!shown.contains(secret), "{url}: {shown}");
            assert!(matches!(err, StoreError::Backend { .. }), "{url}: {shown}");
            assert!(std::error::Error::source(&err).is_none(), "{url}");
        }
    }

    #[test]
    fn verify_modes_map_to_verified_tls() {
        let (c, root) =
            parse_url("postgres://u@h/d?sslmode=verify-full&sslrootcert=/etc/ca.pem").unwrap();
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
        let (c, root) = parse_url("postgres://u@h/d?sslmode=disable").unwrap();
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Disable);
        assert_eq!(root, None);
        let err = parse_url("postgres://u:hunter2@h/d?sslmode=bogus")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn changes_round_trip_through_the_log() {
        for c in [
            Change::Secret("app/x".into()),
            Change::Tokens,
            Change::Object {
                kind: "policy".into(),
                key: "ops".into(),
            },
            Change::System("keyring".into()),
            Change::Reset,
        ] {
            let (k, v) = encode_change(&c);
            assert_eq!(decode_change(&k, v), Some(c));
        }
        assert_eq!(decode_change("bogus", String::new()), None);
    }
}
