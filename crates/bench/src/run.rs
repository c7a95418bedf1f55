//! Training and scoring every method × seed, resumably.

use mmguard_model::compute;
use std::path::{Path, PathBuf};

use mmguard_baselines::{AdversaryConfig, FuzzyConfig, Trained};
use mmguard_data::Dataset;
use mmguard_eval::{protocol, severity_curves, CurveConfig, CurvePoint, EvalConfig, ProtocolResult};
use mmguard_faults::Compound;
use mmguard_model::{EncoderKind, Gate, Gated, LatentDecoder, Repair, Run, Stage1Config, Thresholds, LOG_FILE};
use mmguard_robust::{run_study, HeadMethod, HeadResult, StudyConfig};
use mmguard_train::{
    prepare, train, train_mmae, train_mmcf, train_mmfr, train_mmgan, train_mmugan, BaselineReport, CsvLog, EarlyStopOn,
    Modulation, Prepared, StageSchedule, TrainConfig, TrainingFaults,
};
use serde::{Deserialize, Serialize};

use crate::{io, Error, Method, Result};

/// How a bench ablation scored on a trained MMSSL run repairs the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repairing {
    /// As the run was trained (the learned sensor mix where it has one).
    AsTrained,
    /// The rule alone, without the learned sensor mix.
    Rule,
    /// No input repair: the decoded correction as it is.
    Off,
}

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
    /// Severity curves, measured on every method's seed-0 model.
    pub curves: CurveConfig,
    /// Downstream heads trained on every seed's MMSSL encoders (none: no downstream rows).
    pub heads: Vec<HeadMethod>,
    /// Their task, schedule, label fractions and faults.
    pub study: StudyConfig,
}

/// The training budget of a benchmark: every method gets the same epochs (the baselines and the
/// single-stage ablation the sum of MMSSL's two stages) at the same learning rate. Smaller than
/// `train`'s defaults so that ten methods × three seeds fit in 90 minutes on two cores (on the
/// arm demo data 5 + 5 epochs took 77 min, 6 + 6 took 94); stage 1 and the one-stage
/// methods use a learning rate of 3·10⁻³, which reaches in 8 epochs the validation error that
/// 10⁻³ reaches in about 20 (measured on the arm demo data).
pub fn bench_budget() -> TrainConfig {
    let mut cfg = TrainConfig {
        stage1: StageSchedule { epochs: 5, learning_rate: 3e-3, patience: 5, halve_after: None },
        ..TrainConfig::default()
    };
    cfg.stage2.schedule.epochs = 5;
    cfg
}

impl BenchConfig {
    /// `--quick`: a first look in a few minutes — one seed, one epoch per stage (the one-stage
    /// methods two), severity curves at severity 1 only. Too short for MMSSL's gate to learn the
    /// camera faults; the report says what it measured, nothing more.
    pub fn quick(mut self) -> Self {
        self.seeds = 1;
        self.train.stage1.epochs = 1;
        self.train.stage2.schedule.epochs = 1;
        self.curves.severities = vec![1.0];
        self.study.schedule.epochs = 5;
        self.study.label_fractions = vec![0.05, 1.0];
        self.study.faults.severities = vec![1.0];
        self
    }
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
    /// Severity curves of this model (seed 0 only; empty for other seeds).
    #[serde(default)]
    pub curves: Vec<CurvePoint>,
    /// Data fingerprint and configuration the result belongs to: a finished run is reused only
    /// when they match.
    pub key: String,
}

/// Folder of one method × seed.
pub fn run_dir(out: &Path, method: Method, seed: u64) -> PathBuf {
    out.join("runs").join(method.name()).join(format!("seed-{seed}"))
}

const RESULT_FILE: &str = "result.json";

/// The protocol's scores and the severity curves of one model.
type Scored = (ProtocolResult, Vec<CurvePoint>);

/// A trained baseline's scores, scored like every other model.
fn scored<M>(
    trained: (Trained<M>, BaselineReport),
    score: &dyn Fn(&dyn Repair, &Stage1Config) -> Scored,
) -> (Scored, BaselineReport)
where
    Trained<M>: Repair,
{
    let (model, report) = trained;
    (score(&model, &model.stage1), report)
}

