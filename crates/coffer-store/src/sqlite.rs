//! The embedded SQLite backend, coffer's default store.
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so a commit
//! is on disk (fsynced) before it is acknowledged and survives `kill -9` and power
//! loss. To make that affordable, all writes go through one writer thread that
//! *group-commits*: while one transaction is being fsynced, new writes queue up,
//! and the next transaction applies all of them (each inside its own savepoint,
//! so one caller's failed check-and-set does not undo another's write) and pays
//! for one fsync. Reads use a small pool of read-only connections on the blocking
//! thread pool; WAL lets them run concurrently with the writer.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::model::{
    LevelScan, compromise_columns, compromise_from, prefix_upper_bound, state_columns,
    token_from_parts,
};
use crate::{
    Expect, Exported, ListEntry, ListPage, ListQuery, Mutation, Result, RevokeScope, SecretMeta,
    Storage, StoreError, StoredObject, TokenRecord, VersionRecord, VersionState,
    VersionStateChange,
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a migration that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    "CREATE TABLE system (
         key   TEXT PRIMARY KEY,
         value BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE secrets (
         path            TEXT PRIMARY KEY,
         current_version INTEGER NOT NULL,
         live            INTEGER NOT NULL,
         created_at      INTEGER NOT NULL,
         updated_at      INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE versions (
         path         TEXT NOT NULL,
         version      INTEGER NOT NULL,
         created_at   INTEGER NOT NULL,
         created_by   TEXT NOT NULL,
         deleted_at   INTEGER,
         destroyed_at INTEGER,
         key_id       INTEGER NOT NULL,
         ciphertext   BLOB NOT NULL,
         PRIMARY KEY (path, version)
     ) WITHOUT ROWID;
     CREATE TABLE tokens (
         hash     BLOB PRIMARY KEY,
         accessor TEXT NOT NULL UNIQUE,
         data     TEXT NOT NULL
     ) WITHOUT ROWID;",
    // 2: the access model: token lineage, owners and use counts in columns (so
    // revocation cascades and use counting happen atomically in SQL), and a
    // table of small records (policies, users, invitations, ...).
    "ALTER TABLE tokens ADD COLUMN parent TEXT;
     ALTER TABLE tokens ADD COLUMN user TEXT;
     ALTER TABLE tokens ADD COLUMN uses_left INTEGER;
     UPDATE tokens SET parent = json_extract(data, '$.parent');
     CREATE INDEX tokens_parent ON tokens (parent);
     CREATE INDEX tokens_user ON tokens (user);
     CREATE TABLE objects (
         kind     TEXT NOT NULL,
         key      TEXT NOT NULL,
         revision INTEGER NOT NULL,
         value    BLOB NOT NULL,
         PRIMARY KEY (kind, key)
     ) WITHOUT ROWID;",
    // 3: finding the versions sealed under old keyring keys (re-wrap).
    "CREATE INDEX versions_key ON versions (key_id);",
    // 4: versions marked compromised (their value leaked), which never
    // become current again.
    "ALTER TABLE versions ADD COLUMN compromised_at INTEGER;
     ALTER TABLE versions ADD COLUMN compromised_reason TEXT;",
];

/// Most writes that one group commit applies; bounds the latency of a batch.
const MAX_BATCH: usize = 512;

/// Connections kept for reads.
const MAX_IDLE_READERS: usize = 8;

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<()>>,
}

enum Work {
    Commit(Vec<Mutation>),
    Import(Vec<Exported>),
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies pending
    /// migrations and starts the writer thread. The file is created readable by
    /// its owner only.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        create_private_file(path)?;
        let mut conn = open_connection(path, false)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("coffer-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::backend_from(format!("cannot start writer thread: {e}"), e))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn submit(&self, work: Work) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        {
            let guard = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(Job { work, reply })
                .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a pooled read connection on the blocking thread pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path, true)?,
            };
            let out = f(&conn);
            let mut pool = inner.readers.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::backend_from(format!("read task failed: {e}"), e))?
    }
}

