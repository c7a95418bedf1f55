//! The downstream study: Robult, ModalImmune and their ablations as heads on one trained MMSSL
//! run's frozen encoders, every method × label fraction × seed scored on the same test windows
//! with both modalities, with one missing, and under the fault catalogue — straight, and behind
//! MMSSL's gate (drop the flagged modality, or let MMSSL correct it first).

use mmguard_model::compute;
use std::path::Path;
use std::time::Instant;

use mmguard_data::Dataset;
use mmguard_eval::{Cells, CurveConfig};
use mmguard_model::{host_batch, Gated, HostBatch, Repair, Run, Stage1};
use serde::{Deserialize, Serialize};

use crate::linalg::NeumannMode;
use crate::modalimmune::{train_modalimmune, Masking, ModalImmuneConfig};
use crate::robult::{train_robult, FineTune, RobultConfig, RobultWeights};
use crate::score::{score, TaskScore};
use crate::task::{encode, labelled_mask, Labelled, Standardizer, Targets, TaskConfig, TaskSet, TaskShape};
use crate::{Error, HeadSchedule, Result, TaskHead};
use mmguard_train::Stream;

/// A head and how it is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadMethod {
    /// Robult with all four losses.
    Robult,
    /// Robult's heads with the supervised loss only (its reference: the same head without
    /// Robult's losses).
    RobultSupervised,
    /// ModalImmune with every component.
    Modalimmune,
    /// ModalImmune's network trained on both modalities with the task loss only (its reference).
    ModalimmuneSupervised,
    /// Modality dropout: a uniformly drawn modality left out of the second pass, no regulariser.
    ModalimmuneDropout,
    /// ModalImmune without curvature-aware masking.
    ModalimmuneNoMasking,
    /// ModalImmune with Fisher-diagonal masking instead of the Hessian test.
    ModalimmuneFisher,
    /// ModalImmune without the meta step (λ, κ fixed).
    ModalimmuneNoMeta,
    /// ModalImmune with the paper's rules: the Fisher negative-eigenvalue test for masking and
    /// the Neumann series of (I − αH)⁻¹ for the meta step.
    ModalimmunePaper,
    /// Robult with the stage-1 encoders fine-tuned along (all labels; not in `all`: it trains
    /// through the conv encoders, minutes per seed instead of seconds).
    RobultFineTuned,
}

impl HeadMethod {
    /// Every method, in report order.
    pub const ALL: [HeadMethod; 9] = [
        HeadMethod::Robult,
        HeadMethod::RobultSupervised,
        HeadMethod::Modalimmune,
        HeadMethod::ModalimmuneSupervised,
        HeadMethod::ModalimmuneDropout,
        HeadMethod::ModalimmuneNoMasking,
        HeadMethod::ModalimmuneFisher,
        HeadMethod::ModalimmuneNoMeta,
        HeadMethod::ModalimmunePaper,
    ];

    /// Methods that `all` leaves out for their cost.
    pub const EXTRA: [HeadMethod; 1] = [HeadMethod::RobultFineTuned];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            HeadMethod::Robult => "robult",
            HeadMethod::RobultSupervised => "robult-supervised",
            HeadMethod::Modalimmune => "modalimmune",
            HeadMethod::ModalimmuneSupervised => "modalimmune-supervised",
            HeadMethod::ModalimmuneDropout => "modalimmune-dropout",
            HeadMethod::ModalimmuneNoMasking => "modalimmune-no-masking",
            HeadMethod::ModalimmuneFisher => "modalimmune-fisher",
            HeadMethod::ModalimmuneNoMeta => "modalimmune-no-meta",
            HeadMethod::ModalimmunePaper => "modalimmune-paper",
            HeadMethod::RobultFineTuned => "robult-fine-tuned",
        }
    }

    /// Whether the label-fraction sweep applies (the semi-supervised method and its reference).
    pub fn semi_supervised(self) -> bool {
        matches!(self, HeadMethod::Robult | HeadMethod::RobultSupervised)
    }

    fn robult(self, base: &RobultConfig) -> RobultConfig {
        let mut cfg = base.clone();
        if self == HeadMethod::RobultSupervised {
            cfg.weights = RobultWeights { labelled: 0.0, unlabelled: 0.0, reconstruction: 0.0, ..base.weights };
        }
        cfg
    }

    fn immune(self, base: &ModalImmuneConfig) -> ModalImmuneConfig {
        let mut cfg = base.clone();
        match self {
            HeadMethod::ModalimmuneSupervised => {
                cfg.collapse.enabled = false;
                cfg.controller.none_share = 1.0;
                cfg.reconstruction = 0.0;
            }
            HeadMethod::ModalimmuneDropout => {
                cfg.collapse.enabled = false;
                cfg.controller.uniform = true;
            }
            HeadMethod::ModalimmuneNoMasking => cfg.masking.kind = Masking::Off,
            HeadMethod::ModalimmuneFisher => cfg.masking.kind = Masking::Fisher,
            HeadMethod::ModalimmuneNoMeta => cfg.meta.enabled = false,
            HeadMethod::ModalimmunePaper => {
                cfg.masking.kind = Masking::Paper;
                cfg.meta.neumann.mode = NeumannMode::Paper;
            }
            _ => {}
        }
        cfg
    }
}

