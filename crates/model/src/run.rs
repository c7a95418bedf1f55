//! A run directory: everything `eval` and `serve` need, and nothing else.
//!
//! ```text
//! runs/arm/
//!   config.json        RunConfig: architecture, columns, normalisation, gate, split, versions
//!   model.safetensors  weights of stage 1 and the compute block
//!   metrics.json       written by training and evaluation
//!   train_log.csv      one line per epoch and stage
//! ```

use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use mmguard_data::{Column, Dataset, MinMax, Split, SplitConfig};
use serde::{Deserialize, Serialize};

use crate::autoencoder::Stage1;
use crate::error::{Error, Result};
use crate::pipeline::{HostBatch, Mmssl, ModelConfig, Thresholds};

/// File names inside a run directory.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Metrics file.
pub const METRICS_FILE: &str = "metrics.json";
/// Training log.
pub const LOG_FILE: &str = "train_log.csv";

/// Version of the run-directory layout; bumped when a field changes meaning. Format 2 added the
/// evidence, the latent scale, the score temperature and per-modality thresholds (all optional
/// fields: a format-1 run reads as before, and an older mmguard refuses a format-2 run instead
/// of ignoring what it does not know). Format 3 added the clean-window prior
/// (`model.clean_prior`) and the sensor's novelty threshold (`gate.per_modality.novelty`),
/// again optional.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format this mmguard reads.
pub const OLDEST_FORMAT: u32 = 1;

/// The gate: flag a modality when its fault probability reaches its threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// One threshold for both modalities, on the sample score max(camera, sensor), calibrated
    /// for the whole target rate; the gate of runs without `per_modality`.
    pub threshold: f32,
    /// A threshold per modality, each calibrated for half of the target rate; when present it
    /// is the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_modality: Option<Thresholds>,
    /// False-alarm rate the threshold was calibrated for, on clean validation samples.
    pub target_false_alarm_rate: f64,
    /// Clean validation samples used for the calibration.
    pub calibration_samples: usize,
    /// How the threshold was derived; runs written before it was recorded used `quantile`.
    #[serde(default = "quantile")]
    pub method: Calibration,
    /// Where the scene's lighting varies: how many training episodes' lightings each
    /// validation episode was also relit to for the calibration; `None`: the episodes as they
    /// are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relight: Option<usize>,
}

impl Gate {
    /// The thresholds the gate applies.
    pub fn thresholds(&self) -> Thresholds {
        self.per_modality.unwrap_or(Thresholds::uniform(self.threshold))
    }
}

fn quantile() -> Calibration {
    Calibration::Quantile
}

/// How the gate threshold is derived from the clean validation scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calibration {
    /// The empirical (1 − rate) quantile of the validation scores: exact on the validation
    /// episodes, but a handful of episodes says little about the next one.
    Quantile,
    /// Calibrated for a *new* episode, by leave-one-episode-out: for a candidate rate r the
    /// threshold is fitted on all validation episodes but one and the false alarms counted on
    /// the one left out; the largest r (halving from the target) whose cross-validated false-
    /// alarm rate stays within the target is used on all episodes. Measured on data whose look
    /// varies by episode: the plain quantile from 4 validation episodes gave 3–7 % false alarms
    /// on the test episodes for a 1 % target.
    Episodes,
    /// For a new episode, by a model of how episodes differ, and never below `episodes`: on the
    /// logit scale each validation episode has a level and an upper spread (median and the
    /// distance to its 90th percentile); a new episode's level is predicted from the k levels
    /// seen (the Student-t predictive variance of a new draw) and its spread taken as the widest
    /// seen, and the threshold is the (1 − rate) quantile of that normal. Measured on synthetic clean scores whose level and spread vary by episode
    /// (correlated in time, four validation episodes; test in this module): `episodes` gave
    /// 3.4 % false alarms on new episodes for a 1 % target, this method stays within it.
    Predictive,
}

impl Calibration {
    /// Every method, in the order the help lists them.
    pub const ALL: [Calibration; 3] = [Calibration::Predictive, Calibration::Episodes, Calibration::Quantile];

    /// The name in configurations and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Calibration::Quantile => "quantile",
            Calibration::Episodes => "episodes",
            Calibration::Predictive => "predictive",
        }
    }
}

impl std::fmt::Display for Calibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the training data came from, so that `eval` can find the test episodes again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Path of the training file as given.
    pub path: String,
    /// [`Dataset::fingerprint`] of the training file, hex.
    pub fingerprint: String,
    /// How the split was made.
    pub split_config: SplitConfig,
    /// Episodes of each split.
    pub split: Split,
}

impl Provenance {
    /// Whether `data` is the file the run was trained on (same fingerprint).
    pub fn is_from(&self, data: &Dataset) -> bool {
        self.fingerprint == data.fingerprint_hex()
    }
}

