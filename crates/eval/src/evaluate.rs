//! The evaluation protocol (docs/design.md §5) on a run directory.
//!
//! Every test window gives three copies: clean, camera-faulty (the camera test fault) and
//! sensor-faulty (the sensor test fault), seeded. The pipeline runs on all of them. Two more
//! copies measure a missing modality: camera absent (frame all zeros) and sensor absent
//! (window all zeros).

use mmguard_data::{Dataset, Windows};
use mmguard_faults::{CameraFault, Compound, Fault, Frame, Modality, SensorFault, Window};
use mmguard_model::compute;
use mmguard_model::Stage1Config;
use mmguard_model::{host_batch, HostBatch, Run, Thresholds};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::metrics::Detection;
use crate::Result;

/// Options of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalConfig {
    /// Gate threshold; `None` uses the run's calibrated one.
    pub threshold: Option<f32>,
    /// Seed of the fault injection.
    pub seed: u64,
    /// Test windows per batch (each gives three copies).
    pub batch_size: usize,
    /// Camera test fault and severity.
    pub camera_fault: (CameraFault, f32),
    /// Sensor test fault and severity.
    pub sensor_fault: (SensorFault, f32),
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            threshold: None,
            seed: 0,
            batch_size: 64,
            camera_fault: (CameraFault::Noise, 1.0),
            sensor_fault: (SensorFault::Gain, 1.0),
        }
    }
}

/// MSE on the [0, 1] scale per modality and their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mse {
    /// Camera.
    pub camera: f64,
    /// Sensor.
    pub sensor: f64,
    /// Camera + sensor (the paper's "combined").
    pub combined: f64,
}

impl Mse {
    fn new(camera: f64, sensor: f64) -> Self {
        Self { camera, sensor, combined: camera + sensor }
    }
}

/// Detection per modality and for the sample score.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionReport {
    /// Camera score: camera-faulty copies against clean and sensor-faulty copies.
    pub camera: Detection,
    /// Sensor score: sensor-faulty copies against clean and camera-faulty copies.
    pub sensor: Detection,
    /// Sample score max(camera, sensor): faulty copies against clean copies.
    pub sample: Detection,
}

/// One modality missing: the caller knows it is absent (no frame or no readings arrived), so
/// the pipeline substitutes it from the other modality whatever the gate says.
#[derive(Debug, Clone, Serialize)]
pub struct MissingModality {
    /// The absent modality.
    pub absent: Modality,
    /// MSE of filling the absent modality with zeros (what arrived).
    pub zero_fill_mse: f64,
    /// MSE of the stage-1 autoencoder on the zeros.
    pub autoencoder_mse: f64,
    /// MSE of the absent modality reconstructed by MMSSL from the present one.
    pub reconstructed_mse: f64,
    /// MSE of the present modality at the pipeline's (gated) output.
    pub present_mse: f64,
    /// Share of copies on which the gate flagged the absent modality by itself.
    pub flagged: f64,
}

/// The result of an evaluation. All MSE are on the [0, 1] scale (tables print × 10⁻²).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The data file.
    pub data: String,
    /// `test split` (the run's own data) or `all` (another file).
    pub subset: String,
    /// Test windows (each evaluated as three copies).
    pub windows: usize,
    /// Gate thresholds used.
    pub thresholds: Thresholds,
    /// The options.
    pub config: EvalConfig,
    /// MMSSL output (gated) on the faulty modality: camera over camera-faulty copies, sensor
    /// over sensor-faulty copies.
    pub corrected_mse: Mse,
    /// The faulty input itself, same copies.
    pub faulty_input_mse: Mse,
    /// The stage-1 autoencoder applied to the faulty input, same copies.
    pub autoencoder_mse: Mse,
    /// The correction without the gate (always substituted), same copies.
    pub ungated_mse: Mse,
    /// MMSSL output on the healthy modality of the faulty copies (camera over sensor-faulty,
    /// sensor over camera-faulty): what the pipeline does to data that was fine.
    pub healthy_mse: Mse,
    /// MMSSL output over all copies, clean ones included.
    pub all_copies_mse: Mse,
    /// MMSSL output on the clean copies.
    pub clean_mse: Mse,
    /// Detection quality.
    pub detection: DetectionReport,
    /// Share of clean copies with any modality flagged.
    pub false_alarm_rate: f64,
    /// Camera absent, then sensor absent.
    pub missing_modality: [MissingModality; 2],
    /// The sensor-faulty copies column by column: which readings the correction gets right
    /// and which it does not.
    pub sensor_columns: Vec<ColumnMse>,
}

