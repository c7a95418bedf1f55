//! MMAE — multimodal denoising autoencoder.
//!
//! Definition (the papers name MMAE without defining it; this follows the project's issue 5 and
//! `docs/methods/baselines.md`): MMSSL's stage-1 camera and sensor encoders, a dense bottleneck
//! over the joint latent (L → 256 → L, LeakyReLU between) through which the healthy modality can
//! inform the faulty one, and the stage-1 decoders. Trained in one stage, end to end, on faulty
//! and clean inputs to reproduce the clean input. No detector: it corrects every sample, and its
//! fault score per modality is the reconstruction residual ‖x̃ − x̂‖² (mean per element).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use mmguard_model::{lrelu, Stage1, Stage1Config};

use crate::Reconstruct;
use serde::{Deserialize, Serialize};

/// Sizes of the MMAE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmaeConfig {
    /// Encoders and decoders, as MMSSL's stage 1.
    pub stage1: Stage1Config,
    /// Width of the dense bottleneck over the joint latent.
    pub bottleneck: usize,
}

impl MmaeConfig {
    /// The reference MMAE for stage-1 sizes `stage1`: a 256-wide bottleneck.
    pub fn new(stage1: Stage1Config) -> Self {
        Self { stage1, bottleneck: 256 }
    }

    /// Builds the network with fresh weights.
    pub fn init(&self, device: &Device) -> Mmae {
        Mmae { autoencoder: self.stage1.init(device), bottleneck: self.init_bottleneck(device) }
    }

    /// The dense bottleneck over the joint latent, L → `bottleneck` → L.
    pub(crate) fn init_bottleneck(&self, device: &Device) -> Bottleneck {
        let l = self.stage1.joint_latent();
        Bottleneck {
            squeeze: LinearConfig::new(l, self.bottleneck).init(device),
            expand: LinearConfig::new(self.bottleneck, l).init(device),
        }
    }
}

/// The dense bottleneck through which the healthy modality can inform the faulty one.
#[derive(Module, Debug)]
pub struct Bottleneck {
    squeeze: Linear,
    expand: Linear,
}

impl Bottleneck {
    /// The joint latent through the bottleneck, and the bottleneck's activation (the code).
    ///
    /// # Shapes
    /// z [B, L] → ([B, L], [B, bottleneck])
    pub fn forward(&self, z: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let code = lrelu(self.squeeze.forward(z));
        (self.expand.forward(code.clone()), code)
    }
}

/// The network: stage-1 encoders → joint dense bottleneck → stage-1 decoders.
#[derive(Module, Debug)]
pub struct Mmae {
    autoencoder: Stage1,
    bottleneck: Bottleneck,
}

impl Reconstruct for Mmae {
    /// The code is the bottleneck activation [B, bottleneck], which MMFR regularises.
    fn reconstruct(
        &self,
        s1: &Stage1Config,
        camera: Tensor<4>,
        sensor: Tensor<3>,
    ) -> (Tensor<4>, Tensor<3>, Tensor<2>) {
        let (z, code) = self.bottleneck.forward(self.autoencoder.encode(camera, sensor));
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let camera = self.autoencoder.decode_camera(z.clone().narrow(1, 0, lc), s1);
        let sensor = self.autoencoder.decode_sensor(z.narrow(1, lc, ls), s1);
        (camera, sensor, code)
    }
}