/// Trains and scores every method on every seed, in `out/runs/…`. A method × seed whose
/// `result.json` matches the data and configuration is not trained again. The MMSSL ablations
/// reuse the MMSSL run of the same seed (trained first if needed).
pub fn run_bench(data: &Dataset, cfg: &BenchConfig, out: &Path) -> Result<Vec<SeedResult>> {
    if cfg.seeds == 0 {
        return Err(Error::Config("--seeds must be at least 1".into()));
    }
    let curve_faults = cfg.curves.specs().map_err(|e| Error::Config(format!("severity curves: {e}")))?;
    let prep = prepare(data, cfg.train.window, &cfg.train.split)?;
    let bench = Bench { data, cfg, out, prep, curve_faults };
    let mut results = Vec::new();
    for &method in &cfg.methods {
        for seed in 0..cfg.seeds as u64 {
            results.push(bench.seed_result(method, seed)?);
        }
    }
    Ok(results)
}

/// Trains and scores the downstream heads on the encoders of each seed's MMSSL run (which
/// [`run_bench`] must have trained into `out`): head seed k sits on MMSSL seed k.
pub fn run_heads(data: &Dataset, cfg: &BenchConfig, out: &Path) -> Result<Vec<HeadResult>> {
    if !cfg.methods.contains(&Method::Mmssl) {
        return Err(Error::Config("downstream heads sit on MMSSL's encoders: add mmssl to --methods".into()));
    }
    let study = StudyConfig { methods: cfg.heads.clone(), ..cfg.study.clone() };
    let mut results = Vec::new();
    for seed in 0..cfg.seeds as u64 {
        let run = Run::load(&run_dir(out, Method::Mmssl, seed), &compute::device())?;
        results.extend(run_study(&run, data, &study, &[seed])?);
    }
    Ok(results)
}

struct Bench<'a> {
    data: &'a Dataset,
    cfg: &'a BenchConfig,
    out: &'a Path,
    prep: Prepared,
    curve_faults: Vec<Compound>,
}

