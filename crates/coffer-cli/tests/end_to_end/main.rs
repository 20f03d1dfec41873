//! coffer-cli's end-to-end tests, in one test binary (one link instead of
//! one per file). Each module starts the real `coffer` binary as a server
//! and runs the CLI against it (`common` is the harness): what needs a
//! process, such as the CLI's own behaviour and exit statuses, the server's
//! log, raw sockets, signals, `kill -9`, TLS, file modes and several nodes.
//! The HTTP contract itself is tested in-process in coffer-server.

mod common;

mod access;
mod approle;
mod at_rest;
mod audit;
mod audit_hostile;
mod authz_matrix;
mod backup;
mod bad_input;
mod cluster;
mod completions;
mod console;
mod crash;
mod deploy_files;
mod doctor;
mod durability;
mod e2e;
mod hardening;
mod hostile_http;
mod leak;
mod lifecycle;
mod machine_login;
mod metrics;
mod migrate_vault;
mod pgroles;
mod run;
mod scan;
mod seal;
mod share;
mod sync_aws;
mod tls;
mod transfer;
mod vault_clients;
