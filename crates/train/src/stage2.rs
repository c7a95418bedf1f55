//! Stage 2: the compute block on faulty latents, with the stage-1 autoencoder frozen.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use mmguard_model::{index_tensor, ComputeBlock, HostBatch, ModelConfig, Stage1};
use rand::Rng;

use crate::config::Stage2Config;
use crate::inject::Injected;
use crate::log::EpochRecord;
use crate::losses::{bce_with_logits, info_nce, mse};
use crate::modulation::{ModulationStats, PartGrads};
use crate::stage1::adam;

/// A stage-2 batch on the host.
#[derive(Debug, Clone)]
pub struct Stage2Batch {
    /// Latent of the (possibly) faulty input, [B, L].
    pub z_faulty: Vec<f32>,
    /// Latent of the clean input, [B, L].
    pub z_clean: Vec<f32>,
    /// The clean input.
    pub clean: HostBatch,
    /// Injected-fault labels (camera, sensor), [B, 2].
    pub labels: Vec<f32>,
}

/// Encodes batches with the frozen stage-1 encoders on a plain device (no autodiff graph).
#[derive(Debug)]
pub struct LatentEncoder<'a> {
    /// Plain-device copy of the autoencoder.
    pub stage1: &'a Stage1,
    /// Its configuration.
    pub cfg: &'a ModelConfig,
    /// The plain device.
    pub device: &'a Device,
}

fn rows(x: Tensor<2>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("float tensor")
}

impl LatentEncoder<'_> {
    /// Joint latents of a batch, [B, L].
    pub fn encode(&self, batch: &HostBatch) -> Vec<f32> {
        let s1 = &self.cfg.stage1;
        rows(self.stage1.encode(batch.camera_tensor(s1, self.device), batch.sensor_tensor(s1, self.device)))
    }

    /// Latents of the faulty copies: the clean latent with the corrupted modality's part
    /// re-encoded (the other part is unchanged, so it is not recomputed).
    pub fn faulty(&self, z_clean: &[f32], faulty: &HostBatch, kinds: &[Injected]) -> Vec<f32> {
        let s1 = &self.cfg.stage1;
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let l = lc + ls;
        let mut z = z_clean.to_vec();
        let frame = 3 * s1.height * s1.width;
        let win = s1.window * s1.sensor_dim;
        for (kind, offset, part) in [(Injected::Camera, 0, lc), (Injected::Sensor, lc, ls)] {
            let idx: Vec<usize> = (0..kinds.len()).filter(|&b| kinds[b] == kind).collect();
            if idx.is_empty() {
                continue;
            }
            let sub = HostBatch {
                len: idx.len(),
                camera: if kind == Injected::Camera {
                    idx.iter().flat_map(|&b| faulty.camera[b * frame..(b + 1) * frame].iter().copied()).collect()
                } else {
                    Vec::new()
                },
                sensor: if kind == Injected::Sensor {
                    idx.iter().flat_map(|&b| faulty.sensor[b * win..(b + 1) * win].iter().copied()).collect()
                } else {
                    Vec::new()
                },
            };
            let enc = if kind == Injected::Camera {
                rows(self.stage1.encode_camera(sub.camera_tensor(s1, self.device)))
            } else {
                rows(self.stage1.encode_sensor(sub.sensor_tensor(s1, self.device)))
            };
            for (k, &b) in idx.iter().enumerate() {
                z[b * l + offset..b * l + offset + part].copy_from_slice(&enc[k * part..(k + 1) * part]);
            }
        }
        z
    }
}

/// Corrupts a clean batch sample by sample and encodes it.
pub fn make_batch(
    encoder: &LatentEncoder<'_>,
    clean: HostBatch,
    z_clean: Vec<f32>,
    previous: &[Option<Vec<f32>>],
    s2: &Stage2Config,
    rng: &mut impl Rng,
) -> Stage2Batch {
    let (faulty, kinds) = s2.faults.inject_batch(&clean, previous, &encoder.cfg.stage1, rng);
    let z_faulty = encoder.faulty(&z_clean, &faulty, &kinds);
    let labels = kinds.iter().flat_map(|k| k.labels()).collect();
    Stage2Batch { z_faulty, z_clean, clean, labels }
}

