//! Errors of the data crate: each names the file, the key and what was expected.

use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or writing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not a readable zip archive (truncated, corrupt or not an npz file).
    #[error("{path}: not a readable .npz archive (truncated or corrupt?): {reason}")]
    Archive {
        /// The file.
        path: PathBuf,
        /// What the zip reader said.
        reason: String,
    },
    /// An array inside the archive could not be decoded.
    #[error("{path}: key '{key}': cannot decode the array: {reason}")]
    Array {
        /// The file.
        path: PathBuf,
        /// The array's key.
        key: String,
        /// Why it could not be decoded.
        reason: String,
    },
    /// A required key is absent.
    #[error("{path}: missing key '{key}' (expected {expected}); keys found: {found}")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The missing key.
        key: String,
        /// The dtype and shape the contract expects.
        expected: String,
        /// The keys the archive does hold.
        found: String,
    },
    /// A key holds an array of the wrong dtype.
    #[error("{path}: key '{key}': expected dtype {expected}, found {found}")]
    DType {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// The expected dtype.
        expected: String,
        /// The dtype in the file.
        found: String,
    },
    /// A key holds an array of the wrong shape.
    #[error("{path}: key '{key}': expected shape {expected}, found {found:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape in the file.
        found: Vec<u64>,
    },
    /// A value breaks the contract (non-finite readings, non-contiguous episodes, …).
    #[error("{path}: key '{key}': {reason}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong, with counts and positions.
        reason: String,
    },
    /// A request that the dataset cannot satisfy (window longer than every episode, too few
    /// episodes to split, columns that do not match a run, …).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of the data crate.
pub type Result<T> = std::result::Result<T, Error>;
