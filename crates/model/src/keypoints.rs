//! Spatial keypoints of the frame for the sensor correction.
//!
//! A gain on a sensor column keeps the window's shape and loses its level, and where the
//! column is constant in the window (the cube's position on the table, a joint at rest) the
//! level can only be read from the frame. The correction path read it from the camera latent,
//! a 4×4 map of 32 channels, and it did not carry over to new episodes: on the arm demo run
//! the stage-2 output error kept falling on the training windows (14 → 3.4 ×10⁻³) while the
//! validation error stayed at 9 ×10⁻³ from epoch 3 on, and most of the sensor error was the
//! cube's position. With 28 training episodes there are 28 cube positions to learn from.
//!
//! A spatial softmax is the inductive bias that fits: a few convolutions make K feature maps,
//! each map's softmax over the pixels is a distribution, and its expected image coordinates
//! are two numbers that move linearly with what the map responds to. A position read through
//! them is a linear function of where the object is in the frame, and holds between the
//! positions seen in training. The coordinates feed a small readout whose output is added to
//! the sensor part of the corrected latent ([`crate::LatentDecoder::Split`]); its last layer
//! starts at zero, so a fresh block corrects as it would without keypoints.
//!
//! Measured, and therefore off by default: 16 keypoints on the arm demo run (`train
//! --reuse-stage1 runs/demo --config {"architecture": {"keypoints": 16}}`, stage 2 only, the
//! same stage 1; AMD EPYC without AVX-512) tracked the run without keypoints within 1 % in
//! validation error at every epoch, and the ungated test error was camera / sensor 0.149 /
//! 0.859 against 0.149 / 0.868 ×10⁻² — the readout hardly learns from 28 cube positions.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

use crate::layers::{conv, lrelu};

/// Channels of the two stride-2 convolutions before the keypoint maps.
const FEATURES: usize = 16;
/// Hidden width of the readout.
const READOUT_HIDDEN: usize = 128;

/// Frame → K keypoints → a contribution to the sensor part of the corrected latent.
#[derive(Module, Debug)]
pub struct Keypoints {
    c1: Conv2d,
    c2: Conv2d,
    maps: Conv2d,
    l1: Linear,
    l2: Linear,
}

impl Keypoints {
    /// `count` keypoints read out into `outputs` latent values.
    pub fn new(count: usize, outputs: usize, device: &Device) -> Self {
        Self {
            c1: conv::down2d(3, FEATURES, device),
            c2: conv::down2d(FEATURES, FEATURES, device),
            maps: conv::same2d(FEATURES, count, device),
            l1: LinearConfig::new(2 * count, READOUT_HIDDEN).init(device),
            l2: LinearConfig::new(READOUT_HIDDEN, outputs).with_initializer(Initializer::Zeros).init(device),
        }
    }

    /// Expected (x, y) of each keypoint map's spatial softmax, in [−1, 1]: frames [B, 3, H, W]
    /// → [B, 2K] (all x, then all y).
    pub fn coordinates(&self, frame: Tensor<4>) -> Tensor<2> {
        let maps = self.maps.forward(lrelu(self.c2.forward(lrelu(self.c1.forward(frame)))));
        let [b, k, h, w] = maps.dims();
        let p = softmax(maps.reshape([b, k, h * w]), 2);
        let device = p.device();
        let grid = |f: &dyn Fn(usize) -> f32| {
            let v: Vec<f32> = (0..h * w).map(f).collect();
            Tensor::<3>::from_data(TensorData::new(v, [1, 1, h * w]), &device)
        };
        let span = |i: usize, n: usize| if n > 1 { 2.0 * i as f32 / (n - 1) as f32 - 1.0 } else { 0.0 };
        let xs = grid(&|i| span(i % w, w));
        let ys = grid(&|i| span(i / w, h));
        let x = (p.clone() * xs).sum_dim(2).reshape([b, k]);
        let y = (p * ys).sum_dim(2).reshape([b, k]);
        Tensor::cat(vec![x, y], 1)
    }

    /// frames [B, 3, H, W] → the readout [B, outputs]
    pub fn forward(&self, frame: Tensor<4>) -> Tensor<2> {
        self.l2.forward(lrelu(self.l1.forward(self.coordinates(frame))))
    }
}
