//! The errors of coffer's use cases.
//!
//! Each variant maps to one class of outcome (and one HTTP status and CLI exit
//! status further up). Messages are written for the person who made the request:
//! they may name a path or version, never a value, a token or key material.

use coffer_store::StoreError;

use crate::path::PathError;

/// What a use case can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The server is sealed; only status and unseal work.
    #[error("coffer is sealed")]
    Sealed,
    /// `init` has not run yet.
    #[error("coffer is not initialized; run `coffer operator init`")]
    NotInitialized,
    /// `init` has already run.
    #[error("coffer is already initialized")]
    AlreadyInitialized,
    /// No token, or a token that is malformed, unknown, expired or revoked.
    /// Deliberately one message for all of them.
    #[error("missing or invalid token")]
    Unauthenticated,
    /// The token is valid but its policies (or a protected environment) do
    /// not allow the operation. The message says which capability was missing
    /// on which target, never anything about stored data.
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// A login that failed, for whatever reason (one message for all).
    #[error("{0}")]
    LoginFailed(String),
    /// Too many attempts (failed logins for one account); try again later.
    #[error("{0}")]
    RateLimited(String),
    /// Nothing at that path or version, or the version was deleted or destroyed.
    #[error("{0}")]
    NotFound(String),
    /// A bad path.
    #[error(transparent)]
    Path(#[from] PathError),
    /// Any other bad input.
    #[error("{0}")]
    Invalid(String),
    /// A value larger than the configured limit.
    #[error("value is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Size of the refused value.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The secret's expiry has passed: it is refused to every reader.
    #[error("{0}")]
    Expired(String),
    /// A check-and-set condition failed.
    #[error("{0}")]
    Conflict(String),
    /// An unseal key that is malformed or does not open the root key.
    #[error("{0}")]
    InvalidUnsealKey(String),
    /// Stored data failed an integrity check (tampering or corruption).
    #[error("integrity check failed: {0}")]
    Corrupt(String),
    /// A system coffer acts on for the caller (the PostgreSQL server whose
    /// roles it manages) failed or refused; the message says which and why.
    #[error("{0}")]
    Upstream(String),
    /// The storage backend failed.
    #[error("storage failure")]
    Storage(#[source] StoreError),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => CoreError::Conflict(m),
            other => CoreError::Storage(other),
        }
    }
}

/// The result type of coffer's use cases.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
