//! Coffer's HTTP server: the native JSON API under `/api/v1/`, the
//! Vault-compatible API under `/v1/`, the web console under `/ui/`, TLS, request
//! ids and graceful shutdown. This is the only server-side crate that knows
//! HTTP; it translates requests into calls on `coffer_core::Coffer` and
//! `CoreError`s into status codes.

#![forbid(unsafe_code)]

mod audit_layer;
mod config;
pub mod dev;
mod edge;
#[cfg(test)]
mod edge_tests;
mod error;
mod extract;
pub mod harden;
mod jobs;
mod jwks;
mod metered_store;
pub mod metrics;
mod node;
pub mod private_file;
pub mod request;
mod routes;
mod serve;
mod state;
mod throttle;
mod timefmt;
mod ui;
mod vault;
pub mod webhook;

pub use config::{
    AuditConfig, AuditFsync, ConfigError, DEFAULT_AUDIT_FILE, LogFormat, ServerConfig,
    StorageConfig,
};
pub use edge::{HostRule, RouterOptions};
pub use error::ApiError;
pub use node::{DB_FILE, DataDirLock, LOCK_FILE, Node, NodeError, NodeOptions, open_store};
/// The request layer's former name, kept so that code naming it still builds.
pub use request as request_id;
pub use routes::filter_from;
pub use routes::{OPENAPI, router};
/// The per-connection request extension, for tests that drive the router
/// in-process and must say where a request came from.
#[doc(hidden)]
pub use serve::Peer;
pub use serve::{BoundListener, ServeError, ServeOptions, TlsFiles, bind, serve};
pub use state::AppState;
pub use timefmt::rfc3339;
pub use ui::ConsoleOptions;

/// Largest request body accepted for a given value limit. JSON escaping can
/// grow a value (a quote becomes two bytes, a control character six), so the
/// body may be larger than the value; the value's own limit is checked after
/// parsing. Bodies beyond this are refused while being read, never buffered.
pub fn body_limit_for(max_value_bytes: usize) -> usize {
    max_value_bytes.saturating_mul(2).saturating_add(16 * 1024)
}
