//! Robustness curves: every fault of the catalogue (or a compound of several) at several
//! severities, on the same test windows (MultiBench-style), as a table, CSV and plots.

use mmguard_model::compute;
use std::path::{Path, PathBuf};

use mmguard_data::Dataset;
use mmguard_faults::{Compound, Fault, Modality};
use mmguard_model::{host_batch, HostBatch, Run, Stage1Config};
use mmguard_plot::{panels_png, Grid, Panel, Series};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::evaluate::{corrupt, eval_windows};
use crate::metrics::auroc;
use crate::Result;

/// One fault at one severity, on one modality it touches (a compound on both modalities has a
/// row for each).
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    /// `camera/<name>`, `sensor/<name>`, or parts joined by `+`.
    pub fault: String,
    /// The modality this row measures.
    pub modality: Modality,
    /// Severity in [0, 1].
    pub severity: f32,
    /// MSE of the faulty input against the clean one.
    pub faulty_input_mse: f64,
    /// MSE of the stage-1 autoencoder on the faulty input.
    pub autoencoder_mse: f64,
    /// MSE of the gated MMSSL output.
    pub corrected_mse: f64,
    /// AUROC of the modality's gate margin ([`mmguard_model::Thresholds::margins`]: its score,
    /// and for the sensor its novelty), faulty copies against clean copies.
    pub auroc: Option<f64>,
    /// Share of faulty copies whose modality the gate flagged.
    pub flagged: f64,
    /// Share of faulty copies the fault changed measurably: some element of the modality by
    /// more than the sweep's `min_level` (on the [0, 1] scale, a share of its column's or
    /// pixel's range). A weak fault can leave a window as it was (saturation clips only the
    /// readings above its limit): those copies are clean data, not a miss.
    pub changed: f64,
    /// [`SweepRow::auroc`] over the measurably changed copies only; `None` where none changed.
    pub auroc_changed: Option<f64>,
    /// Whether every part of the fault was in the run's stage-2 training mix; `None` for a run
    /// that does not record its mix. A run trained with `--hold-out` shows detection on kinds
    /// it never saw (`false`) beside the kinds it saw.
    pub trained: Option<bool>,
}

/// The faults a run's stage 2 trained on, read from the training configuration it saved
/// (`training.stage2.faults.{camera,sensor}`, lists of [name, weight]).
pub fn trained_faults(run: &Run) -> Option<Vec<Fault>> {
    let faults = run.config.training.get("stage2")?.get("faults")?;
    let mut out = Vec::new();
    for modality in ["camera", "sensor"] {
        for item in faults.get(modality)?.as_array()? {
            let name = item.get(0)?.as_str()?;
            out.push(Fault::from_name(&format!("{modality}/{name}")).ok()?);
        }
    }
    Some(out)
}

#[derive(Default, Clone)]
struct Acc {
    sq: [f64; 3],
    n: usize,
    margins: Vec<f32>,
    /// Per faulty copy: whether it changed by more than the sweep's `min_level`.
    changed: Vec<bool>,
    flagged: usize,
}

/// Frames back to the frame a frozen camera keeps showing.
const FROZEN_LAG: usize = 5;

/// Every (fault, severity) pair of a sweep with its own generator, seeded from the sweep's seed
/// and the pair's position: a cell's faulty copies do not depend on which other cells run, and
/// the robustness sweep and the per-method severity curves draw the same ones.
pub struct Cells<'a> {
    /// The pairs, faults outer, severities inner.
    pub cells: Vec<(&'a Compound, f32)>,
    rngs: Vec<ChaCha8Rng>,
}

impl<'a> Cells<'a> {
    /// The cells of `specs` × `severities`, seeded from `seed`.
    pub fn new(specs: &'a [Compound], severities: &[f32], seed: u64) -> Self {
        let cells: Vec<(&Compound, f32)> = specs.iter().flat_map(|f| severities.iter().map(move |&s| (f, s))).collect();
        let rngs = (0..cells.len()).map(|k| ChaCha8Rng::seed_from_u64(seed ^ ((k as u64) << 32))).collect();
        Self { cells, rngs }
    }

