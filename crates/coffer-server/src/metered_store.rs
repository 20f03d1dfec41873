//! A [`Storage`] that times every call into the store it wraps, for the
//! `coffer_store_operation_duration_seconds` histogram and the
//! `coffer_store_operation_errors` counter.
//!
//! The node wraps its store once, where it opens it, so every caller (the
//! core, the background jobs, the metrics scrape itself) is measured
//! without a timer at each call site. The labels are the operation (a word
//! fixed here, one per trait method) and the backend's own fixed name
//! (`sqlite`, `postgres`): never a path, a key, a token or an accessor.
//!
//! Each operation's histogram and counter are created up front and held by
//! index, so a call costs two clock reads and an atomic add, no label
//! lookup.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use coffer_store::{
    Change, Exported, ListPage, ListQuery, Mutation, SecretMeta, Storage, StoredObject,
    TokenRecord, VersionRecord,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// The operations timed, one per [`Storage`] method that does I/O (the two
/// token reads are one `get_token`). These words are the `operation`
/// label's only values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    GetSystem,
    GetMeta,
    GetMetas,
    GetVersion,
    History,
    VersionsSealedElsewhere,
    List,
    GetToken,
    ListTokens,
    GetObject,
    ListObjects,
    Commit,
    Sync,
    Lead,
    Housekeeping,
    IsEmpty,
    Export,
    Import,
}

impl Op {
    pub(crate) const ALL: [Op; 18] = [
        Op::GetSystem,
        Op::GetMeta,
        Op::GetMetas,
        Op::GetVersion,
        Op::History,
        Op::VersionsSealedElsewhere,
        Op::List,
        Op::GetToken,
        Op::ListTokens,
        Op::GetObject,
        Op::ListObjects,
        Op::Commit,
        Op::Sync,
        Op::Lead,
        Op::Housekeeping,
        Op::IsEmpty,
        Op::Export,
        Op::Import,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::GetSystem => "get_system",
            Op::GetMeta => "get_meta",
            Op::GetMetas => "get_metas",
            Op::GetVersion => "get_version",
            Op::History => "history",
            Op::VersionsSealedElsewhere => "versions_sealed_elsewhere",
            Op::List => "list",
            Op::GetToken => "get_token",
            Op::ListTokens => "list_tokens",
            Op::GetObject => "get_object",
            Op::ListObjects => "list_objects",
            Op::Commit => "commit",
            Op::Sync => "sync",
            Op::Lead => "lead",
            Op::Housekeeping => "housekeeping",
            Op::IsEmpty => "is_empty",
            Op::Export => "export",
            Op::Import => "import",
        }
    }
}

/// One operation's instruments, on one backend.
#[derive(Clone)]
pub(crate) struct Instruments {
    pub(crate) duration: Histogram,
    pub(crate) errors: Counter,
}

/// A store whose calls are timed.
pub(crate) struct MeteredStore {
    inner: Arc<dyn Storage>,
    /// Indexed by the position of the [`Op`] in [`Op::ALL`].
    by_op: Vec<Instruments>,
}

impl MeteredStore {
    /// `by_op` holds one entry per [`Op::ALL`], in that order.
    pub(crate) fn new(inner: Arc<dyn Storage>, by_op: Vec<Instruments>) -> MeteredStore {
        assert_eq!(by_op.len(), Op::ALL.len(), "one instrument per operation");
        MeteredStore { inner, by_op }
    }

    fn observe<T>(&self, op: Op, started: Instant, result: &coffer_store::Result<T>) {
        let i = &self.by_op[op as usize];
        i.duration.observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            i.errors.inc();
        }
    }
}

macro_rules! timed {
    ($self:ident, $op:expr, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.observe($op, started, &result);
        result
    }};
}

#[async_trait]
impl Storage for MeteredStore {
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn get_system(&self, key: &str) -> coffer_store::Result<Option<Vec<u8>>> {
        timed!(self, Op::GetSystem, self.inner.get_system(key))
    }

