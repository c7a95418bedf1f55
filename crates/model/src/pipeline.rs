//! The MMSSL model (stage 1 + compute block) and the gated inference pipeline.

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::autoencoder::{Stage1, Stage1Config};
use crate::block::{BlockConfig, ComputeBlock};

/// Everything needed to rebuild the networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Stage-1 autoencoder.
    pub stage1: Stage1Config,
    /// Stage-2 compute block.
    pub block: BlockConfig,
}

impl ModelConfig {
    /// The reference architecture for a given input geometry.
    pub fn new(height: usize, width: usize, sensor_dim: usize, window: usize) -> Self {
        let stage1 = Stage1Config::new(height, width, sensor_dim, window);
        let block = BlockConfig::new(stage1.joint_latent());
        Self { stage1, block }
    }

    /// Builds the model with fresh weights.
    pub fn init(&self, device: &Device) -> Mmssl {
        Mmssl { stage1: self.stage1.init(device), block: self.block.init(device) }
    }
}

/// The two trained parts.
#[derive(Module, Debug)]
pub struct Mmssl {
    /// Stage-1 autoencoder.
    pub stage1: Stage1,
    /// Stage-2 compute block.
    pub block: ComputeBlock,
}

/// A batch on the host, on the [0, 1] scale: frames [B, 3, H, W] and windows [B, T, D].
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Samples B.
    pub len: usize,
    /// Frames, [B, 3, H, W].
    pub camera: Vec<f32>,
    /// Windows, [B, T, D] (time-major, as in the data contract).
    pub sensor: Vec<f32>,
}

impl HostBatch {
    /// The batches one after the other.
    pub fn concat(parts: &[&HostBatch]) -> HostBatch {
        HostBatch {
            len: parts.iter().map(|p| p.len).sum(),
            camera: parts.iter().flat_map(|p| p.camera.iter().copied()).collect(),
            sensor: parts.iter().flat_map(|p| p.sensor.iter().copied()).collect(),
        }
    }

    /// Camera tensor [B, 3, H, W].
    pub fn camera_tensor(&self, cfg: &Stage1Config, device: &Device) -> Tensor<4> {
        let data = TensorData::new(self.camera.clone(), [self.len, 3, cfg.height, cfg.width]);
        Tensor::from_data(data, device)
    }

    /// Sensor tensor in the encoder's channel-first layout [B, D, T].
    pub fn sensor_tensor(&self, cfg: &Stage1Config, device: &Device) -> Tensor<3> {
        let (t, d) = (cfg.window, cfg.sensor_dim);
        let mut dt = vec![0.0; self.sensor.len()];
        for b in 0..self.len {
            let src = &self.sensor[b * t * d..(b + 1) * t * d];
            let dst = &mut dt[b * t * d..(b + 1) * t * d];
            for r in 0..t {
                for c in 0..d {
                    dst[c * t + r] = src[r * d + c];
                }
            }
        }
        Tensor::from_data(TensorData::new(dt, [self.len, d, t]), device)
    }
}

/// Copies a [B, 3, H, W] tensor to the host.
pub fn camera_to_host(x: Tensor<4>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("float tensor")
}

/// Copies a [B, D, T] sensor tensor to the host in the time-major layout [B, T, D].
pub fn sensor_to_host(x: Tensor<3>) -> Vec<f32> {
    x.swap_dims(1, 2).into_data().try_into_vec::<f32>().expect("float tensor")
}

/// What the production pipeline returns for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// Fault probability per sample and modality, σ(D(E(z̃))), [B] × (camera, sensor).
    pub scores: Vec<[f32; 2]>,
    /// Whether the gate flagged each modality.
    pub flags: Vec<[bool; 2]>,
    /// Output frames: the input where the camera was not flagged, the corrected frame where it
    /// was; [B, 3, H, W].
    pub camera: Vec<f32>,
    /// Output windows, same rule, [B, T, D].
    pub sensor: Vec<f32>,
}

