//! Throughput of training and inference on synthetic batches of the reference geometry.

use mmguard_model::compute;
use std::time::Instant;

use burn::module::Module;
use mmguard_model::fast_conv::on_both_paths;
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

/// The benchmark on both convolution paths, measured in one sitting.
#[derive(Debug, Clone, Serialize)]
pub struct SpeedReport {
    /// The configuration.
    pub config: SpeedConfig,
    /// rayon threads used by burn-flex and the kernels.
    pub threads: usize,
    /// The CPU: model name and the vector extensions the GEMMs can use.
    pub cpu: String,
    /// Forward FLOPs per sample of the full pipeline (encoders + block + decoders).
    pub forward_flops_per_sample: u64,
    /// The convolutions on `mmguard-kernels` (the default).
    pub kernels: PathSpeed,
    /// The convolutions on burn-flex's own modules ([`mmguard_model::fast_conv::use_kernels`]).
    pub burn: PathSpeed,
}

/// Median timings of one convolution path, as samples per second.
#[derive(Debug, Clone, Serialize)]
pub struct PathSpeed {
    /// Stage-1 training, samples/s (median step).
    pub stage1_train_samples_per_s: f64,
    /// Stage-2 training including fault injection and re-encoding, samples/s.
    pub stage2_train_samples_per_s: f64,
    /// Inference, batch 64, both modalities corrected (worst case), samples/s.
    pub infer_batch64_samples_per_s: f64,
    /// Inference, batch 1, both modalities corrected, milliseconds per sample (median).
    pub infer_batch1_ms: f64,
    /// The same, 99th percentile of the calls.
    pub infer_batch1_p99_ms: f64,
    /// Inference, batch 1, clean sample (gate bypass: no decoding), milliseconds.
    pub infer_batch1_bypass_ms: f64,
    /// Achieved GFLOP/s of batch-64 inference.
    pub infer_batch64_gflops: f64,
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

/// Seconds per call of `f` after one warm-up, sorted.
fn timings(reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

/// The value below which a share `q` of the sorted times lie.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn median_secs(reps: usize, f: impl FnMut()) -> f64 {
    quantile(&timings(reps, f), 0.5)
}

fn random_batch(len: usize, cfg: &ModelConfig, rng: &mut ChaCha8Rng) -> HostBatch {
    let s = &cfg.stage1;
    HostBatch {
        len,
        camera: (0..len * 3 * s.height * s.width).map(|_| rng.random()).collect(),
        sensor: (0..len * s.window * s.sensor_dim).map(|_| rng.random()).collect(),
    }
}

/// `f` on both paths: [kernels, burn].
fn both<R>(f: impl FnMut() -> R) -> [R; 2] {
    let (kernels, burn) = on_both_paths(f);
    [kernels, burn]
}

/// Runs the measurements: the kernels and burn's modules alternate per measurement, so that
/// both see the same state of a shared machine.
pub fn measure(cfg: &SpeedConfig) -> SpeedReport {
    let model_cfg = ModelConfig::new(cfg.image, cfg.image, cfg.sensor_dim, cfg.window);
    let plain = compute::device();
    let ad = compute::training_device();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let batch = random_batch(cfg.batch_size, &model_cfg, &mut rng);
    let Mmssl { stage1, block } = init_model(&model_cfg, &ad, 0);

    let mut t1 = Stage1Trainer::new(stage1.clone(), model_cfg.stage1.clone(), 1e-3, ad.clone());
    let s1 = both(|| {
        median_secs(cfg.reps, || {
            t1.step(&batch);
        })
    });

    let s2cfg = Stage2Config::default();
    let frozen = stage1.valid();
    let enc = LatentEncoder { stage1: &frozen, cfg: &model_cfg, device: &plain };
    let z_clean = enc.clean(&batch);
    let previous = vec![None; batch.len];
    let mut t2 = Stage2Trainer::new(block, stage1, model_cfg.clone(), s2cfg.clone(), ad);
    let s2 = both(|| {
        median_secs(cfg.reps, || {
            let b = make_batch(&enc, batch.clone(), z_clean.clone(), &previous, &s2cfg, &mut rng);
            t2.step(&b);
        })
    });

    let model = Mmssl { stage1: t1.into_model(), block: t2.into_block() }.valid();
    let b64 = random_batch(64, &model_cfg, &mut rng);
    let b1 = random_batch(1, &model_cfg, &mut rng);
    // sorted call times
    let infer = |b: &HostBatch, threshold: f32, reps: usize| {
        both(|| timings(reps, || drop(model.infer(&model_cfg, b, Thresholds::uniform(threshold), &plain))))
    };
    // batch 1: enough calls for a 99th percentile
    let (i64s, i1, i1_bypass) =
        (infer(&b64, 0.0, cfg.reps), infer(&b1, 0.0, cfg.reps * 20), infer(&b1, 2.0, cfg.reps * 20));
    let flops = model_cfg.forward_flops().pipeline();
    let path = |k: usize| PathSpeed {
        stage1_train_samples_per_s: cfg.batch_size as f64 / s1[k],
        stage2_train_samples_per_s: cfg.batch_size as f64 / s2[k],
        infer_batch64_samples_per_s: 64.0 / quantile(&i64s[k], 0.5),
        infer_batch1_ms: quantile(&i1[k], 0.5) * 1e3,
        infer_batch1_p99_ms: quantile(&i1[k], 0.99) * 1e3,
        infer_batch1_bypass_ms: quantile(&i1_bypass[k], 0.5) * 1e3,
        infer_batch64_gflops: flops as f64 * 64.0 / quantile(&i64s[k], 0.5) / 1e9,
    };
    SpeedReport {
        config: cfg.clone(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_description(),
        forward_flops_per_sample: flops,
        kernels: path(0),
        burn: path(1),
    }
}

impl SpeedReport {
    /// The report as a Markdown table, the kernels beside burn-flex's own modules.
    pub fn to_markdown(&self) -> String {
        let (k, b) = (&self.kernels, &self.burn);
        let rows = [
            (
                format!("stage-1 training, batch {}, samples/s", self.config.batch_size),
                k.stage1_train_samples_per_s,
                b.stage1_train_samples_per_s,
            ),
            (
                format!("stage-2 training, batch {}, samples/s", self.config.batch_size),
                k.stage2_train_samples_per_s,
                b.stage2_train_samples_per_s,
            ),
            (
                "inference, batch 64 (both corrected), samples/s".into(),
                k.infer_batch64_samples_per_s,
                b.infer_batch64_samples_per_s,
            ),
            ("inference, batch 1 (both corrected), median ms".into(), k.infer_batch1_ms, b.infer_batch1_ms),
            ("inference, batch 1 (both corrected), p99 ms".into(), k.infer_batch1_p99_ms, b.infer_batch1_p99_ms),
            (
                "inference, batch 1 (clean, bypass), median ms".into(),
                k.infer_batch1_bypass_ms,
                b.infer_batch1_bypass_ms,
            ),
            ("achieved, batch-64 inference, GFLOP/s".into(), k.infer_batch64_gflops, b.infer_batch64_gflops),
        ];
        let mut out = format!(
            "{} ({} threads); {:.1} MFLOP forward per sample\n\n\
             | measurement | mmguard-kernels | burn-flex | kernels ÷ burn |\n|---|---|---|---|\n",
            self.cpu,
            self.threads,
            self.forward_flops_per_sample as f64 / 1e6
        );
        for (name, kernels, burn) in rows {
            // a time is better when smaller: the ratio is always "how many times faster"
            let ratio = if name.ends_with("ms") { burn / kernels } else { kernels / burn };
            out += &format!("| {name} | {kernels:.2} | {burn:.2} | {ratio:.2}× |\n");
        }
        out
    }
}
