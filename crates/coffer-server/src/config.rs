//! The server configuration file (TOML), as documented in docs/src/configuration.md.
//!
//! Unknown keys are errors: a misspelt `tls` section must not silently start
//! a server without TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::serve::TlsFiles;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// `coffer server --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Non-loopback addresses require `[tls]`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory for the embedded store (`coffer.db`); created 0700 if missing.
    pub data_dir: PathBuf,
    /// TLS certificate and key.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Largest secret value, in bytes.
    #[serde(default = "default_max_value_bytes")]
    pub max_value_bytes: usize,
    /// Seconds to let requests in flight finish on shutdown.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_secs: u64,
    /// The URL clients reach this server at (`https://coffer.example.com:8200`),
    /// when that is not the listen address: its host and port are accepted
    /// in the `Host` header.
    #[serde(default)]
    pub api_addr: Option<String>,
    /// Further names (`NAME`, any port; or `NAME:PORT`) accepted in the
    /// `Host` header, besides the listen address, the names the TLS
    /// certificate is valid for and, on loopback, `localhost`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Accept `sys/init` from any address, not only from this machine.
    #[serde(default)]
    pub allow_remote_init: bool,
    /// Seconds a connection may take to deliver each request's headers
    /// (from its start, or from the end of its previous response); idle
    /// connections are closed after it.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Seconds a request body may take to arrive (408 after it).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    /// Connections one address (IPv6: one /64) may hold at once.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Failed logins one address (IPv6: one /64) may make before each
    /// further attempt waits (1 s, doubling up to 5 minutes).
    #[serde(default = "default_login_failures_per_address")]
    pub login_failures_per_address: u32,
    /// Failed unseal attempts one address may make before each further
    /// attempt waits (as for logins).
    #[serde(default = "default_unseal_failures_per_address")]
    pub unseal_failures_per_address: u32,
    /// Seconds a web console session may go unused before it ends.
    #[serde(default = "default_console_idle_timeout")]
    pub console_idle_timeout_secs: u64,
    /// Seconds after its login at which a web console session ends,
    /// however busy (never later than its token's expiry).
    #[serde(default = "default_console_absolute_timeout")]
    pub console_absolute_timeout_secs: u64,
    /// Seconds between sweeps that delete expired tokens, invitations,
    /// break-glass grants and stale login-failure counters.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_secs: u64,
    /// Seconds between passes of the lifecycle scheduler (due rotations,
    /// rotation-due and expiry alerts).
    #[serde(default = "default_lifecycle_interval")]
    pub lifecycle_interval_secs: u64,
    /// A loopback address on which `GET /metrics` answers without a token
    /// (for a Prometheus on the same machine, and while sealed). Off by
    /// default; `GET /api/v1/sys/metrics` with a token always works.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Encryptions under one keyring key before a new key is added
    /// automatically (default 2^30; at least 16).
    #[serde(default = "default_key_max_encryptions")]
    pub key_max_encryptions: u64,
    /// The KV version 2 mounts of the Vault-compatible API (`/v1/`): each
    /// `NAME` shows the whole coffer tree, each `NAME=FOLDER/` the coffer
    /// folder `FOLDER/` (prefixes must not overlap). Default `["secret"]`.
    #[serde(default = "default_vault_mounts")]
    pub vault_mounts: Vec<String>,
    /// Log format: `text` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Log filter, such as `info` or `coffer=debug`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Where secrets are stored (default: SQLite in `data_dir`).
    #[serde(default)]
    pub storage: StorageConfig,
}

/// `log_format`: how the server's log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Lines for people (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_of(
            d,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            "log_format must be \"text\" or \"json\"",
        )
    }
}

/// `audit.fsync`: when audit log files are flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditFsync {
    /// About once a second; a batch is acknowledged once written (the
    /// default).
    #[default]
    Interval,
    /// Before each batch is acknowledged.
    Batch,
}

impl<'de> Deserialize<'de> for AuditFsync {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_of(
            d,
            &[
                ("interval", AuditFsync::Interval),
                ("batch", AuditFsync::Batch),
            ],
            "audit.fsync must be \"interval\" or \"batch\"",
        )
    }
}