/// What the study runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudyConfig {
    /// Targets.
    pub task: TaskConfig,
    /// Training schedule of every head.
    pub schedule: HeadSchedule,
    /// Robult's settings.
    pub robult: RobultConfig,
    /// ModalImmune's settings.
    pub modalimmune: ModalImmuneConfig,
    /// Heads.
    pub methods: Vec<HeadMethod>,
    /// Shares of training labels kept for the semi-supervised methods (the others use all).
    pub label_fractions: Vec<f64>,
    /// Faults, severities and seed of the faulty test copies (the bench's severity-curve
    /// copies by default).
    pub faults: CurveConfig,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            task: TaskConfig::default(),
            schedule: HeadSchedule::default(),
            robult: RobultConfig::default(),
            modalimmune: ModalImmuneConfig::default(),
            methods: HeadMethod::ALL.to_vec(),
            label_fractions: vec![0.01, 0.05, 0.5, 1.0],
            faults: CurveConfig::default(),
        }
    }
}

/// What the head sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Input {
    /// Clean test windows, both modalities.
    Clean,
    /// Clean windows, camera absent.
    CameraMissing,
    /// Clean windows, sensor absent.
    SensorMissing,
    /// Faulty copies.
    Fault {
        /// Catalogue name.
        fault: String,
        /// Severity.
        severity: f32,
    },
}

/// How the input reaches the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// As it is.
    Direct,
    /// MMSSL's gate first; a flagged modality is left out.
    GateDrop,
    /// MMSSL's gate first; a flagged modality is replaced by MMSSL's correction.
    GateCorrect,
}

/// One score of one trained head.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConditionScore {
    /// Input.
    pub input: Input,
    /// Route.
    pub route: Route,
    /// Scores.
    pub score: TaskScore,
}

/// One trained head and its scores.
#[derive(Debug, Clone, Serialize)]
pub struct HeadResult {
    /// Method.
    pub method: HeadMethod,
    /// Share of training labels.
    pub label_fraction: f64,
    /// Seed.
    pub seed: u64,
    /// Training wall time, seconds.
    pub train_seconds: f64,
    /// Accuracy of always answering the test windows' most common class (the floor a head
    /// must beat).
    pub majority_share: f64,
    /// Every condition.
    pub scores: Vec<ConditionScore>,
    /// The method's training log (ModalImmune: controller, curvature checks, certificates).
    pub log: serde_json::Value,
}

/// Latents of one faulty test copy, as the head sees it on each route.
struct FaultCell {
    input: Input,
    faulty: TaskSet,
    corrected: TaskSet,
    flags: Vec<[bool; 2]>,
}

/// Everything the heads are trained and scored on, encoded by one encoder.
struct Prepared {
    shape: TaskShape,
    range: f32,
    train: TaskSet,
    val: TaskSet,
    test: TaskSet,
    cells: Vec<FaultCell>,
}

/// The study's windows before encoding: each split as scaled host batches, the targets, and
/// what the faulty test copies are made of (regenerated for every encoder: the copies of 18
/// cells would take gigabytes to keep).
struct Sources<'a> {
    run: &'a Run,
    data: &'a Dataset,
    targets: Targets,
    specs: Vec<mmguard_faults::Compound>,
    train: (Vec<usize>, HostBatch),
    val: (Vec<usize>, HostBatch),
    test: (Vec<usize>, HostBatch),
}

