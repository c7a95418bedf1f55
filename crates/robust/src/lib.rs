//! Downstream heads that stay useful when a modality is missing or broken, on the frozen
//! stage-1 latents of a trained MMSSL run: Robult (soft positive-unlabelled contrastive
//! alignment with latent reconstruction, semi-supervised; [`robult`]) and ModalImmune (training
//! that collapses a chosen modality on purpose; [`modalimmune`] with its controller and
//! numerics in [`controller`] and [`linalg`]). [`task`] reads the targets and encodes the
//! windows, [`score`] measures a head.

pub mod controller;
mod head;
pub mod linalg;
pub mod modalimmune;
mod report;
pub mod robult;
pub mod score;
pub mod study;
pub mod task;

pub use head::{batches, HeadSchedule, TaskHead};
pub use report::write_report;
pub use study::{run_study, task_description, write_results, HeadMethod, HeadResult, StudyConfig};

use std::path::PathBuf;

/// Errors of the downstream study.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the dataset or its labels failed.
    #[error(transparent)]
    Data(#[from] mmguard_data::Error),
    /// Loading the run failed.
    #[error(transparent)]
    Model(#[from] mmguard_model::Error),
    /// Drawing a chart failed.
    #[error(transparent)]
    Plot(#[from] mmguard_plot::Error),
    /// A task the data cannot define.
    #[error("{0}")]
    Task(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result alias of the downstream study.
pub type Result<T> = std::result::Result<T, Error>;
