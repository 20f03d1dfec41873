//! Coffer's storage layer.
//!
//! The [`Storage`] trait is the only way the rest of coffer touches durable state.
//! Everything that crosses it is either ciphertext (secret values, the wrapped
//! keyring and root key) or non-secret metadata (paths, version numbers, times,
//! token *hashes*, actor names). A backend never sees a plaintext value or a raw
//! token, so a stolen database file reveals nothing that the unseal keys protect.
//!
//! Writes are expressed as a list of [`Mutation`]s applied atomically by
//! [`Storage::commit`]. Expressing writes as data (rather than as an open
//! transaction handle) is what lets a backend group-commit many callers' writes
//! into one durable transaction, and keeps the trait implementable by both the
//! embedded SQLite backend and a networked PostgreSQL one.

#![forbid(unsafe_code)]

mod error;
mod model;
pub mod postgres;
pub mod sqlite;

pub use error::{Cause, StoreError};
pub use model::{
    Change, Compromise, Expect, Exported, ListEntry, ListPage, ListQuery, Mutation, RevokeScope,
    SecretMeta, StoredObject, TokenKind, TokenRecord, VersionRecord, VersionState,
    VersionStateChange, Workload,
};
pub use postgres::{PgTarget, PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

use async_trait::async_trait;

/// The result type of every storage operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A durable store of ciphertext and metadata.
///
/// Implementations must make every acknowledged [`Storage::commit`] durable
/// (it survives `kill -9` and power loss) and atomic (all of its mutations or
/// none). Check-and-set conditions inside a commit are evaluated atomically with
/// the writes, so concurrent writers (including writers on other nodes sharing
/// the same database) never lose an update silently.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A short name for logs and status output ("sqlite", "postgres").
    fn backend_name(&self) -> &'static str;

    /// Reads a system record (seal configuration, wrapped keys).
    async fn get_system(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Reads a secret's metadata, deleted or not.
    async fn get_meta(&self, path: &str) -> Result<Option<SecretMeta>>;

    /// Reads the metadata of many secrets at once (deleted or not), in one
    /// round trip where the backend can: the secrets of `paths` that exist,
    /// in no particular order. A bulk write learns with it which of its
    /// paths are new without one read per path.
    async fn get_metas(&self, paths: &[String]) -> Result<Vec<SecretMeta>> {
        let mut found = Vec::new();
        for path in paths {
            if let Some(meta) = self.get_meta(path).await? {
                found.push(meta);
            }
        }
        Ok(found)
    }

    /// Reads one version of a secret, including destroyed ones (whose ciphertext is empty).
    async fn get_version(&self, path: &str, version: u64) -> Result<Option<VersionRecord>>;

    /// Lists all versions of a secret, oldest first, without their ciphertext.
    async fn history(&self, path: &str) -> Result<Vec<VersionRecord>>;

    /// Up to `limit` versions, with their ciphertext, that are not destroyed
    /// and are sealed under a key older (with a lower id) than `key_id`, in
    /// (path, version) order (for the keyring's background re-wrap; key ids
    /// only grow, so the active key has the highest).
    async fn versions_sealed_elsewhere(
        &self,
        key_id: u32,
        limit: usize,
    ) -> Result<Vec<VersionRecord>>;

    /// Lists secret paths under a prefix, one level or recursively, in byte order.
    async fn list(&self, query: &ListQuery) -> Result<ListPage>;

    /// Reads a token record by the keyed hash of the raw token.
    async fn get_token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>>;

    /// Reads a token record by its accessor.
    async fn get_token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>>;

    /// Lists every token record, ordered by accessor.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;

    /// Reads one access-model record.
    async fn get_object(&self, kind: &str, key: &str) -> Result<Option<StoredObject>>;

    /// Lists every access-model record of a kind, ordered by key.
    async fn list_objects(&self, kind: &str) -> Result<Vec<StoredObject>>;

    /// Applies the mutations atomically and durably, or none of them.
    ///
    /// Returns [`StoreError::Conflict`] when a check-and-set condition fails; in
    /// that case nothing was written.
    async fn commit(&self, mutations: Vec<Mutation>) -> Result<()>;

    /// Waits until every change that other nodes committed before this call
    /// began can be taken with [`Storage::take_changes`]. A node calls it
    /// before it answers a request, so that a revocation, a policy change or
    /// a new version committed anywhere is in effect at the next request.
    /// Fails (and the request must fail) when the backend cannot tell.
    ///
    /// A store that only one process can open has no other nodes: the
    /// default does nothing.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Takes the changes other nodes committed that [`Storage::sync`] has
    /// collected since the last call.
    fn take_changes(&self) -> Vec<Change> {
        Vec::new()
    }

    /// Whether this node runs the cluster's background jobs (the rotation
    /// scheduler, sweeps), taking the role if no live node holds it. At most
    /// one node holds it at a time; it passes to another node within
    /// seconds of the holder's death. The default (a store only one process
    /// can open) always leads.
    async fn lead(&self) -> Result<bool> {
        Ok(true)
    }

    /// Gives the leader role up (a sealed node cannot run background jobs,
    /// so it must not keep them from a node that can). The default (a
    /// single process) does nothing.
    async fn resign(&self) {}

    /// Periodic upkeep that one node (the leader) runs for all: for
    /// PostgreSQL, pruning the change log. The default does nothing.
    async fn housekeeping(&self) -> Result<()> {
        Ok(())
    }

    /// Whether the store holds nothing at all (a restore's target must).
    async fn is_empty(&self) -> Result<bool>;

    /// Sends every record of one consistent snapshot to `out` (which may
    /// apply back-pressure), while writers go on.
    async fn export(&self, out: tokio::sync::mpsc::Sender<Exported>) -> Result<()>;

    /// Writes records of a snapshot into an empty store, in one transaction
    /// per call. Records must come in export order (a secret before its
    /// versions).
    async fn import(&self, records: Vec<Exported>) -> Result<()>;

    /// Flushes and stops background work. Called once on graceful shutdown;
    /// commits already acknowledged are durable whether or not this runs.
    async fn close(&self) -> Result<()>;
}