impl<'a> Sources<'a> {
    fn new(run: &'a Run, data: &'a Dataset, cfg: &StudyConfig) -> Result<Self> {
        run.check_compatible(data)?;
        if !run.config.data.is_from(data) {
            return Err(Error::Task(format!(
                "{}: the run in {} was trained on {}; the heads need the run's own training/test split, so \
                 train a run on this file first",
                data.path.display(),
                run.dir.display(),
                run.config.data.path
            )));
        }
        let targets = Targets::read(data, &cfg.task)?;
        let s1 = &run.config.model.stage1;
        let set = |episodes: &[i32]| -> Result<(Vec<usize>, HostBatch)> {
            let ends = data.windows(s1.window, episodes)?.ends;
            let batch = host_batch(data, &ends, s1.window, &run.config.normalization);
            Ok((ends, batch))
        };
        let split = &run.config.data.split;
        Ok(Self {
            run,
            data,
            specs: cfg.faults.specs().map_err(|e| Error::Task(format!("study faults: {e}")))?,
            train: set(&split.train)?,
            val: set(&split.val)?,
            test: set(&split.test)?,
            targets,
        })
    }

    /// Every set encoded by `stage1` and standardised (with `standard`, or with the statistics
    /// of its own training latents), with the standardisation used.
    fn encode_with(
        &self,
        stage1: &Stage1,
        cfg: &StudyConfig,
        standard: Option<&Standardizer>,
    ) -> (Prepared, Standardizer) {
        let (run, data) = (self.run, self.data);
        let s1 = &run.config.model.stage1;
        let norm = &run.config.normalization;
        let device = compute::device();
        let encoded = |ends: &[usize], b: &HostBatch| {
            let (camera, sensor) = encode(stage1, s1, b, &device);
            let (class, value) = self.targets.of_windows(data, ends, norm);
            let (camera_dim, sensor_dim) = (s1.camera_latent(), s1.sensor_latent());
            TaskSet { camera, sensor, camera_dim, sensor_dim, class, value }
        };
        let gate = Gated { model: &run.model, cfg: &run.config.model, thresholds: run.config.gate.thresholds() };
        let (test_ends, test_batch) = &self.test;
        let mut cells = Vec::new();
        let mut grid = Cells::new(&self.specs, &cfg.faults.severities, cfg.faults.seed);
        let severities: Vec<f32> = grid.cells.iter().map(|&(_, s)| s).collect();
        grid.corrupt_each(data, test_ends, test_batch, s1, |k, spec, faulty| {
            let repaired = gate.repair(faulty, &device);
            let corrected = HostBatch { len: faulty.len, camera: repaired.camera, sensor: repaired.sensor };
            cells.push(FaultCell {
                input: Input::Fault { fault: spec.name(), severity: severities[k] },
                faulty: encoded(test_ends, faulty),
                corrected: encoded(test_ends, &corrected),
                flags: repaired.flags,
            });
        });
        let column = self.targets.column;
        let mut p = Prepared {
            shape: TaskShape {
                camera_latent: s1.camera_latent(),
                sensor_latent: s1.sensor_latent(),
                classes: self.targets.classes,
            },
            range: norm.max[column] - norm.min[column],
            train: encoded(&self.train.0, &self.train.1),
            val: encoded(&self.val.0, &self.val.1),
            test: encoded(test_ends, test_batch),
            cells,
        };
        let standard = standard.cloned().unwrap_or_else(|| Standardizer::fit(&p.train));
        let cell_sets = p.cells.iter_mut().flat_map(|c| [&mut c.faulty, &mut c.corrected]);
        for set in [&mut p.train, &mut p.val, &mut p.test].into_iter().chain(cell_sets) {
            standard.apply(set);
        }
        (p, standard)
    }
}

fn scores_of(head: &dyn TaskHead, p: &Prepared) -> Vec<ConditionScore> {
    let classes = p.shape.classes;
    let clean = |input: Input, keep: [bool; 2]| ConditionScore {
        input,
        route: Route::Direct,
        score: score(head, &p.test, keep, None, classes, p.range),
    };
    let mut out = vec![
        clean(Input::Clean, [true, true]),
        clean(Input::CameraMissing, [false, true]),
        clean(Input::SensorMissing, [true, false]),
    ];
    for cell in &p.cells {
        // a sample with both modalities flagged keeps both: the head needs one
        let keep: Vec<[bool; 2]> =
            cell.flags.iter().map(|f| if f[0] && f[1] { [true, true] } else { [!f[0], !f[1]] }).collect();
        let all = [true, true];
        for (route, set, per_window) in [
            (Route::Direct, &cell.faulty, None),
            (Route::GateDrop, &cell.faulty, Some(keep.as_slice())),
            (Route::GateCorrect, &cell.corrected, None),
        ] {
            out.push(ConditionScore {
                input: cell.input.clone(),
                route,
                score: score(head, set, all, per_window, classes, p.range),
            });
        }
    }
    out
}

