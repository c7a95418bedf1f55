//! Small building blocks shared by the networks.

use burn::tensor::activation::{leaky_relu, relu, sigmoid};
use burn::tensor::Tensor;
use mmguard_kernels::Activation;

/// Slope of the LeakyReLU used after every hidden layer.
pub const LEAKY_SLOPE: f64 = 0.2;

/// LeakyReLU(0.2).
///
/// burn-autodiff 0.22 has no backward op for `leaky_relu` and falls back to a masked
/// decomposition that costs ~17× the forward on conv feature maps; the algebraically identical
/// `0.2·x + 0.8·relu(x)` uses the dedicated relu backward. Without autodiff the fused
/// `leaky_relu` kernel is the fast one.
pub fn lrelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.is_autodiff() {
        x.clone().mul_scalar(LEAKY_SLOPE) + relu(x).mul_scalar(1.0 - LEAKY_SLOPE)
    } else {
        leaky_relu(x, LEAKY_SLOPE)
    }
}

/// What follows a layer of a convolution chain ([`crate::fast_conv`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Nothing: a chain's last layer whose output is a latent or a sensor window.
    Linear,
    /// [`lrelu`].
    Lrelu,
    /// The sigmoid, after the camera decoder's last layer.
    Sigmoid,
}

impl Act {
    /// Applies it on burn's tensors.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Linear => x,
            Self::Lrelu => lrelu(x),
            Self::Sigmoid => sigmoid(x),
        }
    }

    /// The same activation fused into a kernel layer.
    pub fn kernel(self) -> Activation {
        match self {
            Self::Linear => Activation::Identity,
            Self::Lrelu => Activation::LeakyRelu(LEAKY_SLOPE as f32),
            Self::Sigmoid => Activation::Sigmoid,
        }
    }
}

/// Each row scaled to unit length (rows of zeros stay zero).
pub fn unit_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-8);
    x / norm
}

/// Builders of the convolutions every network here is made of (the stage-1 autoencoder, the
/// baselines' generators and discriminators), so that "a stride-2 k4 convolution" means one
/// thing everywhere.
pub mod conv {
    use burn::nn::conv::{
        Conv1d, Conv1dConfig, Conv2d, Conv2dConfig, ConvTranspose1d, ConvTranspose1dConfig, ConvTranspose2d,
        ConvTranspose2dConfig,
    };
    use burn::nn::{PaddingConfig1d, PaddingConfig2d};
    use burn::tensor::Device;

    /// 4×4 kernel, stride 2, padding 1: halves H and W.
    pub fn down2d(i: usize, o: usize, device: &Device) -> Conv2d {
        Conv2dConfig::new([i, o], [4, 4])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device)
    }

    /// 3×3 kernel, stride 1, padding 1: keeps H and W.
    pub fn same2d(i: usize, o: usize, device: &Device) -> Conv2d {
        Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device)
    }

    /// Transposed 4×4 kernel, stride 2, padding 1: doubles H and W.
    pub fn up2d(i: usize, o: usize, device: &Device) -> ConvTranspose2d {
        ConvTranspose2dConfig::new([i, o], [4, 4]).with_stride([2, 2]).with_padding([1, 1]).init(device)
    }

    /// Kernel 4, stride 2, padding 1: halves T.
    pub fn down1d(i: usize, o: usize, device: &Device) -> Conv1d {
        Conv1dConfig::new(i, o, 4).with_stride(2).with_padding(PaddingConfig1d::Explicit(1, 1)).init(device)
    }

    /// Transposed kernel 4, stride 2, padding 1: doubles T.
    pub fn up1d(i: usize, o: usize, device: &Device) -> ConvTranspose1d {
        ConvTranspose1dConfig::new([i, o], 4).with_stride(2).with_padding(1).init(device)
    }

    /// Kernel 3, stride 1, padding 1: keeps T.
    pub fn same1d(i: usize, o: usize, device: &Device) -> Conv1d {
        Conv1dConfig::new(i, o, 3).with_padding(PaddingConfig1d::Explicit(1, 1)).init(device)
    }
}
