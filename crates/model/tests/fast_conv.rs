//! The kernel convolutions give burn's results: forward, and every gradient through autodiff,
//! for the camera layers' geometry (kernel 4, stride 2, padding 1) in both directions, on the
//! NHWC view of burn's NCHW tensors.

use burn::module::Param;
use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Distribution, Tensor};
use mmguard_model::fast_conv::{conv2d, conv_transpose2d};

fn close(a: Tensor<4>, b: Tensor<4>, what: &str) {
    let (a, b) = (a.into_data().try_into_vec::<f32>().unwrap(), b.into_data().try_into_vec::<f32>().unwrap());
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * scale, "{what}[{k}]: {x} vs {y}");
    }
}

fn close_any<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
    let (a, b) = (a.into_data().try_into_vec::<f32>().unwrap(), b.into_data().try_into_vec::<f32>().unwrap());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (k, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * scale, "{what}[{k}]: {x} vs {y}");
    }
}

fn nhwc(x: Tensor<4>) -> Tensor<4> {
    x.permute([0, 2, 3, 1])
}

#[test]
fn kernel_convolutions_match_burns_forward_and_gradients() {
    let device = Device::flex().autodiff();
    for (cin, cout, size) in [(3, 8, 16), (8, 4, 8)] {
        // convolution
        let module = Conv2dConfig::new([cin, cout], [4, 4])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<4>::random([3, cin, size, size], Distribution::Uniform(-1.0, 1.0), &device).require_grad();
        let weight = module.weight.val();
        let bias = module.bias.as_ref().map(Param::val).unwrap();
        let ours = conv2d(nhwc(x.clone()), weight.clone(), bias.clone(), [4, 2, 1]).permute([0, 3, 1, 2]);
        let theirs = module.forward(x.clone());
        close(ours.clone(), theirs.clone(), "conv2d forward");
        let r = Tensor::<4>::random(theirs.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let g_ours = (ours * r.clone()).sum().backward();
        let g_theirs = (theirs * r).sum().backward();
        close(x.grad(&g_ours).unwrap(), x.grad(&g_theirs).unwrap(), "conv2d x-grad");
        close_any(weight.grad(&g_ours).unwrap(), weight.grad(&g_theirs).unwrap(), "conv2d weight-grad");
        close_any(bias.grad(&g_ours).unwrap(), bias.grad(&g_theirs).unwrap(), "conv2d bias-grad");

        // transposed convolution
        let module =
            ConvTranspose2dConfig::new([cin, cout], [4, 4]).with_stride([2, 2]).with_padding([1, 1]).init(&device);
        let weight = module.weight.val();
        let bias = module.bias.as_ref().map(Param::val).unwrap();
        let ours = conv_transpose2d(nhwc(x.clone()), weight.clone(), bias.clone(), [4, 2, 1]).permute([0, 3, 1, 2]);
        let theirs = module.forward(x.clone());
        close(ours.clone(), theirs.clone(), "conv_transpose2d forward");
        let r = Tensor::<4>::random(theirs.dims(), Distribution::Uniform(-1.0, 1.0), &device);
        let g_ours = (ours * r.clone()).sum().backward();
        let g_theirs = (theirs * r).sum().backward();
        close(x.grad(&g_ours).unwrap(), x.grad(&g_theirs).unwrap(), "conv_transpose2d x-grad");
        close_any(weight.grad(&g_ours).unwrap(), weight.grad(&g_theirs).unwrap(), "conv_transpose2d weight-grad");
        close_any(bias.grad(&g_ours).unwrap(), bias.grad(&g_theirs).unwrap(), "conv_transpose2d bias-grad");
    }
}
