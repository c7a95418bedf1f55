//! Evaluation of a trained run: reconstruction error of the faulty input, the stage-1
//! autoencoder and the gated MMSSL output per modality, detection AUROC / AUPR / F1, and the
//! false-alarm rate on clean data (docs/design.md §5); severity sweeps with robustness curves; detection
//! on streams whose faults start during operation.

mod evaluate;
mod metrics;
mod protocol;
mod stream;
mod sweep;

pub use evaluate::{
    corrupt, eval_windows, evaluate, test_copies, ColumnMse, DetectionReport, EvalConfig, EvalReport, MissingModality,
    Mse,
};
pub use metrics::{aupr, auroc, Detection, Stat};
pub use protocol::{protocol, severity_curves, CurveConfig, CurvePoint, ProtocolResult};
pub use stream::{evaluate_stream, StreamDetection, StreamReport};
pub use sweep::{sweep, to_csv, trained_faults, write_curves, Cells, SweepRow};

/// Errors of the evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data file.
    #[error(transparent)]
    Data(#[from] mmguard_data::Error),
    /// The run.
    #[error(transparent)]
    Model(#[from] mmguard_model::Error),
    /// Nothing to evaluate.
    #[error("{0}")]
    Empty(String),
}

/// Result alias of the evaluation crate.
pub type Result<T> = std::result::Result<T, Error>;