/// A value with a fixed set of names. The error for any other names the
/// setting and its choices, as the documentation does (never echoing the
/// value given).
fn one_of<'de, D: serde::Deserializer<'de>, T: Copy>(
    d: D,
    choices: &[(&str, T)],
    error: &str,
) -> Result<T, D::Error> {
    let given = String::deserialize(d)?;
    choices
        .iter()
        .find(|(name, _)| *name == given)
        .map(|(_, value)| *value)
        .ok_or_else(|| serde::de::Error::custom(error))
}

/// `[storage]`: the embedded SQLite store (the default) or PostgreSQL.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite` (the default: `DATA_DIR/coffer.db`) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full&sslrootcert=FILE]`.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the PostgreSQL password (instead of one in the URL;
    /// `COFFER_STORAGE_PASSWORD` in the environment also works).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Largest number of pooled PostgreSQL connections (default 16).
    #[serde(default)]
    pub pool_size: Option<usize>,
}

// Hand-written: the URL may carry a password.
impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field(
                "url",
                &self.url.as_deref().map(coffer_store::postgres::redact_url),
            )
            .field("password_file", &self.password_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl StorageConfig {
    /// Whether this names PostgreSQL (otherwise SQLite).
    pub fn is_postgres(&self) -> bool {
        self.url
            .as_deref()
            .is_some_and(coffer_store::postgres::is_postgres_url)
    }

    /// Whether the URL carries a password (which a command line shows to
    /// every user of the machine).
    pub fn url_has_password(&self) -> bool {
        self.url
            .as_deref()
            .is_some_and(coffer_store::postgres::url_has_password)
    }

    /// Checks the URL's shape (never echoing it: it may hold a password).
    pub fn validate(&self) -> Result<(), String> {
        match self.url.as_deref() {
            None | Some("sqlite") => Ok(()),
            Some(u) if coffer_store::postgres::is_postgres_url(u) => {
                if self.pool_size.is_some_and(|n| !(2..=1000).contains(&n)) {
                    return Err("storage.pool_size must be between 2 and 1000".into());
                }
                Ok(())
            }
            Some(_) => {
                Err("storage.url must be \"sqlite\" or a postgres:// (postgresql://) URL".into())
            }
        }
    }
}

/// `[audit]`: where records go, how they are flushed, alert thresholds and
/// webhooks. With nothing configured, records go to `DATA_DIR/audit.log`.
/// Its `Debug` shows webhook URLs redacted (see [`coffer_audit::sanitize::redact_url`]).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Log files (default: `DATA_DIR/audit.log`; `[]` for none, which then
    /// needs another sink).
    #[serde(default)]
    pub files: Option<Vec<PathBuf>>,
    /// Also write records to standard output.
    #[serde(default)]
    pub stdout: bool,
    /// Stream sockets: `tcp://HOST:PORT` or `unix:/PATH`.
    #[serde(default)]
    pub sockets: Vec<String>,
    /// `interval` (sync files to disk every second) or `batch` (before
    /// acknowledging every batch).
    #[serde(default)]
    pub fsync: AuditFsync,
    /// URLs that alerts are POSTed to (JSON; never a value).
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// A file holding the key webhook deliveries are signed with (at least
    /// 32 bytes; `COFFER_WEBHOOK_SECRET` takes precedence). Without one,
    /// deliveries are unsigned.
    #[serde(default)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Rotate log files once one has grown to this many bytes (default:
    /// only when asked).
    #[serde(default)]
    pub rotate_bytes: Option<u64>,
    /// Rotate log files at least this often, in seconds (default: only when
    /// asked).
    #[serde(default)]
    pub rotate_interval_secs: Option<u64>,
    /// After each rotation, remove each log's oldest rotated files beyond
    /// this many (default: keep them all).
    #[serde(default)]
    pub keep_rotated_files: Option<usize>,
    /// After each rotation, remove rotated files set aside more than this
    /// many days ago (default: keep them all).
    #[serde(default)]
    pub keep_rotated_days: Option<u64>,
    /// Alert thresholds.
    #[serde(default)]
    pub alerts: coffer_audit::AlertRules,
}

