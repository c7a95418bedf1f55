//! Throughput of training and inference on synthetic batches of the reference geometry.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use mmguard_model::{HostBatch, Mmssl, ModelConfig, Thresholds};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::Stage2Config;
use crate::pipeline::init_model;
use crate::stage1::Stage1Trainer;
use crate::stage2::{make_batch, LatentEncoder, Stage2Trainer};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedConfig {
    /// Frame height and width.
    pub image: usize,
    /// Sensor columns D.
    pub sensor_dim: usize,
    /// Window length T.
    pub window: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Timed repetitions (after one warm-up).
    pub reps: usize,
}

impl Default for SpeedConfig {
    fn default() -> Self {
        Self { image: 64, sensor_dim: 18, window: 16, batch_size: 64, reps: 10 }
    }
}

/// Median timings, samples per second, and arithmetic rate.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedReport {
    /// The configuration.
    pub config: SpeedConfig,
    /// rayon threads used by burn-flex.
    pub threads: usize,
    /// Stage-1 training, samples/s (median step).
    pub stage1_train_samples_per_s: f64,
    /// Stage-2 training including fault injection and re-encoding, samples/s.
    pub stage2_train_samples_per_s: f64,
    /// Inference, batch 64, both modalities corrected (worst case), samples/s.
    pub infer_batch64_samples_per_s: f64,
    /// Inference, batch 1, both modalities corrected, milliseconds per sample.
    pub infer_batch1_ms: f64,
    /// Inference, batch 1, clean sample (gate bypass: no decoding), milliseconds.
    pub infer_batch1_bypass_ms: f64,
    /// Forward FLOPs per sample of the full pipeline (encoders + block + decoders).
    pub forward_flops_per_sample: u64,
    /// Achieved GFLOP/s of batch-64 inference.
    pub infer_batch64_gflops: f64,
    /// The CPU: model name and the vector extensions the GEMMs can use.
    pub cpu: String,
    /// Each camera layer's training cost (forward and every gradient) at the training batch
    /// size, on burn-flex and on `mmguard-kernels`.
    pub camera_layers: Vec<LayerSpeed>,
}

/// One camera layer, forward + backward with every gradient, median milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSpeed {
    /// `encoder 3→32, 64²` style name.
    pub layer: String,
    /// burn-flex's `Conv2d` / `ConvTranspose2d`.
    pub burn_ms: f64,
    /// The same layer on `mmguard_model::fast_conv`, its activations NHWC as inside a chain of
    /// such layers.
    pub kernels_ms: f64,
}

/// Model name and vector flags from `/proc/cpuinfo` (`unknown` where it cannot be read).
pub fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let have: Vec<&str> =
        ["avx512f", "avx2", "fma"].into_iter().filter(|f| flags.split_whitespace().any(|x| x == *f)).collect();
    format!("{} ({})", field("model name").unwrap_or_else(|| "unknown".into()), have.join(", "))
}

/// Times the reference camera layers at `batch` on burn's modules and on the kernels.
fn camera_layers(batch: usize, image: usize, reps: usize, device: &Device) -> Vec<LayerSpeed> {
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::nn::PaddingConfig2d;
    use burn::tensor::{Distribution, Tensor};
    use mmguard_model::fast_conv::{conv2d, conv_transpose2d};
    let channels = [3, 32, 64, 64, 32];
    let mut out = Vec::new();
    for transposed in [false, true] {
        for l in 0..4 {
            let (cin, cout, size) = if transposed {
                (channels[4 - l], channels[3 - l], image >> (4 - l))
            } else {
                (channels[l], channels[l + 1], image >> l)
            };
            let x =
                Tensor::<4>::random([batch, cin, size, size], Distribution::Uniform(-1.0, 1.0), device).require_grad();
            // inside a chain of kernel layers the activations stay NHWC
            let xh =
                Tensor::<4>::random([batch, size, size, cin], Distribution::Uniform(-1.0, 1.0), device).require_grad();
            let (burn_ms, kernels_ms) = if transposed {
                let m = ConvTranspose2dConfig::new([cin, cout], [4, 4])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .init(device);
                let (w, b) = (m.weight.val(), m.bias.as_ref().expect("bias").val());
                let r = Tensor::<4>::ones(m.forward(x.clone()).dims(), device);
                let rh =
                    Tensor::<4>::ones(conv_transpose2d(xh.clone(), w.clone(), b.clone(), [4, 2, 1]).dims(), device);
                let burn = median_secs(reps, || drop((m.forward(x.clone()) * r.clone()).sum().backward()));
                let ours = median_secs(reps, || {
                    drop((conv_transpose2d(xh.clone(), w.clone(), b.clone(), [4, 2, 1]) * rh.clone()).sum().backward())
                });
                (burn, ours)
            } else {
                let m = Conv2dConfig::new([cin, cout], [4, 4])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device);
                let (w, b) = (m.weight.val(), m.bias.as_ref().expect("bias").val());
                let r = Tensor::<4>::ones(m.forward(x.clone()).dims(), device);
                let rh = Tensor::<4>::ones(conv2d(xh.clone(), w.clone(), b.clone(), [4, 2, 1]).dims(), device);
                let burn = median_secs(reps, || drop((m.forward(x.clone()) * r.clone()).sum().backward()));
                let ours = median_secs(reps, || {
                    drop((conv2d(xh.clone(), w.clone(), b.clone(), [4, 2, 1]) * rh.clone()).sum().backward())
                });
                (burn, ours)
            };
            let kind = if transposed { "decoder" } else { "encoder" };
            out.push(LayerSpeed {
                layer: format!("{kind} {cin}→{cout}, {size}²"),
                burn_ms: burn_ms * 1e3,
                kernels_ms: kernels_ms * 1e3,
            });
        }
    }
    out
}

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn random_batch(len: usize, cfg: &ModelConfig, rng: &mut ChaCha8Rng) -> HostBatch {
    let s = &cfg.stage1;
    HostBatch {
        len,
        camera: (0..len * 3 * s.height * s.width).map(|_| rng.random()).collect(),
        sensor: (0..len * s.window * s.sensor_dim).map(|_| rng.random()).collect(),
    }
}

