//! The whole training run: split, scale, stage 1, stage 2, gate calibration, run directory.

use mmguard_model::compute;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use mmguard_data::{Dataset, MinMax, Split, SplitConfig, Windows};
use mmguard_model::{
    host_batch, write_json, BlockConfig, Evidence, Gate, LatentScale, Mmssl, ModelConfig, Novelty, Provenance, Run,
    RunConfig, SpreadSums, Stage1, Stage1Config, Thresholds, Versions, LOG_FILE, METRICS_FILE,
};
use serde::Serialize;

use crate::calibrate::{calibrate, upper_spread, Calibration, EpisodeScores, Lighting};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::log::CsvLog;
use crate::repair_mix::{fit_clean_prior, fit_repair_mix, RepairMixReport};
use crate::stages::{batches, val_reconstruction, Context};

/// burn draws initial weights from one process-wide generator; the lock keeps seeded
/// initialisations from interleaving when several run at once (tests, benchmarks).
static INIT_LOCK: Mutex<()> = Mutex::new(());

struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Builds a module with weights that depend on `seed` only. Parameters are initialised lazily
/// by burn, so they are all forced here, in a fixed order, while the generator is held.
pub fn seeded<M: Module>(device: &Device, seed: u64, build: impl FnOnce(&Device) -> M) -> M {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    let model = build(device);
    model.visit(&mut Materialize);
    model
}

/// The MMSSL model with weights that depend on `seed` only.
pub fn init_model(cfg: &ModelConfig, device: &Device, seed: u64) -> Mmssl {
    seeded(device, seed, |d| cfg.init(d))
}

/// The model configuration a training configuration asks for, for data of this geometry.
pub fn model_config(cfg: &TrainConfig, data: &Dataset) -> ModelConfig {
    let a = &cfg.architecture;
    let stage1 = Stage1Config {
        camera_channels: a.camera_channels,
        sensor_channels: a.sensor_channels,
        encoder: a.encoder,
        ..Stage1Config::new(data.height, data.width, data.sensor_dim(), cfg.window)
    };
    // a single-stage run has no autoencoder trained on clean data to measure evidence by
    let evidence = a.evidence_grid.filter(|_| !cfg.single_stage).map(|g| Evidence::new(&stage1, g));
    // a placeholder until [`fit_clean_statistics`]: the single-stage run's latent has no fixed scale
    let latent_scale = (a.latent_scale && !cfg.single_stage)
        .then(|| LatentScale { mean: vec![0.0; stage1.joint_latent()], std: vec![1.0; stage1.joint_latent()] });
    let block = BlockConfig {
        hidden: a.hidden,
        detector_hidden: a.detector_hidden,
        rho: a.rho,
        decoder: a.decoder,
        evidence,
        latent_scale,
        score_temperature: a.score_temperature,
        output_path: a.output_path && !cfg.single_stage,
        correction_encoder: a.correction_encoder,
        output_bound: a.output_bound,
        keypoints: a.keypoints,
        camera_latent: stage1.camera_latent(),
        ..BlockConfig::new(stage1.joint_latent())
    };
    ModelConfig { stage1, block, repair: None, clean_prior: None }
}

/// Fits what the model measures clean data by — the evidence's statistics, the latent's scale
/// and the input repair's tolerances — on the training windows, through the trained stage 1;
/// `block` takes the fitted scale.
fn fit_clean_statistics(
    model_cfg: &mut ModelConfig,
    block: &mut mmguard_model::ComputeBlock,
    stage1: &Stage1,
    data: &Dataset,
    prep: &Prepared,
    cfg: &TrainConfig,
) {
    let (plain, s1) = (compute::device(), &model_cfg.stage1);
    let frozen = stage1.valid();
    let (mut raw, mut latents) = (Vec::new(), Vec::new());
    let mut spreads = SpreadSums::new(s1.sensor_dim);
    let tolerance = cfg.architecture.input_repair;
    for chunk in prep.train.ends.chunks(cfg.batch_size) {
        let b = host_batch(data, chunk, cfg.window, &prep.norm);
        let z = frozen.encode(b.camera_tensor(s1, &plain), b.sensor_tensor(s1, &plain));
        latents.extend(z.clone().into_data().try_into_vec::<f32>().expect("float tensor"));
        if model_cfg.block.evidence.is_none() && tolerance.is_none() {
            continue;
        }
        let (camera, sensor) = frozen.reconstruct(s1, z);
        if let Some(evidence) = &model_cfg.block.evidence {
            raw.extend(evidence.raw(s1, &b.camera, &b.sensor, &camera, &sensor));
        }
        spreads.add((&b.camera, &camera), (&b.sensor, &sensor), s1.height * s1.width);
    }
    model_cfg.repair = tolerance.map(|k| spreads.finish(k));
    let l = s1.joint_latent();
    if let Some(evidence) = model_cfg.block.evidence.as_mut() {
        evidence.fit(&raw);
    }
    if model_cfg.block.latent_scale.is_some() {
        model_cfg.block.latent_scale = Some(LatentScale::fit(&latents, l));
        block.scale = model_cfg.block.latent_scale.clone();
    }
}

