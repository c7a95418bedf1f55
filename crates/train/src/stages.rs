//! The epoch loops of both stages, with early stopping on the validation loss.

use mmguard_model::compute;
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use mmguard_data::{Dataset, MinMax};
use mmguard_model::{host_batch, ComputeBlock, HostBatch, ModelConfig, Run, Stage1};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{StageSchedule, TrainConfig, TrainingFaults};
use crate::error::{Error, Result};
use crate::log::{stage_bar, CsvLog, EpochRecord};
use crate::pipeline::Prepared;
use crate::stage1::{reconstruction_error, Stage1Trainer};
use crate::stage2::{make_batch, stage2_loss, CleanCodes, LatentEncoder, Stage2Batch, Stage2Losses, Stage2Trainer};

/// Keeps the best weights and counts epochs without improvement.
pub(crate) struct EarlyStop<M> {
    pub(crate) best: f64,
    pub(crate) kept: Option<M>,
    stale: usize,
    patience: usize,
    halve_after: Option<usize>,
    halvings: i32,
}

impl<M: Clone> EarlyStop<M> {
    pub(crate) fn new(schedule: &StageSchedule) -> Self {
        let (patience, halve_after) = (schedule.patience, schedule.halve_after);
        Self { best: f64::INFINITY, kept: None, stale: 0, patience, halve_after, halvings: 0 }
    }

    /// `base` halved for every `halve_after` epochs without a better validation loss so far.
    pub(crate) fn learning_rate(&self, base: f64) -> f64 {
        base * 0.5f64.powi(self.halvings)
    }

    /// Records an epoch; returns whether training should stop.
    pub(crate) fn update(&mut self, val: f64, model: &M) -> bool {
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

pub(crate) fn batches(
    data: &Dataset,
    ends: &[usize],
    cfg: &TrainConfig,
    norm: &MinMax,
) -> Vec<(Vec<usize>, HostBatch)> {
    ends.chunks(cfg.batch_size).map(|c| (c.to_vec(), host_batch(data, c, cfg.window, norm))).collect()
}

/// For each window end, the frame before it in its episode when the training faults include the
/// frozen-frame fault (which needs one), else nothing.
pub(crate) fn previous_frames(data: &Dataset, ends: &[usize], faults: &TrainingFaults) -> Vec<Option<Vec<f32>>> {
    let needed = faults.camera.iter().any(|(f, _)| *f == mmguard_faults::CameraFault::Frozen);
    ends.iter().map(|&i| if needed { data.earlier_frame(i, 1) } else { None }).collect()
}

/// Faulty copies of each validation window that stage 2's early stopping averages over.
const VALIDATION_COPIES: usize = 3;

/// What both stages read, and the log they write.
pub(crate) struct Context<'a> {
    pub(crate) data: &'a Dataset,
    pub(crate) cfg: &'a TrainConfig,
    pub(crate) prep: &'a Prepared,
    pub(crate) model_cfg: &'a ModelConfig,
    pub(crate) ad: &'a Device,
    pub(crate) val_batches: &'a [(Vec<usize>, HostBatch)],
    pub(crate) log: &'a mut CsvLog,
}

impl Context<'_> {
    /// Takes the stage-1 autoencoder of an earlier run on the same data, split and architecture
    /// (stage-2 experiments and ablations then skip the costly stage).
    pub(crate) fn reuse_stage1(&mut self, dir: &Path) -> Result<(Stage1, usize, f64)> {
        let (config, stage1) = Run::load_stage1(dir, self.ad)?;
        if !config.data.is_from(self.data)
            || config.data.split != self.prep.split
            || config.model.stage1 != self.model_cfg.stage1
        {
            return Err(Error::Config(format!(
                "{}: its stage 1 was trained on other data, another split or another architecture",
                dir.display()
            )));
        }
        let val = self.val_reconstruction(&stage1);
        Ok((stage1, 0, val))
    }

    /// Mean camera + sensor reconstruction MSE of the autoencoder over the validation batches.
    pub(crate) fn val_reconstruction(&self, stage1: &Stage1) -> f64 {
        let plain = stage1.valid();
        let (mut sum, mut n) = (0.0, 0usize);
        for (_, b) in self.val_batches {
            let (c, s) = reconstruction_error(&plain, &self.model_cfg.stage1, b, &compute::device());
            sum += (c + s) * b.len as f64;
            n += b.len;
        }
        sum / n.max(1) as f64
    }

