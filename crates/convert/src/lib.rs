//! Data in and out of the mmguard data contract.
//!
//! * [`import()`]: a folder of camera images (PNG or JPEG) and a CSV of sensor readings with a
//!   time column → a contract dataset. Images and readings are aligned by time stamp; what
//!   cannot be aligned is dropped and reported with its reason.
//! * [`export()`]: a contract dataset → frames as PNG files and readings as one CSV, so users
//!   can look at data in their own tools. Import reads an export back to the same arrays.
//!
//! Layout of an export (and what import expects):
//! ```text
//! DIR/frames/episode_0003/12.35.png   one folder per episode; the file name is the time stamp
//! DIR/sensors.csv                     episode,time,<sensor columns…>,<label columns…>
//! DIR/export.json                     columns with units, label names, the file's metadata
//! ```
//! Import also takes a flat folder of images (one recording on one clock) and file names that
//! carry the time stamp anywhere as their last number (`frame_0012.350.jpg`), or takes the time
//! from the image's position and a frame rate.
//!
//! This crate does not depend on the deep-learning stack.

mod export;
mod import;

pub use export::{export, ExportSummary, EXPORT_MANIFEST, FRAMES_DIR, SENSORS_CSV};
pub use import::{import, Dropped, ImageTime, ImportConfig, ImportReport, Imported};

use std::path::PathBuf;

/// Errors of import and export.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An image could not be read or written.
    #[error("{path}: {message}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The CSV is not what import needs.
    #[error("{path}: {message}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// What went wrong (line, column, value).
        message: String,
    },
    /// Nothing could be imported, or the data cannot be exported as asked.
    #[error("{0}")]
    Invalid(String),
    /// The contract side.
    #[error(transparent)]
    Data(#[from] mmguard_data::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