/// A correction method: turns a (possibly faulty) batch into the batch handed downstream, with
/// a fault score per modality (higher = more likely faulty). MMSSL and every baseline implement
/// it, so one evaluation protocol scores them all.
pub trait Repair {
    /// The output for `batch`.
    fn repair(&self, batch: &HostBatch, device: &Device) -> Inference;
}

/// MMSSL's production path with its gate threshold.
#[derive(Debug, Clone, Copy)]
pub struct Gated<'a> {
    /// The trained model.
    pub model: &'a Mmssl,
    /// Its sizes.
    pub cfg: &'a ModelConfig,
    /// Gate threshold on the fault probability.
    pub threshold: f32,
}

impl Repair for Gated<'_> {
    fn repair(&self, batch: &HostBatch, device: &Device) -> Inference {
        self.model.infer(self.cfg, batch, self.threshold, device)
    }
}

/// Everything the evaluation looks at: the production output plus the references.
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    /// The gated output.
    pub inference: Inference,
    /// The corrected frames for every sample, gate ignored, [B, 3, H, W].
    pub corrected_camera: Vec<f32>,
    /// The corrected windows for every sample, gate ignored, [B, T, D].
    pub corrected_sensor: Vec<f32>,
    /// The stage-1 autoencoder's reconstruction of the input, [B, 3, H, W].
    pub autoencoder_camera: Vec<f32>,
    /// The stage-1 autoencoder's reconstruction of the input, [B, T, D].
    pub autoencoder_sensor: Vec<f32>,
}

fn rows_of(flags: &[[bool; 2]], m: usize) -> Vec<usize> {
    (0..flags.len()).filter(|&b| flags[b][m]).collect()
}

/// Row indices as an integer tensor, for `select` along the batch dimension.
pub fn index_tensor(rows: &[usize], device: &Device) -> Tensor<1, burn::tensor::Int> {
    let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::from_data(TensorData::new(v, [rows.len()]), device)
}

/// Writes decoded rows (in `rows` order) over the matching samples of `dst`.
fn substitute(dst: &mut [f32], rows: &[usize], decoded: &[f32], row_len: usize) {
    for (k, &b) in rows.iter().enumerate() {
        dst[b * row_len..(b + 1) * row_len].copy_from_slice(&decoded[k * row_len..(k + 1) * row_len]);
    }
}

impl Mmssl {
    /// Encodes a batch, runs the compute block, and gates: (z̃, ẑ, scores, flags).
    fn detect(
        &self,
        cfg: &ModelConfig,
        batch: &HostBatch,
        threshold: f32,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>, Vec<[f32; 2]>, Vec<[bool; 2]>) {
        let s1 = &cfg.stage1;
        let z = self.stage1.encode(batch.camera_tensor(s1, device), batch.sensor_tensor(s1, device));
        let out = self.block.forward(z.clone());
        let probs = sigmoid(out.logits).into_data().try_into_vec::<f32>().expect("float tensor");
        let scores: Vec<[f32; 2]> = probs.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        let flags = scores.iter().map(|s| [s[0] >= threshold, s[1] >= threshold]).collect();
        (z, out.latent, scores, flags)
    }

    /// The production path: detect, then decode and substitute only the modalities whose fault
    /// probability reaches `threshold`. A healthy modality passes through unchanged (no
    /// autoencoder artefacts on data that was fine) and a clean sample is never decoded.
    pub fn infer(&self, cfg: &ModelConfig, batch: &HostBatch, threshold: f32, device: &Device) -> Inference {
        let (_, latent, scores, flags) = self.detect(cfg, batch, threshold, device);
        self.substitute_flagged(cfg, batch, latent, scores, flags, device)
    }