impl Bench<'_> {
    /// What decides a result: the data, the training configuration (whose serialised form
    /// leaves out the display flag, so `--quiet` after a run with progress bars does not
    /// retrain it), and the evaluation.
    fn key(&self, tc: &TrainConfig) -> String {
        format!(
            "{} {} {} {}",
            self.data.fingerprint_hex(),
            serde_json::to_string(tc).expect("config serialises"),
            serde_json::to_string(&self.cfg.eval).expect("config serialises"),
            serde_json::to_string(&self.cfg.curves).expect("config serialises")
        )
    }

    /// The finished result of `method` × `seed`, computing it if there is none.
    fn seed_result(&self, method: Method, seed: u64) -> Result<SeedResult> {
        let dir = run_dir(self.out, method, seed);
        let tc = TrainConfig { seed, ..self.cfg.train.clone() };
        let key = self.key(&tc);
        let result_path = dir.join(RESULT_FILE);
        let previous = std::fs::read_to_string(&result_path)
            .ok()
            .and_then(|t| serde_json::from_str::<SeedResult>(&t).ok())
            .filter(|r| r.key == key);
        if let Some(r) = previous {
            tracing::info!("{} seed {seed}: finished earlier, reusing {}", method.label(), result_path.display());
            return Ok(r);
        }
        tracing::info!("{} seed {seed}: training into {}", method.label(), dir.display());
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let (data, prep, eval) = (self.data, &self.prep, &self.cfg.eval);
        let flex = compute::device();
        let curves = &self.cfg.curves;
        let score = |m: &dyn Repair, s1: &Stage1Config| -> Scored {
            let result = protocol(m, data, &prep.test, &prep.norm, s1, eval);
            let curves = if seed == 0 {
                severity_curves(
                    m,
                    data,
                    &prep.test,
                    &prep.norm,
                    s1,
                    &self.curve_faults,
                    &curves.severities,
                    curves.seed,
                )
            } else {
                Vec::new()
            };
            (result, curves)
        };
        let score_with = |dir: &Path, gate: &dyn Fn(&Gate) -> Thresholds, repairing: Repairing| -> Result<Scored> {
            let run = Run::load(dir, &flex)?;
            let thresholds = gate(&run.config.gate);
            let mut cfg = run.config.model.clone();
            match repairing {
                Repairing::AsTrained => {}
                Repairing::Rule => cfg.repair.iter_mut().for_each(|r| r.mix = None),
                Repairing::Off => cfg.repair = None,
            }
            Ok(score(&Gated { model: &run.model, cfg: &cfg, thresholds }, &cfg.stage1))
        };
        let score_run = |dir: &Path| score_with(dir, &Gate::thresholds, Repairing::AsTrained);
        // stage 2 retrained on the stage 1 of the same seed's MMSSL run
        let stage2_ablation = |change: &dyn Fn(&mut TrainConfig)| -> Result<(Scored, usize, f64)> {
            self.seed_result(Method::Mmssl, seed)?;
            let mut ablated = tc.clone();
            change(&mut ablated);
            ablated.reuse_stage1 = Some(run_dir(self.out, Method::Mmssl, seed));
            let report = train(data, &ablated, &dir)?;
            Ok((score_run(&dir)?, report.stage2_epochs, report.stage2_seconds))
        };
        let ((result, curves), epochs, train_seconds) = match method {
            Method::Mmssl => {
                let report = train(data, &tc, &dir)?;
                (
                    score_run(&dir)?,
                    report.stage1_epochs + report.stage2_epochs,
                    report.stage1_seconds + report.stage2_seconds,
                )
            }
            Method::MmsslNoGate
            | Method::MmsslOneThreshold
            | Method::MmsslWholeModality
            | Method::MmsslDecodedOutput
            | Method::MmsslRuleRepair => {
                let base = self.seed_result(Method::Mmssl, seed)?;
                let gate = |g: &Gate| match method {
                    // every score is ≥ 0: threshold 0 flags every modality of every sample
                    Method::MmsslNoGate => Thresholds::uniform(0.0),
                    Method::MmsslWholeModality => g.thresholds().with_channel(None),
                    Method::MmsslOneThreshold => Thresholds::uniform(g.threshold).with_channel(g.thresholds().channel),
                    _ => g.thresholds(),
                };
                let repairing = match method {
                    Method::MmsslDecodedOutput => Repairing::Off,
                    Method::MmsslRuleRepair => Repairing::Rule,
                    _ => Repairing::AsTrained,
                };
                (
                    score_with(&run_dir(self.out, Method::Mmssl, seed), &gate, repairing)?,
                    base.epochs,
                    base.train_seconds,
                )
            }
            Method::MmsslNoModulation => stage2_ablation(&|c| c.stage2.modulation = Modulation::off())?,
            Method::MmsslNoEvidence => stage2_ablation(&|c| c.architecture.evidence_grid = None)?,
            Method::MmsslTestFaults => stage2_ablation(&|c| c.stage2.faults = TrainingFaults::test_faults_first())?,
            Method::MmsslHighway => stage2_ablation(&|c| c.architecture.decoder = LatentDecoder::Highway)?,
            Method::MmsslColumnMaps => stage2_ablation(&|c| c.repair_mix.iter_mut().for_each(|m| m.prior = None))?,
            Method::MmsslRawLatent => stage2_ablation(&|c| {
                c.architecture.latent_scale = false;
                c.stage2.early_stop = EarlyStopOn::Total;
            })?,
            Method::MmsslSingleStage | Method::MmsslDenseEncoders => {
                let mut ablated = tc.clone();
                if method == Method::MmsslSingleStage {
                    ablated.single_stage = true;
                } else {
                    ablated.architecture.encoder = EncoderKind::Dense;
                }
                let report = train(data, &ablated, &dir)?;
                (
                    score_run(&dir)?,
                    report.stage1_epochs + report.stage2_epochs,
                    report.stage1_seconds + report.stage2_seconds,
                )
            }
            Method::Mmae | Method::Mmfr | Method::Mmcf | Method::Mmgan | Method::Mmugan => {
                let mut log = CsvLog::create(&dir.join(LOG_FILE))?;
                let (result, report) = match method {
                    Method::Mmcf => scored(train_mmcf(data, &tc, prep, &mut log)?, &score),
                    Method::Mmgan => {
                        scored(train_mmgan(data, &tc, prep, &mut log, AdversaryConfig::default())?, &score)
                    }
                    Method::Mmugan => {
                        scored(train_mmugan(data, &tc, prep, &mut log, AdversaryConfig::default())?, &score)
                    }
                    Method::Mmfr => scored(train_mmfr(data, &tc, prep, &mut log, FuzzyConfig::default())?, &score),
                    _ => scored(train_mmae(data, &tc, prep, &mut log)?, &score),
                };
                (result, report.epochs, report.seconds)
            }
        };
        let r = SeedResult {
            method,
            seed,
            result,
            curves,
            epochs,
            train_seconds,
            train_samples_per_s: (epochs * prep.train.count()) as f64 / train_seconds.max(1e-9),
            key,
        };
        let text = serde_json::to_string_pretty(&r).expect("result serialises");
        std::fs::write(&result_path, text).map_err(io(&result_path))?;
        Ok(r)
    }
}