/// One sensor column of the sensor-faulty copies.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnMse {
    /// Column name.
    pub name: String,
    /// The faulty input.
    pub faulty_input: f64,
    /// MMSSL's output (gated).
    pub corrected: f64,
}

/// Which windows of `data` to evaluate: the run's test episodes when `data` is the training
/// file (same fingerprint), all of it otherwise.
pub fn eval_windows(run: &Run, data: &Dataset) -> Result<(Windows, &'static str)> {
    let window = run.config.model.stage1.window;
    if run.config.data.is_from(data) {
        Ok((data.windows(window, &run.config.data.split.test)?, "test split"))
    } else {
        Ok((data.windows(window, &data.episode_ids())?, "all"))
    }
}

/// A running sum of squared differences, for an MSE.
#[derive(Default, Clone)]
pub(crate) struct Sums {
    sq: f64,
    n: usize,
}

impl Sums {
    pub(crate) fn add(&mut self, out: &[f32], clean: &[f32]) {
        self.sq += out.iter().zip(clean).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>();
        self.n += out.len();
    }
    pub(crate) fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sq / self.n as f64
        }
    }
}

/// Squared errors per column of time-major sensor windows [T, D].
#[derive(Debug, Clone)]
pub(crate) struct ColumnSums {
    sq: Vec<f64>,
    readings: usize,
}

impl ColumnSums {
    pub(crate) fn new(columns: usize) -> Self {
        Self { sq: vec![0.0; columns], readings: 0 }
    }

    pub(crate) fn add(&mut self, out: &[f32], clean: &[f32]) {
        let d = self.sq.len();
        for (k, (a, b)) in out.iter().zip(clean).enumerate() {
            self.sq[k % d] += f64::from(a - b).powi(2);
        }
        self.readings += out.len() / d;
    }

    /// Mean squared error per column.
    pub(crate) fn means(&self) -> Vec<f64> {
        self.sq.iter().map(|&s| s / self.readings.max(1) as f64).collect()
    }
}

/// Applies `faults` at `severity` to every sample of a clean batch, in sample order;
/// `previous[i]` is an earlier frame of sample i's episode (for the frozen-frame fault).
pub fn corrupt(
    clean: &HostBatch,
    s1: &Stage1Config,
    faults: &Compound,
    severity: f32,
    previous: &[Option<Vec<f32>>],
    rng: &mut impl Rng,
) -> HostBatch {
    debug_assert_eq!(previous.len(), clean.len, "one previous-frame slot per sample");
    let (frame, win) = (3 * s1.height * s1.width, s1.window * s1.sensor_dim);
    let mut out = clean.clone();
    for (i, prev) in previous.iter().enumerate().take(clean.len) {
        let (fr, wr) = (i * frame..(i + 1) * frame, i * win..(i + 1) * win);
        let input =
            Frame { pixels: &clean.camera[fr.clone()], height: s1.height, width: s1.width, previous: prev.as_deref() };
        let window = Window { values: &clean.sensor[wr.clone()], len: s1.window, columns: s1.sensor_dim };
        let (camera, sensor) = faults.apply(input, window, severity, rng);
        out.camera[fr].copy_from_slice(&camera.values);
        out.sensor[wr].copy_from_slice(&sensor.values);
    }
    out
}

/// The camera-faulty and sensor-faulty copies of a clean batch under the protocol's test faults.
pub fn test_copies(clean: &HostBatch, s1: &Stage1Config, cfg: &EvalConfig, rng: &mut impl Rng) -> [HostBatch; 2] {
    let none = vec![None; clean.len];
    let camera = Compound::single(Fault::Camera(cfg.camera_fault.0));
    let sensor = Compound::single(Fault::Sensor(cfg.sensor_fault.0));
    [
        corrupt(clean, s1, &camera, cfg.camera_fault.1, &none, rng),
        corrupt(clean, s1, &sensor, cfg.sensor_fault.1, &none, rng),
    ]
}

