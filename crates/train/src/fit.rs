//! The one training loop: epochs of shuffled batches, a validation pass, early stopping with
//! learning-rate halving, the progress bar and the CSV log. Every trainer of the crate — both
//! MMSSL stages, the single-stage ablation and the one-stage baselines — is a [`Step`] run by
//! [`fit`]; what differs between them is only what one step and one validation pass compute.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::StageSchedule;
use crate::error::Result;
use crate::log::{stage_bar, CsvLog, EpochRecord};

/// The random streams of a training run, each derived from the run's seed by its own rule, so
/// that a new use of randomness takes a new stream and cannot shift the numbers of another.
///
/// The rules are the ones each use had before the streams were named (seeded results stayed
/// bit for bit what they were).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The order of stage 1's batches.
    Stage1,
    /// The faulty copies of the validation windows.
    ValidationFaults,
    /// The order of the faulty training batches and their faults: stage 2, the single-stage
    /// ablation and the one-stage baselines.
    FaultyTraining,
    /// The initial weights of MMGAN's and MMUGAN's discriminators.
    Discriminator,
    /// Which training windows of a downstream task keep their label.
    TrainingLabels,
    /// Which validation windows of a downstream task keep their label.
    ValidationLabels,
    /// The order, top-ups and modality dropout of Robult's batches.
    Robult,
    /// The order of ModalImmune's batches and its controller's choices.
    ModalImmune,
    /// The learned sensor repair's initial weights, training faults and column order.
    RepairMix,
    /// The faulty copies of the validation windows the learned sensor repair stops on.
    RepairMixValidation,
}

impl Stream {
    /// This stream's seed for a run seeded with `seed`.
    pub fn seed(self, seed: u64) -> u64 {
        match self {
            Stream::Stage1 => seed.wrapping_add(1),
            Stream::ValidationFaults => seed.wrapping_add(2),
            Stream::FaultyTraining => seed.wrapping_add(3),
            Stream::Discriminator => seed.wrapping_add(7),
            Stream::TrainingLabels => seed ^ 0x1abe1,
            Stream::ValidationLabels => seed ^ 0xa1 ^ 0x1abe1,
            Stream::Robult => seed ^ 0x20b,
            Stream::ModalImmune => seed ^ 0x1111,
            Stream::RepairMix => seed ^ 0x3e9a1,
            Stream::RepairMixValidation => seed ^ 0x3e9a2,
        }
    }

    /// A generator of this stream for a run seeded with `seed`.
    pub fn rng(self, seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed(seed))
    }
}

/// What one optimiser step reports: per-sample means over its batch (the terms that the
/// trainer has; the others stay 0) and the step's gradient statistics.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepReport {
    /// The loss that was minimised.
    pub loss: f64,
    /// Stage 2's latent term.
    pub latent: f64,
    /// Stage 2's output term.
    pub output: f64,
    /// Stage 2's detection term.
    pub detection: f64,
    /// Stage 2's contrastive term.
    pub contrastive: f64,
    /// Global gradient norm before modulation.
    pub grad_norm: f64,
    /// Whether the corrector's gradient was clipped.
    pub clipped: bool,
}

/// One trainer, as [`fit`] drives it.
pub trait Step {
    /// What early stopping keeps: the best model so far.
    type Model: Clone;

    /// One optimiser step on the training items `batch` (indices into the training windows),
    /// drawing any faults from `rng`, the stream the batches were shuffled with; `None` when
    /// the step skips the batch (it is then not counted).
    fn train(&mut self, batch: &[usize], rng: &mut ChaCha8Rng) -> Option<StepReport>;

    /// The early-stopping criterion of the current model on the validation data.
    fn validate(&self) -> f64;

    /// The current model.
    fn model(&self) -> &Self::Model;

    /// Runs the next steps at the base learning rates × `factor` (halved on stale epochs).
    fn scale_learning_rate(&mut self, factor: f64);
}