/// Stage-2 loss terms of one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stage2Losses {
    /// Weighted sum.
    pub total: f64,
    /// Latent correction MSE.
    pub latent: f64,
    /// Output correction MSE (camera + sensor).
    pub output: f64,
    /// Detection BCE.
    pub detection: f64,
    /// InfoNCE.
    pub contrastive: f64,
}

impl Stage2Losses {
    /// Adds a batch's terms, weighted by its size `w`, to a running sum; `extra` is added to the
    /// total only (a term outside stage 2's objective).
    pub(crate) fn accumulate(&mut self, batch: &Stage2Losses, extra: f64, w: f64) {
        self.total += (batch.total + extra) * w;
        self.latent += batch.latent * w;
        self.output += batch.output * w;
        self.detection += batch.detection * w;
        self.contrastive += batch.contrastive * w;
    }

    /// The epoch's log record from a running sum over `n` samples.
    pub(crate) fn record(
        &self,
        stage: &'static str,
        epoch: usize,
        n: usize,
        val_loss: f64,
        seconds: f64,
    ) -> EpochRecord {
        let nf = n.max(1) as f64;
        EpochRecord {
            stage,
            epoch,
            train_loss: self.total / nf,
            val_loss,
            latent: self.latent / nf,
            output: self.output / nf,
            detection: self.detection / nf,
            contrastive: self.contrastive / nf,
            seconds,
            samples_per_s: n as f64 / seconds,
            ..Default::default()
        }
    }
}

fn tensor2(v: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

/// The stage-2 objective on one batch, as a differentiable tensor and as numbers.
pub fn stage2_loss(
    block: &ComputeBlock,
    stage1: &Stage1,
    cfg: &ModelConfig,
    s2: &Stage2Config,
    batch: &Stage2Batch,
    device: &Device,
) -> (Tensor<1>, Stage2Losses) {
    let (b, l) = (batch.clean.len, cfg.stage1.joint_latent());
    let z_faulty = tensor2(&batch.z_faulty, [b, l], device);
    let z_clean = tensor2(&batch.z_clean, [b, l], device);
    stage2_terms(block, stage1, cfg, s2, z_faulty, z_clean, &batch.clean, &batch.labels, device)
}

/// The stage-2 objective from latents on the device: `z_faulty` [B, L] goes through the block,
/// `z_clean` [B, L] is the target (and the contrastive positives), `labels` [B, 2] on the host.
#[allow(clippy::too_many_arguments)]
pub fn stage2_terms(
    block: &ComputeBlock,
    stage1: &Stage1,
    cfg: &ModelConfig,
    s2: &Stage2Config,
    z_faulty: Tensor<2>,
    z_clean: Tensor<2>,
    clean: &HostBatch,
    labels: &[f32],
    device: &Device,
) -> (Tensor<1>, Stage2Losses) {
    let s1 = &cfg.stage1;
    let b = clean.len;
    let label_tensor = tensor2(labels, [b, 2], device);
    let out = block.forward(z_faulty);
    let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
    let (cam, sen) = (clean.camera_tensor(s1, device), clean.sensor_tensor(s1, device));
    let (z_cam, z_sen) = (out.latent.clone().narrow(1, 0, lc), out.latent.clone().narrow(1, lc, ls));
    let (latent, output) = if s2.faulty_part_only {
        // Only the corrupted modality of each faulty sample is ever substituted, so only it is
        // scored; the other rows are not decoded at all.
        let rows = |m: usize| -> Vec<usize> { (0..b).filter(|&i| labels[2 * i + m] > 0.5).collect() };
        let (rc, rs) = (rows(0), rows(1));
        let zero = || Tensor::<1>::zeros([1], device);
        let (mut latent, mut output) = (zero(), zero());
        if !rc.is_empty() {
            let idx = index_tensor(&rc, device);
            let zc = z_cam.select(0, idx.clone());
            latent = latent + mse(zc.clone(), z_clean.clone().narrow(1, 0, lc).select(0, idx.clone()));
            output = output + mse(stage1.decode_camera(zc, s1), cam.select(0, idx));
        }
        if !rs.is_empty() {
            let idx = index_tensor(&rs, device);
            let zs = z_sen.select(0, idx.clone());
            latent = latent + mse(zs.clone(), z_clean.clone().narrow(1, lc, ls).select(0, idx.clone()));
            output = output + mse(stage1.decode_sensor(zs, s1), sen.select(0, idx));
        }
        (latent, output)
    } else {
        let output = mse(stage1.decode_camera(z_cam, s1), cam) + mse(stage1.decode_sensor(z_sen, s1), sen);
        (mse(out.latent, z_clean.clone()), output)
    };
    let detection = bce_with_logits(out.logits, label_tensor);
    let positives = block.encoder.forward(z_clean).detach();
    let contrastive = info_nce(out.corrected, positives, s2.temperature);
    let w = &s2.weights;
    let total = latent.clone().mul_scalar(w.latent)
        + output.clone().mul_scalar(w.output)
        + detection.clone().mul_scalar(w.detection)
        + contrastive.clone().mul_scalar(w.contrastive);
    let num = |t: Tensor<1>| f64::from(t.into_scalar::<f32>());
    let parts = Stage2Losses {
        total: num(total.clone()),
        latent: num(latent),
        output: num(output),
        detection: num(detection),
        contrastive: num(contrastive),
    };
    (total, parts)
}

/// One optimiser step at a time on the compute block, on an autodiff device.
pub struct Stage2Trainer {
    block: Option<ComputeBlock>,
    stage1: Stage1,
    cfg: ModelConfig,
    s2: Stage2Config,
    optim: ModuleOptimizer,
    device: Device,
}

impl std::fmt::Debug for Stage2Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage2Trainer").field("s2", &self.s2).finish()
    }
}