/// Windows of each split and the sensor scaling fitted on the training split.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Episodes of each split.
    pub split: Split,
    /// Sensor scaling.
    pub norm: MinMax,
    /// Training windows.
    pub train: Windows,
    /// Validation windows.
    pub val: Windows,
    /// Test windows.
    pub test: Windows,
    /// Standard deviation between the training episodes of their lighting level ([`Lighting`]),
    /// on the [0, 1] scale: how much the scene's lighting varies
    /// ([`TrainConfig::calibration_relight`]).
    pub lighting_spread: f32,
}

/// Splits by episode and fits the scaling; every split must hold at least one window.
pub fn prepare(data: &Dataset, window: usize, split: &SplitConfig) -> Result<Prepared> {
    let split = split.split(&data.episode_ids())?;
    let train = data.windows(window, &split.train)?;
    let val = data.windows(window, &split.val)?;
    let test = data.windows(window, &split.test)?;
    for (name, w) in [("training", &train), ("validation", &val), ("test", &test)] {
        if w.count() == 0 {
            return Err(Error::Config(format!(
                "the {name} episodes hold no full window of {window} readings; use a shorter window or longer episodes"
            )));
        }
    }
    let norm = MinMax::fit(data, &train);
    let lighting_spread = lighting_spread(data, &split.train);
    Ok(Prepared { split, norm, train, val, test, lighting_spread })
}

/// Standard deviation of the training episodes' lighting levels ([`Lighting`]).
fn lighting_spread(data: &Dataset, train: &[i32]) -> f32 {
    let levels: Vec<f64> = Lighting::of_episodes(data, train, train).iter().map(|l| f64::from(l.level)).collect();
    let n = levels.len().max(1) as f64;
    let mean = levels.iter().sum::<f64>() / n;
    (levels.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / n).sqrt() as f32
}

/// What training achieved, saved as `metrics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Windows per split (train, validation, test).
    pub windows: [usize; 3],
    /// Epochs run in stage 1.
    pub stage1_epochs: usize,
    /// Best stage-1 validation loss (camera + sensor MSE).
    pub stage1_best_val: f64,
    /// Epochs run in stage 2.
    pub stage2_epochs: usize,
    /// Best stage-2 validation loss.
    pub stage2_best_val: f64,
    /// Gate thresholds.
    pub thresholds: Thresholds,
    /// Certified Lipschitz bound of the corrector.
    pub corrector_lipschitz_bound: f64,
    /// Stage-1 wall time, seconds.
    pub stage1_seconds: f64,
    /// Stage-2 wall time, seconds.
    pub stage2_seconds: f64,
    /// Stage-1 training samples per second.
    pub stage1_samples_per_s: f64,
    /// Stage-2 training samples per second.
    pub stage2_samples_per_s: f64,
    /// The learned sensor repair's fit, where the configuration asks for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_mix: Option<RepairMixReport>,
}

