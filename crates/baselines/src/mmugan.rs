//! MMUGAN — MMGAN with a U-Net generator.
//!
//! The papers name MMUGAN without a definition. Issue 5 offers an uncertainty-aware generator
//! "or a better sourced definition"; `docs/methods/baselines.md` argues for the U-Net reading,
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
use burn::tensor::{Device, Tensor};
use mmguard_model::fast_conv::{Layer1d, Layer2d, Map1d, Map2d};
use mmguard_model::{conv, Act, Stage1Config};

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
        let (conv, up) = (Layer2d::Conv, Layer2d::Transposed);
        let a1 = Map2d::new(camera).layer(conv(&c.e1), Act::Lrelu);
        let a2 = a1.clone().layer(conv(&c.e2), Act::Lrelu);
        let a3 = a2.clone().layer(conv(&c.e3), Act::Lrelu);
        let a4 = a3.clone().layer(conv(&c.e4), Act::Linear).into_nchw();
        let (conv1, up1) = (Layer1d::Conv, Layer1d::Transposed);
        let b1 = Map1d::new(sensor).layer(conv1(&s.e1), Act::Lrelu);
        let b2 = b1.clone().layer(conv1(&s.e2), Act::Lrelu);
        let b3 = b2.clone().layer(conv1(&s.e3), Act::Linear).into_channels_first();
        let z = Tensor::cat(vec![a4.flatten(1, 3), b3.flatten(1, 2)], 1);
        let (z, code) = self.bottleneck.forward(z);
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let zc = s1.camera_map(z.clone().narrow(1, 0, lc));
        let zs = s1.sensor_map(z.narrow(1, lc, ls));
        let x = Map2d::new(zc).layer(up(&c.d1), Act::Lrelu);
        let x = x.cat(a3).layer(up(&c.d2), Act::Lrelu);
        let x = x.cat(a2).layer(up(&c.d3), Act::Lrelu);
        let camera = x.cat(a1).layer(up(&c.d4), Act::Sigmoid).into_nchw();
        let y = Map1d::new(zs).layer(up1(&s.d1), Act::Lrelu);
        let y = y.cat(b2).layer(up1(&s.d2), Act::Lrelu);
        let sensor = y.cat(b1).layer(conv1(&s.d3), Act::Linear).into_channels_first();
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
