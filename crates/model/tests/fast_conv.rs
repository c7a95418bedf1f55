//! The kernel convolutions give burn's results: forward, and every gradient through autodiff,
//! layer by layer (the model's geometries and odd ones) and for the whole stage-1 autoencoder.
//! Each comparison runs the same chain twice, on the kernels and on burn's own modules
//! ([`mmguard_model::fast_conv::on_both_paths`]), so the reference is burn itself.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv1dConfig, Conv2dConfig, ConvTranspose1dConfig, ConvTranspose2dConfig};
use burn::nn::{PaddingConfig1d, PaddingConfig2d};
use burn::tensor::{Device, Distribution, Tensor};
use mmguard_model::fast_conv::{chain1d, chain2d, on_both_paths as both, parameter_gradients, Layer1d, Layer2d};
use mmguard_model::{Act, Stage1Config};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// Equal within `tol` relative to the largest magnitude of burn's values.
fn close(ours: &[f32], burn: &[f32], tol: f32, what: &str) {
    assert_eq!(ours.len(), burn.len(), "{what}: lengths");
    let scale = burn.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (k, (a, b)) in ours.iter().zip(burn).enumerate() {
        assert!((a - b).abs() <= tol * scale, "{what}[{k}]: kernels {a} vs burn {b} (scale {scale})");
    }
}

fn random<const D: usize>(dims: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(dims, Distribution::Uniform(-1.0, 1.0), device)
}

/// Output, input gradient, weight and bias gradients of `y = f(x)` under the loss ⟨y, r⟩ with a
/// fixed random r.
fn forward_and_grads<const D: usize, const E: usize, const W: usize>(
    x: &Tensor<D>,
    weight: &Tensor<W>,
    bias: &Tensor<1>,
    f: impl Fn(Tensor<D>) -> Tensor<E>,
    r: &Tensor<E>,
) -> Vec<Vec<f32>> {
    let y = f(x.clone());
    let grads = (y.clone() * r.clone()).sum().backward();
    vec![
        values(y),
        values(x.grad(&grads).expect("input gradient")),
        values(weight.grad(&grads).expect("weight gradient")),
        values(bias.grad(&grads).expect("bias gradient")),
    ]
}

/// [output, input gradient, weight gradient, bias gradient] of a layer on both paths.
fn compare(ours: Vec<Vec<f32>>, burn: Vec<Vec<f32>>, what: &str) {
    let names = ["forward", "input gradient", "weight gradient", "bias gradient"];
    for ((a, b), name) in ours.iter().zip(&burn).zip(names) {
        close(a, b, 1e-4, &format!("{what}: {name}"));
    }
}

