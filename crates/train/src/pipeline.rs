//! The whole training run: split, scale, stage 1, stage 2, gate calibration, run directory.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use mmguard_data::{Dataset, MinMax, Split, SplitConfig, Windows};
use mmguard_model::{
    host_batch, write_json, BlockConfig, ComputeBlock, Gate, HostBatch, Mmssl, ModelConfig, Provenance, Run, RunConfig,
    Stage1, Stage1Config, Versions, LOG_FILE, METRICS_FILE,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::calibrate::{calibrate, Calibration, EpisodeScores};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::log::{stage_bar, CsvLog, EpochRecord};
use crate::stage1::{reconstruction_error, Stage1Trainer};
use crate::stage2::{make_batch, stage2_loss, LatentEncoder, Stage2Batch, Stage2Losses, Stage2Trainer};

/// burn draws initial weights from one process-wide generator; the lock keeps seeded
/// initialisations from interleaving when several run at once (tests, benchmarks).
static INIT_LOCK: Mutex<()> = Mutex::new(());

struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Builds the model with weights that depend on `seed` only. Parameters are initialised lazily
/// by burn, so they are all forced here, in a fixed order, while the generator is held.
pub fn init_model(cfg: &ModelConfig, device: &Device, seed: u64) -> Mmssl {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    let model = cfg.init(device);
    model.visit(&mut Materialize);
    model
}

/// The model configuration a training configuration asks for, for data of this geometry.
pub fn model_config(cfg: &TrainConfig, data: &Dataset) -> ModelConfig {
    let a = &cfg.architecture;
    let stage1 = Stage1Config {
        camera_channels: a.camera_channels,
        sensor_channels: a.sensor_channels,
        ..Stage1Config::new(data.height, data.width, data.sensor_dim(), cfg.window)
    };
    let block = BlockConfig {
        hidden: a.hidden,
        detector_hidden: a.detector_hidden,
        rho: a.rho,
        decoder: a.decoder,
        ..BlockConfig::new(stage1.joint_latent())
    };
    ModelConfig { stage1, block }
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
    Ok(Prepared { split, norm, train, val, test })
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
    /// Gate threshold.
    pub threshold: f32,
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
}

/// Keeps the best weights and counts epochs without improvement.
struct EarlyStop<M> {
    best: f64,
    kept: Option<M>,
    stale: usize,
    patience: usize,
}

impl<M: Clone> EarlyStop<M> {
    fn new(patience: usize) -> Self {
        Self { best: f64::INFINITY, kept: None, stale: 0, patience }
    }

    /// Records an epoch; returns whether training should stop.
    fn update(&mut self, val: f64, model: &M) -> bool {
        if val < self.best || self.kept.is_none() {
            self.best = val;
            self.kept = Some(model.clone());
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        self.stale >= self.patience
    }
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
    let f = &cfg.stage2.faults;
    if f.camera.is_empty() || f.sensor.is_empty() || f.clean_share + f.camera_share > 1.0 {
        return Err(Error::Config(
            "stage-2 faults need camera and sensor kinds and shares that sum to at most 1".into(),
        ));
    }
    Ok(())
}

fn batches(data: &Dataset, ends: &[usize], cfg: &TrainConfig, norm: &MinMax) -> Vec<(Vec<usize>, HostBatch)> {
    ends.chunks(cfg.batch_size).map(|c| (c.to_vec(), host_batch(data, c, cfg.window, norm))).collect()
}

/// Trains stage 1 and stage 2 on `data`, calibrates the gate, and writes the run into `out`.
pub fn train(data: &Dataset, cfg: &TrainConfig, out: &Path) -> Result<TrainReport> {
    check(cfg)?;
    let prep = prepare(data, cfg.window, &cfg.split)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io { path: out.into(), source })?;
    let plain = Device::flex();
    let ad = plain.clone().autodiff();
    let model_cfg = model_config(cfg, data);
    let Mmssl { stage1, block } = init_model(&model_cfg, &ad, cfg.seed);
    let mut log = CsvLog::create(&out.join(LOG_FILE))?;
    let val_batches = batches(data, &prep.val.ends, cfg, &prep.norm);

    let t0 = Instant::now();
    let mut ctx =
        Context { data, cfg, prep: &prep, model_cfg: &model_cfg, ad: &ad, val_batches: &val_batches, log: &mut log };
    let (stage1, s1_epochs, s1_best) = match &cfg.reuse_stage1 {
        Some(dir) => ctx.reuse_stage1(dir)?,
        None => ctx.train_stage1(stage1)?,
    };
    let stage1_seconds = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let (block, s2_epochs, s2_best) = ctx.train_stage2(&stage1, block)?;
    let stage2_seconds = t1.elapsed().as_secs_f64();

    let model = Mmssl { stage1, block }.valid();
    let gate =
        calibrate_gate(&model, &model_cfg, data, &prep.val, &prep.norm, cfg.target_false_alarm_rate, cfg.calibration);
    let threshold = gate.threshold;
    let config = RunConfig {
        versions: Versions::default(),
        model: model_cfg,
        columns: data.columns.clone(),
        normalization: prep.norm.clone(),
        gate,
        data: Provenance {
            path: data.path.display().to_string(),
            fingerprint: format!("{:016x}", data.fingerprint()),
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
        threshold,
        corrector_lipschitz_bound: model.block.corrector.lipschitz_bound(),
        stage1_seconds,
        stage2_seconds,
        stage1_samples_per_s: samples(s1_epochs, stage1_seconds),
        stage2_samples_per_s: samples(s2_epochs, stage2_seconds),
    };
    write_json(&out.join(METRICS_FILE), &serde_json::json!({ "training": report }))?;
    Ok(report)
}

/// Calibrates the gate on the clean validation windows, grouped by episode.
pub fn calibrate_gate(
    model: &Mmssl,
    model_cfg: &ModelConfig,
    data: &Dataset,
    val: &Windows,
    norm: &MinMax,
    rate: f64,
    method: Calibration,
) -> Gate {
    let plain = Device::flex();
    let enc = LatentEncoder { stage1: &model.stage1, cfg: model_cfg, device: &plain };
    let mut by_episode: Vec<(i32, EpisodeScores)> = Vec::new();
    for chunk in val.ends.chunks(64) {
        let scores = clean_scores(&model.block, &enc, &host_batch(data, chunk, val.len, norm));
        for (&end, s) in chunk.iter().zip(scores) {
            let e = data.episode[end];
            match by_episode.last_mut() {
                Some((last, v)) if *last == e => v.push(s),
                _ => by_episode.push((e, vec![s])),
            }
        }
    }
    let groups: Vec<EpisodeScores> = by_episode.into_iter().map(|(_, v)| v).collect();
    Gate {
        threshold: calibrate(&groups, rate, method),
        target_false_alarm_rate: rate,
        calibration_samples: groups.iter().map(Vec::len).sum(),
        method: format!("{method:?}").to_lowercase(),
    }
}

/// Sample scores max_m σ(D_m) of clean inputs.
pub fn clean_scores(block: &ComputeBlock, enc: &LatentEncoder<'_>, batch: &HostBatch) -> Vec<f32> {
    let l = enc.cfg.stage1.joint_latent();
    let z = Tensor::<2>::from_data(TensorData::new(enc.encode(batch), [batch.len, l]), enc.device);
    let p = sigmoid(block.forward(z).logits).into_data().try_into_vec::<f32>().expect("float tensor");
    p.chunks_exact(2).map(|s| s[0].max(s[1])).collect()
}

/// What both stages read, and the log they write.
struct Context<'a> {
    data: &'a Dataset,
    cfg: &'a TrainConfig,
    prep: &'a Prepared,
    model_cfg: &'a ModelConfig,
    ad: &'a Device,
    val_batches: &'a [(Vec<usize>, HostBatch)],
    log: &'a mut CsvLog,
}

impl Context<'_> {
    /// Takes the stage-1 autoencoder of an earlier run on the same data, split and architecture
    /// (stage-2 experiments and ablations then skip the costly stage).
    fn reuse_stage1(&mut self, dir: &Path) -> Result<(Stage1, usize, f64)> {
        let prev = Run::load(dir, self.ad)?;
        let same_data = prev.config.data.fingerprint == format!("{:016x}", self.data.fingerprint());
        if !same_data || prev.config.data.split != self.prep.split || prev.config.model.stage1 != self.model_cfg.stage1
        {
            return Err(Error::Config(format!(
                "{}: its stage 1 was trained on other data, another split or another architecture",
                dir.display()
            )));
        }
        let plain = prev.model.stage1.valid();
        let (mut sum, mut n) = (0.0, 0usize);
        for (_, b) in self.val_batches {
            let (c, s) = reconstruction_error(&plain, &self.model_cfg.stage1, b, &Device::flex());
            sum += (c + s) * b.len as f64;
            n += b.len;
        }
        Ok((prev.model.stage1, 0, sum / n.max(1) as f64))
    }

    fn train_stage1(&mut self, stage1: Stage1) -> Result<(Stage1, usize, f64)> {
        let Self { data, cfg, prep, model_cfg, ad, val_batches, .. } = *self;
        let sched = &cfg.stage1;
        let s1 = &model_cfg.stage1;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1));
        let mut trainer = Stage1Trainer::new(stage1, s1.clone(), sched.learning_rate, ad.clone());
        let per_epoch = prep.train.count().div_ceil(cfg.batch_size) as u64;
        let bar = stage_bar(cfg.progress, per_epoch * sched.epochs as u64, "stage 1");
        let mut stop = EarlyStop::new(sched.patience);
        let mut epochs = 0;
        for epoch in 1..=sched.epochs {
            let start = Instant::now();
            let mut order = prep.train.ends.clone();
            order.shuffle(&mut rng);
            let (mut sum, mut n) = (0.0, 0usize);
            for chunk in order.chunks(cfg.batch_size) {
                let loss = trainer.step(&host_batch(data, chunk, cfg.window, &prep.norm));
                sum += f64::from(loss) * chunk.len() as f64;
                n += chunk.len();
                bar.inc(1);
                bar.set_message(format!("epoch {epoch} loss {:.5}", sum / n as f64));
            }
            let plain_model = trainer.model().valid();
            let plain = Device::flex();
            let (mut vsum, mut vn) = (0.0, 0usize);
            for (_, b) in val_batches {
                let (c, s) = reconstruction_error(&plain_model, s1, b, &plain);
                vsum += (c + s) * b.len as f64;
                vn += b.len;
            }
            let val = vsum / vn.max(1) as f64;
            let seconds = start.elapsed().as_secs_f64();
            self.log.write(&EpochRecord {
                stage: "stage1",
                epoch,
                train_loss: sum / n as f64,
                val_loss: val,
                seconds,
                samples_per_s: n as f64 / seconds,
                ..Default::default()
            })?;
            bar.set_message(format!("epoch {epoch} loss {:.5} val {val:.5}", sum / n as f64));
            epochs = epoch;
            if stop.update(val, trainer.model()) {
                break;
            }
        }
        bar.finish();
        Ok((stop.kept.expect("at least one epoch"), epochs, stop.best))
    }

    fn train_stage2(&mut self, stage1: &Stage1, block: ComputeBlock) -> Result<(ComputeBlock, usize, f64)> {
        let Self { data, cfg, prep, model_cfg, ad, val_batches, .. } = *self;
        let s2 = &cfg.stage2;
        let plain = Device::flex();
        let frozen = stage1.valid();
        let enc = LatentEncoder { stage1: &frozen, cfg: model_cfg, device: &plain };
        let l = model_cfg.stage1.joint_latent();
        // The encoders are frozen, so the clean latents are computed once, not every step.
        let z_train: Vec<f32> =
            batches(data, &prep.train.ends, cfg, &prep.norm).iter().flat_map(|(_, b)| enc.encode(b)).collect();
        let needs_previous = s2.faults.camera.iter().any(|(f, _)| *f == mmguard_faults::CameraFault::Frozen);
        let previous = |ends: &[usize]| -> Vec<Option<Vec<f32>>> {
            ends.iter()
                .map(|&i| {
                    (needs_previous && i > 0 && data.episode[i - 1] == data.episode[i]).then(|| {
                        let mut f = vec![0.0; data.frame_len()];
                        data.scaled_frame_into(i - 1, &mut f);
                        f
                    })
                })
                .collect()
        };
        let mut vrng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(2));
        let val_set: Vec<Stage2Batch> = val_batches
            .iter()
            .map(|(ends, b)| make_batch(&enc, b.clone(), enc.encode(b), &previous(ends), s2, &mut vrng))
            .collect();

        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(3));
        let mut trainer = Stage2Trainer::new(block, stage1.clone(), model_cfg.clone(), s2.clone(), ad.clone());
        let per_epoch = prep.train.count().div_ceil(cfg.batch_size) as u64;
        let bar = stage_bar(cfg.progress, per_epoch * s2.schedule.epochs as u64, "stage 2");
        let mut stop = EarlyStop::new(s2.schedule.patience);
        let mut epochs = 0;
        for epoch in 1..=s2.schedule.epochs {
            let start = Instant::now();
            let mut order: Vec<usize> = (0..prep.train.count()).collect();
            order.shuffle(&mut rng);
            let mut acc = Stage2Losses::default();
            let (mut grad_norm, mut clipped, mut steps, mut n) = (0.0, 0usize, 0usize, 0usize);
            for chunk in order.chunks(cfg.batch_size) {
                if chunk.len() < 2 {
                    continue;
                }
                let ends: Vec<usize> = chunk.iter().map(|&k| prep.train.ends[k]).collect();
                let clean = host_batch(data, &ends, cfg.window, &prep.norm);
                let z_clean: Vec<f32> =
                    chunk.iter().flat_map(|&k| z_train[k * l..(k + 1) * l].iter().copied()).collect();
                let batch = make_batch(&enc, clean, z_clean, &previous(&ends), s2, &mut rng);
                let (losses, stats) = trainer.step(&batch);
                let w = chunk.len() as f64;
                acc.total += losses.total * w;
                acc.latent += losses.latent * w;
                acc.output += losses.output * w;
                acc.detection += losses.detection * w;
                acc.contrastive += losses.contrastive * w;
                grad_norm += stats.norm_before;
                clipped += usize::from(stats.clipped);
                steps += 1;
                n += chunk.len();
                bar.inc(1);
                bar.set_message(format!("epoch {epoch} loss {:.4}", acc.total / n as f64));
            }
            let block_plain = trainer.block().valid();
            let (mut vsum, mut vn) = (0.0, 0usize);
            for b in &val_set {
                let (_, parts) = stage2_loss(&block_plain, &frozen, model_cfg, s2, b, &plain);
                vsum += parts.total * b.clean.len as f64;
                vn += b.clean.len;
            }
            let val = vsum / vn.max(1) as f64;
            let seconds = start.elapsed().as_secs_f64();
            let nf = n.max(1) as f64;
            self.log.write(&EpochRecord {
                stage: "stage2",
                epoch,
                train_loss: acc.total / nf,
                val_loss: val,
                latent: acc.latent / nf,
                output: acc.output / nf,
                detection: acc.detection / nf,
                contrastive: acc.contrastive / nf,
                grad_norm: grad_norm / steps.max(1) as f64,
                clipped_share: clipped as f64 / steps.max(1) as f64,
                seconds,
                samples_per_s: n as f64 / seconds,
            })?;
            bar.set_message(format!("epoch {epoch} loss {:.4} val {val:.4}", acc.total / nf));
            epochs = epoch;
            if stop.update(val, trainer.block()) {
                break;
            }
        }
        bar.finish();
        Ok((stop.kept.expect("at least one epoch"), epochs, stop.best))
    }
}