/// How [`fit`] runs a trainer.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The name in the log's `stage` column and on the progress bar.
    pub name: &'static str,
    /// Training windows: the items are 0..windows.
    pub windows: usize,
    /// Items per step.
    pub batch_size: usize,
    /// Epochs, patience and halving.
    pub schedule: &'a StageSchedule,
    /// Whether to show the progress bar.
    pub progress: bool,
}

/// What [`fit`] returns.
#[derive(Debug, Clone)]
pub struct Fitted<M> {
    /// The model of the best validation epoch.
    pub model: M,
    /// Epochs run.
    pub epochs: usize,
    /// The best validation criterion.
    pub best: f64,
    /// Training samples stepped on, over all epochs.
    pub samples: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Runs `step` for the plan's epochs: each epoch shuffles the training items with `rng`, steps
/// through them in batches, validates, writes a line of `log` and keeps the model when it is
/// the best so far; it stops after `patience` epochs without improvement.
pub fn fit<S: Step>(step: &mut S, plan: &Plan<'_>, rng: &mut ChaCha8Rng, log: &mut CsvLog) -> Result<Fitted<S::Model>> {
    let schedule = plan.schedule;
    let per_epoch = plan.windows.div_ceil(plan.batch_size) as u64;
    let bar = stage_bar(plan.progress, per_epoch * schedule.epochs as u64, plan.name);
    let mut stop = EarlyStop::new(schedule);
    let (start, mut epochs, mut samples) = (Instant::now(), 0, 0);
    for epoch in 1..=schedule.epochs {
        let t = Instant::now();
        let mut order: Vec<usize> = (0..plan.windows).collect();
        order.shuffle(rng);
        let mut sums = Sums::default();
        for batch in order.chunks(plan.batch_size) {
            if let Some(report) = step.train(batch, rng) {
                sums.add(&report, batch.len());
            }
            bar.inc(1);
            bar.set_message(format!("epoch {epoch} loss {:.5}", sums.mean_loss()));
        }
        let val = step.validate();
        let seconds = t.elapsed().as_secs_f64();
        log.write(&sums.record(plan.name, epoch, val, seconds))?;
        bar.set_message(format!("epoch {epoch} loss {:.5} val {val:.5}", sums.mean_loss()));
        (epochs, samples) = (epoch, samples + sums.n);
        if stop.update(val, step.model()) {
            break;
        }
        step.scale_learning_rate(stop.learning_rate_factor());
    }
    bar.finish();
    let model = stop.kept.expect("at least one epoch");
    Ok(Fitted { model, epochs, best: stop.best, samples, seconds: start.elapsed().as_secs_f64() })
}

/// An epoch's running sums of [`StepReport`]s.
#[derive(Debug, Default)]
struct Sums {
    loss: f64,
    latent: f64,
    output: f64,
    detection: f64,
    contrastive: f64,
    grad_norm: f64,
    clipped: usize,
    steps: usize,
    n: usize,
}

impl Sums {
    fn add(&mut self, r: &StepReport, batch: usize) {
        let w = batch as f64;
        self.loss += r.loss * w;
        self.latent += r.latent * w;
        self.output += r.output * w;
        self.detection += r.detection * w;
        self.contrastive += r.contrastive * w;
        self.grad_norm += r.grad_norm;
        self.clipped += usize::from(r.clipped);
        self.steps += 1;
        self.n += batch;
    }

    fn mean_loss(&self) -> f64 {
        self.loss / self.n.max(1) as f64
    }

