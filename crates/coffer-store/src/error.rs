//! Storage errors. Messages name paths and versions at most, never stored bytes.

/// What can go wrong in a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A check-and-set condition did not hold; nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend could not be reached or failed to read or write.
    #[error("storage error: {0}")]
    Backend(String),
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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}
