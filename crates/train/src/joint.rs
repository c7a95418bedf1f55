//! The "single stage" ablation of MMSSL: the autoencoder and the compute block trained together
//! from the start on faulty data, with the stage-1 reconstruction loss on the clean copy added
//! to the stage-2 objective. The latent targets are the current encoder's clean latents, held
//! constant within a step (detached) so that the encoder cannot meet them by moving them.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use mmguard_data::Dataset;
use mmguard_model::compute;
use mmguard_model::{host_batch, ComputeBlock, HostBatch, ModelConfig, Stage1};
use rand_chacha::ChaCha8Rng;

use crate::config::{Stage2Config, StageSchedule, TrainConfig};
use crate::error::Result;
use crate::fit::{fit, Step, StepReport, Stream};
use crate::losses::mse;
use crate::pipeline::Prepared;
use crate::stage1::adam;
use crate::stage2::{stage2_terms, update_block, Stage2Losses, Targets};
use crate::stages::{previous_frames, training_ends, Context};

/// A clean batch, its faulty copy and the injected-fault labels [B, 2].
struct Triple {
    clean: HostBatch,
    faulty: HostBatch,
    labels: Vec<f32>,
}

/// Reconstruction of the clean copy plus the stage-2 objective on the faulty one, both through
/// the current encoders. Returns the loss, the stage-2 terms and the reconstruction MSE.
fn joint_loss(
    block: &ComputeBlock,
    stage1: &Stage1,
    cfg: &ModelConfig,
    s2: &Stage2Config,
    t: &Triple,
    device: &Device,
) -> (Tensor<1>, Stage2Losses, f64) {
    let s1 = &cfg.stage1;
    let (cam, sen) = (t.clean.camera_tensor(s1, device), t.clean.sensor_tensor(s1, device));
    let z_clean = stage1.encode(cam.clone(), sen.clone());
    let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
    let recon = mse(stage1.decode_camera(z_clean.clone().narrow(1, 0, lc), s1), cam)
        + mse(stage1.decode_sensor(z_clean.clone().narrow(1, lc, ls), s1), sen);
    let z_faulty = stage1.encode(t.faulty.camera_tensor(s1, device), t.faulty.sensor_tensor(s1, device));
    // no evidence: a single-stage run has no autoencoder trained on clean data to measure it by
    let targets = Targets { clean: &t.clean, labels: &t.labels, channel_labels: &[] };
    let (terms, parts) =
        stage2_terms(block, stage1, cfg, s2, (z_faulty, None, None), z_clean.detach(), targets, device);
    let recon_value = f64::from(recon.clone().into_scalar::<f32>());
    (recon + terms, parts, recon_value)
}

impl Context<'_> {
    /// Trains both parts together for the epochs of both stages; early stopping (stage 2's
    /// patience and halving, both learning rates halved together) on the joint loss over a
    /// fixed faulty copy of the validation batches.
    pub(crate) fn train_joint(
        &mut self,
        stage1: Stage1,
        block: ComputeBlock,
    ) -> Result<(Stage1, ComputeBlock, usize, f64)> {
        let Self { data, cfg, prep, model_cfg, ad, val_batches, .. } = *self;
        let mut vrng = Stream::ValidationFaults.rng(cfg.seed);
        let val: Vec<Triple> =
            val_batches.iter().map(|(ends, b)| triple(data, cfg, model_cfg, ends, b.clone(), &mut vrng)).collect();
        let mut step =
            JointStep { data, cfg, prep, model_cfg, ad, val, optim: adam(), state: Some((stage1, block)), factor: 1.0 };
        let schedule =
            StageSchedule { epochs: cfg.stage1.epochs + cfg.stage2.schedule.epochs, ..cfg.stage2.schedule.clone() };
        let plan = self.plan("joint", &schedule);
        let fitted = fit(&mut step, &plan, &mut Stream::FaultyTraining.rng(cfg.seed), self.log)?;
        let (stage1, block) = fitted.model;
        Ok((stage1, block, fitted.epochs, fitted.best))
    }
}

/// The clean batch of window ends `ends`, a faulty copy and its labels.
fn triple(
    data: &Dataset,
    cfg: &TrainConfig,
    model_cfg: &ModelConfig,
    ends: &[usize],
    clean: HostBatch,
    rng: &mut ChaCha8Rng,
) -> Triple {
    let faults = &cfg.stage2.faults;
    let (faulty, kinds) = faults.inject_batch(&clean, &previous_frames(data, ends, faults), &model_cfg.stage1, rng);
    Triple { clean, faulty, labels: kinds.iter().flat_map(|k| k.labels()).collect() }
}

/// The single-stage ablation as a [`Step`].
struct JointStep<'a> {
    data: &'a Dataset,
    cfg: &'a TrainConfig,
    prep: &'a Prepared,
    model_cfg: &'a ModelConfig,
    ad: &'a Device,
    val: Vec<Triple>,
    optim: ModuleOptimizer,
    state: Option<(Stage1, ComputeBlock)>,
    factor: f64,
}

impl Step for JointStep<'_> {
    type Model = (Stage1, ComputeBlock);

    fn train(&mut self, batch: &[usize], rng: &mut ChaCha8Rng) -> Option<StepReport> {
        // the contrastive loss needs two samples
        if batch.len() < 2 {
            return None;
        }
        let (cfg, s2) = (self.cfg, &self.cfg.stage2);
        let ends = training_ends(self.prep, batch);
        let t = triple(
            self.data,
            cfg,
            self.model_cfg,
            &ends,
            host_batch(self.data, &ends, cfg.window, &self.prep.norm),
            rng,
        );
        let (stage1, block) = self.state.take().expect("present between steps");
        let (loss, parts, r) = joint_loss(&block, &stage1, self.model_cfg, s2, &t, self.ad);
        let mut grads = loss.backward();
        let (block, _) = update_block(&mut self.optim, s2, s2.schedule.learning_rate * self.factor, block, &mut grads);
        let g1 = GradientsParams::from_module(&mut grads, &stage1);
        let stage1 = self.optim.step(cfg.stage1.learning_rate * self.factor, stage1, g1);
        self.state = Some((stage1, block));
        Some(StepReport {
            loss: parts.total + r,
            latent: parts.latent,
            output: parts.output,
            detection: parts.detection,
            contrastive: parts.contrastive,
            ..Default::default()
        })
    }

    fn validate(&self) -> f64 {
        let (stage1, block) = self.model();
        let (s1v, bv, plain) = (stage1.valid(), block.valid(), compute::device());
        let (mut sum, mut n) = (0.0, 0usize);
        for t in &self.val {
            let (_, parts, r) = joint_loss(&bv, &s1v, self.model_cfg, &self.cfg.stage2, t, &plain);
            sum += (parts.total + r) * t.clean.len as f64;
            n += t.clean.len;
        }
        sum / n.max(1) as f64
    }

    fn model(&self) -> &(Stage1, ComputeBlock) {
        self.state.as_ref().expect("present between steps")
    }

    fn scale_learning_rate(&mut self, factor: f64) {
        self.factor = factor;
    }
}
