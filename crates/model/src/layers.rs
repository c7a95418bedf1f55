//! Small building blocks shared by the networks.

use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::Tensor;

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
