//! Stage 2: the compute block on faulty latents, with the stage-1 autoencoder frozen.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use mmguard_model::{
    camera_to_host, index_tensor, sensor_to_host, ComputeBlock, Evidence, HostBatch, ModelConfig, OutputInput, Stage1,
};
use rand::Rng;

use crate::config::Stage2Config;
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
    /// The faulty copy the latents and evidence were made from (the output path's input).
    pub faulty: HostBatch,
    /// Fault labels (camera, sensor), [B, 2]: a modality is faulty when a fault was injected
    /// into it and changed it.
    pub labels: Vec<f32>,
    /// Standardised evidence of the faulty input, [B, F], when the block reads evidence.
    pub evidence: Option<Vec<f32>>,
    /// Fault labels per channel (sensor columns, image regions), [B, C]; empty without
    /// evidence.
    pub channel_labels: Vec<f32>,
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

/// Whether two host rows differ in any element (bitwise: a NaN equals itself).
fn differs(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).any(|(x, y)| x.to_bits() != y.to_bits())
}

/// What the frozen stage 1 makes of clean windows, computed once and reused every epoch: their
/// joint latents and, for a block with evidence, the camera part of their raw evidence (a
/// faulty copy whose frame is untouched has the same, so its frame is not decoded again).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanCodes {
    /// Joint latents, [B, L].
    pub latent: Vec<f32>,
    /// Camera part of the raw evidence, [B, camera features]; empty without evidence.
    pub camera_evidence: Vec<f32>,
}

impl CleanCodes {
    /// The codes of rows `idx`, in that order.
    pub fn rows(&self, idx: &[usize], latent: usize) -> CleanCodes {
        let n = self.latent.len() / latent;
        let wc = self.camera_evidence.len() / n.max(1);
        let gather = |v: &[f32], w: usize| idx.iter().flat_map(|&k| v[k * w..(k + 1) * w].iter().copied()).collect();
        CleanCodes { latent: gather(&self.latent, latent), camera_evidence: gather(&self.camera_evidence, wc) }
    }

    /// `other`'s rows after this one's.
    pub fn extend(&mut self, other: CleanCodes) {
        self.latent.extend(other.latent);
        self.camera_evidence.extend(other.camera_evidence);
    }
}

