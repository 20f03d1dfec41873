//! Storage errors. Messages name paths and versions at most, never stored bytes.

use std::sync::Arc;

/// What can go wrong in a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A check-and-set condition did not hold; nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend could not be reached or failed to read or write.
    #[error("storage error: {message}")]
    Backend {
        /// What failed, fit for a log: names files and hosts at most, never
        /// stored bytes or credentials.
        message: String,
        /// The error underneath, when there was one (see [`Cause`]).
        cause: Option<Cause>,
    },
    /// Stored data does not have the shape this binary expects.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database was written by a newer coffer.
    #[error(
        "database schema version {found} is newer than this coffer supports ({supported}); upgrade coffer"
    )]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this binary knows.
        supported: i64,
    },
    /// The store has been closed.
    #[error("storage is closed")]
    Closed,
}

impl StoreError {
    /// A backend failure with no underlying error (a thread that ended, an
    /// export abandoned).
    pub fn backend(message: impl Into<String>) -> StoreError {
        StoreError::Backend {
            message: message.into(),
            cause: None,
        }
    }

    /// A backend failure caused by `cause`, described by `message` (which
    /// says, scrubbed, what the cause's own text would).
    pub fn backend_from(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Backend {
            message: message.into(),
            cause: Some(Cause::new(cause)),
        }
    }

    /// The error a backend failure came from, if any: downcast it to
    /// `rusqlite::Error`, `tokio_postgres::Error` or `std::io::Error` to
    /// inspect it.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            StoreError::Backend {
                cause: Some(cause), ..
            } => Some(cause.get()),
            _ => None,
        }
    }
}

/// The error a backend returned, kept for a caller to inspect
/// ([`StoreError::cause`]). It is deliberately neither shown nor returned by
/// `source()`: the message already says what it says, scrubbed, and its own
/// text may hold what a message must not (a PostgreSQL error's DETAIL can
/// quote the key of a stored record). Its `Debug` names its type only.
#[derive(Clone)]
pub struct Cause {
    error: Arc<dyn std::error::Error + Send + Sync + 'static>,
    type_name: &'static str,
}

impl Cause {
    /// Keeps `error`.
    pub fn new<E: std::error::Error + Send + Sync + 'static>(error: E) -> Cause {
        Cause {
            error: Arc::new(error),
            type_name: std::any::type_name::<E>(),
        }
    }

    /// The error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.error
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cause({})", self.type_name)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::backend_from(e.to_string(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_error_keeps_its_cause_without_showing_it_twice() {
        let e = StoreError::from(rusqlite::Error::QueryReturnedNoRows);
        assert_eq!(e.to_string(), "storage error: Query returned no rows");
        let cause = e.cause().expect("kept");
        assert!(matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::QueryReturnedNoRows)
        ));
        // Not in the source chain, so a report of the whole chain says it once.
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(
            format!("{e:?}"),
            "Backend { message: \"Query returned no rows\", cause: Some(Cause(rusqlite::error::Error)) }"
        );
    }

    #[test]
    fn a_cause_is_not_shown_by_debug() {
        let io = std::io::Error::other("DETAIL: Key (key)=(app/prod/TOKEN) already exists");
        let e = StoreError::backend_from("postgres: duplicate key", io);
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("app/prod/TOKEN"), "{shown}");
        assert!(
            e.cause()
                .unwrap()
                .downcast_ref::<std::io::Error>()
                .is_some()
        );
        assert!(
            StoreError::backend("writer thread panicked")
                .cause()
                .is_none()
        );
    }
}