fn create_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(|_| ())
        .map_err(|e| StoreError::backend_from(format!("cannot create {}: {e}", path.display()), e))
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !read_only {
        // WAL + FULL: every commit is fsynced before it returns. secure_delete
        // overwrites freed pages, so destroyed ciphertext does not linger in the file.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::backend(format!(
                "cannot enable WAL journal mode (got {mode})"
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON;",
        )?;
    }
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied storage migration");
    }
    Ok(())
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = apply_batch(&mut conn, &batch);
        for (job, result) in batch.into_iter().zip(results) {
            // A caller that gave up waiting is no reason to fail the others.
            let _ = job.reply.send(result);
        }
    }
    // All senders are gone: shutting down. Fold the WAL into the main file.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

/// Applies a batch in one transaction, each job in its own savepoint.
fn apply_batch(conn: &mut Connection, batch: &[Job]) -> Vec<Result<()>> {
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let outcome = (|| {
            let sp = tx.savepoint()?;
            match &job.work {
                Work::Commit(mutations) => {
                    for m in mutations {
                        apply(&sp, m)?;
                    }
                }
                Work::Import(records) => {
                    for r in records {
                        import_one(&sp, r)?;
                    }
                }
            }
            sp.commit()?;
            Ok(())
        })();
        results.push(outcome);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => {
            tracing::error!(error = %e, "group commit failed");
            fail_all(batch, e)
        }
    }
}

/// The same failure for every job of a batch, each with the one cause.
fn fail_all(batch: &[Job], e: rusqlite::Error) -> Vec<Result<()>> {
    let message = e.to_string();
    let cause = crate::error::Cause::new(e);
    batch
        .iter()
        .map(|_| {
            Err(StoreError::Backend {
                message: message.clone(),
                cause: Some(cause.clone()),
            })
        })
        .collect()
}