    async fn get_meta(&self, path: &str) -> coffer_store::Result<Option<SecretMeta>> {
        timed!(self, Op::GetMeta, self.inner.get_meta(path))
    }

    async fn get_metas(&self, paths: &[String]) -> coffer_store::Result<Vec<SecretMeta>> {
        timed!(self, Op::GetMetas, self.inner.get_metas(paths))
    }

    async fn get_version(
        &self,
        path: &str,
        version: u64,
    ) -> coffer_store::Result<Option<VersionRecord>> {
        timed!(self, Op::GetVersion, self.inner.get_version(path, version))
    }

    async fn history(&self, path: &str) -> coffer_store::Result<Vec<VersionRecord>> {
        timed!(self, Op::History, self.inner.history(path))
    }

    async fn versions_sealed_elsewhere(
        &self,
        key_id: u32,
        limit: usize,
    ) -> coffer_store::Result<Vec<VersionRecord>> {
        timed!(
            self,
            Op::VersionsSealedElsewhere,
            self.inner.versions_sealed_elsewhere(key_id, limit)
        )
    }

    async fn list(&self, query: &ListQuery) -> coffer_store::Result<ListPage> {
        timed!(self, Op::List, self.inner.list(query))
    }

    async fn get_token(&self, hash: &[u8; 32]) -> coffer_store::Result<Option<TokenRecord>> {
        timed!(self, Op::GetToken, self.inner.get_token(hash))
    }

    async fn get_token_by_accessor(
        &self,
        accessor: &str,
    ) -> coffer_store::Result<Option<TokenRecord>> {
        timed!(
            self,
            Op::GetToken,
            self.inner.get_token_by_accessor(accessor)
        )
    }

    async fn list_tokens(&self) -> coffer_store::Result<Vec<TokenRecord>> {
        timed!(self, Op::ListTokens, self.inner.list_tokens())
    }

    async fn get_object(
        &self,
        kind: &str,
        key: &str,
    ) -> coffer_store::Result<Option<StoredObject>> {
        timed!(self, Op::GetObject, self.inner.get_object(kind, key))
    }

    async fn list_objects(&self, kind: &str) -> coffer_store::Result<Vec<StoredObject>> {
        timed!(self, Op::ListObjects, self.inner.list_objects(kind))
    }

    async fn commit(&self, mutations: Vec<Mutation>) -> coffer_store::Result<()> {
        let started = Instant::now();
        let result = self.inner.commit(mutations).await;
        // A failed check-and-set is an answer, not a fault of the store.
        let i = &self.by_op[Op::Commit as usize];
        i.duration.observe(started.elapsed().as_secs_f64());
        if result
            .as_ref()
            .is_err_and(|e| !matches!(e, coffer_store::StoreError::Conflict(_)))
        {
            i.errors.inc();
        }
        result
    }

    async fn sync(&self) -> coffer_store::Result<()> {
        timed!(self, Op::Sync, self.inner.sync())
    }

    fn take_changes(&self) -> Vec<Change> {
        self.inner.take_changes()
    }

    async fn lead(&self) -> coffer_store::Result<bool> {
        timed!(self, Op::Lead, self.inner.lead())
    }

    async fn resign(&self) {
        self.inner.resign().await;
    }

    async fn housekeeping(&self) -> coffer_store::Result<()> {
        timed!(self, Op::Housekeeping, self.inner.housekeeping())
    }

    async fn is_empty(&self) -> coffer_store::Result<bool> {
        timed!(self, Op::IsEmpty, self.inner.is_empty())
    }

    async fn export(&self, out: tokio::sync::mpsc::Sender<Exported>) -> coffer_store::Result<()> {
        timed!(self, Op::Export, self.inner.export(out))
    }

    async fn import(&self, records: Vec<Exported>) -> coffer_store::Result<()> {
        timed!(self, Op::Import, self.inner.import(records))
    }

    async fn close(&self) -> coffer_store::Result<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_indexed_in_order_and_named_with_fixed_words() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
            let name = op.name();
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }
}