    /// Calls `f(k, fault, faulty)` with the faulty copy of `clean` (the windows ending at
    /// `ends`) of every cell k in turn.
    pub fn corrupt_each(
        &mut self,
        data: &Dataset,
        ends: &[usize],
        clean: &HostBatch,
        s1: &Stage1Config,
        mut f: impl FnMut(usize, &Compound, &HostBatch),
    ) {
        let previous: Vec<Option<Vec<f32>>> = ends.iter().map(|&i| data.earlier_frame(i, FROZEN_LAG)).collect();
        for (k, (&(spec, severity), rng)) in self.cells.iter().zip(&mut self.rngs).enumerate() {
            f(k, spec, &corrupt(clean, s1, spec, severity, &previous, rng));
        }
    }
}

fn sq_err(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum()
}

/// Whether some element of `faulty` differs from `clean` by more than `min_level`; a NaN
/// reading counts as changed.
fn changed(faulty: &[f32], clean: &[f32], min_level: f32) -> bool {
    faulty.iter().zip(clean).any(|(f, c)| {
        let d = (f - c).abs();
        d.is_nan() || d > min_level
    })
}

/// Runs every fault spec at every severity over the evaluation windows of `data` (the run's
/// test episodes for its own training file). Each (spec, severity) has its own seeded
/// generator, so a row does not depend on which others are run. `min_level`: the change below
/// which a faulty copy counts as unchanged ([`SweepRow::changed`]).
pub fn sweep(
    run: &Run,
    data: &Dataset,
    specs: &[Compound],
    severities: &[f32],
    seed: u64,
    min_level: f32,
) -> Result<Vec<SweepRow>> {
    run.check_compatible(data)?;
    let (windows, _) = eval_windows(run, data)?;
    let device = compute::device();
    let mc = &run.config.model;
    let s1 = &mc.stage1;
    let thresholds = run.config.gate.thresholds();
    let (frame, win) = (3 * s1.height * s1.width, s1.window * s1.sensor_dim);
    let mut cells = Cells::new(specs, severities, seed);
    // [cell][modality]
    let mut acc = vec![[Acc::default(), Acc::default()]; cells.cells.len()];
    let mut clean_margins: [Vec<f32>; 2] = Default::default();
    for chunk in windows.ends.chunks(64) {
        let clean = host_batch(data, chunk, s1.window, &run.config.normalization);
        let base = run.model.infer(mc, &clean, thresholds, &device);
        for s in &base.margins {
            clean_margins[0].push(s[0]);
            clean_margins[1].push(s[1]);
        }
        cells.corrupt_each(data, chunk, &clean, s1, |k, spec, faulty| {
            let out = run.model.run(mc, faulty, thresholds, &device);
            for modality in spec.modalities() {
                let m = usize::from(modality == Modality::Sensor);
                let a = &mut acc[k][m];
                for i in 0..clean.len {
                    let (truth, input, ae, gated) = if m == 0 {
                        let r = i * frame..(i + 1) * frame;
                        (
                            &clean.camera[r.clone()],
                            &faulty.camera[r.clone()],
                            &out.autoencoder_camera[r.clone()],
                            &out.inference.camera[r],
                        )
                    } else {
                        let r = i * win..(i + 1) * win;
                        (
                            &clean.sensor[r.clone()],
                            &faulty.sensor[r.clone()],
                            &out.autoencoder_sensor[r.clone()],
                            &out.inference.sensor[r],
                        )
                    };
                    a.sq[0] += sq_err(input, truth);
                    a.sq[1] += sq_err(ae, truth);
                    a.sq[2] += sq_err(gated, truth);
                    a.n += truth.len();
                    a.margins.push(out.inference.margins[i][m]);
                    a.changed.push(changed(input, truth, min_level));
                    a.flagged += usize::from(out.inference.flags[i][m]);
                }
            }
        });
    }
    let trained = trained_faults(run);
    let mut rows = Vec::new();
    for (&(spec, severity), acc) in cells.cells.iter().zip(acc) {
        for modality in spec.modalities() {
            let m = usize::from(modality == Modality::Sensor);
            let a = &acc[m];
            let against_clean = |faulty: Vec<f32>| {
                let labels: Vec<bool> = (0..faulty.len() + clean_margins[m].len()).map(|i| i < faulty.len()).collect();
                let scores: Vec<f32> = faulty.into_iter().chain(clean_margins[m].iter().copied()).collect();
                auroc(&scores, &labels)
            };
            let moved: Vec<f32> = a.margins.iter().zip(&a.changed).filter(|(_, &c)| c).map(|(&s, _)| s).collect();
            let n = a.n.max(1) as f64;
            rows.push(SweepRow {
                fault: spec.name(),
                modality,
                severity,
                faulty_input_mse: a.sq[0] / n,
                autoencoder_mse: a.sq[1] / n,
                corrected_mse: a.sq[2] / n,
                flagged: a.flagged as f64 / a.margins.len().max(1) as f64,
                changed: moved.len() as f64 / a.margins.len().max(1) as f64,
                auroc_changed: if moved.is_empty() { None } else { against_clean(moved) },
                auroc: against_clean(a.margins.clone()),
                trained: trained.as_ref().map(|t| spec.faults.iter().all(|f| t.contains(f))),
            });
        }
    }
    Ok(rows)
}