/// Trains and scores every method × label fraction × seed on the run's frozen encoders.
pub fn run_study(run: &Run, data: &Dataset, cfg: &StudyConfig, seeds: &[u64]) -> Result<Vec<HeadResult>> {
    let sources = Sources::new(run, data, cfg)?;
    let (p, standard) = sources.encode_with(&run.model.stage1, cfg, None);
    let mut counts = vec![0usize; p.shape.classes];
    for &c in &p.test.class {
        counts[c as usize] += 1;
    }
    let majority_share = counts.iter().copied().max().unwrap_or(0) as f64 / p.test.len().max(1) as f64;
    let mut results = Vec::new();
    for &method in &cfg.methods {
        let fractions = if method.semi_supervised() { cfg.label_fractions.clone() } else { vec![1.0] };
        for &fraction in &fractions {
            for &seed in seeds {
                let labelled =
                    labelled_mask(&p.train.class, p.shape.classes, fraction, Stream::TrainingLabels.rng(seed));
                let val_labelled =
                    labelled_mask(&p.val.class, p.shape.classes, fraction, Stream::ValidationLabels.rng(seed));
                let start = Instant::now();
                let train = Labelled { set: &p.train, labelled: &labelled };
                let (head, log, tuned): (Box<dyn TaskHead>, serde_json::Value, Option<Stage1>) = match method {
                    HeadMethod::Robult | HeadMethod::RobultSupervised | HeadMethod::RobultFineTuned => {
                        let rc = method.robult(&cfg.robult);
                        let fine = if method == HeadMethod::RobultFineTuned {
                            let ad = compute::training_device();
                            Some(FineTune {
                                batch: &sources.train.1,
                                stage1: Run::load(&run.dir, &ad)?.model.stage1,
                                s1: &run.config.model.stage1,
                                standard: &standard,
                            })
                        } else {
                            None
                        };
                        let (h, tuned, log) = train_robult(train, fine, &p.shape, &rc, &cfg.schedule, seed);
                        (Box::new(h), serde_json::to_value(log).expect("serialisable"), tuned)
                    }
                    _ => {
                        let mc = method.immune(&cfg.modalimmune);
                        let val = Labelled { set: &p.val, labelled: &val_labelled };
                        let (h, log) = train_modalimmune(train, val, &p.shape, &mc, &cfg.schedule, seed);
                        (Box::new(h), serde_json::to_value(log).expect("serialisable"), None)
                    }
                };
                let train_seconds = start.elapsed().as_secs_f64();
                // a tuned encoder sees every set anew, standardised as in training
                let scores = match tuned {
                    Some(stage1) => scores_of(head.as_ref(), &sources.encode_with(&stage1, cfg, Some(&standard)).0),
                    None => scores_of(head.as_ref(), &p),
                };
                let clean = &scores[0].score;
                tracing::info!(
                    "{} labels {:.0}% seed {seed}: accuracy {:.3}, camera missing {:.3}, sensor missing {:.3} ({train_seconds:.1} s)",
                    method.name(),
                    fraction * 100.0,
                    clean.accuracy,
                    scores[1].score.accuracy,
                    scores[2].score.accuracy
                );
                results.push(HeadResult {
                    method,
                    label_fraction: fraction,
                    seed,
                    train_seconds,
                    majority_share,
                    scores,
                    log,
                });
            }
        }
    }
    Ok(results)
}

/// The class names and regression column of a study, for the report.
pub fn task_description(data: &Dataset, cfg: &StudyConfig) -> Result<String> {
    let t = Targets::read(data, &cfg.task)?;
    Ok(format!(
        "classes of `{}` ({}: {}); regression: next reading of `{}`",
        cfg.task.label_key,
        t.classes,
        t.names.join(", "),
        t.column_name
    ))
}

/// Writes `results.json` into `dir`.
pub fn write_results(dir: &Path, cfg: &StudyConfig, results: &[HeadResult]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
    let path = dir.join("results.json");
    let text =
        serde_json::to_string_pretty(&serde_json::json!({ "config": cfg, "results": results })).expect("serialisable");
    std::fs::write(&path, text).map_err(|source| Error::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::StudyConfig;

    #[test]
    fn a_misspelt_key_of_a_study_is_an_error_naming_it() {
        assert!(serde_json::from_str::<StudyConfig>(r#"{"schedule": {"epochs": 3}}"#).is_ok());
        for text in [r#"{"robult": {"hiden": 3}}"#, r#"{"schedule": {"epoch": 3}}"#, r#"{"faults": {"sed": 1}}"#] {
            let e = serde_json::from_str::<StudyConfig>(text).unwrap_err().to_string();
            assert!(e.contains("unknown field"), "{text}: {e}");
        }
    }
}
