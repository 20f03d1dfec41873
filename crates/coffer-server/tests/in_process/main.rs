//! coffer-server's in-process tests, in one test binary (one link instead
//! of one per file):
//!
//! - the HTTP contract, driven through the router with
//!   `tower::ServiceExt::oneshot` on a real core, SQLite store and audit
//!   file (`common` is the harness): the authorization matrix, the route
//!   table's requirements against what the server enforces, audit records
//!   per route, the OpenAPI document, bad input and hostile names;
//! - whole nodes (`coffer_server::Node`) started on port 0 in this process:
//!   restart, the data directory's lock, dev mode, failures half way.

mod common;

mod access;
mod approle;
mod audit;
mod audit_hostile;
mod authz_matrix;
mod bad_input;
mod compromised;
mod console;
mod console_actions;
mod console_admin;
mod fingerprints;
mod history;
mod jwt_login;
mod metrics;
mod node;
mod node_failures;
mod openapi;
mod operation_names;
mod route_requires;
mod shares;
mod vault_api;
mod vault_authz;
