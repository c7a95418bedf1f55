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

/// Per-sample results of the pipeline on a batch.
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    /// Fault probability per sample and modality, σ(D(E(z̃))), [B] × (camera, sensor).
    pub scores: Vec<[f32; 2]>,
    /// Whether the gate flagged each modality.
    pub flags: Vec<[bool; 2]>,
    /// Output frames: the input where the camera was not flagged, the corrected frame where it
    /// was; [B, 3, H, W].
    pub camera: Vec<f32>,
    /// Output windows, same rule, [B, T, D].
    pub sensor: Vec<f32>,
    /// The corrected frames for every sample, gate ignored, [B, 3, H, W].
    pub corrected_camera: Vec<f32>,
    /// The corrected windows for every sample, gate ignored, [B, T, D].
    pub corrected_sensor: Vec<f32>,
    /// The stage-1 autoencoder's reconstruction of the input, [B, 3, H, W].
    pub autoencoder_camera: Vec<f32>,
    /// The stage-1 autoencoder's reconstruction of the input, [B, T, D].
    pub autoencoder_sensor: Vec<f32>,
}

impl Mmssl {
    /// Runs the whole pipeline on a host batch: encode, detect, correct, and substitute only
    /// the modalities whose fault probability reaches `threshold`; a healthy modality passes
    /// through unchanged (no autoencoder artefacts on data that was fine).
    pub fn run(&self, cfg: &ModelConfig, batch: &HostBatch, threshold: f32, device: &Device) -> PipelineOutput {
        let s1 = &cfg.stage1;
        let z = self.stage1.encode(batch.camera_tensor(s1, device), batch.sensor_tensor(s1, device));
        let cam_len = s1.camera_latent();
        let sen_len = s1.sensor_latent();
        let ae_camera = camera_to_host(self.stage1.decode_camera(z.clone().narrow(1, 0, cam_len), s1));
        let ae_sensor = sensor_to_host(self.stage1.decode_sensor(z.clone().narrow(1, cam_len, sen_len), s1));
        let out = self.block.forward(z);
        let probs = sigmoid(out.logits).into_data().try_into_vec::<f32>().expect("float tensor");
        let corrected_camera = camera_to_host(self.stage1.decode_camera(out.latent.clone().narrow(1, 0, cam_len), s1));
        let corrected_sensor = sensor_to_host(self.stage1.decode_sensor(out.latent.narrow(1, cam_len, sen_len), s1));
        let scores: Vec<[f32; 2]> = probs.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        let flags: Vec<[bool; 2]> = scores.iter().map(|s| [s[0] >= threshold, s[1] >= threshold]).collect();
        let frame = 3 * s1.height * s1.width;
        let window = s1.window * s1.sensor_dim;
        let mut camera = batch.camera.clone();
        let mut sensor = batch.sensor.clone();
        for (b, f) in flags.iter().enumerate() {
            if f[0] {
                camera[b * frame..(b + 1) * frame].copy_from_slice(&corrected_camera[b * frame..(b + 1) * frame]);
            }
            if f[1] {
                sensor[b * window..(b + 1) * window].copy_from_slice(&corrected_sensor[b * window..(b + 1) * window]);
            }
        }
        PipelineOutput {
            scores,
            flags,
            camera,
            sensor,
            corrected_camera,
            corrected_sensor,
            autoencoder_camera: ae_camera,
            autoencoder_sensor: ae_sensor,
        }
    }
}
