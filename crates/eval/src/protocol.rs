//! The MMSSL paper's protocol for any correction method ([`Repair`]): MMSSL, its ablations and
//! the baselines are scored on the same copies of the same windows — clean, camera test fault,
//! sensor test fault — with the same seed.

use mmguard_data::{Dataset, MinMax, Windows};
use mmguard_model::compute;
use mmguard_model::{host_batch, HostBatch, Repair, Stage1Config};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use mmguard_faults::{Compound, Modality};

use crate::evaluate::{test_copies, ColumnSums, EvalConfig, Mse, Sums};
use crate::metrics::auroc;
use crate::sweep::Cells;

/// A method's scores under the protocol. MSE on the [0, 1] scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtocolResult {
    /// Windows evaluated (each as three copies).
    pub windows: usize,
    /// The method's output on the faulty modality: camera over camera-faulty copies, sensor over
    /// sensor-faulty copies (the paper's Table 1).
    pub output_mse: Mse,
    /// The faulty input itself, same copies.
    pub faulty_input_mse: Mse,
    /// The method's output on clean copies.
    pub clean_mse: Mse,
    /// AUROC of the method's camera detection statistic (camera-faulty against the other
    /// copies), then of its sensor statistic ([`mmguard_model::Inference::margins`]: a gated
    /// method's margins, a one-stage baseline's residual).
    pub auroc: [Option<f64>; 2],
    /// Method output samples per second (all copies, this machine).
    pub samples_per_s: f64,
    /// The method's output on the sensor-faulty copies, MSE per sensor column (empty in
    /// results stored before it was measured).
    #[serde(default)]
    pub sensor_columns: Vec<f64>,
}

/// Scores `method` on `windows` of `data`, scaled with `norm`, under `cfg`'s test faults.
pub fn protocol(
    method: &dyn Repair,
    data: &Dataset,
    windows: &Windows,
    norm: &MinMax,
    s1: &Stage1Config,
    cfg: &EvalConfig,
) -> ProtocolResult {
    let device = compute::device();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (frame, win) = (3 * s1.height * s1.width, s1.window * s1.sensor_dim);
    // [copy kind: clean, camera-faulty, sensor-faulty][camera, sensor]
    let mut output: [[Sums; 2]; 3] = Default::default();
    let mut input: [[Sums; 2]; 3] = Default::default();
    let mut scores: Vec<([f32; 2], usize)> = Vec::new();
    let mut columns = ColumnSums::new(s1.sensor_dim);
    let mut seconds = 0.0;
    for chunk in windows.ends.chunks(cfg.batch_size.max(1)) {
        let clean = host_batch(data, chunk, s1.window, norm);
        let [camera_faulty, sensor_faulty] = test_copies(&clean, s1, cfg, &mut rng);
        let copies = HostBatch::concat(&[&clean, &camera_faulty, &sensor_faulty]);
        let t = std::time::Instant::now();
        let out = method.repair(&copies, &device);
        seconds += t.elapsed().as_secs_f64();
        let b = clean.len;
        for (kind, (out_kind, in_kind)) in output.iter_mut().zip(input.iter_mut()).enumerate() {
            for i in 0..b {
                let k = kind * b + i;
                let (cc, sc) = (&clean.camera[i * frame..(i + 1) * frame], &clean.sensor[i * win..(i + 1) * win]);
                out_kind[0].add(&out.camera[k * frame..(k + 1) * frame], cc);
                out_kind[1].add(&out.sensor[k * win..(k + 1) * win], sc);
                in_kind[0].add(&copies.camera[k * frame..(k + 1) * frame], cc);
                in_kind[1].add(&copies.sensor[k * win..(k + 1) * win], sc);
                if kind == 2 {
                    columns.add(&out.sensor[k * win..(k + 1) * win], sc);
                }
                scores.push((out.margins[k], kind));
            }
        }
    }
    let detect = |m: usize| {
        let s: Vec<f32> = scores.iter().map(|(s, _)| s[m]).collect();
        let labels: Vec<bool> = scores.iter().map(|(_, kind)| *kind == m + 1).collect();
        auroc(&s, &labels)
    };
    let mse = |c: f64, s: f64| Mse { camera: c, sensor: s, combined: c + s };
    ProtocolResult {
        windows: windows.count(),
        output_mse: mse(output[1][0].mean(), output[2][1].mean()),
        faulty_input_mse: mse(input[1][0].mean(), input[2][1].mean()),
        clean_mse: mse(output[0][0].mean(), output[0][1].mean()),
        auroc: [detect(0), detect(1)],
        samples_per_s: scores.len() as f64 / seconds.max(1e-9),
        sensor_columns: columns.means(),
    }
}