/// Runs the measurements.
pub fn measure(cfg: &SpeedConfig) -> SpeedReport {
    let model_cfg = ModelConfig::new(cfg.image, cfg.image, cfg.sensor_dim, cfg.window);
    let plain = Device::flex();
    let ad = plain.clone().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let batch = random_batch(cfg.batch_size, &model_cfg, &mut rng);
    let Mmssl { stage1, block } = init_model(&model_cfg, &ad, 0);

    let mut t1 = Stage1Trainer::new(stage1.clone(), model_cfg.stage1.clone(), 1e-3, ad.clone());
    let s1 = median_secs(cfg.reps, || {
        t1.step(&batch);
    });

    let s2cfg = Stage2Config::default();
    let frozen = stage1.valid();
    let enc = LatentEncoder { stage1: &frozen, cfg: &model_cfg, device: &plain };
    let z_clean = enc.clean(&batch);
    let previous = vec![None; batch.len];
    let mut t2 = Stage2Trainer::new(block, stage1, model_cfg.clone(), s2cfg.clone(), ad);
    let s2 = median_secs(cfg.reps, || {
        let b = make_batch(&enc, batch.clone(), z_clean.clone(), &previous, &s2cfg, &mut rng);
        t2.step(&b);
    });

    let model = Mmssl { stage1: t1.into_model(), block: t2.into_block() }.valid();
    let b64 = random_batch(64, &model_cfg, &mut rng);
    let i64s = median_secs(cfg.reps, || {
        model.infer(&model_cfg, &b64, Thresholds::uniform(0.0), &plain);
    });
    let b1 = random_batch(1, &model_cfg, &mut rng);
    let i1 = median_secs(cfg.reps * 5, || {
        model.infer(&model_cfg, &b1, Thresholds::uniform(0.0), &plain);
    });
    let i1_bypass = median_secs(cfg.reps * 5, || {
        model.infer(&model_cfg, &b1, Thresholds::uniform(2.0), &plain);
    });
    let flops = model_cfg.forward_flops().pipeline();
    SpeedReport {
        config: cfg.clone(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stage1_train_samples_per_s: cfg.batch_size as f64 / s1,
        stage2_train_samples_per_s: cfg.batch_size as f64 / s2,
        infer_batch64_samples_per_s: 64.0 / i64s,
        infer_batch1_ms: i1 * 1e3,
        infer_batch1_bypass_ms: i1_bypass * 1e3,
        forward_flops_per_sample: flops,
        infer_batch64_gflops: flops as f64 * 64.0 / i64s / 1e9,
        cpu: cpu_description(),
        camera_layers: camera_layers(cfg.batch_size, cfg.image, cfg.reps, &plain.autodiff()),
    }
}

impl SpeedReport {
    /// The report as a Markdown table, with the PyTorch reference figures of this machine.
    pub fn to_markdown(&self) -> String {
        let mut layers = format!(
            "\nCamera layers, forward + backward with every gradient, batch {}, median ms ({}):\n\n\
             | layer | burn-flex | mmguard-kernels | speed-up |\n|---|---|---|---|\n",
            self.config.batch_size, self.cpu
        );
        for l in &self.camera_layers {
            layers += &format!(
                "| {} | {:.2} | {:.2} | {:.2}× |\n",
                l.layer,
                l.burn_ms,
                l.kernels_ms,
                l.burn_ms / l.kernels_ms
            );
        }
        let (burn, ours) = self.camera_layers.iter().fold((0.0, 0.0), |(a, b), l| (a + l.burn_ms, b + l.kernels_ms));
        layers += &format!("| all eight | {burn:.1} | {ours:.1} | {:.2}× |\n", burn / ours);
        format!(
            "| measurement | mmguard (burn-flex) | PyTorch reference |\n|---|---|---|\n\
             | stage-1 training, batch {b} | {:.0} samples/s | ~740 samples/s |\n\
             | stage-2 training, batch {b} | {:.0} samples/s | ~930 samples/s |\n\
             | inference, batch 64 (both corrected) | {:.0} samples/s | ~1,900 samples/s |\n\
             | inference, batch 1 (both corrected) | {:.2} ms | 1.8 ms |\n\
             | inference, batch 1 (clean, bypass) | {:.2} ms | – |\n\
             | forward FLOPs per sample | {:.1} M | |\n\
             | achieved, batch-64 inference | {:.1} GFLOP/s | |\n",
            self.stage1_train_samples_per_s,
            self.stage2_train_samples_per_s,
            self.infer_batch64_samples_per_s,
            self.infer_batch1_ms,
            self.infer_batch1_bypass_ms,
            self.forward_flops_per_sample as f64 / 1e6,
            self.infer_batch64_gflops,
            b = self.config.batch_size,
        ) + &layers
    }
}