/// Runs the protocol.
pub fn evaluate(run: &Run, data: &Dataset, cfg: &EvalConfig) -> Result<EvalReport> {
    run.check_compatible(data)?;
    let (windows, subset) = eval_windows(run, data)?;
    if windows.count() == 0 {
        return Err(crate::Error::Empty(format!("{}: no full window to evaluate", data.path.display())));
    }
    let device = compute::device();
    let mc = &run.config.model;
    let s1 = &mc.stage1;
    let gate = run.config.gate.thresholds();
    let thresholds = cfg.threshold.map_or(gate, |t| gate.with_scores(t));
    let frame = 3 * s1.height * s1.width;
    let win = s1.window * s1.sensor_dim;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    // [copy kind][modality] sums: kinds 0 clean, 1 camera-faulty, 2 sensor-faulty, 3 camera
    // absent, 4 sensor absent
    const KINDS: usize = 5;
    let mut output: [[Sums; 2]; KINDS] = Default::default();
    let mut input: [[Sums; 2]; KINDS] = Default::default();
    let mut autoenc: [[Sums; 2]; KINDS] = Default::default();
    let mut ungated: [[Sums; 2]; KINDS] = Default::default();
    // the gate's margins (what the rankings rank) and flags of the clean and faulty copies
    let mut scores: Vec<([f32; 2], usize)> = Vec::new();
    let mut flags: Vec<[bool; 2]> = Vec::new();
    let mut absent_flagged = [0usize; 2];
    // per sensor column of the sensor-faulty copies: the faulty input, the output
    let mut columns = [ColumnSums::new(s1.sensor_dim), ColumnSums::new(s1.sensor_dim)];
    for chunk in windows.ends.chunks(cfg.batch_size.max(1)) {
        let clean = host_batch(data, chunk, s1.window, &run.config.normalization);
        let b = clean.len;
        let no_previous = vec![None; b];
        let single = |f: Fault| Compound::single(f);
        let [cam_faulty, sen_faulty] = test_copies(&clean, s1, cfg, &mut rng);
        let cam_absent = corrupt(&clean, s1, &single(Fault::Camera(CameraFault::Black)), 1.0, &no_previous, &mut rng);
        let sen_absent = corrupt(&clean, s1, &single(Fault::Sensor(SensorFault::Missing)), 1.0, &no_previous, &mut rng);
        let copies = HostBatch::concat(&[&clean, &cam_faulty, &sen_faulty, &cam_absent, &sen_absent]);
        let out = run.model.run(mc, &copies, thresholds, &device);
        for kind in 0..KINDS {
            for i in 0..b {
                let k = kind * b + i;
                let (cf, sf) = (k * frame..(k + 1) * frame, k * win..(k + 1) * win);
                let (cc, sc) = (&clean.camera[i * frame..(i + 1) * frame], &clean.sensor[i * win..(i + 1) * win]);
                output[kind][0].add(&out.inference.camera[cf.clone()], cc);
                output[kind][1].add(&out.inference.sensor[sf.clone()], sc);
                input[kind][0].add(&copies.camera[cf.clone()], cc);
                input[kind][1].add(&copies.sensor[sf.clone()], sc);
                autoenc[kind][0].add(&out.autoencoder_camera[cf.clone()], cc);
                autoenc[kind][1].add(&out.autoencoder_sensor[sf.clone()], sc);
                ungated[kind][0].add(&out.corrected_camera[cf], cc);
                ungated[kind][1].add(&out.corrected_sensor[sf.clone()], sc);
                if kind == 2 {
                    columns[0].add(&copies.sensor[sf.clone()], sc);
                    columns[1].add(&out.inference.sensor[sf.clone()], sc);
                }
                if kind < 3 {
                    scores.push((out.inference.margins[k], kind));
                    flags.push(out.inference.flags[k]);
                } else {
                    absent_flagged[kind - 3] += usize::from(out.inference.flags[k][kind - 3]);
                }
            }
        }
    }
    let faulty = |s: &[[Sums; 2]; KINDS]| Mse::new(s[1][0].mean(), s[2][1].mean());
    let all = |s: &[[Sums; 2]; KINDS], m: usize| {
        let sq: f64 = s[..3].iter().map(|k| k[m].sq).sum();
        let n: usize = s[..3].iter().map(|k| k[m].n).sum();
        sq / n.max(1) as f64
    };
    let detect = |m: usize, positive: usize| {
        let sc: Vec<f32> = scores.iter().map(|(s, _)| s[m]).collect();
        let labels: Vec<bool> = scores.iter().map(|(_, k)| *k == positive).collect();
        let flagged: Vec<bool> = flags.iter().map(|f| f[m]).collect();
        Detection::with_flags(&sc, &labels, &flagged)
    };
    // the sample's statistic is the larger of its modalities' margins: 0 where the gate starts
    // to flag it
    let sample_scores: Vec<f32> = scores.iter().map(|(s, _)| s[0].max(s[1])).collect();
    let sample_labels: Vec<bool> = scores.iter().map(|(_, k)| *k != 0).collect();
    let sample_flags: Vec<bool> = flags.iter().map(|f| f[0] || f[1]).collect();
    let clean_flagged = scores.iter().zip(&flags).filter(|((_, k), f)| *k == 0 && f.iter().any(|&f| f)).count();
    let clean_count = scores.iter().filter(|(_, k)| *k == 0).count();
    Ok(EvalReport {
        data: data.path.display().to_string(),
        subset: subset.into(),
        windows: windows.count(),
        thresholds,
        config: cfg.clone(),
        corrected_mse: faulty(&output),
        faulty_input_mse: faulty(&input),
        autoencoder_mse: faulty(&autoenc),
        ungated_mse: faulty(&ungated),
        healthy_mse: Mse::new(output[2][0].mean(), output[1][1].mean()),
        all_copies_mse: Mse::new(all(&output, 0), all(&output, 1)),
        clean_mse: Mse::new(output[0][0].mean(), output[0][1].mean()),
        detection: DetectionReport {
            camera: detect(0, 1),
            sensor: detect(1, 2),
            sample: Detection::with_flags(&sample_scores, &sample_labels, &sample_flags),
        },
        false_alarm_rate: clean_flagged as f64 / clean_count.max(1) as f64,
        missing_modality: [Modality::Camera, Modality::Sensor].map(|absent| {
            let m = usize::from(absent == Modality::Sensor);
            let kind = 3 + m;
            MissingModality {
                absent,
                zero_fill_mse: input[kind][m].mean(),
                autoencoder_mse: autoenc[kind][m].mean(),
                reconstructed_mse: ungated[kind][m].mean(),
                present_mse: output[kind][1 - m].mean(),
                flagged: absent_flagged[m] as f64 / windows.count().max(1) as f64,
            }
        }),
        sensor_columns: run
            .config
            .columns
            .iter()
            .zip(columns[0].means().into_iter().zip(columns[1].means()))
            .map(|(c, (faulty_input, corrected))| ColumnMse { name: c.name.clone(), faulty_input, corrected })
            .collect(),
    })
}