fn apply(tx: &Connection, m: &Mutation) -> Result<()> {
    match m {
        Mutation::PutVersion {
            record,
            expected_current,
        } => {
            // Cached statements throughout: a bulk import runs these for
            // every secret of a batch, and preparing one costs about as
            // much as running it.
            let current: u64 = tx
                .prepare_cached("SELECT current_version FROM secrets WHERE path = ?1")?
                .query_row([&record.path], |r| r.get::<_, i64>(0))
                .optional()?
                .map_or(0, |v| v as u64);
            if current != *expected_current || record.version != expected_current + 1 {
                return Err(StoreError::Conflict(format!(
                    "{} is at version {current}, not {expected_current}",
                    record.path
                )));
            }
            insert_version(tx, record)?;
            tx.prepare_cached(
                "INSERT INTO secrets (path, current_version, live, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT(path) DO UPDATE SET current_version = excluded.current_version,
                     live = excluded.live, updated_at = excluded.updated_at",
            )?
            .execute(params![
                record.path,
                record.version as i64,
                record.state == VersionState::Active,
                record.created_at,
            ])?;
        }
        Mutation::SetVersionState {
            path,
            versions,
            change,
            at,
        } => {
            for v in versions {
                let v = *v as i64;
                match change {
                    VersionStateChange::Delete(t) => tx.execute(
                        "UPDATE versions SET deleted_at = ?3 WHERE path = ?1 AND version = ?2
                           AND deleted_at IS NULL AND destroyed_at IS NULL",
                        params![path, v, t],
                    )?,
                    VersionStateChange::Undelete => tx.execute(
                        "UPDATE versions SET deleted_at = NULL WHERE path = ?1 AND version = ?2
                           AND destroyed_at IS NULL",
                        params![path, v],
                    )?,
                    VersionStateChange::Destroy(t) => tx.execute(
                        "UPDATE versions SET destroyed_at = ?3, ciphertext = x''
                         WHERE path = ?1 AND version = ?2 AND destroyed_at IS NULL",
                        params![path, v, t],
                    )?,
                };
            }
            tx.execute(
                "UPDATE secrets SET updated_at = ?2, live = COALESCE((
                     SELECT deleted_at IS NULL AND destroyed_at IS NULL FROM versions
                     WHERE versions.path = secrets.path
                       AND versions.version = secrets.current_version), 0)
                 WHERE path = ?1",
                params![path, at],
            )?;
        }
        Mutation::DeleteSecret {
            path,
            expected_current,
        } => {
            let current: Option<u64> = tx
                .query_row(
                    "SELECT current_version FROM secrets WHERE path = ?1",
                    [path],
                    |r| r.get::<_, i64>(0),
                )
                .optional()?
                .map(|v| v as u64);
            if current != Some(*expected_current) {
                return Err(StoreError::Conflict(format!(
                    "{path} is at version {}, not {expected_current}",
                    current.unwrap_or(0)
                )));
            }
            tx.execute("DELETE FROM versions WHERE path = ?1", [path])?;
            tx.execute("DELETE FROM secrets WHERE path = ?1", [path])?;
        }
        Mutation::ResealVersion {
            path,
            version,
            expected_key_id,
            key_id,
            ciphertext,
        } => {
            let changed = tx.execute(
                "UPDATE versions SET key_id = ?4, ciphertext = ?5
                 WHERE path = ?1 AND version = ?2 AND key_id = ?3 AND destroyed_at IS NULL",
                params![path, *version as i64, expected_key_id, key_id, ciphertext],
            )?;
            if changed != 1 {
                return Err(StoreError::Conflict(format!(
                    "version {version} of {path} changed before its re-wrap"
                )));
            }
        }
        Mutation::MarkCompromised {
            path,
            version,
            mark,
        } => {
            let exists = tx
                .query_row(
                    "SELECT 1 FROM versions WHERE path = ?1 AND version = ?2",
                    params![path, *version as i64],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                return Err(StoreError::Conflict(format!(
                    "{path} has no version {version}"
                )));
            }
            tx.execute(
                "UPDATE versions SET compromised_at = ?3, compromised_reason = ?4
                 WHERE path = ?1 AND version = ?2 AND compromised_at IS NULL",
                params![path, *version as i64, mark.at, mark.reason],
            )?;
        }
        Mutation::InsertSystem { key, value } => {
            let exists: bool = tx
                .query_row("SELECT 1 FROM system WHERE key = ?1", [key], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                return Err(StoreError::Conflict(format!("{key} already exists")));
            }
            tx.execute(
                "INSERT INTO system (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
        }
        Mutation::ReplaceSystem {
            key,
            expected,
            value,
        } => {
            let changed = tx.execute(
                "UPDATE system SET value = ?3 WHERE key = ?1 AND value = ?2",
                params![key, expected, value],
            )?;
            if changed != 1 {
                return Err(StoreError::Conflict(format!("{key} changed concurrently")));
            }
        }
        Mutation::PutSystem { key, value } => {
            tx.execute(
                "INSERT INTO system (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
        }
        Mutation::PutToken(record) => {
            let taken = tx
                .query_row(
                    "SELECT 1 FROM tokens WHERE hash = ?1 OR accessor = ?2",
                    params![&record.hash[..], record.accessor],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if taken {
                return Err(StoreError::Conflict("the token already exists".into()));
            }
            if let Some(parent) = &record.parent {
                let parent_exists = tx
                    .query_row("SELECT 1 FROM tokens WHERE accessor = ?1", [parent], |_| {
                        Ok(())
                    })
                    .optional()?
                    .is_some();
                if !parent_exists {
                    return Err(StoreError::Conflict("the parent token was revoked".into()));
                }
            }
            let data = serde_json::to_string(record).map_err(|e| {
                StoreError::backend_from(format!("cannot encode token record: {e}"), e)
            })?;
            tx.execute(
                "INSERT INTO tokens (hash, accessor, data, parent, user, uses_left)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &record.hash[..],
                    record.accessor,
                    data,
                    record.parent,
                    record.user,
                    record.uses_left.map(|u| u as i64),
                ],
            )?;
        }
        Mutation::DeleteToken { accessor } => {
            tx.execute("DELETE FROM tokens WHERE accessor = ?1", [accessor])?;
        }
        Mutation::RevokeTokens(scope) => {
            let (roots, arg) = match scope {
                RevokeScope::Tree(a) => ("SELECT accessor FROM tokens WHERE accessor = ?1", a),
                RevokeScope::User(u) => ("SELECT accessor FROM tokens WHERE user = ?1", u),
            };
            tx.execute(
                &format!(
                    "WITH RECURSIVE doomed(a) AS (
                         {roots}
                         UNION SELECT t.accessor FROM tokens t JOIN doomed d ON t.parent = d.a)
                     DELETE FROM tokens WHERE accessor IN (SELECT a FROM doomed)"
                ),
                [arg],
            )?;
        }
        Mutation::DeleteExpiredTokens { now } => {
            tx.execute(
                "WITH RECURSIVE doomed(a) AS (
                     SELECT accessor FROM tokens
                     WHERE json_extract(data, '$.expires_at') <= ?1 OR uses_left <= 0
                     UNION SELECT t.accessor FROM tokens t JOIN doomed d ON t.parent = d.a)
                 DELETE FROM tokens WHERE accessor IN (SELECT a FROM doomed)",
                [now],
            )?;
        }
        Mutation::ConsumeTokenUse { accessor } => {
            let left: Option<Option<i64>> = tx
                .query_row(
                    "SELECT uses_left FROM tokens WHERE accessor = ?1",
                    [accessor],
                    |r| r.get(0),
                )
                .optional()?;
            match left {
                None => return Err(StoreError::Conflict("the token was revoked".into())),
                Some(None) => {}
                Some(Some(n)) if n <= 0 => {
                    return Err(StoreError::Conflict("the token has no uses left".into()));
                }
                Some(Some(_)) => {
                    tx.execute(
                        "UPDATE tokens SET uses_left = uses_left - 1 WHERE accessor = ?1",
                        [accessor],
                    )?;
                }
            }
        }
        Mutation::SetTokenExpiry {
            accessor,
            expires_at,
        } => {
            let changed = tx.execute(
                "UPDATE tokens SET data = json_set(data, '$.expires_at', ?2) WHERE accessor = ?1",
                params![accessor, expires_at],
            )?;
            if changed == 0 {
                return Err(StoreError::Conflict("the token was revoked".into()));
            }
        }
        Mutation::PutObject {
            kind,
            key,
            value,
            expect,
        } => {
            let revision = check_object(tx, kind, key, *expect)?;
            tx.prepare_cached(
                "INSERT INTO objects (kind, key, revision, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(kind, key) DO UPDATE SET revision = excluded.revision,
                     value = excluded.value",
            )?
            .execute(params![kind, key, (revision + 1) as i64, value])?;
        }
        Mutation::DeleteObject { kind, key, expect } => {
            check_object(tx, kind, key, *expect)?;
            tx.execute(
                "DELETE FROM objects WHERE kind = ?1 AND key = ?2",
                params![kind, key],
            )?;
        }
    }
    Ok(())
}