fn modality_name(m: Modality) -> &'static str {
    match m {
        Modality::Camera => "camera",
        Modality::Sensor => "sensor",
    }
}

/// The rows as CSV, MSE on the [0, 1] scale.
pub fn to_csv(rows: &[SweepRow]) -> String {
    let mut s =
        String::from("fault,modality,severity,faulty_input_mse,autoencoder_mse,corrected_mse,auroc,flagged,changed,auroc_changed,trained\n");
    for r in rows {
        let auroc = r.auroc.map_or(String::new(), |v| format!("{v:.4}"));
        let auroc_changed = r.auroc_changed.map_or(String::new(), |v| format!("{v:.4}"));
        let trained = r.trained.map_or(String::new(), |t| t.to_string());
        s += &format!(
            "{},{},{},{:.6e},{:.6e},{:.6e},{auroc},{:.4},{:.4},{auroc_changed},{trained}\n",
            r.fault,
            modality_name(r.modality),
            r.severity,
            r.faulty_input_mse,
            r.autoencoder_mse,
            r.corrected_mse,
            r.flagged,
            r.changed
        );
    }
    s
}

/// The curves of `rows`, one panel per (fault, modality): error against severity (faulty
/// input, stage-1 autoencoder, MMSSL; log scale) and detection against severity (AUROC, share
/// flagged, and share of copies the fault changed measurably). Writes `robustness_error.png` and `robustness_detection.png` into `dir`;
/// returns their paths.
pub fn write_curves(rows: &[SweepRow], dir: &Path) -> std::result::Result<[PathBuf; 2], mmguard_plot::Error> {
    // a fault whose error is never finite once it acts (NaN drop-out: caught by rule checks)
    // has no curve
    let mut keys: Vec<(String, Modality)> = Vec::new();
    for r in rows.iter().filter(|r| r.severity > 0.0 && r.faulty_input_mse.is_finite()) {
        if !keys.contains(&(r.fault.clone(), r.modality)) {
            keys.push((r.fault.clone(), r.modality));
        }
    }
    let title = |key: &(String, Modality)| {
        if key.0.contains('+') {
            format!("{} [{}]", key.0, modality_name(key.1))
        } else {
            key.0.clone()
        }
    };
    let line = |label: &str, key: &(String, Modality), y: &dyn Fn(&SweepRow) -> f64| Series {
        label: label.into(),
        points: rows
            .iter()
            .filter(|r| r.fault == key.0 && r.modality == key.1)
            .map(|r| (f64::from(r.severity), y(r)))
            .collect(),
    };
    let error: Vec<Panel> = keys
        .iter()
        .map(|k| Panel {
            title: title(k),
            x_label: "severity".into(),
            y_label: "MSE".into(),
            log_y: true,
            y_range: None,
            series: vec![
                line("faulty input", k, &|r| r.faulty_input_mse),
                line("stage-1 AE", k, &|r| r.autoencoder_mse),
                line("MMSSL", k, &|r| r.corrected_mse),
            ],
        })
        .collect();
    let detection: Vec<Panel> = keys
        .iter()
        .map(|k| Panel {
            title: title(k),
            x_label: "severity".into(),
            y_label: "score".into(),
            log_y: false,
            y_range: Some((0.0, 1.05)),
            series: vec![
                line("AUROC", k, &|r| r.auroc.unwrap_or(f64::NAN)),
                line("flagged", k, &|r| r.flagged),
                line("changed measurably", k, &|r| r.changed),
            ],
        })
        .collect();
    let paths = [dir.join("robustness_error.png"), dir.join("robustness_detection.png")];
    let grid = Grid { columns: 6, panel_width: 320, panel_height: 230 };
    panels_png(&paths[0], &error, grid)?;
    panels_png(&paths[1], &detection, grid)?;
    Ok(paths)
}
