//! Exit statuses and error reporting.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other error |
//! | 2 | usage error (bad flags or arguments) |
//! | 3 | not found |
//! | 4 | permission denied (missing, invalid or insufficient token) |
//! | 5 | sealed or not initialized; the audit log cannot record |
//! | 6 | server unreachable |
//! | 7 | validation failed (bad input, value too large) |
//! | 8 | conflict (check-and-set failed, already initialized) |
//! | 9 | secrets found (`coffer scan`; the pre-commit hook refuses the commit) |

use coffer_client::{ClientError, ErrorKind};

/// A documented exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    Other = 1,
    Usage = 2,
    NotFound = 3,
    Denied = 4,
    Sealed = 5,
    Unreachable = 6,
    Invalid = 7,
    Conflict = 8,
    Found = 9,
}

impl From<Status> for std::process::ExitCode {
    fn from(s: Status) -> Self {
        std::process::ExitCode::from(s as u8)
    }
}

/// An error a command reports to the user, with the status to exit with.
#[derive(Debug)]
pub struct CliError {
    pub status: Status,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Builds a [`CliError`] for `anyhow`.
pub fn fail(status: Status, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CliError {
        status,
        message: message.into(),
    })
}

/// The exit status for an error.
pub fn status_of(e: &anyhow::Error) -> Status {
    if let Some(c) = e.downcast_ref::<CliError>() {
        return c.status;
    }
    if let Some(c) = e.downcast_ref::<ClientError>() {
        return match c.kind {
            ErrorKind::Unreachable => Status::Unreachable,
            ErrorKind::Sealed => Status::Sealed,
            ErrorKind::Unauthenticated | ErrorKind::Forbidden | ErrorKind::RateLimited => {
                Status::Denied
            }
            ErrorKind::NotFound => Status::NotFound,
            ErrorKind::Invalid => Status::Invalid,
            ErrorKind::Conflict => Status::Conflict,
            ErrorKind::Config => Status::Usage,
            ErrorKind::Server => Status::Other,
        };
    }
    Status::Other
}

/// Prints the error as one line on stderr.
pub fn report(e: &anyhow::Error) {
    let mut line = format!("{e:#}");
    if let Some(c) = e.downcast_ref::<ClientError>() {
        line = match c.kind {
            ErrorKind::Unauthenticated => {
                format!("{} (set COFFER_TOKEN or run `coffer login`)", c.message)
            }
            // Not sealed: the server could not audit, and says what to do.
            ErrorKind::Sealed
                if c.code.as_deref() == Some(coffer_api::codes::AUDIT_UNAVAILABLE) =>
            {
                c.message.clone()
            }
            ErrorKind::Sealed => format!(
                "{} (see `coffer status`; unseal with `coffer operator unseal`)",
                c.message
            ),
            _ => c.message.clone(),
        };
        if let Some(id) = &c.request_id
            && c.kind == ErrorKind::Server
        {
            line.push_str(&format!(" [request {id}]"));
        }
    }
    // One line, whatever the message contained.
    let line = line.replace(['\n', '\r'], " ");
    eprintln!("coffer: error: {line}");
}