    pub(crate) fn train_stage1(&mut self, stage1: Stage1) -> Result<(Stage1, usize, f64)> {
        let Self { data, cfg, prep, model_cfg, ad, .. } = *self;
        let sched = &cfg.stage1;
        let s1 = &model_cfg.stage1;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1));
        let mut trainer = Stage1Trainer::new(stage1, s1.clone(), sched.learning_rate, ad.clone());
        let per_epoch = prep.train.count().div_ceil(cfg.batch_size) as u64;
        let bar = stage_bar(cfg.progress, per_epoch * sched.epochs as u64, "stage 1");
        let mut stop = EarlyStop::new(sched);
        let mut epochs = 0;
        for epoch in 1..=sched.epochs {
            let start = Instant::now();
            let mut order = prep.train.ends.clone();
            order.shuffle(&mut rng);
            let (mut sum, mut n) = (0.0, 0usize);
            for chunk in order.chunks(cfg.batch_size) {
                let loss = trainer.step(&host_batch(data, chunk, cfg.window, &prep.norm));
                sum += f64::from(loss) * chunk.len() as f64;
                n += chunk.len();
                bar.inc(1);
                bar.set_message(format!("epoch {epoch} loss {:.5}", sum / n as f64));
            }
            let val = self.val_reconstruction(trainer.model());
            let seconds = start.elapsed().as_secs_f64();
            self.log.write(&EpochRecord {
                stage: "stage1",
                epoch,
                train_loss: sum / n as f64,
                val_loss: val,
                seconds,
                samples_per_s: n as f64 / seconds,
                ..Default::default()
            })?;
            bar.set_message(format!("epoch {epoch} loss {:.5} val {val:.5}", sum / n as f64));
            epochs = epoch;
            if stop.update(val, trainer.model()) {
                break;
            }
            trainer.set_learning_rate(stop.learning_rate(sched.learning_rate));
        }
        bar.finish();
        Ok((stop.kept.expect("at least one epoch"), epochs, stop.best))
    }

    pub(crate) fn train_stage2(&mut self, stage1: &Stage1, block: ComputeBlock) -> Result<(ComputeBlock, usize, f64)> {
        let Self { data, cfg, prep, model_cfg, ad, val_batches, .. } = *self;
        let s2 = &cfg.stage2;
        let plain = compute::device();
        let frozen = stage1.valid();
        let enc = LatentEncoder { stage1: &frozen, cfg: model_cfg, device: &plain };
        let l = model_cfg.stage1.joint_latent();
        // The encoders are frozen, so the clean latents are computed once, not every step.
        let mut codes = CleanCodes::default();
        for (_, b) in batches(data, &prep.train.ends, cfg, &prep.norm) {
            codes.extend(enc.clean(&b));
        }
        let previous = |ends: &[usize]| previous_frames(data, ends, &s2.faults);
        let mut vrng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(2));
        // several faulty copies of every validation window: with faults drawn from the whole
        // catalogue at any severity, one copy gave an output error that jumped by half from
        // epoch to epoch, and early stopping on it stopped at noise
        let val_set: Vec<Stage2Batch> = (0..VALIDATION_COPIES)
            .flat_map(|_| val_batches.iter())
            .map(|(ends, b)| make_batch(&enc, b.clone(), enc.clean(b), &previous(ends), s2, &mut vrng))
            .collect();

        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(3));
        let mut trainer = Stage2Trainer::new(block, stage1.clone(), model_cfg.clone(), s2.clone(), ad.clone());
        let per_epoch = prep.train.count().div_ceil(cfg.batch_size) as u64;
        let bar = stage_bar(cfg.progress, per_epoch * s2.schedule.epochs as u64, "stage 2");
        let mut stop = EarlyStop::new(&s2.schedule);
        let mut epochs = 0;
        for epoch in 1..=s2.schedule.epochs {
            let start = Instant::now();
            let mut order: Vec<usize> = (0..prep.train.count()).collect();
            order.shuffle(&mut rng);
            let mut acc = Stage2Losses::default();
            let (mut grad_norm, mut clipped, mut steps, mut n) = (0.0, 0usize, 0usize, 0usize);
            for chunk in order.chunks(cfg.batch_size) {
                if chunk.len() < 2 {
                    continue;
                }
                let ends: Vec<usize> = chunk.iter().map(|&k| prep.train.ends[k]).collect();
                let clean = host_batch(data, &ends, cfg.window, &prep.norm);
                let batch = make_batch(&enc, clean, codes.rows(chunk, l), &previous(&ends), s2, &mut rng);
                let (losses, stats) = trainer.step(&batch);
                acc.accumulate(&losses, 0.0, chunk.len() as f64);
                grad_norm += stats.norm_before;
                clipped += usize::from(stats.clipped);
                steps += 1;
                n += chunk.len();
                bar.inc(1);
                bar.set_message(format!("epoch {epoch} loss {:.4}", acc.total / n as f64));
            }
            let block_plain = trainer.block().valid();
            let (mut vsum, mut vn) = (0.0, 0usize);
            for b in &val_set {
                let (_, parts) = stage2_loss(&block_plain, &frozen, model_cfg, s2, b, &plain);
                vsum += s2.early_stop.watched(&parts) * b.clean.len as f64;
                vn += b.clean.len;
            }
            let val = vsum / vn.max(1) as f64;
            let seconds = start.elapsed().as_secs_f64();
            self.log.write(&EpochRecord {
                grad_norm: grad_norm / steps.max(1) as f64,
                clipped_share: clipped as f64 / steps.max(1) as f64,
                ..acc.record("stage2", epoch, n, val, seconds)
            })?;
            bar.set_message(format!("epoch {epoch} loss {:.4} val {val:.4}", acc.total / n.max(1) as f64));
            epochs = epoch;
            if stop.update(val, trainer.block()) {
                break;
            }
            trainer.set_learning_rate(stop.learning_rate(s2.schedule.learning_rate));
        }
        bar.finish();
        Ok((stop.kept.expect("at least one epoch"), epochs, stop.best))
    }
}