fn check(cfg: &TrainConfig) -> Result<()> {
    if cfg.window == 0 || !cfg.window.is_multiple_of(4) {
        return Err(Error::Config(format!("window {} must be a positive multiple of 4", cfg.window)));
    }
    if cfg.batch_size < 2 {
        return Err(Error::Config("batch size must be at least 2 (the contrastive loss needs negatives)".into()));
    }
    if !(0.0..1.0).contains(&cfg.target_false_alarm_rate) {
        return Err(Error::Config("target false-alarm rate must be in [0, 1)".into()));
    }
    if let Some(g) = cfg.architecture.evidence_grid {
        if g == 0 || !16usize.is_multiple_of(g) {
            return Err(Error::Config(format!(
                "evidence_grid {g}: must divide 16 (1, 2, 4, 8 or 16), so that it divides every frame size"
            )));
        }
    }
    if cfg.architecture.score_temperature.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
        return Err(Error::Config("score_temperature must be a positive number".into()));
    }
    if let Some(p) = cfg.repair_mix.as_ref().and_then(|m| m.prior) {
        if !(p.ridge.is_finite() && p.ridge > 0.0 && p.weight.is_finite() && p.weight > 0.0) {
            return Err(Error::Config(format!(
                "repair_mix.prior: ridge {} and weight {} must both be positive numbers",
                p.ridge, p.weight
            )));
        }
    }
    let a = &cfg.architecture;
    if a.keypoints > 0 && !(a.output_path && a.decoder == mmguard_model::LatentDecoder::Split && !cfg.single_stage) {
        return Err(Error::Config(format!(
            "keypoints {}: the keypoints add to the split decoder's sensor part on the output path; they need \
             `decoder: \"split\"`, `output_path: true` and two stages",
            a.keypoints
        )));
    }
    if cfg.single_stage && cfg.reuse_stage1.is_some() {
        return Err(Error::Config("a single-stage run trains its autoencoder; it cannot reuse a stage 1".into()));
    }
    let f = &cfg.stage2.faults;
    if f.camera.is_empty() || f.sensor.is_empty() || f.clean_share + f.camera_share + f.both_share > 1.0 {
        return Err(Error::Config(
            "stage-2 faults need camera and sensor kinds and shares that sum to at most 1".into(),
        ));
    }
    Ok(())
}

/// Power-iteration steps on the trained corrector before it is saved.
const FINAL_POWER_ITERATIONS: usize = 200;

/// Trains stage 1 and stage 2 on `data`, calibrates the gate, and writes the run into `out`.
pub fn train(data: &Dataset, cfg: &TrainConfig, out: &Path) -> Result<TrainReport> {
    check(cfg)?;
    let prep = prepare(data, cfg.window, &cfg.split)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io { path: out.into(), source })?;
    let ad = compute::training_device();
    let mut model_cfg = model_config(cfg, data);
    let Mmssl { stage1, block } = init_model(&model_cfg, &ad, cfg.seed);
    let mut log = CsvLog::create(&out.join(LOG_FILE))?;
    let val_batches = batches(data, &prep.val.ends, cfg, &prep.norm);

    let t0 = Instant::now();
    let mut ctx =
        Context { data, cfg, prep: &prep, model_cfg: &model_cfg, ad: &ad, val_batches: &val_batches, log: &mut log };
    let (stage1, block, [s1_epochs, s2_epochs], [s1_best, s2_best], [stage1_seconds, stage2_seconds]) =
        if cfg.single_stage {
            let (stage1, block, epochs, best) = ctx.train_joint(stage1, block)?;
            // no stage of its own: the autoencoder's clean validation error, for the report
            let recon = val_reconstruction(&stage1, &model_cfg, &val_batches);
            (stage1, block, [0, epochs], [recon, best], [0.0, t0.elapsed().as_secs_f64()])
        } else {
            let (stage1, s1_epochs, s1_best) = match &cfg.reuse_stage1 {
                Some(dir) => ctx.reuse_stage1(dir)?,
                None => ctx.train_stage1(stage1)?,
            };
            let stage1_seconds = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let mut block = block;
            fit_clean_statistics(&mut model_cfg, &mut block, &stage1, data, &prep, cfg);
            // the output path starts as the trained autoencoder
            if model_cfg.block.output_path {
                block.output = Some(stage1.clone());
            }
            let mut ctx = Context {
                data,
                cfg,
                prep: &prep,
                model_cfg: &model_cfg,
                ad: &ad,
                val_batches: &val_batches,
                log: &mut log,
            };
            let (block, s2_epochs, s2_best) = ctx.train_stage2(&stage1, block)?;
            (stage1, block, [s1_epochs, s2_epochs], [s1_best, s2_best], [stage1_seconds, t1.elapsed().as_secs_f64()])
        };

    // Training refreshes the power-iteration vectors one step per optimiser step; they are
    // run to convergence before the model is calibrated and saved, so that σ(W) is the
    // spectral norm the certified bound assumes (a tiny run ended at a bound of 1.0016 and was
    // refused at load) and the saved corrector is exactly what is certified.
    let block =
        mmguard_model::ComputeBlock { corrector: block.corrector.power_iteration(FINAL_POWER_ITERATIONS), ..block };
    let model = Mmssl { stage1, block }.valid();
    let repair_mix = match (&cfg.repair_mix, &model_cfg.repair) {
        (Some(mix_cfg), Some(_)) => {
            model_cfg.clean_prior =
                mix_cfg.prior.and_then(|p| fit_clean_prior(data, &prep.train.ends, cfg.window, &prep.norm, &p));
            let (repair, report) = fit_repair_mix(&model, &model_cfg, data, &prep, cfg, mix_cfg, &mut log)?;
            model_cfg.repair = Some(repair);
            Some(report)
        }
        _ => None,
    };
    let gate = calibrate_gate(&model, &model_cfg, data, &prep.val, &prep.norm, cfg.gate_options(&prep));
    let thresholds = gate.thresholds();
    let config = RunConfig {
        versions: Versions::default(),
        model: model_cfg,
        columns: data.columns.clone(),
        normalization: prep.norm.clone(),
        gate,
        data: Provenance {
            path: data.path.display().to_string(),
            fingerprint: data.fingerprint_hex(),
            split_config: cfg.split,
            split: prep.split.clone(),
        },
        training: serde_json::to_value(cfg).expect("config serialises"),
    };
    Run::save(out, &config, &model)?;
    let samples = |epochs: usize, secs: f64| (epochs * prep.train.count()) as f64 / secs.max(1e-9);
    let report = TrainReport {
        windows: [prep.train.count(), prep.val.count(), prep.test.count()],
        stage1_epochs: s1_epochs,
        stage1_best_val: s1_best,
        stage2_epochs: s2_epochs,
        stage2_best_val: s2_best,
        thresholds,
        corrector_lipschitz_bound: model.block.corrector.lipschitz_bound(),
        stage1_seconds,
        stage2_seconds,
        stage1_samples_per_s: samples(s1_epochs, stage1_seconds),
        stage2_samples_per_s: samples(s2_epochs, stage2_seconds),
        repair_mix,
    };
    write_json(&out.join(METRICS_FILE), &serde_json::json!({ "training": report }))?;
    Ok(report)
}

