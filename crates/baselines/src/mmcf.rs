//! MMCF — multimodal concept fusion (Altinses & Schwung, IEEE Trans. AI 2025; code:
//! github.com/Diyarino/concept-guided-multimodal-fusion, `model_based_fusion.py`).
//!
//! As in the authors' `AdaptiveFusion`: each modality's latent is projected to d values (x₁, x₂);
//! a learned concept gate a = σ(W₂·relu(W₁·[x₁; x₂])) mixes joint information (the mean of the
//! two) with marginal information (their element-wise minimum — the code's "max_fused" is a
//! min): mix = a ⊙ (x₁ + x₂)/2 + (1 − a) ⊙ min(x₁, x₂); fused = LayerNorm(mix + P₁x₁ + P₂x₂).
//! Both decoders read the one fused code, so a faulty modality's weight can drop. Encoders and
//! decoders are MMSSL's stage 1; the code's d = 16 is raised to 64 for capacity parity with the
//! other methods (`docs/methods/baselines.md`, Q3). Trained like the MMAE (one stage, faulty →
//! clean); its fault score per modality is the reconstruction residual.

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use mmguard_model::{Stage1, Stage1Config};
use serde::{Deserialize, Serialize};

use crate::Reconstruct;

/// Sizes of the MMCF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmcfConfig {
    /// Encoders and decoders, as MMSSL's stage 1.
    pub stage1: Stage1Config,
    /// Width d of each modality's projection and of the fused code.
    pub concept: usize,
}

impl MmcfConfig {
    /// The reference MMCF for stage-1 sizes `stage1`: d = 64.
    pub fn new(stage1: Stage1Config) -> Self {
        Self { stage1, concept: 64 }
    }

    /// Builds the network with fresh weights.
    pub fn init(&self, device: &Device) -> Mmcf {
        let (lc, ls, d) = (self.stage1.camera_latent(), self.stage1.sensor_latent(), self.concept);
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        Mmcf {
            autoencoder: self.stage1.init(device),
            project_camera: linear(lc, d),
            project_sensor: linear(ls, d),
            gate_hidden: linear(2 * d, d),
            gate_out: linear(d, d),
            skip_camera: linear(d, d),
            skip_sensor: linear(d, d),
            norm: LayerNormConfig::new(d).init(device),
            back_camera: linear(d, lc),
            back_sensor: linear(d, ls),
        }
    }
}

/// The network: stage-1 encoders → projections → adaptive concept fusion → stage-1 decoders.
#[derive(Module, Debug)]
pub struct Mmcf {
    autoencoder: Stage1,
    project_camera: Linear,
    project_sensor: Linear,
    gate_hidden: Linear,
    gate_out: Linear,
    skip_camera: Linear,
    skip_sensor: Linear,
    norm: LayerNorm,
    back_camera: Linear,
    back_sensor: Linear,
}

impl Reconstruct for Mmcf {
    /// The code is the concept gate a [B, d]: high where the modalities agree.
    fn reconstruct(
        &self,
        s1: &Stage1Config,
        camera: Tensor<4>,
        sensor: Tensor<3>,
    ) -> (Tensor<4>, Tensor<3>, Tensor<2>) {
        let x1 = self.project_camera.forward(self.autoencoder.encode_camera(camera));
        let x2 = self.project_sensor.forward(self.autoencoder.encode_sensor(sensor));
        let joint = Tensor::cat(vec![x1.clone(), x2.clone()], 1);
        let a = sigmoid(self.gate_out.forward(relu(self.gate_hidden.forward(joint))));
        let mean = (x1.clone() + x2.clone()).div_scalar(2.0);
        let marginal = x1.clone().min_pair(x2.clone());
        let mix = a.clone() * mean + a.clone().neg().add_scalar(1.0) * marginal;
        let fused = self.norm.forward(mix + self.skip_camera.forward(x1) + self.skip_sensor.forward(x2));
        let camera = self.autoencoder.decode_camera(self.back_camera.forward(fused.clone()), s1);
        let sensor = self.autoencoder.decode_sensor(self.back_sensor.forward(fused), s1);
        (camera, sensor, a)
    }
}