impl Stage2Trainer {
    /// `stage1` is frozen here; gradients still flow through its decoders to G.
    pub fn new(block: ComputeBlock, stage1: Stage1, cfg: ModelConfig, s2: Stage2Config, device: Device) -> Self {
        Self { block: Some(block), stage1: stage1.freeze(), cfg, s2, optim: adam(), device }
    }

    /// The block in its current state.
    pub fn block(&self) -> &ComputeBlock {
        self.block.as_ref().expect("present between steps")
    }

    /// Gives the trained block back.
    pub fn into_block(self) -> ComputeBlock {
        self.block.expect("present between steps")
    }

    /// One step: loss, backward, modulation, a step per part, power iteration on C.
    pub fn step(&mut self, batch: &Stage2Batch) -> (Stage2Losses, ModulationStats) {
        let block = self.block.take().expect("present between steps");
        let (loss, parts) = stage2_loss(&block, &self.stage1, &self.cfg, &self.s2, batch, &self.device);
        let (next, stats) = update_block(&mut self.optim, &self.s2, block, &mut loss.backward());
        self.block = Some(next);
        (parts, stats)
    }
}

/// The compute block's update from the gradients of a loss: modulation, a step per part, power
/// iteration on C.
pub(crate) fn update_block(
    optim: &mut ModuleOptimizer,
    s2: &Stage2Config,
    block: ComputeBlock,
    grads: &mut Gradients,
) -> (ComputeBlock, ModulationStats) {
    let mut g = PartGrads {
        encoder: GradientsParams::from_module(grads, &block.encoder),
        detector: GradientsParams::from_module(grads, &block.detector),
        corrector: GradientsParams::from_module(grads, &block.corrector),
        decoder: GradientsParams::from_module(grads, &block.decoder),
    };
    let m = &s2.modulation;
    let stats = m.apply(&block, &mut g);
    let lr = s2.schedule.learning_rate;
    let lr_det = lr * m.detection_lr_factor();
    let ComputeBlock { encoder, detector, corrector, decoder, mode } = block;
    let next = ComputeBlock {
        encoder: optim.step(lr_det, encoder, g.encoder),
        detector: optim.step(lr_det, detector, g.detector),
        corrector: optim.step(lr, corrector, g.corrector).power_iteration(m.power_iterations),
        decoder: optim.step(lr, decoder, g.decoder),
        mode,
    };
    (next, stats)
}
