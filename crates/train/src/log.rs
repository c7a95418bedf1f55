//! The CSV training log and the progress bars.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::{Error, Result};

/// One line of `train_log.csv`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EpochRecord {
    /// `stage1` or `stage2`.
    pub stage: &'static str,
    /// Epoch, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss (the early-stopping criterion).
    pub val_loss: f64,
    /// Stage 2: mean latent loss.
    pub latent: f64,
    /// Stage 2: mean output loss.
    pub output: f64,
    /// Stage 2: mean detection loss.
    pub detection: f64,
    /// Stage 2: mean contrastive loss.
    pub contrastive: f64,
    /// Stage 2: mean global gradient norm before modulation.
    pub grad_norm: f64,
    /// Stage 2: share of steps in which the corrector's gradient was clipped.
    pub clipped_share: f64,
    /// Wall time of the epoch, seconds.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_s: f64,
}

const HEADER: &str =
    "stage,epoch,train_loss,val_loss,latent,output,detection,contrastive,grad_norm,clipped_share,seconds,samples_per_s";

/// Appends epoch records to the CSV log as they come.
#[derive(Debug)]
pub struct CsvLog {
    path: std::path::PathBuf,
    out: BufWriter<File>,
}

impl CsvLog {
    /// Creates (truncates) the log and writes its header.
    pub fn create(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: path.into(), source };
        let mut out = BufWriter::new(File::create(path).map_err(io)?);
        writeln!(out, "{HEADER}").map_err(io)?;
        Ok(Self { path: path.into(), out })
    }

    /// Writes one record and flushes, so the log is readable while training runs.
    pub fn write(&mut self, r: &EpochRecord) -> Result<()> {
        let io = |source| Error::Io { path: self.path.clone(), source };
        writeln!(
            self.out,
            "{},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.4e},{:.3},{:.2},{:.1}",
            r.stage,
            r.epoch,
            r.train_loss,
            r.val_loss,
            r.latent,
            r.output,
            r.detection,
            r.contrastive,
            r.grad_norm,
            r.clipped_share,
            r.seconds,
            r.samples_per_s
        )
        .map_err(io)?;
        self.out.flush().map_err(io)
    }
}

/// A progress bar over all batches of a stage, or a hidden one.
pub fn stage_bar(show: bool, total: u64, name: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar
}