/// Writes one record of a snapshot as it was exported.
fn import_one(tx: &Connection, r: &Exported) -> Result<()> {
    match r {
        Exported::System { key, value } => {
            tx.execute(
                "INSERT INTO system (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
        }
        Exported::Secret(m) => {
            tx.execute(
                "INSERT INTO secrets (path, current_version, live, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    m.path,
                    m.current_version as i64,
                    m.live,
                    m.created_at,
                    m.updated_at
                ],
            )?;
        }
        Exported::Version(v) => {
            insert_version(tx, v)?;
        }
        Exported::Token(t) => {
            let data = serde_json::to_string(t).map_err(|e| {
                StoreError::backend_from(format!("cannot encode token record: {e}"), e)
            })?;
            tx.execute(
                "INSERT INTO tokens (hash, accessor, data, parent, user, uses_left)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &t.hash[..],
                    t.accessor,
                    data,
                    t.parent,
                    t.user,
                    t.uses_left.map(|u| u as i64),
                ],
            )?;
        }
        Exported::Object(o) => {
            tx.execute(
                "INSERT INTO objects (kind, key, revision, value) VALUES (?1, ?2, ?3, ?4)",
                params![o.kind, o.key, o.revision as i64, o.value],
            )?;
        }
    }
    Ok(())
}

