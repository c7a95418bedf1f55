//! Training and scoring every method × seed, resumably.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mmguard_data::Dataset;
use mmguard_eval::{protocol, EvalConfig, ProtocolResult};
use mmguard_model::{Gated, Run, LOG_FILE};
use mmguard_train::{prepare, train, train_mmae, CsvLog, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::{io, Error, Method, Result};

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchConfig {
    /// Methods, in report order.
    pub methods: Vec<Method>,
    /// Seeds 0..seeds of every method's training.
    pub seeds: usize,
    /// Training options shared by all methods (the seed is set per run).
    pub train: TrainConfig,
    /// The protocol: test faults and their seed (the same copies for every method and seed).
    pub eval: EvalConfig,
}

/// One method trained on one seed and scored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedResult {
    /// The method.
    pub method: Method,
    /// Training seed.
    pub seed: u64,
    /// The protocol's scores.
    pub result: ProtocolResult,
    /// Epochs trained (both stages for MMSSL).
    pub epochs: usize,
    /// Training wall time, seconds.
    pub train_seconds: f64,
    /// Training samples per second (windows × epochs / wall time).
    pub train_samples_per_s: f64,
    /// Data fingerprint and configuration the result belongs to: a finished run is reused only
    /// when they match.
    pub key: String,
}

/// Folder of one method × seed.
pub fn run_dir(out: &Path, method: Method, seed: u64) -> PathBuf {
    out.join("runs").join(method.name()).join(format!("seed-{seed}"))
}

const RESULT_FILE: &str = "result.json";

/// Trains and scores every method on every seed, in `out/runs/…`. A method × seed whose
/// `result.json` matches the data and configuration is not trained again.
pub fn run_bench(data: &Dataset, cfg: &BenchConfig, out: &Path) -> Result<Vec<SeedResult>> {
    if cfg.seeds == 0 {
        return Err(Error::Config("--seeds must be at least 1".into()));
    }
    let prep = prepare(data, cfg.train.window, &cfg.train.split)?;
    let flex = Device::flex();
    let mut results = Vec::new();
    for &method in &cfg.methods {
        for seed in 0..cfg.seeds as u64 {
            let dir = run_dir(out, method, seed);
            let tc = TrainConfig { seed, ..cfg.train.clone() };
            let key = format!(
                "{} {} {}",
                data.fingerprint_hex(),
                serde_json::to_string(&tc).expect("config serialises"),
                serde_json::to_string(&cfg.eval).expect("config serialises")
            );
            let result_path = dir.join(RESULT_FILE);
            let previous = std::fs::read_to_string(&result_path)
                .ok()
                .and_then(|t| serde_json::from_str::<SeedResult>(&t).ok())
                .filter(|r| r.key == key);
            if let Some(r) = previous {
                tracing::info!("{} seed {seed}: finished earlier, reusing {}", method.label(), result_path.display());
                results.push(r);
                continue;
            }
            tracing::info!("{} seed {seed}: training into {}", method.label(), dir.display());
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let (result, epochs, train_seconds) = match method {
                Method::Mmssl => {
                    let report = train(data, &tc, &dir)?;
                    let run = Run::load(&dir, &flex)?;
                    let gated =
                        Gated { model: &run.model, cfg: &run.config.model, threshold: run.config.gate.threshold };
                    let stage1 = &run.config.model.stage1;
                    let r = protocol(&gated, data, &prep.test, &run.config.normalization, stage1, &cfg.eval);
                    (r, report.stage1_epochs + report.stage2_epochs, report.stage1_seconds + report.stage2_seconds)
                }
                Method::Mmae => {
                    let mut log = CsvLog::create(&dir.join(LOG_FILE))?;
                    let (model, report) = train_mmae(data, &tc, &prep, &mut log)?;
                    let r = protocol(&model, data, &prep.test, &prep.norm, &model.cfg.stage1, &cfg.eval);
                    (r, report.epochs, report.seconds)
                }
            };
            let r = SeedResult {
                method,
                seed,
                result,
                epochs,
                train_seconds,
                train_samples_per_s: (epochs * prep.train.count()) as f64 / train_seconds.max(1e-9),
                key,
            };
            let text = serde_json::to_string_pretty(&r).expect("result serialises");
            std::fs::write(&result_path, text).map_err(io(&result_path))?;
            results.push(r);
        }
    }
    Ok(results)
}