/// Versions of the software that wrote the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    /// Layout version of the run directory.
    pub format: u32,
    /// mmguard.
    pub mmguard: String,
    /// burn.
    pub burn: String,
}

impl Default for Versions {
    fn default() -> Self {
        Self { format: FORMAT_VERSION, mmguard: env!("CARGO_PKG_VERSION").into(), burn: "0.22.1".into() }
    }
}

/// `config.json` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Software versions.
    pub versions: Versions,
    /// Architecture.
    pub model: ModelConfig,
    /// Sensor columns the model was trained on, in order.
    pub columns: Vec<Column>,
    /// Sensor scaling fitted on the training split.
    pub normalization: MinMax,
    /// The calibrated gate.
    pub gate: Gate,
    /// Training data and split.
    pub data: Provenance,
    /// The training configuration, as the trainer wrote it.
    pub training: serde_json::Value,
}

/// A loaded run: its directory, configuration and model.
#[derive(Debug)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: RunConfig,
    /// The networks.
    pub model: Mmssl,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    mmguard_data::ensure_regular_file(path).map_err(|source| Error::Io { path: path.into(), source })?;
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: path.into(), source })
}

/// Writes a value as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json { path: path.into(), source })?;
    std::fs::write(path, text).map_err(|source| Error::Io { path: path.into(), source })
}

impl Run {
    /// Writes `config.json` and the weights into `dir` (created if needed).
    pub fn save(dir: &Path, config: &RunConfig, model: &Mmssl) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
        write_json(&dir.join(CONFIG_FILE), config)?;
        let weights = dir.join(WEIGHTS_FILE);
        model
            .save_into(&mut SafetensorsStore::from_file(&weights).overwrite(true))
            .map_err(|e| Error::Weights { path: weights, reason: e.to_string() })
    }

    /// Loads a run onto `device`; every tensor of the model must be in the weights file.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = read_config(dir)?;
        let mut model = config.model.init(device);
        load_weights(&mut model, dir, |store| store, "")?;
        // ρ < 1 in the config is not enough: the weights and the power-iteration vectors beside
        // them decide the bound, and a file written elsewhere may not hold to it
        let bound = model.block.corrector.lipschitz_bound();
        if bound.is_nan() || bound >= 1.0 {
            return Err(Error::InvalidRun {
                path: dir.join(WEIGHTS_FILE),
                field: "block.corrector".into(),
                reason: format!("certified Lipschitz bound {bound:.4}; the corrector must be a contraction (< 1)"),
            });
        }
        Ok(Self { dir: dir.into(), config, model })
    }

    /// Loads only the stage-1 autoencoder of a run (its compute block may have another
    /// architecture than this mmguard builds): for training a new stage 2 on it.
    pub fn load_stage1(dir: &Path, device: &Device) -> Result<(RunConfig, Stage1)> {
        let config = read_config(dir)?;
        let mut stage1 = config.model.stage1.init(device);
        load_weights(&mut stage1, dir, |store| store.with_key_remapping(r"^stage1\.", ""), "stage 1 ")?;
        Ok((config, stage1))
    }

    /// Checks that a dataset has the run's geometry and columns.
    pub fn check_compatible(&self, data: &Dataset) -> Result<()> {
        let s1 = &self.config.model.stage1;
        if (data.height, data.width) != (s1.height, s1.width) {
            return Err(Error::Incompatible(format!(
                "{}: frames are {}x{} but the run was trained on {}x{}",
                data.path.display(),
                data.height,
                data.width,
                s1.height,
                s1.width
            )));
        }
        let names = |c: &[Column]| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let (have, want) = (names(&data.columns), names(&self.config.columns));
        // generic names (s0, s1, …) stand for "no sidecar": then only the count can be checked
        let generic = |n: &[String]| n.iter().enumerate().all(|(j, name)| *name == format!("s{j}"));
        if have.len() != want.len() || (!generic(&have) && !generic(&want) && have != want) {
            return Err(Error::Incompatible(format!(
                "{}: sensor columns {have:?} do not match the run's {want:?}",
                data.path.display()
            )));
        }
        Ok(())
    }
}

/// A run's `config.json`, refused when its format is not one this mmguard reads.
fn read_config(dir: &Path) -> Result<RunConfig> {
    let config: RunConfig = read_json(&dir.join(CONFIG_FILE))?;
    if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&config.versions.format) {
        return Err(Error::Incompatible(format!(
            "{}: run format {} but this mmguard reads formats {OLDEST_FORMAT} to {FORMAT_VERSION}",
            dir.display(),
            config.versions.format
        )));
    }
    validate(&config, &dir.join(CONFIG_FILE))?;
    Ok(config)
}

/// Widest layer a valid run has (the reference model's widest is 256).
const MAX_WIDTH: usize = 16_384;