/// A point of a method's severity curve: its output error on the modality a fault touches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The fault's name (`camera/noise`, parts joined by `+`).
    pub fault: String,
    /// The modality measured.
    pub modality: Modality,
    /// Severity in [0, 1].
    pub severity: f32,
    /// MSE of the faulty input.
    pub faulty_input_mse: f64,
    /// MSE of the method's output.
    pub output_mse: f64,
}

/// Severity curves of `method`: every fault of `specs` at every severity on `windows`, each
/// (fault, severity) with its own generator seeded from `seed` and its position, so every
/// method sees the same faulty copies.
#[allow(clippy::too_many_arguments)]
pub fn severity_curves(
    method: &dyn Repair,
    data: &Dataset,
    windows: &Windows,
    norm: &MinMax,
    s1: &Stage1Config,
    specs: &[Compound],
    severities: &[f32],
    seed: u64,
) -> Vec<CurvePoint> {
    let device = compute::device();
    let (frame, win) = (3 * s1.height * s1.width, s1.window * s1.sensor_dim);
    let mut cells = Cells::new(specs, severities, seed);
    // [cell][camera, sensor][input, output]
    let mut sums = vec![[[Sums::default(), Sums::default()], [Sums::default(), Sums::default()]]; cells.cells.len()];
    for chunk in windows.ends.chunks(64) {
        let clean = host_batch(data, chunk, s1.window, norm);
        cells.corrupt_each(data, chunk, &clean, s1, |k, _, faulty| {
            let out = method.repair(faulty, &device);
            for i in 0..clean.len {
                let (fr, wr) = (i * frame..(i + 1) * frame, i * win..(i + 1) * win);
                let [cam, sen] = &mut sums[k];
                cam[0].add(&faulty.camera[fr.clone()], &clean.camera[fr.clone()]);
                cam[1].add(&out.camera[fr.clone()], &clean.camera[fr]);
                sen[0].add(&faulty.sensor[wr.clone()], &clean.sensor[wr.clone()]);
                sen[1].add(&out.sensor[wr.clone()], &clean.sensor[wr]);
            }
        });
    }
    let mut points = Vec::new();
    for (&(spec, severity), s) in cells.cells.iter().zip(&sums) {
        for modality in spec.modalities() {
            let m = usize::from(modality == Modality::Sensor);
            points.push(CurvePoint {
                fault: spec.name(),
                modality,
                severity,
                faulty_input_mse: s[m][0].mean(),
                output_mse: s[m][1].mean(),
            });
        }
    }
    points
}

/// Which faults at which severities a per-method severity curve runs (the bench's curves, the
/// downstream study's faulty copies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurveConfig {
    /// Faults (catalogue names, compounds with `+`).
    pub faults: Vec<String>,
    /// Severities in [0, 1].
    pub severities: Vec<f32>,
    /// Seed of the faulty copies.
    pub seed: u64,
}

impl Default for CurveConfig {
    /// Three camera and three sensor faults of the training mix at three severities: the curves
    /// cost every method the same 18 passes over the test windows.
    fn default() -> Self {
        let faults = ["camera/noise", "camera/blur", "camera/occlusion", "sensor/gain", "sensor/drift", "sensor/stuck"]
            .map(String::from)
            .to_vec();
        Self { faults, severities: vec![0.25, 0.5, 1.0], seed: 0 }
    }
}

impl CurveConfig {
    /// The faults, parsed.
    pub fn specs(&self) -> std::result::Result<Vec<Compound>, mmguard_faults::UnknownFault> {
        self.faults.iter().map(|n| Compound::from_name(n)).collect()
    }
}