// Hand-written: a webhook URL is a credential (Slack-style URLs carry their
// secret in the path; others in the query or as `user:pass@`).
impl std::fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let webhooks: Vec<String> = self
            .webhooks
            .iter()
            .map(|w| coffer_audit::sanitize::redact_url(w))
            .collect();
        f.debug_struct("AuditConfig")
            .field("files", &self.files)
            .field("stdout", &self.stdout)
            .field("sockets", &self.sockets)
            .field("fsync", &self.fsync)
            .field("webhooks", &webhooks)
            .field("webhook_secret_file", &self.webhook_secret_file)
            .field("rotate_bytes", &self.rotate_bytes)
            .field("rotate_interval_secs", &self.rotate_interval_secs)
            .field("keep_rotated_files", &self.keep_rotated_files)
            .field("keep_rotated_days", &self.keep_rotated_days)
            .field("alerts", &self.alerts)
            .finish()
    }
}

/// The smallest `audit.rotate_bytes`: below it, files would be mostly
/// rotation notices.
const MIN_ROTATE_BYTES: u64 = 1 << 20;

/// The default audit log file name, in the data directory.
pub const DEFAULT_AUDIT_FILE: &str = "audit.log";

impl AuditConfig {
    /// The sinks to open.
    pub fn sinks(&self, data_dir: &Path) -> Vec<coffer_audit::SinkSpec> {
        let mut out: Vec<coffer_audit::SinkSpec> = match &self.files {
            Some(files) => files.clone(),
            None => vec![data_dir.join(DEFAULT_AUDIT_FILE)],
        }
        .into_iter()
        .map(coffer_audit::SinkSpec::File)
        .collect();
        if self.stdout {
            out.push(coffer_audit::SinkSpec::Stdout);
        }
        out.extend(
            self.sockets
                .iter()
                .map(|s| coffer_audit::SinkSpec::Socket(s.clone())),
        );
        out
    }

    /// The flush policy.
    pub fn fsync_policy(&self) -> coffer_audit::Fsync {
        match self.fsync {
            AuditFsync::Batch => coffer_audit::Fsync::Batch,
            AuditFsync::Interval => {
                coffer_audit::Fsync::Interval(std::time::Duration::from_secs(1))
            }
        }
    }

    /// When log files rotate by themselves.
    pub fn rotation(&self) -> coffer_audit::Rotation {
        coffer_audit::Rotation {
            max_bytes: self.rotate_bytes,
            every: self
                .rotate_interval_secs
                .map(std::time::Duration::from_secs),
            keep_files: self.keep_rotated_files,
            keep_for: self
                .keep_rotated_days
                .map(|d| std::time::Duration::from_secs(d.saturating_mul(86_400))),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.rotate_bytes.is_some_and(|b| b < MIN_ROTATE_BYTES) {
            return Err(format!(
                "audit.rotate_bytes must be at least {MIN_ROTATE_BYTES} (1 MiB)"
            ));
        }
        if self.keep_rotated_files == Some(0) {
            return Err(
                "audit.keep_rotated_files must be at least 1 (leave it out to keep every file)"
                    .into(),
            );
        }
        if self.keep_rotated_days == Some(0) {
            return Err(
                "audit.keep_rotated_days must be at least 1 (leave it out to keep every file)"
                    .into(),
            );
        }
        if self.rotate_interval_secs.is_some_and(|s| s < 60) {
            return Err("audit.rotate_interval_secs must be at least 60".into());
        }
        for s in &self.sockets {
            coffer_audit::SinkSpec::socket(s).map_err(|e| format!("audit.sockets: {e}"))?;
        }
        if self.files.as_ref().is_some_and(Vec::is_empty) && !self.stdout && self.sockets.is_empty()
        {
            return Err(
                "audit: no sink configured (files = [] with no stdout or sockets); requests would all be refused"
                    .into(),
            );
        }
        for w in &self.webhooks {
            let shown = coffer_audit::sanitize::redact_url(w);
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                return Err(format!(
                    "audit.webhooks: {shown} must be an http:// or https:// URL"
                ));
            }
            // Credentials in the authority would never be sent (deliveries
            // carry no Authorization header), so the receiver would refuse
            // every alert: refused at start instead. A receiver that needs
            // a secret takes it in the path or query, or checks the
            // `coffer-signature` header (audit.webhook_secret_file).
            let rest = &w[w.find("://").map_or(0, |i| i + 3)..];
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if authority.contains('@') {
                return Err(format!(
                    "audit.webhooks: {shown} has a user name or password (user:password@host), which would not be sent; put the receiver's secret in its path or query, or have it check the coffer-signature header (audit.webhook_secret_file)"
                ));
            }
        }
        self.alerts.validate()
    }
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8270";

fn default_vault_mounts() -> Vec<String> {
    vec!["secret".to_owned()]
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default address")
}
fn default_max_value_bytes() -> usize {
    64 * 1024
}
fn default_shutdown_grace() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    60
}
fn default_body_timeout() -> u64 {
    30
}
fn default_max_connections_per_address() -> usize {
    256
}
fn default_console_idle_timeout() -> u64 {
    crate::ui::DEFAULT_IDLE_SECS
}

