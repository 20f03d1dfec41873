//! Cloud secret stores in and out: the adapters behind `coffer sync`.
//!
//! [`aws`] reads and writes AWS Secrets Manager and SSM Parameter Store
//! through the official SDK; [`mapping`] is the pure part that decides
//! what a name or a value becomes on the other side (and refuses what has
//! no exact counterpart). The orchestration (which side is read, what the
//! coffer server is asked, the report) lives in the CLI, which owns the
//! coffer client.
//!
//! Values travel as [`coffer_crypto::SecretString`] (zeroized on drop, no
//! `Debug`); errors name secrets, never values or credentials.

#![forbid(unsafe_code)]

pub mod aws;
pub mod mapping;

/// What kind of failure a [`SyncError`] is, for the caller's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The service could not be reached (connection, timeout).
    Unreachable,
    /// No credentials, or the service refused them or the request.
    Denied,
    /// The secret or parameter does not exist.
    NotFound,
    /// Bad configuration (no region, a malformed endpoint URL).
    Config,
    /// The cloud holds something coffer did not write where coffer
    /// expected its own (a planted version marker); `--force` overrides.
    Conflict,
    /// Anything else the service answered.
    Other,
}

/// A failure talking to a cloud store. The message names the operation
/// and the secret, and what the service said (its error code and message);
/// never a value or a credential.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SyncError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// One line for people.
    pub message: String,
}

impl SyncError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> SyncError {
        SyncError {
            kind,
            message: message.into(),
        }
    }
}