    fn record(&self, stage: &'static str, epoch: usize, val_loss: f64, seconds: f64) -> EpochRecord {
        let (n, steps) = (self.n.max(1) as f64, self.steps.max(1) as f64);
        EpochRecord {
            stage,
            epoch,
            train_loss: self.loss / n,
            val_loss,
            latent: self.latent / n,
            output: self.output / n,
            detection: self.detection / n,
            contrastive: self.contrastive / n,
            grad_norm: self.grad_norm / steps,
            clipped_share: self.clipped as f64 / steps,
            seconds,
            samples_per_s: self.n as f64 / seconds,
        }
    }
}

/// Keeps the best model and counts epochs without improvement.
struct EarlyStop<M> {
    best: f64,
    kept: Option<M>,
    stale: usize,
    patience: usize,
    halve_after: Option<usize>,
    halvings: i32,
}

impl<M: Clone> EarlyStop<M> {
    fn new(schedule: &StageSchedule) -> Self {
        let (patience, halve_after) = (schedule.patience, schedule.halve_after);
        Self { best: f64::INFINITY, kept: None, stale: 0, patience, halve_after, halvings: 0 }
    }

    /// ½ for every `halve_after` epochs without a better validation loss so far.
    fn learning_rate_factor(&self) -> f64 {
        0.5f64.powi(self.halvings)
    }

    /// Records an epoch; returns whether training should stop.
    fn update(&mut self, val: f64, model: &M) -> bool {
        if val < self.best || self.kept.is_none() {
            self.best = val;
            self.kept = Some(model.clone());
            self.stale = 0;
        } else {
            self.stale += 1;
            if self.halve_after.is_some_and(|h| h > 0 && self.stale.is_multiple_of(h)) {
                self.halvings += 1;
            }
        }
        self.stale >= self.patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "model" that is the number of steps taken, with a scripted validation curve.
    struct Counter {
        steps: usize,
        curve: Vec<f64>,
        epoch: std::cell::Cell<usize>,
        factors: Vec<f64>,
    }

    impl Step for Counter {
        type Model = usize;
        fn train(&mut self, batch: &[usize], _: &mut ChaCha8Rng) -> Option<StepReport> {
            self.steps += 1;
            (batch.len() > 1).then_some(StepReport { loss: 1.0, grad_norm: 2.0, ..Default::default() })
        }
        fn validate(&self) -> f64 {
            let e = self.epoch.get();
            self.epoch.set(e + 1);
            self.curve[e]
        }
        fn model(&self) -> &usize {
            &self.steps
        }
        fn scale_learning_rate(&mut self, factor: f64) {
            self.factors.push(factor);
        }
    }

    #[test]
    fn keeps_the_best_epoch_halves_on_stale_ones_and_stops_after_the_patience() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CsvLog::create(&dir.path().join("log.csv")).unwrap();
        let curve = vec![3.0, 2.0, 2.5, 2.2, 2.1, 1.0];
        let mut step = Counter { steps: 0, curve, epoch: Default::default(), factors: Vec::new() };
        let schedule = StageSchedule { epochs: 6, learning_rate: 1e-3, patience: 3, halve_after: Some(2) };
        // 7 windows in batches of 3: two full batches and one of 1 that the step skips
        let plan = Plan { name: "test", windows: 7, batch_size: 3, schedule: &schedule, progress: false };
        let fitted = fit(&mut step, &plan, &mut Stream::Stage1.rng(0), &mut log).unwrap();
        // epochs 3, 4 and 5 do not beat epoch 2: stop after 5, with epoch 2's model (6 steps)
        assert_eq!((fitted.epochs, fitted.best, fitted.model), (5, 2.0, 6));
        // set after every epoch but the last; halved by the second stale epoch (epoch 4)
        assert_eq!(step.factors, [1.0, 1.0, 1.0, 0.5]);
        // only the steps that reported count as samples
        assert_eq!(fitted.samples, 5 * 6);
        drop(log);
        let text = std::fs::read_to_string(dir.path().join("log.csv")).unwrap();
        let first = text.lines().nth(1).unwrap();
        assert!(first.starts_with("test,1,1.000000e0,3.000000e0,"), "{first}");
        assert_eq!(text.lines().count(), 1 + 5);
    }
}