impl LatentEncoder<'_> {
    /// The [`CleanCodes`] of a clean batch.
    pub fn clean(&self, batch: &HostBatch) -> CleanCodes {
        let s1 = &self.cfg.stage1;
        let z = self.stage1.encode(batch.camera_tensor(s1, self.device), batch.sensor_tensor(s1, self.device));
        let camera_evidence = match &self.cfg.block.evidence {
            Some(e) => {
                let recon = camera_to_host(self.stage1.decode_camera(z.clone().narrow(1, 0, s1.camera_latent()), s1));
                e.camera_part(s1, &batch.camera, &recon)
            }
            None => Vec::new(),
        };
        CleanCodes { latent: rows(z), camera_evidence }
    }

    /// Raw evidence of a faulty batch with latents `z_faulty`: the sensor part for every row,
    /// the camera part decoded again only for the rows in `camera_changed`, the clean one
    /// (`clean_camera`) for the rest.
    fn faulty_evidence(
        &self,
        evidence: &Evidence,
        faulty: &HostBatch,
        z_faulty: &[f32],
        camera_changed: &[usize],
        clean_camera: &[f32],
    ) -> Vec<f32> {
        let s1 = &self.cfg.stage1;
        let (lc, ls, l) = (s1.camera_latent(), s1.sensor_latent(), s1.joint_latent());
        let z = Tensor::<2>::from_data(TensorData::new(z_faulty.to_vec(), [faulty.len, l]), self.device);
        let recon_sensor = sensor_to_host(self.stage1.decode_sensor(z.clone().narrow(1, lc, ls), s1));
        let sensor = evidence.sensor_part(s1, &faulty.sensor, &recon_sensor);
        let wc = evidence.camera_width();
        let mut camera = clean_camera.to_vec();
        if !camera_changed.is_empty() {
            let frame = 3 * s1.height * s1.width;
            let frames: Vec<f32> = camera_changed
                .iter()
                .flat_map(|&b| faulty.camera[b * frame..(b + 1) * frame].iter().copied())
                .collect();
            let zc = z.narrow(1, 0, lc).select(0, index_tensor(camera_changed, self.device));
            let recon = camera_to_host(self.stage1.decode_camera(zc, s1));
            let part = evidence.camera_part(s1, &frames, &recon);
            for (k, &b) in camera_changed.iter().enumerate() {
                camera[b * wc..(b + 1) * wc].copy_from_slice(&part[k * wc..(k + 1) * wc]);
            }
        }
        evidence.join(&sensor, &camera)
    }

    /// Latents of the faulty copies: the clean latent, with each modality re-encoded in the
    /// rows where its input differs from the clean one — a fault, or the nuisance jitter of a
    /// clean sample, which the detector must see to learn that it is not a fault.
    pub fn faulty(&self, z_clean: &[f32], clean: &HostBatch, faulty: &HostBatch) -> Vec<f32> {
        let s1 = &self.cfg.stage1;
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let l = lc + ls;
        let mut z = z_clean.to_vec();
        let frame = 3 * s1.height * s1.width;
        let win = s1.window * s1.sensor_dim;
        let changed = |x: &[f32], y: &[f32], n: usize| -> Vec<usize> {
            (0..faulty.len).filter(|&b| differs(&x[b * n..(b + 1) * n], &y[b * n..(b + 1) * n])).collect()
        };
        let cam = changed(&clean.camera, &faulty.camera, frame);
        if !cam.is_empty() {
            let sub = faulty.select(&cam);
            let enc = rows(self.stage1.encode_camera(sub.camera_tensor(s1, self.device)));
            for (k, &b) in cam.iter().enumerate() {
                z[b * l..b * l + lc].copy_from_slice(&enc[k * lc..(k + 1) * lc]);
            }
        }
        let sen = changed(&clean.sensor, &faulty.sensor, win);
        if !sen.is_empty() {
            let sub = faulty.select(&sen);
            let enc = rows(self.stage1.encode_sensor(sub.sensor_tensor(s1, self.device)));
            for (k, &b) in sen.iter().enumerate() {
                z[b * l + lc..(b + 1) * l].copy_from_slice(&enc[k * ls..(k + 1) * ls]);
            }
        }
        z
    }
}

