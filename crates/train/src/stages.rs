//! Both MMSSL stages as [`Step`]s of the one training loop ([`crate::fit`]).

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use mmguard_data::{Dataset, MinMax};
use mmguard_model::compute;
use mmguard_model::{host_batch, ComputeBlock, HostBatch, ModelConfig, Run, Stage1};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::calibrate::Lighting;
use crate::config::{StageSchedule, TrainConfig, TrainingFaults};
use crate::error::{Error, Result};
use crate::fit::{fit, Plan, Step, StepReport, Stream};
use crate::log::CsvLog;
use crate::pipeline::Prepared;
use crate::stage1::{reconstruction_error, Stage1Trainer};
use crate::stage2::{make_batch, stage2_loss, CleanCodes, LatentEncoder, Stage2Batch, Stage2Trainer};

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
        let val = val_reconstruction(&stage1, self.model_cfg, self.val_batches);
        Ok((stage1, 0, val))
    }

    pub(crate) fn train_stage1(&mut self, stage1: Stage1) -> Result<(Stage1, usize, f64)> {
        let Self { data, cfg, prep, model_cfg, ad, val_batches, .. } = *self;
        let sched = &cfg.stage1;
        let trainer = Stage1Trainer::new(stage1, model_cfg.stage1.clone(), sched.learning_rate, ad.clone());
        let mut step = Stage1Step { data, cfg, prep, model_cfg, val_batches, trainer };
        let plan = self.plan("stage1", sched);
        let fitted = fit(&mut step, &plan, &mut Stream::Stage1.rng(cfg.seed), self.log)?;
        Ok((fitted.model, fitted.epochs, fitted.best))
    }

    pub(crate) fn train_stage2(&mut self, stage1: &Stage1, block: ComputeBlock) -> Result<(ComputeBlock, usize, f64)> {
        let Self { data, cfg, prep, model_cfg, ad, val_batches, .. } = *self;
        let s2 = &cfg.stage2;
        let plain = compute::device();
        let frozen = stage1.valid();
        let enc = LatentEncoder { stage1: &frozen, cfg: model_cfg, device: &plain };
        // The encoders are frozen, so the clean latents are computed once, not every step.
        let mut codes = CleanCodes::default();
        for (_, b) in batches(data, &prep.train.ends, cfg, &prep.norm) {
            codes.extend(enc.clean(&b));
        }
        let mut vrng = Stream::ValidationFaults.rng(cfg.seed);
        // several faulty copies of every validation window: with faults drawn from the whole
        // catalogue at any severity, one copy gave an output error that jumped by half from
        // epoch to epoch, and early stopping on it stopped at noise
        let val_set: Vec<Stage2Batch> = (0..VALIDATION_COPIES)
            .flat_map(|_| val_batches.iter())
            .map(|(ends, b)| {
                make_batch(&enc, b.clone(), enc.clean(b), &previous_frames(data, ends, &s2.faults), s2, &mut vrng)
            })
            .collect();
        let trainer = Stage2Trainer::new(block, stage1.clone(), model_cfg.clone(), s2.clone(), ad.clone());
        let lightings = if s2.relight_share > 0.0 {
            let train = &prep.split.train;
            train.iter().copied().zip(Lighting::of_episodes(data, train, train)).collect()
        } else {
            Vec::new()
        };
        let mut step = Stage2Step { data, cfg, prep, model_cfg, enc, codes, val_set, trainer, lightings };
        let plan = self.plan("stage2", &s2.schedule);
        let fitted = fit(&mut step, &plan, &mut Stream::FaultyTraining.rng(cfg.seed), self.log)?;
        Ok((fitted.model, fitted.epochs, fitted.best))
    }

    /// The plan of a stage over the training windows.
    pub(crate) fn plan<'s>(&self, name: &'static str, schedule: &'s StageSchedule) -> Plan<'s> {
        training_plan(name, self.cfg, self.prep, schedule)
    }
}

/// The plan of a trainer named `name` over the training windows of `prep`.
pub(crate) fn training_plan<'s>(
    name: &'static str,
    cfg: &TrainConfig,
    prep: &Prepared,
    schedule: &'s StageSchedule,
) -> Plan<'s> {
    Plan { name, windows: prep.train.count(), batch_size: cfg.batch_size, schedule, progress: cfg.progress }
}

/// The window ends of the training items `batch` (indices into `prep`'s training windows).
pub(crate) fn training_ends(prep: &Prepared, batch: &[usize]) -> Vec<usize> {
    batch.iter().map(|&k| prep.train.ends[k]).collect()
}

/// Mean camera + sensor reconstruction MSE of the autoencoder over the validation batches.
pub(crate) fn val_reconstruction(
    stage1: &Stage1,
    model_cfg: &ModelConfig,
    val_batches: &[(Vec<usize>, HostBatch)],
) -> f64 {
    let plain = stage1.valid();
    let (mut sum, mut n) = (0.0, 0usize);
    for (_, b) in val_batches {
        let (c, s) = reconstruction_error(&plain, &model_cfg.stage1, b, &compute::device());
        sum += (c + s) * b.len as f64;
        n += b.len;
    }
    sum / n.max(1) as f64
}