/// Refuses a configuration that loads but cannot serve: every check names the field. Training
/// writes none of these; they come from a hand-edited or foreign `config.json`.
fn validate(config: &RunConfig, path: &Path) -> Result<()> {
    let bad = |field: String, reason: String| Err(Error::InvalidRun { path: path.into(), field, reason });
    let s1 = &config.model.stage1;
    for (field, value, multiple) in
        [("height", s1.height, 16), ("width", s1.width, 16), ("window", s1.window, 4), ("sensor_dim", s1.sensor_dim, 1)]
    {
        if value == 0 || value % multiple != 0 {
            return bad(
                format!("model.stage1.{field}"),
                format!("{value}; expected a positive multiple of {multiple}"),
            );
        }
    }
    let d = s1.sensor_dim;
    if config.columns.len() != d {
        return bad("columns".into(), format!("{} columns for a model of {d} sensor columns", config.columns.len()));
    }
    let n = &config.normalization;
    for (name, v) in [("min", &n.min), ("max", &n.max)] {
        if v.len() != d {
            return bad(format!("normalization.{name}"), format!("{} values for {d} sensor columns", v.len()));
        }
        if let Some(j) = v.iter().position(|x| !x.is_finite()) {
            return bad(format!("normalization.{name}[{j}]"), format!("{}; expected a finite number", v[j]));
        }
    }
    // equal bounds are a constant column (scaled with a range of 1); crossed ones are no range
    if let Some(j) = (0..d).find(|&j| n.min[j] > n.max[j]) {
        return bad(format!("normalization.min[{j}]"), format!("{} above the maximum {}", n.min[j], n.max[j]));
    }
    let gate = &config.gate;
    let thresholds = gate.thresholds();
    let probabilities = [
        ("gate.threshold", Some(gate.threshold)),
        ("gate.per_modality.camera", Some(thresholds.camera)),
        ("gate.per_modality.sensor", Some(thresholds.sensor)),
        ("gate.per_modality.channel", thresholds.channel),
    ];
    for (field, value) in probabilities {
        if let Some(t) = value.filter(|t| !(0.0..=1.0).contains(t)) {
            return bad(field.into(), format!("{t}; a threshold on a probability lies in [0, 1]"));
        }
    }
    if let Some(t) = thresholds.novelty.filter(|t| !(t.is_finite() && *t > 0.0)) {
        return bad("gate.per_modality.novelty".into(), format!("{t}; expected a positive distance"));
    }
    if let Some(k) = thresholds.novelty_scale.filter(|k| !(k.is_finite() && *k > 0.0)) {
        return bad("gate.per_modality.novelty_scale".into(), format!("{k}; expected a positive number"));
    }
    let b = &config.model.block;
    // a width beyond any trained model would be allocated before anything could refuse it
    let widths = [("model.block.hidden", b.hidden), ("model.block.detector_hidden", b.detector_hidden)]
        .into_iter()
        .chain(s1.camera_channels.iter().map(|&c| ("model.stage1.camera_channels", c)))
        .chain(s1.sensor_channels.iter().map(|&c| ("model.stage1.sensor_channels", c)));
    for (field, width) in widths {
        if !(1..=MAX_WIDTH).contains(&width) {
            return bad(field.into(), format!("{width}; expected a layer width of 1 to {MAX_WIDTH}"));
        }
    }
    if !(b.rho > 0.0 && b.rho < 1.0) {
        return bad("model.block.rho".into(), format!("{}; the corrector is a contraction only for 0 < ρ < 1", b.rho));
    }
    if !(0.0..=1.0).contains(&b.alpha) {
        return bad("model.block.alpha".into(), format!("{}; expected a share in [0, 1]", b.alpha));
    }
    if b.latent != s1.joint_latent() {
        return bad(
            "model.block.latent".into(),
            format!("{}; stage 1 makes a latent of {}", b.latent, s1.joint_latent()),
        );
    }
    if b.decoder == crate::LatentDecoder::Split && b.camera_latent != s1.camera_latent() {
        return bad(
            "model.block.camera_latent".into(),
            format!("{}; the split decoder needs stage 1's camera latent, {}", b.camera_latent, s1.camera_latent()),
        );
    }
    if b.keypoints > 0 && !(b.decoder == crate::LatentDecoder::Split && b.output_path) {
        return bad(
            "model.block.keypoints".into(),
            format!("{}; keypoints need the split decoder and the output path", b.keypoints),
        );
    }
    if let Some(scale) = &b.latent_scale {
        for (name, v) in [("mean", &scale.mean), ("std", &scale.std)] {
            if v.len() != b.latent || v.iter().any(|x| !x.is_finite()) {
                return bad(format!("model.block.latent_scale.{name}"), format!("expected {} finite values", b.latent));
            }
        }
        if scale.std.iter().any(|&x| x <= 0.0) {
            return bad("model.block.latent_scale.std".into(), "a spread of 0 or less".into());
        }
    }
    if let Some(t) = b.score_temperature.filter(|t| !(t.is_finite() && *t > 0.0)) {
        return bad("model.block.score_temperature".into(), format!("{t}; expected a positive number"));
    }
    if let Some(r) = &config.model.repair {
        if !(r.tolerance.is_finite() && r.tolerance >= 0.0) {
            return bad("model.repair.tolerance".into(), format!("{}; expected a finite number ≥ 0", r.tolerance));
        }
        for (name, v, n) in [("camera_spread", &r.camera_spread, 3), ("sensor_spread", &r.sensor_spread, d)] {
            if v.len() != n {
                return bad(format!("model.repair.{name}"), format!("{} values; expected {n}", v.len()));
            }
            if let Some(j) = v.iter().position(|x| !(x.is_finite() && *x > 0.0)) {
                return bad(format!("model.repair.{name}[{j}]"), format!("{}; expected a positive spread", v[j]));
            }
        }
        if let Some((field, reason)) = r.mix.as_ref().and_then(|m| m.problem(d)) {
            return bad(format!("model.repair.mix.{field}"), reason);
        }
    }
    let prior = config.model.clean_prior.as_ref();
    if let Some((field, reason)) = prior.and_then(|p| p.problem(config.model.stage1.window * d)) {
        return bad(format!("model.clean_prior.{field}"), reason);
    }
    if let (Some(t), None) = (thresholds.novelty, prior) {
        return bad("gate.per_modality.novelty".into(), format!("{t}, but the model has no clean_prior to measure it"));
    }
    Ok(())
}

