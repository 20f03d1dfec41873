//! The state every handler and the request layer share.

use std::sync::Arc;

use coffer_core::Coffer;

/// Shared state of the handlers and the request layer.
#[derive(Clone)]
pub struct AppState {
    /// The application.
    pub coffer: Arc<Coffer>,
    /// The audit log every request is recorded in.
    pub auditor: Arc<coffer_audit::Auditor>,
    /// The node's metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Fetches JWT issuers' keys for machine logins.
    pub jwks: Arc<dyn coffer_core::jwt::KeyFetcher>,
}

impl AppState {
    /// The state of a node serving `coffer`, recording to `auditor`, with
    /// its metrics at zero.
    pub fn new(coffer: Arc<Coffer>, auditor: Arc<coffer_audit::Auditor>) -> AppState {
        AppState {
            coffer,
            auditor,
            metrics: Arc::default(),
            jwks: Arc::new(crate::jwks::HttpsFetcher),
        }
    }
}