/// Corrupts a clean batch sample by sample and encodes it.
pub fn make_batch(
    encoder: &LatentEncoder<'_>,
    clean: HostBatch,
    codes: CleanCodes,
    previous: &[Option<Vec<f32>>],
    s2: &Stage2Config,
    rng: &mut impl Rng,
) -> Stage2Batch {
    let s1 = &encoder.cfg.stage1;
    let (faulty, kinds) = s2.faults.inject_batch(&clean, previous, s1, rng);
    let z_clean = codes.latent;
    let z_faulty = encoder.faulty(&z_clean, &clean, &faulty);
    let (frame, win) = (3 * s1.height * s1.width, s1.window * s1.sensor_dim);
    let mut labels = Vec::with_capacity(2 * clean.len);
    for (b, kind) in kinds.iter().enumerate() {
        let [c, s] = kind.labels();
        let cam = differs(&clean.camera[b * frame..(b + 1) * frame], &faulty.camera[b * frame..(b + 1) * frame]);
        let sen = differs(&clean.sensor[b * win..(b + 1) * win], &faulty.sensor[b * win..(b + 1) * win]);
        labels.push(if cam { c } else { 0.0 });
        labels.push(if sen { s } else { 0.0 });
    }
    let (evidence, channel_labels) = match &encoder.cfg.block.evidence {
        None => (None, Vec::new()),
        Some(e) => {
            let camera_changed: Vec<usize> = (0..clean.len)
                .filter(|&b| {
                    differs(&clean.camera[b * frame..(b + 1) * frame], &faulty.camera[b * frame..(b + 1) * frame])
                })
                .collect();
            let raw = encoder.faulty_evidence(e, &faulty, &z_faulty, &camera_changed, &codes.camera_evidence);
            let mut ch = e.channel_labels(s1, (&clean.camera, &clean.sensor), (&faulty.camera, &faulty.sensor));
            // the jitter of a clean modality changes every value and is not a fault
            let (d, c) = (e.sensor_dim, e.channels());
            for b in 0..clean.len {
                if labels[2 * b + 1] == 0.0 {
                    ch[b * c..b * c + d].fill(0.0);
                }
                if labels[2 * b] == 0.0 {
                    ch[b * c + d..(b + 1) * c].fill(0.0);
                }
            }
            (Some(e.standardise(&raw)), ch)
        }
    };
    Stage2Batch { z_faulty, z_clean, clean, faulty, labels, evidence, channel_labels }
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
    let evidence = batch.evidence.as_ref().map(|e| tensor2(e, [b, e.len() / b], device));
    let targets = Targets { clean: &batch.clean, labels: &batch.labels, channel_labels: &batch.channel_labels };
    stage2_terms(block, stage1, cfg, s2, (z_faulty, evidence, Some(&batch.faulty)), z_clean, targets, device)
}

/// What the stage-2 objective compares against: the clean input and the fault labels, per
/// modality [B, 2] and per channel [B, C] (empty for a block without per-channel scores).
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    /// The clean input.
    pub clean: &'a HostBatch,
    /// Per-modality labels.
    pub labels: &'a [f32],
    /// Per-channel labels.
    pub channel_labels: &'a [f32],
}

/// The stage-2 objective from latents on the device: `input` — the faulty latent [B, L], its
/// evidence [B, F] and the faulty input itself, for a block with an output path — goes
/// through the block, `z_clean` [B, L] is the target (and the contrastive positives).
#[allow(clippy::too_many_arguments)]
pub fn stage2_terms(
    block: &ComputeBlock,
    stage1: &Stage1,
    cfg: &ModelConfig,
    s2: &Stage2Config,
    input: (Tensor<2>, Option<Tensor<2>>, Option<&HostBatch>),
    z_clean: Tensor<2>,
    targets: Targets<'_>,
    device: &Device,
) -> (Tensor<1>, Stage2Losses) {
    let s1 = &cfg.stage1;
    let Targets { clean, labels, channel_labels } = targets;
    let b = clean.len;
    let label_tensor = tensor2(labels, [b, 2], device);
    let z_output = match (&block.output, input.2) {
        (Some(output), Some(x)) => {
            let frame = x.camera_tensor(s1, device);
            Some(OutputInput { latent: output.encode(frame.clone(), x.sensor_tensor(s1, device)), frame })
        }
        _ => None,
    };
    let out = block.forward_with(input.0, input.1, z_output);
    let decoder = block.output_decoder(stage1);
    let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
    let (cam, sen) = (clean.camera_tensor(s1, device), clean.sensor_tensor(s1, device));
    let (z_cam, z_sen) = (out.latent.clone().narrow(1, 0, lc), out.latent.clone().narrow(1, lc, ls));
    // the latent loss in the block's units (the clean spread, with a latent scale); the output
    // loss on the decoded raw latent
    let target = block.standardise(z_clean.clone());
    let (u_cam, u_sen) = (out.latent_units.clone().narrow(1, 0, lc), out.latent_units.clone().narrow(1, lc, ls));
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
            latent = latent + mse(u_cam.select(0, idx.clone()), target.clone().narrow(1, 0, lc).select(0, idx.clone()));
            output = output + mse(decoder.decode_camera(zc, s1), cam.select(0, idx));
        }
        if !rs.is_empty() {
            let idx = index_tensor(&rs, device);
            let zs = z_sen.select(0, idx.clone());
            latent =
                latent + mse(u_sen.select(0, idx.clone()), target.clone().narrow(1, lc, ls).select(0, idx.clone()));
            output = output + mse(decoder.decode_sensor(zs, s1), sen.select(0, idx));
        }
        (latent, output)
    } else {
        let output = mse(decoder.decode_camera(z_cam, s1), cam) + mse(decoder.decode_sensor(z_sen, s1), sen);
        (mse(out.latent_units, target), output)
    };
    let mut detection = bce_with_logits(out.logits, label_tensor);
    if let Some(channels) = out.channel_logits {
        let c = channels.dims()[1];
        let labels = tensor2(channel_labels, [b, c], device);
        detection = detection + bce_with_logits(channels, labels).mul_scalar(s2.weights.channels);
    }
    let positives = block.embed(z_clean).detach();
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
    lr: f64,
    device: Device,
}

