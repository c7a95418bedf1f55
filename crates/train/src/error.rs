//! Errors of the training crate.

use std::path::PathBuf;

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The dataset cannot be used as asked.
    #[error(transparent)]
    Data(#[from] mmguard_data::Error),
    /// Saving the run failed.
    #[error(transparent)]
    Model(#[from] mmguard_model::Error),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An option out of range.
    #[error("invalid training configuration: {0}")]
    Config(String),
}

/// Result alias of the training crate.
pub type Result<T> = std::result::Result<T, Error>;
