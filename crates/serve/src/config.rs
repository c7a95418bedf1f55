//! `serve.toml`: everything `mmguard serve` can be told, in one serde struct. Unknown keys are
//! errors naming the key, so that a typo does not silently fall back to a default.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! [limits]
//! max_body_bytes = 16777216
//! max_batch = 256
//! body_timeout_ms = 30000
//! [connections]
//! max_connections = 4096
//! header_timeout_ms = 10000
//! [batching]
//! max_batch = 64
//! max_wait_us = 0
//! [rules]
//! stuck_readings = 8
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::batcher::BatchConfig;
use crate::decode::Limits;
use crate::rules::RuleConfig;
use crate::server::ConnectionLimits;

/// The service's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on; loopback unless told otherwise.
    pub listen: SocketAddr,
    /// What a request may hold, and how long it may take.
    pub limits: Limits,
    /// Open connections and header (idle) timeout of the listener.
    pub connections: ConnectionLimits,
    /// Micro-batching across requests.
    pub batching: BatchConfig,
    /// The rule checks before the gate.
    pub rules: RuleConfig,
    /// Bearer token of the admin endpoints; never written back out.
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
    /// Without a token, open the admin endpoints to anyone who reaches the port (logged as a
    /// warning at start); `false`, the default, keeps them closed.
    pub admin_open: bool,
    /// After SIGINT/SIGTERM, seconds the admitted requests get to finish before the process
    /// exits whatever the clients do (a half-sent request would otherwise hold it for ever).
    pub drain_deadline_s: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: Limits::default(),
            connections: ConnectionLimits::default(),
            batching: BatchConfig::default(),
            rules: RuleConfig::default(),
            admin_token: None,
            admin_open: false,
            drain_deadline_s: 30.0,
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// It is not valid TOML for this struct (the message names the key and line).
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
}

impl ServeConfig {
    /// Reads a TOML file; keys left out keep their defaults.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        mmguard_data::ensure_regular_file(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sets_what_it_names_and_a_typo_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\n[batching]\nmax_wait_us = 500\n").unwrap();
        let cfg = ServeConfig::read(&path).unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.batching.max_wait_us, 500);
        assert_eq!(cfg.batching.max_batch, BatchConfig::default().max_batch);
        assert_eq!(cfg.limits, Limits::default());

        std::fs::write(&path, "[batching]\nmax_wiat_us = 500\n").unwrap();
        let err = ServeConfig::read(&path).unwrap_err().to_string();
        assert!(err.contains("serve.toml") && err.contains("max_wiat_us"), "{err}");
        let err = ServeConfig::read(&dir.path().join("absent.toml")).unwrap_err().to_string();
        assert!(err.contains("absent.toml"), "{err}");
    }
}