impl std::fmt::Debug for Stage2Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage2Trainer").field("s2", &self.s2).finish()
    }
}

impl Stage2Trainer {
    /// `stage1` is frozen here; gradients still flow through its decoders to G (or through the
    /// block's output path, which learns).
    pub fn new(block: ComputeBlock, stage1: Stage1, cfg: ModelConfig, s2: Stage2Config, device: Device) -> Self {
        let lr = s2.schedule.learning_rate;
        Self { block: Some(block), stage1: stage1.freeze(), cfg, s2, optim: adam(), lr, device }
    }

    /// The block in its current state.
    pub fn block(&self) -> &ComputeBlock {
        self.block.as_ref().expect("present between steps")
    }

    /// The learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// Gives the trained block back.
    pub fn into_block(self) -> ComputeBlock {
        self.block.expect("present between steps")
    }

    /// One step: loss, backward, modulation, a step per part, power iteration on C.
    pub fn step(&mut self, batch: &Stage2Batch) -> (Stage2Losses, ModulationStats) {
        let block = self.block.take().expect("present between steps");
        let (loss, parts) = stage2_loss(&block, &self.stage1, &self.cfg, &self.s2, batch, &self.device);
        let (next, stats) = update_block(&mut self.optim, &self.s2, self.lr, block, &mut loss.backward());
        self.block = Some(next);
        (parts, stats)
    }
}

/// The compute block's update from the gradients of a loss at learning rate `lr`: modulation, a
/// step per part, power iteration on C.
pub(crate) fn update_block(
    optim: &mut ModuleOptimizer,
    s2: &Stage2Config,
    lr: f64,
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
    let lr_det = lr * m.detection_lr_factor();
    let output_grads = block.output.as_ref().map(|o| GradientsParams::from_module(grads, o));
    let correction_grads = block.correction.as_ref().map(|e| GradientsParams::from_module(grads, e));
    let keypoint_grads = block.keypoints.as_ref().map(|k| GradientsParams::from_module(grads, k));
    let ComputeBlock {
        encoder,
        detector,
        corrector,
        decoder,
        correction,
        output,
        keypoints,
        mode,
        camera_latent,
        scale,
        output_bound,
    } = block;
    let next = ComputeBlock {
        encoder: optim.step(lr_det, encoder, g.encoder),
        detector: optim.step(lr_det, detector, g.detector),
        corrector: optim.step(lr, corrector, g.corrector).power_iteration(m.power_iterations),
        decoder: optim.step(lr, decoder, g.decoder),
        correction: correction.zip(correction_grads).map(|(e, g)| optim.step(lr, e, g)),
        output: output.zip(output_grads).map(|(o, g)| optim.step(lr * s2.output_learning_rate_factor, o, g)),
        keypoints: keypoints.zip(keypoint_grads).map(|(k, g)| optim.step(lr, k, g)),
        mode,
        camera_latent,
        scale,
        output_bound,
    };
    (next, stats)
}
