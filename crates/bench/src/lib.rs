//! The benchmark: every method on every seed, trained on the same data with the same faults and
//! budget, scored by the same protocol on the same faulty copies of the same test windows, and a
//! report in the MMSSL paper's format (camera, sensor, combined MSE × 10⁻², mean ± std).
//!
//! ```text
//! report/
//!   runs/<method>/seed-<k>/   one training each; result.json marks it finished (resume skips it)
//!   report.md                 the table, the paper's Table 1 beside it, MMSSL against the best baseline
//!   results.csv, results.json
//!   errors.png                bars with ±1 std: MMSSL and the baselines, then MMSSL and its ablations
//!   curves.png                output error against severity per fault, every method's seed 0
//!   training.png              validation loss per epoch, seed 0 of each method
//!   heads/                    with --heads: downstream heads on each seed's MMSSL encoders
//! ```

mod method;
mod report;
mod run;

pub use method::Method;
pub use mmguard_eval::CurveConfig;
pub use report::{summarize, write_heads_report, write_report, Summary, PAPER_TABLE};
pub use run::{bench_budget, run_bench, run_heads, BenchConfig, SeedResult};

use std::path::PathBuf;

/// Errors of a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Training failed.
    #[error(transparent)]
    Train(#[from] mmguard_train::Error),
    /// Loading a run failed.
    #[error(transparent)]
    Model(#[from] mmguard_model::Error),
    /// Evaluation failed.
    #[error(transparent)]
    Eval(#[from] mmguard_eval::Error),
    /// The downstream heads failed.
    #[error(transparent)]
    Robust(#[from] mmguard_robust::Error),
    /// Drawing a chart failed.
    #[error(transparent)]
    Plot(#[from] mmguard_plot::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A configuration the benchmark cannot run.
    #[error("{0}")]
    Config(String),
}

/// Result alias of the benchmark.
pub type Result<T> = std::result::Result<T, Error>;

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.into(), source }
}
