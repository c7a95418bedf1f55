//! The baselines' own convolutions (MMUGAN's U-Net with its skips, MMGAN's discriminators) run
//! on the kernels and give burn's outputs and gradients: each comparison runs the same network
//! on both paths ([`on_both_paths`]).

use burn::tensor::{Distribution, Tensor};
use mmguard_baselines::{lsgan, AdversaryConfig, MmaeConfig, Reconstruct};
use mmguard_model::fast_conv::{on_both_paths, parameter_gradients};
use mmguard_model::{compute, Stage1Config};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// Both paths' values equal within 1e-4 of the largest magnitude, and not bit for bit (the
/// GEMMs sum in another order: identical bits would mean one path ran twice).
fn assert_close(ours: &[Vec<f32>], burn: &[Vec<f32>], what: &str) {
    assert_ne!(ours, burn, "{what}: the kernels ran");
    for (k, (a, b)) in ours.iter().zip(burn).enumerate() {
        assert!(!b.is_empty() && a.len() == b.len(), "{what} #{k}: a value on both paths");
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-4 * scale, "{what} #{k}: kernels {x} vs burn {y} (scale {scale})");
        }
    }
}

#[test]
fn the_unet_generator_and_the_discriminators_match_burn_with_every_gradient() {
    let device = compute::training_device();
    let s1 = Stage1Config::new(32, 48, 5, 8);
    let camera = Tensor::<4>::random([2, 3, 32, 48], Distribution::Uniform(0.0, 1.0), &device);
    let sensor = Tensor::<3>::random([2, 5, 8], Distribution::Uniform(-1.0, 1.0), &device);
    let generator = MmaeConfig::new(s1.clone()).init_unet(&device);
    let discriminator = AdversaryConfig::default().init(&s1, &device);
    let (ours, burn) = on_both_paths(|| {
        let (cam, sen, code) = generator.reconstruct(&s1, camera.clone(), sensor.clone());
        let scores = discriminator.forward(camera.clone(), cam.clone(), sensor.clone(), sen.clone());
        let loss = (cam.clone() - camera.clone()).square().mean()
            + (sen.clone() - sensor.clone()).square().mean()
            + lsgan(scores, 1.0);
        let grads = loss.backward();
        let mut all = vec![values(cam), values(sen), values(code)];
        all.extend(parameter_gradients(&generator, &grads));
        all.extend(parameter_gradients(&discriminator, &grads));
        all
    });
    // 14 generator and 7 discriminator layers, a weight and a bias each, plus the bottleneck
    assert!(ours.len() > 3 + 2 * 21, "every layer's weight and bias: {}", ours.len());
    assert_close(&ours, &burn, "MMUGAN and MMGAN outputs and parameter gradients");
}
