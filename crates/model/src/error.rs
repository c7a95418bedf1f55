//! Errors of the model crate.

use std::path::PathBuf;

/// What can go wrong while saving or loading a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or has the wrong fields.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The weights file is unreadable or does not match the configuration.
    #[error("{path}: {reason}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A run whose configuration or weights cannot serve: a value out of its range, sizes that
    /// disagree, weights that are not finite f32.
    #[error("{path}: {field}: {reason}")]
    InvalidRun {
        /// The file.
        path: PathBuf,
        /// The offending field (`gate.threshold`, `normalization.min[3]`, a tensor, …).
        field: String,
        /// What is wrong with it, and what was expected.
        reason: String,
    },
    /// Data that does not fit the run (other columns, other image size, …).
    #[error("{0}")]
    Incompatible(String),
}

/// Result alias of the model crate.
pub type Result<T> = std::result::Result<T, Error>;