    fn substitute_flagged(
        &self,
        cfg: &ModelConfig,
        batch: &HostBatch,
        latent: Tensor<2>,
        scores: Vec<[f32; 2]>,
        flags: Vec<[bool; 2]>,
        device: &Device,
    ) -> Inference {
        let s1 = &cfg.stage1;
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let mut camera = batch.camera.clone();
        let mut sensor = batch.sensor.clone();
        let cam_rows = rows_of(&flags, 0);
        if !cam_rows.is_empty() {
            let z = latent.clone().narrow(1, 0, lc).select(0, index_tensor(&cam_rows, device));
            let decoded = camera_to_host(self.stage1.decode_camera(z, s1));
            substitute(&mut camera, &cam_rows, &decoded, 3 * s1.height * s1.width);
        }
        let sen_rows = rows_of(&flags, 1);
        if !sen_rows.is_empty() {
            let z = latent.narrow(1, lc, ls).select(0, index_tensor(&sen_rows, device));
            let decoded = sensor_to_host(self.stage1.decode_sensor(z, s1));
            substitute(&mut sensor, &sen_rows, &decoded, s1.window * s1.sensor_dim);
        }
        Inference { scores, flags, camera, sensor }
    }

    /// The production output plus, for evaluation, the ungated correction and the stage-1
    /// autoencoder's reconstruction of the input.
    pub fn run(&self, cfg: &ModelConfig, batch: &HostBatch, threshold: f32, device: &Device) -> PipelineOutput {
        let s1 = &cfg.stage1;
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let (z, latent, scores, flags) = self.detect(cfg, batch, threshold, device);
        let autoencoder_camera = camera_to_host(self.stage1.decode_camera(z.clone().narrow(1, 0, lc), s1));
        let autoencoder_sensor = sensor_to_host(self.stage1.decode_sensor(z.narrow(1, lc, ls), s1));
        let corrected_camera = camera_to_host(self.stage1.decode_camera(latent.clone().narrow(1, 0, lc), s1));
        let corrected_sensor = sensor_to_host(self.stage1.decode_sensor(latent.clone().narrow(1, lc, ls), s1));
        let inference = self.substitute_flagged(cfg, batch, latent, scores, flags, device);
        PipelineOutput { inference, corrected_camera, corrected_sensor, autoencoder_camera, autoencoder_sensor }
    }
}

/// Forward floating-point operations per sample (a multiply-add counts 2), by part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flops {
    /// Camera and sensor encoders.
    pub encoders: u64,
    /// Compute block E, D, C, G.
    pub block: u64,
    /// Camera and sensor decoders (one pass).
    pub decoders: u64,
}

impl Flops {
    /// Encoders + block + decoders: a sample whose two modalities are both corrected.
    pub fn pipeline(&self) -> u64 {
        self.encoders + self.block + self.decoders
    }
}

impl ModelConfig {
    /// Counts the forward FLOPs of one sample from the layer shapes.
    pub fn forward_flops(&self) -> Flops {
        let s = &self.stage1;
        let c = s.camera_channels;
        let sc = s.sensor_channels;
        // conv: every output element needs c_in·k² multiply-adds; a transposed conv spends the
        // same per input element.
        let conv2d = |cin: usize, cout: usize, h_out: usize, w_out: usize| 2 * cin * cout * 16 * h_out * w_out;
        let (h, w) = (s.height, s.width);
        let cam_chain = [(3, c[0], 2), (c[0], c[1], 4), (c[1], c[2], 8), (c[2], c[3], 16)];
        let cam: usize = cam_chain.iter().map(|&(i, o, f)| conv2d(i, o, h / f, w / f)).sum();
        let t = s.window;
        let sen = 2 * s.sensor_dim * sc[0] * 3 * t + 2 * sc[0] * sc[1] * 4 * (t / 2) + 2 * sc[1] * sc[2] * 4 * (t / 4);
        let b = &self.block;
        let lin = |i: usize, o: usize| 2 * i * o;
        let block = lin(b.latent, b.hidden)
            + lin(b.hidden, b.hidden)
            + lin(b.hidden, b.detector_hidden)
            + lin(b.detector_hidden, 2)
            + 2 * lin(b.hidden, b.hidden)
            + lin(b.hidden, b.decoder.outputs(b.latent));
        Flops { encoders: (cam + sen) as u64, block: block as u64, decoders: (cam + sen) as u64 }
    }
}
