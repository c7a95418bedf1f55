//! MMGAN — the MMAE as generator with conditional discriminators (adversarial + reconstruction
//! loss). The papers name MMGAN without a definition; ours follows the project's issue 5 and
//! `docs/methods/baselines.md`: pix2pix-style conditional discriminators, one per modality,
//! that judge (faulty input, candidate) pairs — "is this a plausible clean version of this
//! input" — with least-squares GAN objectives and the adversarial term weighted 0.01 against
//! the reconstruction (pix2pix's 100 : 1). The discriminators are smaller than the reference's
//! 64-128-256 channels (16-32-64): they only shape training, never run at inference, and the
//! 2-core budget is shared by every method.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{PaddingConfig1d, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use mmguard_model::fast_conv::{chain1d, chain2d, Layer1d, Layer2d};
use mmguard_model::{conv, Act, Stage1Config};
use serde::{Deserialize, Serialize};

/// The adversarial part of MMGAN's training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdversaryConfig {
    /// Weight λ of the generator's adversarial term.
    pub weight: f64,
    /// Discriminators' learning rate (Adam, β₁ = 0.5).
    pub learning_rate: f64,
}

impl Default for AdversaryConfig {
    fn default() -> Self {
        Self { weight: 0.01, learning_rate: 2e-4 }
    }
}

impl AdversaryConfig {
    /// The two conditional discriminators for data of geometry `s1`.
    pub fn init(&self, s1: &Stage1Config, device: &Device) -> Discriminator {
        let (down, down1) = (|i, o| conv::down2d(i, o, device), |i, o| conv::down1d(i, o, device));
        Discriminator {
            c1: down(6, 16),
            c2: down(16, 32),
            c3: down(32, 64),
            c4: Conv2dConfig::new([64, 1], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device),
            s1: down1(2 * s1.sensor_dim, 32),
            s2: down1(32, 64),
            s3: Conv1dConfig::new(64, 1, 3).with_padding(PaddingConfig1d::Explicit(1, 1)).init(device),
        }
    }
}

/// Patch discriminators for camera frames and sensor windows, conditioned on the faulty input.
#[derive(Module, Debug)]
pub struct Discriminator {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    c4: Conv2d,
    s1: Conv1d,
    s2: Conv1d,
    s3: Conv1d,
}

impl Discriminator {
    /// Patch scores of a candidate given its faulty input: camera [B, 1, H/8, W/8], sensor
    /// [B, 1, T/4].
    ///
    /// # Shapes
    /// frames [B, 3, H, W], windows [B, D, T]
    pub fn forward(
        &self,
        input_camera: Tensor<4>,
        candidate_camera: Tensor<4>,
        input_sensor: Tensor<3>,
        candidate_sensor: Tensor<3>,
    ) -> (Tensor<4>, Tensor<3>) {
        let [c1, c2, c3, c4] = [&self.c1, &self.c2, &self.c3, &self.c4].map(Layer2d::Conv);
        let camera = chain2d(
            Tensor::cat(vec![input_camera, candidate_camera], 1),
            &[(c1, Act::Lrelu), (c2, Act::Lrelu), (c3, Act::Lrelu), (c4, Act::Linear)],
        );
        let [s1, s2, s3] = [&self.s1, &self.s2, &self.s3].map(Layer1d::Conv);
        let sensor = chain1d(
            Tensor::cat(vec![input_sensor, candidate_sensor], 1),
            &[(s1, Act::Lrelu), (s2, Act::Lrelu), (s3, Act::Linear)],
        );
        (camera, sensor)
    }
}

/// Least-squares GAN objective: mean (score − target)² over both modalities' patches.
pub fn lsgan(scores: (Tensor<4>, Tensor<3>), target: f64) -> Tensor<1> {
    scores.0.sub_scalar(target).square().mean() + scores.1.sub_scalar(target).square().mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_scores_have_the_documented_shapes() {
        let device = mmguard_model::compute::device();
        let s1 = Stage1Config::new(32, 48, 5, 8);
        let d = AdversaryConfig::default().init(&s1, &device);
        let cam = Tensor::<4>::zeros([2, 3, 32, 48], &device);
        let sen = Tensor::<3>::zeros([2, 5, 8], &device);
        let (c, s) = d.forward(cam.clone(), cam, sen.clone(), sen);
        assert_eq!(c.dims(), [2, 1, 4, 6]);
        assert_eq!(s.dims(), [2, 1, 2]);
        let perfect = lsgan((Tensor::ones([1, 1, 2, 2], &device), Tensor::ones([1, 1, 2], &device)), 1.0);
        assert_eq!(perfect.into_scalar::<f32>(), 0.0);
    }
}