impl EvalReport {
    /// The report as a Markdown table, MSE × 10⁻² as in the paper.
    pub fn to_markdown(&self) -> String {
        let row = |name: &str, m: &Mse| {
            format!("| {name} | {:.3} | {:.3} | {:.3} |\n", m.camera * 100.0, m.sensor * 100.0, m.combined * 100.0)
        };
        let mut s = format!(
            "Evaluation of {} ({}, {} windows × 3 copies), thresholds {}\n\n",
            self.data, self.subset, self.windows, self.thresholds
        );
        s += "| reconstruction error, MSE × 10⁻² | camera | sensor | combined |\n|---|---|---|---|\n";
        s += &row("faulty input", &self.faulty_input_mse);
        s += &row("stage-1 autoencoder on faulty input", &self.autoencoder_mse);
        s += &row("MMSSL corrected, ungated", &self.ungated_mse);
        s += &row("**MMSSL corrected (gated)**", &self.corrected_mse);
        s += &row("MMSSL on the healthy modality", &self.healthy_mse);
        s += &row("MMSSL over all copies", &self.all_copies_mse);
        s += &row("MMSSL on clean input", &self.clean_mse);
        s += "\n| detection | AUROC | AUPR | F1 | precision | recall | FPR |\n|---|---|---|---|---|---|---|\n";
        let opt = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.4}"));
        for (name, d) in [
            ("camera", &self.detection.camera),
            ("sensor", &self.detection.sensor),
            ("sample (any fault)", &self.detection.sample),
        ] {
            s += &format!(
                "| {name} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
                opt(d.auroc),
                opt(d.aupr),
                d.f1,
                d.precision,
                d.recall,
                d.false_positive_rate
            );
        }
        s += &format!("\nFalse-alarm rate on clean copies: {:.4}\n", self.false_alarm_rate);
        s += "\n| missing modality, MSE × 10⁻² | zeros | stage-1 AE | **MMSSL reconstruction** | present modality | gate flagged it |\n|---|---|---|---|---|---|\n";
        for m in &self.missing_modality {
            let name = match m.absent {
                Modality::Camera => "camera absent",
                Modality::Sensor => "sensor absent",
            };
            s += &format!(
                "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                m.zero_fill_mse * 100.0,
                m.autoencoder_mse * 100.0,
                m.reconstructed_mse * 100.0,
                m.present_mse * 100.0,
                m.flagged
            );
        }
        s += "\n| sensor-faulty copies by column, MSE × 10⁻² | faulty input | **MMSSL corrected** |\n|---|---|---|\n";
        for c in &self.sensor_columns {
            s += &format!("| {} | {:.3} | {:.3} |\n", c.name, c.faulty_input * 100.0, c.corrected * 100.0);
        }
        s
    }
}