/// Sends a consistent snapshot: one read transaction over every table.
fn export_all(conn: &mut Connection, out: &tokio::sync::mpsc::Sender<Exported>) -> Result<()> {
    let tx = conn.transaction()?;
    let send = |r: Exported| {
        out.blocking_send(r)
            .map_err(|_| StoreError::backend("the export was abandoned"))
    };
    {
        let mut stmt = tx.prepare("SELECT key, value FROM system ORDER BY key")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            send(Exported::System {
                key: r.get(0)?,
                value: r.get(1)?,
            })?;
        }
    }
    {
        let mut stmt = tx.prepare(
            "SELECT path, current_version, live, created_at, updated_at FROM secrets ORDER BY path",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            send(Exported::Secret(SecretMeta {
                path: r.get(0)?,
                current_version: r.get::<_, i64>(1)? as u64,
                live: r.get(2)?,
                created_at: r.get(3)?,
                updated_at: r.get(4)?,
            }))?;
        }
    }
    {
        let mut stmt = tx.prepare(
            "SELECT path, version, created_at, created_by, deleted_at, destroyed_at,
                    key_id, ciphertext, compromised_at, compromised_reason
             FROM versions ORDER BY path, version",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            send(Exported::Version(row_to_version(r, true)?))?;
        }
    }
    {
        let mut stmt = tx.prepare("SELECT hash, data, uses_left FROM tokens ORDER BY accessor")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let hash: Vec<u8> = r.get(0)?;
            let data: String = r.get(1)?;
            send(Exported::Token(token_from_parts(&hash, &data, r.get(2)?)?))?;
        }
    }
    {
        let mut stmt =
            tx.prepare("SELECT kind, key, revision, value FROM objects ORDER BY kind, key")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            send(Exported::Object(row_to_object(r)?))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Checks an object's condition and returns its current revision (0: absent).
fn check_object(tx: &Connection, kind: &str, key: &str, expect: Expect) -> Result<u64> {
    let revision = tx
        .prepare_cached("SELECT revision FROM objects WHERE kind = ?1 AND key = ?2")?
        .query_row(params![kind, key], |r| r.get::<_, i64>(0))
        .optional()?
        .map_or(0, |r| r as u64);
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

fn row_to_version(r: &rusqlite::Row<'_>, with_ciphertext: bool) -> rusqlite::Result<VersionRecord> {
    let deleted_at: Option<i64> = r.get("deleted_at")?;
    let destroyed_at: Option<i64> = r.get("destroyed_at")?;
    let state = match (deleted_at, destroyed_at) {
        (_, Some(t)) => VersionState::Destroyed(t),
        (Some(t), None) => VersionState::Deleted(t),
        (None, None) => VersionState::Active,
    };
    Ok(VersionRecord {
        path: r.get("path")?,
        version: r.get::<_, i64>("version")? as u64,
        created_at: r.get("created_at")?,
        created_by: r.get("created_by")?,
        state,
        key_id: r.get("key_id")?,
        ciphertext: if with_ciphertext {
            r.get("ciphertext")?
        } else {
            Vec::new()
        },
        compromised: compromise_from(r.get("compromised_at")?, r.get("compromised_reason")?),
    })
}

/// Inserts a version row (a new version, a copy's or a restore's).
fn insert_version(tx: &Connection, v: &VersionRecord) -> Result<()> {
    let (deleted_at, destroyed_at) = state_columns(v.state);
    let (compromised_at, compromised_reason) = compromise_columns(v.compromised.as_ref());
    tx.prepare_cached(
        "INSERT INTO versions (path, version, created_at, created_by, deleted_at,
                               destroyed_at, key_id, ciphertext, compromised_at,
                               compromised_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        v.path,
        v.version as i64,
        v.created_at,
        v.created_by,
        deleted_at,
        destroyed_at,
        v.key_id,
        v.ciphertext,
        compromised_at,
        compromised_reason,
    ])?;
    Ok(())
}

fn row_to_object(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredObject> {
    Ok(StoredObject {
        kind: r.get(0)?,
        key: r.get(1)?,
        revision: r.get::<_, i64>(2)? as u64,
        value: r.get(3)?,
    })
}

/// The listing's two statements: the first path strictly after `?1`, and
/// at or after it, within the prefix that ends before `?2`; `?3` rows.
///
/// The prefix's end is a plain `path < ?2` whenever there is one: SQLite
/// bounds an index range only by terms it can see are ranges, and
/// `(?2 IS NULL OR path < ?2)` is not one, so a scan asked for more rows
/// than the prefix held ran on to the end of the table (51 ms to list a
/// 1,000-entry folder among a million secrets). Without an end (the empty
/// prefix) `?2 IS NULL` keeps the parameters the same.
fn list_sql(has_upper: bool, include_deleted: bool) -> (String, String) {
    let upper_clause = if has_upper { "path < ?2" } else { "?2 IS NULL" };
    let live_clause = if include_deleted { "" } else { " AND live = 1" };
    let after = format!(
        "SELECT path FROM secrets WHERE path > ?1 AND {upper_clause}{live_clause}
         ORDER BY path LIMIT ?3"
    );
    let from = format!(
        "SELECT path FROM secrets WHERE path >= ?1 AND {upper_clause}{live_clause}
         ORDER BY path LIMIT ?3"
    );
    (after, from)
}

fn list_page(conn: &Connection, q: &ListQuery) -> Result<ListPage> {
    let limit = q.limit.max(1);
    let upper = prefix_upper_bound(&q.prefix);
    let (sql_after, sql_from) = list_sql(upper.is_some(), q.include_deleted);
    let mut entries: Vec<ListEntry> = Vec::new();

    if q.recursive {
        let (sql, start) = match &q.after {
            Some(a) => (&sql_after, format!("{}{a}", q.prefix)),
            None => (&sql_from, q.prefix.clone()),
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![start, upper, (limit + 1) as i64], |r| {
            r.get::<_, String>(0)
        })?;
        for path in rows {
            let path = path?;
            entries.push(ListEntry {
                name: path[q.prefix.len()..].to_string(),
                folder: false,
            });
        }
    } else {
        // Runs of rows in path order, skipping past each child folder (see
        // LevelScan): a folder of many secrets takes a few statements,
        // and one with deep subfolders never reads all that is below them.
        let mut scan = LevelScan::new(q);
        let mut stmt_after = conn.prepare_cached(&sql_after)?;
        let mut stmt_from = conn.prepare_cached(&sql_from)?;
        while scan.wants_more() {
            let (inclusive, start) = &scan.cursor;
            let stmt = if *inclusive {
                &mut stmt_from
            } else {
                &mut stmt_after
            };
            let paths = stmt
                .query_map(params![start, upper, scan.batch as i64], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<rusqlite::Result<Vec<String>>>()?;
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

#[async_trait]
impl Storage for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn get_system(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT value FROM system WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn get_meta(&self, path: &str) -> Result<Option<SecretMeta>> {
        let path = path.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT path, current_version, live, created_at, updated_at
                 FROM secrets WHERE path = ?1",
            )?
            .query_row([path], |r| {
                Ok(SecretMeta {
                    path: r.get(0)?,
                    current_version: r.get::<_, i64>(1)? as u64,
                    live: r.get(2)?,
                    created_at: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            })
            .optional()?)
        })
        .await
    }

    async fn get_metas(&self, paths: &[String]) -> Result<Vec<SecretMeta>> {
        let paths = paths.to_vec();
        self.read(move |c| {
            // One prepared statement on one connection, one index seek per
            // path: no round trip to the thread pool per path.
            let mut stmt = c.prepare_cached(
                "SELECT path, current_version, live, created_at, updated_at
                 FROM secrets WHERE path = ?1",
            )?;
            let mut found = Vec::new();
            for path in paths {
                let meta = stmt
                    .query_row([path], |r| {
                        Ok(SecretMeta {
                            path: r.get(0)?,
                            current_version: r.get::<_, i64>(1)? as u64,
                            live: r.get(2)?,
                            created_at: r.get(3)?,
                            updated_at: r.get(4)?,
                        })
                    })
                    .optional()?;
                found.extend(meta);
            }
            Ok(found)
        })
        .await
    }

    async fn get_version(&self, path: &str, version: u64) -> Result<Option<VersionRecord>> {
        let path = path.to_string();
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT path, version, created_at, created_by, deleted_at, destroyed_at,
                        key_id, ciphertext, compromised_at, compromised_reason
                 FROM versions WHERE path = ?1 AND version = ?2",
            )?
            .query_row(params![path, version as i64], |r| row_to_version(r, true))
            .optional()?)
        })
        .await
    }

    async fn history(&self, path: &str) -> Result<Vec<VersionRecord>> {
        let path = path.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT path, version, created_at, created_by, deleted_at, destroyed_at,
                        key_id, x'' AS ciphertext, compromised_at, compromised_reason
                 FROM versions WHERE path = ?1 ORDER BY version",
            )?;
            let rows = stmt.query_map([path], |r| row_to_version(r, false))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn versions_sealed_elsewhere(
        &self,
        key_id: u32,
        limit: usize,
    ) -> Result<Vec<VersionRecord>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT path, version, created_at, created_by, deleted_at, destroyed_at,
                        key_id, ciphertext, compromised_at, compromised_reason
                 FROM versions WHERE key_id < ?1 AND destroyed_at IS NULL
                 ORDER BY path, version LIMIT ?2",
            )?;
            let rows =
                stmt.query_map(params![key_id, limit as i64], |r| row_to_version(r, true))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<ListPage> {
        let query = query.clone();
        self.read(move |c| list_page(c, &query)).await
    }

    async fn get_token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        let hash = *hash;
        self.read(move |c| {
            let row: Option<(String, Option<i64>)> = c
                .prepare_cached("SELECT data, uses_left FROM tokens WHERE hash = ?1")?
                .query_row([&hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(data, uses)| token_from_parts(&hash, &data, uses))
                .transpose()
        })
        .await
    }

    async fn get_token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>> {
        let accessor = accessor.to_string();
        self.read(move |c| {
            let row: Option<(Vec<u8>, String, Option<i64>)> = c
                .prepare_cached("SELECT hash, data, uses_left FROM tokens WHERE accessor = ?1")?
                .query_row([accessor], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            row.map(|(hash, data, uses)| token_from_parts(&hash, &data, uses))
                .transpose()
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT hash, data, uses_left FROM tokens ORDER BY accessor")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, data, uses) = row?;
                out.push(token_from_parts(&hash, &data, uses)?);
            }
            Ok(out)
        })
        .await
    }

    async fn get_object(&self, kind: &str, key: &str) -> Result<Option<StoredObject>> {
        let (kind, key) = (kind.to_string(), key.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT kind, key, revision, value FROM objects WHERE kind = ?1 AND key = ?2",
            )?
            .query_row(params![kind, key], row_to_object)
            .optional()?)
        })
        .await
    }

    async fn list_objects(&self, kind: &str) -> Result<Vec<StoredObject>> {
        let kind = kind.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, key, revision, value FROM objects WHERE kind = ?1 ORDER BY key",
            )?;
            let rows = stmt.query_map([kind], row_to_object)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn commit(&self, mutations: Vec<Mutation>) -> Result<()> {
        if mutations.is_empty() {
            return Ok(());
        }
        self.submit(Work::Commit(mutations)).await
    }

    async fn is_empty(&self) -> Result<bool> {
        self.read(|c| {
            let any: Option<i64> = c
                .query_row(
                    "SELECT 1 FROM system UNION ALL SELECT 1 FROM secrets
                     UNION ALL SELECT 1 FROM tokens UNION ALL SELECT 1 FROM objects LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(any.is_none())
        })
        .await
    }

    async fn export(&self, out: tokio::sync::mpsc::Sender<Exported>) -> Result<()> {
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || {
            // Its own connection: the transaction stays open for the whole
            // export, which must not hold a pooled reader that long.
            let mut conn = open_connection(&path, true)?;
            export_all(&mut conn, &out)
        })
        .await
        .map_err(|e| StoreError::backend_from(format!("export task failed: {e}"), e))?
    }

    async fn import(&self, records: Vec<Exported>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.submit(Work::Import(records)).await
    }

    async fn close(&self) -> Result<()> {
        // Dropping the sender ends the writer loop once the queue is drained.
        drop(
            self.inner
                .writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let handle = self
            .inner
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|e| StoreError::backend_from(format!("writer join failed: {e}"), e))?
                .map_err(|_| StoreError::backend("writer thread panicked"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::prefix_upper_bound;

    use super::{list_sql, migrate};

    /// A listing's scan is an index range bounded at both ends: SQLite must
    /// not read past the prefix (it did, to the end of the table, while the
    /// end was written `(?2 IS NULL OR path < ?2)`).
    #[test]
    fn a_listing_scans_only_its_prefix() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for include_deleted in [false, true] {
            let (after, from) = list_sql(true, include_deleted);
            for sql in [after, from] {
                let plan: Vec<String> = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .unwrap()
                    .query_map(rusqlite::params!["app/", "app0", 10], |r| {
                        r.get::<_, String>(3)
                    })
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                let plan = plan.join("; ");
                assert!(plan.contains("path>? AND path<?"), "{sql}\nplans as {plan}");
            }
        }
    }

    #[test]
    fn upper_bound_excludes_siblings_that_share_a_stem() {
        let ub = prefix_upper_bound("app/dev/").unwrap();
        assert!("app/dev/x".as_bytes() < ub.as_bytes());
        assert!("app/dev/~~~".as_bytes() < ub.as_bytes());
        assert!("app/dev0".as_bytes() >= ub.as_bytes());
        assert!("app/dev2".as_bytes() > ub.as_bytes());
        assert_eq!(prefix_upper_bound(""), None);
    }
}