/// Stage 1 as a [`Step`]: clean training batches, the reconstruction error on the clean
/// validation batches.
struct Stage1Step<'a> {
    data: &'a Dataset,
    cfg: &'a TrainConfig,
    prep: &'a Prepared,
    model_cfg: &'a ModelConfig,
    val_batches: &'a [(Vec<usize>, HostBatch)],
    trainer: Stage1Trainer,
}

impl Step for Stage1Step<'_> {
    type Model = Stage1;

    fn train(&mut self, batch: &[usize], _: &mut ChaCha8Rng) -> Option<StepReport> {
        let ends = training_ends(self.prep, batch);
        let loss = self.trainer.step(&host_batch(self.data, &ends, self.cfg.window, &self.prep.norm));
        Some(StepReport { loss: f64::from(loss), ..Default::default() })
    }

    fn validate(&self) -> f64 {
        val_reconstruction(self.trainer.model(), self.model_cfg, self.val_batches)
    }

    fn model(&self) -> &Stage1 {
        self.trainer.model()
    }

    fn scale_learning_rate(&mut self, factor: f64) {
        self.trainer.set_learning_rate(self.cfg.stage1.learning_rate * factor);
    }
}

/// Stage 2 as a [`Step`]: faulty copies of the training batches on the frozen encoders' clean
/// latents, the watched error on fixed faulty copies of the validation batches.
struct Stage2Step<'a> {
    data: &'a Dataset,
    cfg: &'a TrainConfig,
    prep: &'a Prepared,
    model_cfg: &'a ModelConfig,
    enc: LatentEncoder<'a>,
    codes: CleanCodes,
    val_set: Vec<Stage2Batch>,
    trainer: Stage2Trainer,
    /// Each training episode's lighting, where stage 2 relights (`relight_share`).
    lightings: Vec<(i32, Lighting)>,
}

impl Stage2Step<'_> {
    /// Relights a share of the batch's frames to training episodes' lightings drawn at random;
    /// whether any was.
    fn relight(&self, clean: &mut HostBatch, ends: &[usize], rng: &mut ChaCha8Rng) -> bool {
        let s1 = &self.model_cfg.stage1;
        let frame = 3 * s1.height * s1.width;
        let mut any = false;
        for (f, &end) in clean.camera.chunks_exact_mut(frame).zip(ends) {
            if rng.random::<f64>() >= self.cfg.stage2.relight_share {
                continue;
            }
            let target = self.lightings[rng.random_range(0..self.lightings.len())].1;
            let own = self.lightings.iter().find(|(e, _)| *e == self.data.episode[end]).map(|(_, l)| *l);
            if let Some(own) = own {
                target.relative_to(own).apply_as_gain(f, s1.height, s1.width);
                any = true;
            }
        }
        any
    }
}

impl Step for Stage2Step<'_> {
    type Model = ComputeBlock;

    fn train(&mut self, batch: &[usize], rng: &mut ChaCha8Rng) -> Option<StepReport> {
        // the contrastive loss needs two samples
        if batch.len() < 2 {
            return None;
        }
        let (data, cfg, s2) = (self.data, self.cfg, &self.cfg.stage2);
        let ends = training_ends(self.prep, batch);
        let mut clean = host_batch(data, &ends, cfg.window, &self.prep.norm);
        // relit frames have codes of their own; the others' were computed once
        let codes = if !self.lightings.is_empty() && self.relight(&mut clean, &ends, rng) {
            self.enc.clean(&clean)
        } else {
            self.codes.rows(batch, self.model_cfg.stage1.joint_latent())
        };
        let faulty = make_batch(&self.enc, clean, codes, &previous_frames(data, &ends, &s2.faults), s2, rng);
        let (l, stats) = self.trainer.step(&faulty);
        Some(StepReport {
            loss: l.total,
            latent: l.latent,
            output: l.output,
            detection: l.detection,
            contrastive: l.contrastive,
            grad_norm: stats.norm_before,
            clipped: stats.clipped,
        })
    }

    fn validate(&self) -> f64 {
        let (s2, block) = (&self.cfg.stage2, self.trainer.block().valid());
        let (mut sum, mut n) = (0.0, 0usize);
        for b in &self.val_set {
            let (_, parts) = stage2_loss(&block, self.enc.stage1, self.model_cfg, s2, b, self.enc.device);
            sum += s2.early_stop.watched(&parts) * b.clean.len as f64;
            n += b.clean.len;
        }
        sum / n.max(1) as f64
    }

    fn model(&self) -> &ComputeBlock {
        self.trainer.block()
    }

    fn scale_learning_rate(&mut self, factor: f64) {
        self.trainer.set_learning_rate(self.cfg.stage2.schedule.learning_rate * factor);
    }
}