/// How the gate is calibrated and what it substitutes.
#[derive(Debug, Clone, PartialEq)]
pub struct GateOptions {
    /// Target false-alarm rate on clean data.
    pub rate: f64,
    /// How a threshold is derived from the clean validation scores.
    pub method: Calibration,
    /// A threshold per modality besides the sample threshold: half of the rate for the camera,
    /// half for the sensor (split between its score and, with a clean prior, its novelty).
    pub per_modality: bool,
    /// Channel threshold of the substitution (see [`Thresholds::channel`]).
    pub channel: Option<f32>,
    /// The training episodes to whose lighting each validation episode is relit as well
    /// ([`TrainConfig::calibration_relight`]); `None` calibrates on the episodes as they are.
    pub relight: Option<Vec<i32>>,
    /// The distance under the clean prior that the novelty threshold reads.
    pub novelty: Novelty,
}

impl TrainConfig {
    /// The gate this configuration asks for, on data prepared as `prep`.
    pub fn gate_options(&self, prep: &Prepared) -> GateOptions {
        let varies =
            self.calibration_relight.is_some_and(|k| k * prep.lighting_spread > self.stage2.faults.clean_jitter);
        GateOptions {
            rate: self.target_false_alarm_rate,
            method: self.calibration,
            per_modality: self.per_modality_gate,
            channel: self.channel_threshold,
            relight: varies.then(|| prep.split.train.clone()),
            novelty: self.novelty,
        }
    }
}