#[test]
fn each_2d_layer_matches_burn_forward_and_gradients() {
    let device = Device::flex().autodiff();
    // (batch, channels in, out, height, width, kernel, stride, padding, activation): the camera
    // layers' geometry, then batch 1, non-square, odd channel counts and other geometries
    let cases = [
        (3, 3, 8, 16, 16, 4, 2, 1, Act::Lrelu),
        (2, 8, 4, 8, 8, 4, 2, 1, Act::Linear),
        (1, 5, 7, 12, 20, 4, 2, 1, Act::Lrelu),
        (2, 3, 6, 9, 7, 3, 1, 1, Act::Lrelu),
        (1, 4, 3, 10, 6, 5, 3, 2, Act::Sigmoid),
    ];
    for (b, ci, co, h, w, k, s, p, act) in cases {
        let conv = Conv2dConfig::new([ci, co], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init(&device);
        let x = random([b, ci, h, w], &device).require_grad();
        let (weight, bias) = (conv.weight.val(), conv.bias.as_ref().map(Param::val).unwrap());
        let run = |x: Tensor<4>| chain2d(x, &[(Layer2d::Conv(&conv), act)]);
        let r = random(run(x.clone()).dims(), &device);
        let (ours, burn) = both(|| forward_and_grads(&x, &weight, &bias, run, &r));
        compare(ours, burn, &format!("conv2d {b}×{ci}×{h}×{w} → {co}, k{k} s{s} p{p}"));

        let transposed =
            ConvTranspose2dConfig::new([ci, co], [k, k]).with_stride([s, s]).with_padding([p, p]).init(&device);
        let (weight, bias) = (transposed.weight.val(), transposed.bias.as_ref().map(Param::val).unwrap());
        let run = |x: Tensor<4>| chain2d(x, &[(Layer2d::Transposed(&transposed), act)]);
        let r = random(run(x.clone()).dims(), &device);
        let (ours, burn) = both(|| forward_and_grads(&x, &weight, &bias, run, &r));
        compare(ours, burn, &format!("conv_transpose2d {b}×{ci}×{h}×{w} → {co}, k{k} s{s} p{p}"));
    }
}

#[test]
fn each_1d_layer_matches_burn_forward_and_gradients() {
    let device = Device::flex().autodiff();
    // the sensor layers (k3 s1 p1, k4 s2 p1) and odd sizes
    let cases = [(4, 18, 64, 16, 3, 1, 1), (3, 64, 32, 8, 4, 2, 1), (1, 5, 3, 11, 4, 2, 1), (2, 7, 9, 10, 5, 3, 2)];
    for (b, ci, co, t, k, s, p) in cases {
        let conv =
            Conv1dConfig::new(ci, co, k).with_stride(s).with_padding(PaddingConfig1d::Explicit(p, p)).init(&device);
        let x = random([b, ci, t], &device).require_grad();
        let (weight, bias) = (conv.weight.val(), conv.bias.as_ref().map(Param::val).unwrap());
        let run = |x: Tensor<3>| chain1d(x, &[(Layer1d::Conv(&conv), Act::Lrelu)]);
        let r = random(run(x.clone()).dims(), &device);
        let (ours, burn) = both(|| forward_and_grads(&x, &weight, &bias, run, &r));
        compare(ours, burn, &format!("conv1d {b}×{ci}×{t} → {co}, k{k} s{s} p{p}"));

        let transposed = ConvTranspose1dConfig::new([ci, co], k).with_stride(s).with_padding(p).init(&device);
        let (weight, bias) = (transposed.weight.val(), transposed.bias.as_ref().map(Param::val).unwrap());
        let run = |x: Tensor<3>| chain1d(x, &[(Layer1d::Transposed(&transposed), Act::Linear)]);
        let r = random(run(x.clone()).dims(), &device);
        let (ours, burn) = both(|| forward_and_grads(&x, &weight, &bias, run, &r));
        compare(ours, burn, &format!("conv_transpose1d {b}×{ci}×{t} → {co}, k{k} s{s} p{p}"));
    }
}

#[test]
fn the_stage1_autoencoder_matches_burn_outputs_and_every_gradient() {
    let device = Device::flex().autodiff();
    let cfg = Stage1Config::new(32, 48, 5, 8);
    let model = cfg.init(&device);
    let camera = Tensor::<4>::random([3, 3, 32, 48], Distribution::Uniform(0.0, 1.0), &device);
    let sensor = random([3, 5, 8], &device);
    let (ours, burn) = both(|| {
        let z = model.encode(camera.clone(), sensor.clone());
        let [_, l] = z.dims();
        let (zc, zs) = (
            z.clone().narrow(1, 0, cfg.camera_latent()),
            z.clone().narrow(1, cfg.camera_latent(), l - cfg.camera_latent()),
        );
        let (cam, sen) = (model.decode_camera(zc, &cfg), model.decode_sensor(zs, &cfg));
        let loss = (cam.clone() - camera.clone()).square().mean() + (sen.clone() - sensor.clone()).square().mean();
        let grads = loss.backward();
        let mut all = vec![values(z), values(cam), values(sen)];
        all.extend(parameter_gradients(&model, &grads));
        all
    });
    assert!(ours.len() > 20, "every layer's weight and bias");
    // the GEMMs sum in another order than burn's: identical bits would mean one path ran twice
    assert_ne!(ours, burn, "the kernels ran");
    for (k, (a, b)) in ours.iter().zip(&burn).enumerate() {
        assert!(!b.is_empty(), "parameter #{k} has a gradient");
        close(a, b, 1e-4, &format!("stage 1, output or parameter #{k}"));
    }
    // the same on the plain device, as inference runs it: a run saved by the burn path gives
    // the same outputs within 1e-5
    let plain = model.valid();
    let (camera, sensor) = (camera.inner(), sensor.inner());
    let (ours, burn) = both(|| {
        let z = plain.encode(camera.clone(), sensor.clone());
        let zc = z.clone().narrow(1, 0, cfg.camera_latent());
        vec![values(z), values(plain.decode_camera(zc, &cfg))]
    });
    for (a, b) in ours.iter().zip(&burn) {
        close(a, b, 1e-5, "stage 1 on the plain device");
    }
}
