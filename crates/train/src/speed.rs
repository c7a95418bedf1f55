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
    }
}

impl SpeedReport {
    /// The report as a Markdown table, with the PyTorch reference figures of this machine.
    pub fn to_markdown(&self) -> String {
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
        )
    }
}