/// Calibrates the gate on the clean validation windows, grouped by episode: the sample
/// threshold for the whole rate and, with `per_modality`, a threshold per modality for half
/// of it each — the sensor's half split evenly between its score and, where the model has a
/// clean prior, its window's distance and (with [`Novelty::Columns`]) its largest column's.
pub fn calibrate_gate(
    model: &Mmssl,
    model_cfg: &ModelConfig,
    data: &Dataset,
    val: &Windows,
    norm: &MinMax,
    options: GateOptions,
) -> Gate {
    let GateOptions { rate, method, per_modality, channel, relight, novelty: statistic } = options;
    let plain = compute::device();
    let prior = model_cfg.clean_prior.as_ref();
    let s1 = &model_cfg.stage1;
    let (frame, win) = (3 * s1.height * s1.width, val.len * s1.sensor_dim);
    // per episode: the camera and sample scores of its windows as they are and, where the
    // scene's lighting varies, relit to each training episode's lighting, pooled in the
    // episode (its copies are one episode's content, not new episodes); the sensor's scores of
    // the windows as they are (relit copies lowered its threshold on the outside file, 0.967
    // → 0.924, and doubled its false alarms on clean test copies), and their distances under
    // the clean prior as the probability d / (1 + d), whose logit is ln d
    let val_episodes: Vec<i32> = {
        let mut e: Vec<i32> = val.ends.iter().map(|&i| data.episode[i]).collect();
        e.dedup();
        e
    };
    // the training episodes' lightings, then the validation episodes' own
    let (targets, own) = match &relight {
        None => (Vec::new(), Vec::new()),
        Some(train) => {
            let mut all = Lighting::of_episodes(data, train, &[train.as_slice(), &val_episodes].concat());
            let own = all.split_off(train.len());
            (all, own)
        }
    };
    let columns = statistic == Novelty::Columns;
    let mut by_episode: Vec<(i32, [EpisodeScores; 5])> =
        val_episodes.iter().map(|&e| (e, Default::default())).collect();
    for chunk in val.ends.chunks(64) {
        let clean = host_batch(data, chunk, val.len, norm);
        let at: Vec<usize> = chunk
            .iter()
            .map(|&end| val_episodes.iter().position(|&e| e == data.episode[end]).expect("a validation episode"))
            .collect();
        // the windows as they are, then relit to each training episode's lighting
        for target in std::iter::once(None).chain(targets.iter().map(Some)) {
            let mut batch = clean.clone();
            if let Some(target) = target {
                for (f, &k) in batch.camera.chunks_exact_mut(frame).zip(&at) {
                    target.relative_to(own[k]).apply(f, s1.height, s1.width);
                }
            }
            // a threshold above 1 flags nothing, so nothing is decoded for substitution
            let scores = model.infer(model_cfg, &batch, Thresholds::uniform(2.0), &plain).scores;
            for (b, (&k, s)) in at.iter().zip(scores).enumerate() {
                let groups = &mut by_episode[k].1;
                groups[0].push(s[0]);
                groups[2].push(s[0].max(s[1]));
                if target.is_some() {
                    continue;
                }
                groups[1].push(s[1]);
                if let Some(p) = prior {
                    let w = &batch.sensor[b * win..(b + 1) * win];
                    let d = p.distance(w);
                    groups[3].push((d / (1.0 + d)) as f32);
                    if columns {
                        let c = p.column_distance(w, s1.sensor_dim);
                        groups[4].push((c / (1.0 + c)) as f32);
                    }
                }
            }
        }
    }
    let groups = |k: usize| -> Vec<EpisodeScores> { by_episode.iter().map(|(_, g)| g[k].clone()).collect() };
    let threshold = calibrate(&groups(2), rate, method);
    let channel = channel.filter(|_| model_cfg.block.evidence.is_some());
    // one threshold for both is stored as such, so that the channel substitution is kept
    let thresholds = if per_modality {
        // the sensor's half of the rate is split evenly between its score and each distance it
        // reads; p is an f32 probability d / (1 + d), kept below 1 − 10⁻⁷ (a distance of 10⁷,
        // beyond any clean window) so that the threshold stays finite
        let parts = 1 + usize::from(prior.is_some()) * (1 + usize::from(columns));
        let share = rate / 2.0 / parts as f64;
        let distance = |k: usize| {
            let p = f64::from(calibrate(&groups(k), share, method)).clamp(0.0, 1.0 - 1e-7);
            (p / (1.0 - p)) as f32
        };
        // logit units of the score per unit of ln(distance): the ratio of their clean spreads
        let scale = |k: usize| {
            let (score, distance) = (upper_spread(&groups(1)), upper_spread(&groups(k)));
            (score > 0.0 && distance > 0.0).then(|| (score / distance) as f32)
        };
        let novelty = prior.map(|_| distance(3));
        let column_novelty = prior.filter(|_| columns).map(|_| distance(4));
        Thresholds {
            camera: calibrate(&groups(0), rate / 2.0, method),
            sensor: calibrate(&groups(1), share, method),
            channel,
            novelty,
            novelty_scale: novelty.and_then(|_| scale(3)),
            column_novelty,
            column_novelty_scale: column_novelty.and_then(|_| scale(4)),
        }
    } else {
        Thresholds::uniform(threshold).with_channel(channel)
    };
    Gate {
        threshold,
        per_modality: Some(thresholds),
        target_false_alarm_rate: rate,
        calibration_samples: val.count(),
        method,
        relight: relight.map(|train| train.len()),
    }
}