/// Every float parameter of `module` is f32 and finite; the first that is not is named by its
/// position in the module's visiting order.
fn check_parameters<M: burn::module::Module>(module: &M, path: &Path) -> Result<()> {
    struct Check {
        index: usize,
        problem: Option<(usize, String)>,
    }
    impl burn::module::ModuleVisitor for Check {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D>>) {
            if self.problem.is_none() {
                let data = param.val().into_data();
                self.problem = match data.as_slice::<f32>() {
                    Err(_) => Some((self.index, format!("dtype {:?}; expected f32", data.dtype()))),
                    Ok(v) => v
                        .iter()
                        .position(|x| !x.is_finite())
                        .map(|k| (self.index, format!("value {} at {k}; expected finite numbers", v[k]))),
                };
            }
            self.index += 1;
        }
    }
    let mut check = Check { index: 0, problem: None };
    module.visit(&mut check);
    match check.problem {
        None => Ok(()),
        Some((index, reason)) => {
            Err(Error::InvalidRun { path: path.into(), field: format!("tensor #{index} of the model"), reason })
        }
    }
}

/// Loads `module`'s tensors from the run's weights file through `store` (a remapping, say);
/// every tensor of the module must be found. `what` names the part in the error.
fn load_weights<M: ModuleSnapshot>(
    module: &mut M,
    dir: &Path,
    store: impl FnOnce(SafetensorsStore) -> SafetensorsStore,
    what: &str,
) -> Result<()> {
    let weights = dir.join(WEIGHTS_FILE);
    if let Err(e) = mmguard_data::ensure_regular_file(&weights) {
        let reason = if e.kind() == std::io::ErrorKind::NotFound { "missing".into() } else { e.to_string() };
        return Err(Error::Weights { path: weights, reason });
    }
    let applied = module
        .load_from(&mut store(SafetensorsStore::from_file(&weights)))
        .map_err(|e| Error::Weights { path: weights.clone(), reason: e.to_string() })?;
    check_parameters(module, &weights)?;
    if !applied.missing.is_empty() || !applied.errors.is_empty() {
        let missing: Vec<&str> = applied.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(Error::Weights {
            path: weights,
            reason: format!("{what}does not match config.json: missing {missing:?}, errors {:?}", applied.errors),
        });
    }
    Ok(())
}

/// Assembles scaled samples: frames to [0, 1], windows scaled with `norm`.
pub fn host_batch(data: &Dataset, ends: &[usize], window: usize, norm: &MinMax) -> HostBatch {
    let frame = data.frame_len();
    let win = window * data.sensor_dim();
    let mut camera = vec![0.0; ends.len() * frame];
    let mut sensor = vec![0.0; ends.len() * win];
    for (b, &i) in ends.iter().enumerate() {
        data.scaled_frame_into(i, &mut camera[b * frame..(b + 1) * frame]);
        norm.scale_into(data.sensor_window(i, window), &mut sensor[b * win..(b + 1) * win]);
    }
    HostBatch { len: ends.len(), camera, sensor }
}
