//! The server configuration file (TOML), as documented in the README.
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
    /// Seconds between sweeps that delete expired tokens, invitations,
    /// break-glass grants and stale login-failure counters.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_secs: u64,
    /// Log format: `text` or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// Log filter, such as `info` or `coffer=debug`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8270";

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default address")
}
fn default_max_value_bytes() -> usize {
    64 * 1024
}
fn default_shutdown_grace() -> u64 {
    30
}
fn default_sweep_interval() -> u64 {
    600
}
fn default_log_format() -> String {
    "text".into()
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

    fn validate(&self) -> Result<(), String> {
        if self.max_value_bytes == 0 || self.max_value_bytes > 16 * 1024 * 1024 {
            return Err("max_value_bytes must be between 1 and 16777216".into());
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err("log_format must be \"text\" or \"json\"".into());
        }
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
        ] {
            let err = ServerConfig::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