fn default_console_absolute_timeout() -> u64 {
    crate::ui::DEFAULT_ABSOLUTE_SECS
}

fn default_login_failures_per_address() -> u32 {
    crate::throttle::LOGIN_BACKOFF.free
}
fn default_unseal_failures_per_address() -> u32 {
    crate::throttle::UNSEAL_BACKOFF.free
}
fn default_sweep_interval() -> u64 {
    600
}
fn default_lifecycle_interval() -> u64 {
    60
}
fn default_key_max_encryptions() -> u64 {
    1 << 30
}
fn default_log_level() -> String {
    "info".into()
}

impl ServerConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<ServerConfig, String> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| e.message().to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// The names accepted in the `Host` header besides the server's own
    /// (`api_addr` and `allowed_hosts`).
    pub fn host_rules(&self) -> Result<Vec<crate::HostRule>, String> {
        let mut rules = Vec::new();
        if let Some(url) = &self.api_addr {
            rules.push(crate::HostRule::from_url(url).map_err(|e| format!("api_addr: {e}"))?);
        }
        for h in &self.allowed_hosts {
            rules.push(crate::HostRule::parse(h).map_err(|e| format!("allowed_hosts: {e}"))?);
        }
        Ok(rules)
    }

    /// How the server's router checks requests, once it listens on
    /// `bound` (the bound address, with its real port, and certificate).
    pub fn router_options(
        &self,
        bound: &crate::BoundListener,
    ) -> Result<crate::RouterOptions, String> {
        Ok(crate::RouterOptions {
            vault_mounts: self.vault_mounts()?,
            tls: bound.is_tls(),
            certificate: bound.certificate().cloned(),
            hosts: self.host_rules()?,
            allow_remote_init: self.allow_remote_init,
            login_failures_per_address: self.login_failures_per_address,
            unseal_failures_per_address: self.unseal_failures_per_address,
            console: crate::ConsoleOptions {
                idle_timeout_secs: self.console_idle_timeout_secs,
                absolute_timeout_secs: self.console_absolute_timeout_secs,
                public_https: self
                    .api_addr
                    .as_deref()
                    .is_some_and(|a| a.to_ascii_lowercase().starts_with("https://")),
            },
            ..crate::RouterOptions::new(
                crate::body_limit_for(self.max_value_bytes),
                bound.local_addr(),
            )
        })
    }

    /// Connection timeouts and limits.
    pub fn serve_options(&self) -> crate::ServeOptions {
        crate::ServeOptions {
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
            body_timeout: std::time::Duration::from_secs(self.body_timeout_secs),
            max_connections_per_address: self.max_connections_per_address,
            grace: std::time::Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    /// The Vault API's mounts, from `vault_mounts`.
    pub fn vault_mounts(&self) -> Result<coffer_policy::vault::Mounts, String> {
        let mounts = self
            .vault_mounts
            .iter()
            .map(|spec| {
                let (name, prefix) = spec.split_once('=').unwrap_or((spec, ""));
                coffer_policy::vault::Mount::new(name, prefix)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("vault_mounts: {e}"))?;
        coffer_policy::vault::Mounts::new(mounts).map_err(|e| format!("vault_mounts: {e}"))
    }

    fn validate(&self) -> Result<(), String> {
        self.host_rules()?;
        self.vault_mounts()?;
        if !(60..=86_400).contains(&self.console_idle_timeout_secs) {
            return Err("console_idle_timeout_secs must be between 60 and 86400".into());
        }
        if !(self.console_idle_timeout_secs..=7 * 86_400)
            .contains(&self.console_absolute_timeout_secs)
        {
            return Err(
                "console_absolute_timeout_secs must be at least console_idle_timeout_secs and at most 604800"
                    .into(),
            );
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            return Err("idle_timeout_secs must be between 1 and 3600".into());
        }
        if !(1..=3600).contains(&self.body_timeout_secs) {
            return Err("body_timeout_secs must be between 1 and 3600".into());
        }
        if !(1..=100_000).contains(&self.max_connections_per_address) {
            return Err("max_connections_per_address must be between 1 and 100000".into());
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > 16 * 1024 * 1024 {
            return Err("max_value_bytes must be between 1 and 16777216".into());
        }
        if !(16..=1 << 31).contains(&self.key_max_encryptions) {
            return Err("key_max_encryptions must be between 16 and 2147483648".into());
        }
        if !(1..=86_400).contains(&self.lifecycle_interval_secs) {
            return Err("lifecycle_interval_secs must be between 1 and 86400".into());
        }
        if self.metrics_listen.is_some_and(|a| !a.ip().is_loopback()) {
            return Err(
                "metrics_listen must be a loopback address (127.0.0.1:PORT or [::1]:PORT): it answers without a token; elsewhere, scrape GET /api/v1/sys/metrics with one".into(),
            );
        }
        self.audit.validate()?;
        self.storage.validate()?;
        if self.tls.is_none() && !self.listen.ip().is_loopback() {
            return Err(format!(
                "listen = \"{}\" is not a loopback address, so [tls] cert_file and key_file are required",
                self.listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_mounts() {
        let c = ServerConfig::parse("data_dir = \"/d\"").unwrap();
        let mounts = c.vault_mounts().unwrap();
        assert_eq!(mounts, coffer_policy::vault::Mounts::default());
        let c = ServerConfig::parse(
            "data_dir = \"/d\"\nvault_mounts = [\"secret=apps/\", \"team=team/kv/\"]",
        )
        .unwrap();
        let mounts = c.vault_mounts().unwrap();
        assert_eq!(mounts.get("team").unwrap().coffer_path("x"), "team/kv/x");
        assert_eq!(mounts.get("secret").unwrap().prefix(), "apps/");
        for (bad, fragment) in [
            ("[\"secret\", \"kv=x/\"]", "overlapping"),
            ("[\"sys\"]", "reserved"),
            ("[\"a/b\"]", "mount name"),
            ("[\"kv=../\"]", "mount prefix"),
            ("[\"kv=x\"]", "mount prefix"),
            ("[]", "at least one"),
            ("[\"kv\", \"kv=y/\"]", "twice"),
        ] {
            let e = ServerConfig::parse(&format!("data_dir = \"/d\"\nvault_mounts = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("vault_mounts") && e.contains(fragment),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn minimal_and_full_files() {
        let c = ServerConfig::parse("data_dir = \"/var/lib/coffer\"").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.max_value_bytes, 65536);
        assert!(c.tls.is_none());
        let c = ServerConfig::parse(
            "listen = \"0.0.0.0:8443\"\ndata_dir = \"/d\"\nmax_value_bytes = 1024\nlog_format = \"json\"\n[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.tls.unwrap().cert_file, PathBuf::from("/c.pem"));
        assert_eq!(
            c.audit.sinks(Path::new("/d")),
            [coffer_audit::SinkSpec::File("/d/audit.log".into())]
        );
        assert_eq!(c.audit.rotation(), coffer_audit::Rotation::default());
        let c = ServerConfig::parse(
            "data_dir = \"/d\"\n[audit]\nfiles = [\"/var/log/a.log\"]\nstdout = true\nsockets = [\"tcp://127.0.0.1:5170\"]\nfsync = \"batch\"\nrotate_bytes = 1073741824\nrotate_interval_secs = 86400\nkeep_rotated_files = 30\nkeep_rotated_days = 90\n[audit.alerts]\nfailures = 5\n",
        )
        .unwrap();
        assert_eq!(
            c.audit.rotation(),
            coffer_audit::Rotation {
                max_bytes: Some(1 << 30),
                every: Some(std::time::Duration::from_secs(86400)),
                keep_files: Some(30),
                keep_for: Some(std::time::Duration::from_secs(90 * 86400)),
            }
        );
        assert_eq!(c.audit.sinks(Path::new("/d")).len(), 3);
        assert_eq!(c.audit.fsync_policy(), coffer_audit::Fsync::Batch);
        assert_eq!(c.audit.alerts.failures, 5);
    }

    #[test]
    fn settings_with_fixed_choices_are_typed() {
        let c = ServerConfig::parse("data_dir = \"/d\"").unwrap();
        assert_eq!(
            (c.log_format, c.audit.fsync),
            (LogFormat::Text, AuditFsync::Interval)
        );
        assert_eq!(
            c.audit.fsync_policy(),
            coffer_audit::Fsync::Interval(std::time::Duration::from_secs(1))
        );
        let c = ServerConfig::parse(
            "data_dir = \"/d\"\nlog_format = \"json\"\n[audit]\nfsync = \"batch\"",
        )
        .unwrap();
        assert_eq!(
            (c.log_format, c.audit.fsync),
            (LogFormat::Json, AuditFsync::Batch)
        );
        // A wrong choice is named with the choices, as before they were typed.
        for (text, want) in [
            (
                "data_dir = \"/d\"\nlog_format = \"xml\"",
                "log_format must be \"text\" or \"json\"",
            ),
            (
                "data_dir = \"/d\"\n[audit]\nfsync = \"never\"",
                "audit.fsync must be \"interval\" or \"batch\"",
            ),
            (
                "data_dir = \"/d\"\n[audit]\nfsync = \"Batch\"",
                "audit.fsync must be \"interval\" or \"batch\"",
            ),
        ] {
            assert_eq!(ServerConfig::parse(text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn mistakes_are_errors() {
        for (text, want) in [
            ("listen = \"0.0.0.0:8200\"\ndata_dir = \"/d\"", "[tls]"),
            (
                "data_dir = \"/d\"\n[tsl]\ncert_file = \"x\"",
                "unknown field",
            ),
            ("data_dir = \"/d\"\nmax_value_bytes = 0", "max_value_bytes"),
            ("data_dir = \"/d\"\nlog_format = \"xml\"", "log_format"),
            ("listen = \"not an address\"\ndata_dir = \"/d\"", "address"),
            ("", "data_dir"),
            (
                "data_dir = \"/d\"\n[audit]\nfsync = \"never\"",
                "audit.fsync",
            ),
            (
                "data_dir = \"/d\"\n[audit]\nsockets = [\"udp://x:1\"]",
                "audit.sockets",
            ),
            ("data_dir = \"/d\"\n[audit]\nfiles = []", "no sink"),
            (
                "data_dir = \"/d\"\n[audit]\nrotate_bytes = 1000",
                "audit.rotate_bytes",
            ),
            (
                "data_dir = \"/d\"\n[audit]\nrotate_interval_secs = 5",
                "audit.rotate_interval_secs",
            ),
            (
                "data_dir = \"/d\"\n[audit]\nkeep_rotated_files = 0",
                "audit.keep_rotated_files",
            ),
            (
                "data_dir = \"/d\"\n[audit]\nkeep_rotated_days = 0",
                "audit.keep_rotated_days",
            ),
            (
                "data_dir = \"/d\"\n[audit]\nwebhooks = [\"ftp://x\"]",
                "audit.webhooks",
            ),
            (
                "data_dir = \"/d\"\n[audit.alerts]\nfailures = 0",
                "at least 1",
            ),
            ("data_dir = \"/d\"\n[audit]\nfile = \"x\"", "unknown field"),
            ("data_dir = \"/d\"\napi_addr = \"coffer:8200\"", "api_addr"),
            (
                "data_dir = \"/d\"\nallowed_hosts = [\"a@b\"]",
                "allowed_hosts",
            ),
            (
                "data_dir = \"/d\"\nidle_timeout_secs = 0",
                "idle_timeout_secs",
            ),
            (
                "data_dir = \"/d\"\nbody_timeout_secs = 0",
                "body_timeout_secs",
            ),
            (
                "data_dir = \"/d\"\nmax_connections_per_address = 0",
                "max_connections_per_address",
            ),
            (
                "data_dir = \"/d\"\nconsole_idle_timeout_secs = 0",
                "console_idle_timeout_secs",
            ),
            (
                "data_dir = \"/d\"\nconsole_idle_timeout_secs = 600\nconsole_absolute_timeout_secs = 300",
                "console_absolute_timeout_secs",
            ),
        ] {
            let err = ServerConfig::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
