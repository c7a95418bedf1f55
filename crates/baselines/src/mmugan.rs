//! MMUGAN — MMGAN with a U-Net generator.
//!
//! The papers name MMUGAN without a definition. Issue 5 offers an uncertainty-aware generator
//! "or a better sourced definition"; `shared/methods/baselines.md` argues for the U-Net reading,
//! which we implement: "UGAN" is the established name of the pix2pix-style U-Net restoration GAN
//! (Fabbri et al., ICRA 2018), the authors name their baselines MM + {AE, VAE, UGAN}, and
//! Table 1's pattern — best camera error of the baselines, weak sensor correction — is what skip
//! connections give (image detail passes the skips; cross-modal repair must still go through the
//! bottleneck).
//!
//! Generator: per modality the stage-1 encoder and a mirrored decoder whose every stage also
//! reads the encoder stage of the same resolution (concatenated channels), and between them
//! MMAE's shared dense bottleneck over the joint latent (L → 256 → L). Same channel widths as
//! MMSSL's stage 1, so only the skip inputs make its decoders wider. Trained exactly like MMGAN
//! (same conditional LSGAN discriminators and weight); scored by its reconstruction residual.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use mmguard_model::{conv, lrelu, Stage1Config};

use crate::mmae::Bottleneck;
use crate::{MmaeConfig, Reconstruct};

impl MmaeConfig {
    /// Builds the MMUGAN generator of the same sizes as this MMAE (U-Net skips added) with fresh
    /// weights.
    pub fn init_unet(&self, device: &Device) -> Mmugan {
        let s1 = &self.stage1;
        let (c, s) = (s1.camera_channels, s1.sensor_channels);
        let (down, up) = (|i, o| conv::down2d(i, o, device), |i, o| conv::up2d(i, o, device));
        let (down1, up1, same1) =
            (|i, o| conv::down1d(i, o, device), |i, o| conv::up1d(i, o, device), |i, o| conv::same1d(i, o, device));
        Mmugan {
            camera: CameraUnet {
                e1: down(3, c[0]),
                e2: down(c[0], c[1]),
                e3: down(c[1], c[2]),
                e4: down(c[2], c[3]),
                d1: up(c[3], c[2]),
                d2: up(2 * c[2], c[1]),
                d3: up(2 * c[1], c[0]),
                d4: up(2 * c[0], 3),
            },
            sensor: SensorUnet {
                e1: same1(s1.sensor_dim, s[0]),
                e2: down1(s[0], s[1]),
                e3: down1(s[1], s[2]),
                d1: up1(s[2], s[1]),
                d2: up1(2 * s[1], s[0]),
                d3: same1(2 * s[0], s1.sensor_dim),
            },
            bottleneck: self.init_bottleneck(device),
        }
    }
}

/// Camera half of the U-Net: four stride-2 convolutions down, four transposed up, skips between.
#[derive(Module, Debug)]
pub struct CameraUnet {
    e1: Conv2d,
    e2: Conv2d,
    e3: Conv2d,
    e4: Conv2d,
    d1: ConvTranspose2d,
    d2: ConvTranspose2d,
    d3: ConvTranspose2d,
    d4: ConvTranspose2d,
}

/// Sensor half of the U-Net: the stage-1 sensor layers with skips.
#[derive(Module, Debug)]
pub struct SensorUnet {
    e1: Conv1d,
    e2: Conv1d,
    e3: Conv1d,
    d1: ConvTranspose1d,
    d2: ConvTranspose1d,
    d3: Conv1d,
}

/// The generator: two U-Nets joined by a dense bottleneck over their deepest maps.
#[derive(Module, Debug)]
pub struct Mmugan {
    camera: CameraUnet,
    sensor: SensorUnet,
    bottleneck: Bottleneck,
}

impl Reconstruct for Mmugan {
    /// The code is the bottleneck activation [B, bottleneck].
    fn reconstruct(
        &self,
        s1: &Stage1Config,
        camera: Tensor<4>,
        sensor: Tensor<3>,
    ) -> (Tensor<4>, Tensor<3>, Tensor<2>) {
        let (c, s) = (&self.camera, &self.sensor);
        let a1 = lrelu(c.e1.forward(camera));
        let a2 = lrelu(c.e2.forward(a1.clone()));
        let a3 = lrelu(c.e3.forward(a2.clone()));
        let a4 = c.e4.forward(a3.clone());
        let b1 = lrelu(s.e1.forward(sensor));
        let b2 = lrelu(s.e2.forward(b1.clone()));
        let b3 = s.e3.forward(b2.clone());
        let z = Tensor::cat(vec![a4.flatten(1, 3), b3.flatten(1, 2)], 1);
        let (z, code) = self.bottleneck.forward(z);
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let zc = s1.camera_map(z.clone().narrow(1, 0, lc));
        let zs = s1.sensor_map(z.narrow(1, lc, ls));
        let x = lrelu(c.d1.forward(zc));
        let x = lrelu(c.d2.forward(Tensor::cat(vec![x, a3], 1)));
        let x = lrelu(c.d3.forward(Tensor::cat(vec![x, a2], 1)));
        let camera = sigmoid(c.d4.forward(Tensor::cat(vec![x, a1], 1)));
        let y = lrelu(s.d1.forward(zs));
        let y = lrelu(s.d2.forward(Tensor::cat(vec![y, b2], 1)));
        let sensor = s.d3.forward(Tensor::cat(vec![y, b1], 1));
        (camera, sensor, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstructs_the_input_geometry() {
        let device = mmguard_model::compute::device();
        let s1 = Stage1Config::new(32, 48, 5, 8);
        let g = MmaeConfig::new(s1.clone()).init_unet(&device);
        let (c, s, code) =
            g.reconstruct(&s1, Tensor::zeros([2, 3, 32, 48], &device), Tensor::zeros([2, 5, 8], &device));
        assert_eq!(c.dims(), [2, 3, 32, 48]);
        assert_eq!(s.dims(), [2, 5, 8]);
        assert_eq!(code.dims(), [2, 256]);
    }
}
