//! The report: mean ± std per method in the paper's format, the paper's Table 1 beside it, and
//! the relative improvement of MMSSL over the best baseline as measured here.

use std::fmt::Write as _;
use std::path::Path;

use mmguard_plot::{bars_png, panels_png, Bar, BarPanel, Grid, Panel, Series};
use serde::Serialize;

use mmguard_eval::{CurvePoint, Stat};
use mmguard_faults::Modality;

use mmguard_robust::HeadResult;

use crate::run::{run_dir, SeedResult};
use crate::{io, Method, Result};

/// The MMSSL paper's Table 1 (MuJoCo robot data, MSE × 10⁻²): camera, sensor, combined. Quoted
/// for comparison, not measured here.
pub const PAPER_TABLE: [(&str, f64, f64, f64); 6] = [
    ("MMAE", 0.145, 1.453, 1.599),
    ("MMFR", 0.142, 1.318, 1.461),
    ("MMCF", 0.154, 0.894, 1.048),
    ("MMGAN", 0.134, 0.894, 0.950),
    ("MMUGAN", 0.125, 0.779, 0.835),
    ("MMSSL", 0.118, 0.405, 0.523),
];

/// One method over its seeds. MSE on the [0, 1] scale.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The method.
    pub method: Method,
    /// Seeds run.
    pub seeds: usize,
    /// Camera MSE on camera-faulty copies.
    pub camera: Stat,
    /// Sensor MSE on sensor-faulty copies.
    pub sensor: Stat,
    /// Camera + sensor.
    pub combined: Stat,
    /// AUROC of the camera and sensor detection statistics (MMSSL's gate margins — its scores,
    /// and the sensor's novelty where it has one — the reconstruction residual for the methods
    /// without a detector).
    pub auroc: [Option<Stat>; 2],
    /// Training wall time per seed, seconds.
    pub train_seconds: Stat,
    /// Training samples per second.
    pub train_samples_per_s: Stat,
    /// Inference samples per second under the protocol.
    pub infer_samples_per_s: Stat,
}

/// Groups results by method, in `methods` order.
pub fn summarize(methods: &[Method], results: &[SeedResult]) -> Vec<Summary> {
    methods
        .iter()
        .map(|&method| {
            let rs: Vec<&SeedResult> = results.iter().filter(|r| r.method == method).collect();
            let stat = |f: &dyn Fn(&SeedResult) -> f64| Stat::of(&rs.iter().map(|r| f(r)).collect::<Vec<_>>());
            let auroc = |m: usize| {
                let v: Vec<f64> = rs.iter().filter_map(|r| r.result.auroc[m]).collect();
                (v.len() == rs.len() && !v.is_empty()).then(|| Stat::of(&v))
            };
            Summary {
                method,
                seeds: rs.len(),
                camera: stat(&|r| r.result.output_mse.camera),
                sensor: stat(&|r| r.result.output_mse.sensor),
                combined: stat(&|r| r.result.output_mse.combined),
                auroc: [auroc(0), auroc(1)],
                train_seconds: stat(&|r| r.train_seconds),
                train_samples_per_s: stat(&|r| r.train_samples_per_s),
                infer_samples_per_s: stat(&|r| r.result.samples_per_s),
            }
        })
        .collect()
}

fn pm(s: Stat) -> String {
    format!("{:.3} ± {:.3}", s.mean * 100.0, s.std * 100.0)
}

/// The Markdown report.
fn markdown(summaries: &[Summary], results: &[SeedResult], data: &str, wall_seconds: f64) -> String {
    let mut s = String::from("# mmguard bench\n\n");
    let _ = writeln!(
        s,
        "Data: {data}. Every method trained on the same split with the same training faults, batch size, learning rate and epoch budget; scored on the same faulty copies of the same test windows. {} runs; {:.0} s of training in all (sum over runs); this invocation took {:.0} s (finished runs are reused, not retrained).\n",
        results.len(),
        results.iter().map(|r| r.train_seconds).sum::<f64>(),
        wall_seconds
    );
    s += "## Reconstruction error on the faulty modality, MSE × 10⁻² (mean ± std over seeds)\n\n";
    s += "| method | seeds | camera | sensor | combined |\n|---|---|---|---|---|\n";
    for m in summaries {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            m.method.label(),
            m.seeds,
            pm(m.camera),
            pm(m.sensor),
            pm(m.combined)
        );
    }
    if let Some(x) = results.first() {
        let f = &x.result.faulty_input_mse;
        let _ = writeln!(
            s,
            "| faulty input (reference) | – | {:.3} | {:.3} | {:.3} |",
            f.camera * 100.0,
            f.sensor * 100.0,
            f.combined * 100.0
        );
    }
    s += &comparison(summaries);
    s += "\n## Detection, AUROC (mean over seeds)\n\n| method | camera | sensor | score |\n|---|---|---|---|\n";
    for m in summaries {
        let a = |k: usize| m.auroc[k].map_or("–".to_string(), |v| format!("{:.4}", v.mean));
        let kind = match m.method {
            Method::MmsslNoGate => "detector (ignored by the output)",
            m if m.detects() => "detector",
            _ => "reconstruction residual (no detector)",
        };
        let _ = writeln!(s, "| {} | {} | {} | {kind} |", m.method.label(), a(0), a(1));
    }
    s += "\n## Cost on this machine\n\n| method | training time per seed, s | training samples/s | inference samples/s |\n|---|---|---|---|\n";
    for m in summaries {
        let _ = writeln!(
            s,
            "| {} | {:.0} ± {:.0} | {:.0} | {:.0} |",
            m.method.label(),
            m.train_seconds.mean,
            m.train_seconds.std,
            m.train_samples_per_s.mean,
            m.infer_samples_per_s.mean
        );
    }
    s += &curves_table(results);
    s += "\n## The MMSSL paper's Table 1 (quoted, not measured here: MuJoCo robot data, other scale)\n\n| method | camera | sensor | combined |\n|---|---|---|---|\n";
    for (name, c, se, co) in PAPER_TABLE {
        let _ = writeln!(s, "| {name} | {c:.3} | {se:.3} | {co:.3} |");
    }
    s += "\nThe paper reports MMSSL's combined error 37 % below its best baseline (MMUGAN).\n";
    s
}

/// The (fault, modality) keys of the seed-0 severity curves, in the order measured.
fn curve_keys(results: &[SeedResult]) -> Vec<(String, Modality)> {
    let mut keys: Vec<(String, Modality)> = Vec::new();
    for p in results.iter().flat_map(|r| &r.curves) {
        if !keys.contains(&(p.fault.clone(), p.modality)) {
            keys.push((p.fault.clone(), p.modality));
        }
    }
    keys
}

/// Output MSE at the highest severity of each curve, per method (seed 0).
fn curves_table(results: &[SeedResult]) -> String {
    let keys = curve_keys(results);
    let with_curves: Vec<&SeedResult> = results.iter().filter(|r| !r.curves.is_empty()).collect();
    let Some(first) = with_curves.first() else {
        return String::new();
    };
    let top = first.curves.iter().map(|p| p.severity).fold(0.0f32, f32::max);
    let mut s = format!(
        "\n## Severity curves (seed 0; `curves.png`): MSE × 10⁻² of the faulty modality at severity {top}\n\n| fault | faulty input |"
    );
    for r in &with_curves {
        let _ = write!(s, " {} |", r.method.label());
    }
    s += "\n|---|---|";
    s += &"---|".repeat(with_curves.len());
    s += "\n";
    for (fault, modality) in &keys {
        let at = |r: &SeedResult| {
            r.curves.iter().find(|p| &p.fault == fault && p.modality == *modality && p.severity == top).cloned()
        };
        let input = at(first).map_or("–".into(), |p| format!("{:.3}", p.faulty_input_mse * 100.0));
        let _ = write!(s, "| {fault} | {input} |");
        for r in &with_curves {
            let v = at(r).map_or("–".into(), |p| format!("{:.3}", p.output_mse * 100.0));
            let _ = write!(s, " {v} |");
        }
        s += "\n";
    }
    s
}

/// One panel per curve: the faulty input and every method's output against severity.
fn curve_panels(results: &[SeedResult]) -> Vec<Panel> {
    let with_curves: Vec<&SeedResult> = results.iter().filter(|r| !r.curves.is_empty()).collect();
    curve_keys(results)
        .into_iter()
        .map(|(fault, modality)| {
            let points = |r: &SeedResult, y: fn(&CurvePoint) -> f64| -> Vec<(f64, f64)> {
                r.curves
                    .iter()
                    .filter(|p| p.fault == fault && p.modality == modality)
                    .map(|p| (f64::from(p.severity), y(p)))
                    .collect()
            };
            let mut series =
                vec![Series { label: "faulty input".into(), points: points(with_curves[0], |p| p.faulty_input_mse) }];
            series.extend(
                with_curves
                    .iter()
                    .map(|r| Series { label: r.method.label().into(), points: points(r, |p| p.output_mse) }),
            );
            Panel {
                title: fault,
                x_label: "severity".into(),
                y_label: "MSE".into(),
                log_y: true,
                y_range: None,
                series,
            }
        })
        .collect()
}

/// MMSSL against the best baseline, column by column, as measured.
fn comparison(summaries: &[Summary]) -> String {
    let Some(mmssl) = summaries.iter().find(|m| m.method == Method::Mmssl) else {
        return String::new();
    };
    let baselines: Vec<&Summary> =
        summaries.iter().filter(|m| m.method != Method::Mmssl && !m.method.is_ablation()).collect();
    let mut s = String::from("\n");
    for (name, get) in [
        ("camera", (|m: &Summary| m.camera.mean) as fn(&Summary) -> f64),
        ("sensor", |m: &Summary| m.sensor.mean),
        ("combined", |m: &Summary| m.combined.mean),
    ] {
        let Some(best) = baselines.iter().min_by(|a, b| get(a).total_cmp(&get(b))) else {
            break;
        };
        let (ours, theirs) = (get(mmssl), get(best));
        let change = (theirs - ours) / theirs * 100.0;
        let verdict = if ours < theirs {
            format!("MMSSL is {change:.1} % below the best baseline ({})", best.method.label())
        } else {
            format!("MMSSL does **not** beat the best baseline ({}): {:.1} % above it", best.method.label(), -change)
        };
        let _ = writeln!(s, "* {name}: {verdict} ({:.3} vs {:.3} × 10⁻²).", ours * 100.0, theirs * 100.0);
    }
    for a in summaries.iter().filter(|m| m.method.is_ablation()) {
        let change = (a.combined.mean - mmssl.combined.mean) / mmssl.combined.mean * 100.0;
        let _ = writeln!(
            s,
            "* ablation {}: combined {:.3} against MMSSL's {:.3} × 10⁻² ({change:+.1} %).",
            a.method.label(),
            a.combined.mean * 100.0,
            mmssl.combined.mean * 100.0
        );
    }
    s
}

/// Validation loss per epoch of seed 0 of each method, from its `train_log.csv`.
fn training_panels(out: &Path, methods: &[Method]) -> Vec<Panel> {
    methods
        .iter()
        .filter_map(|&m| {
            let text = std::fs::read_to_string(run_dir(out, m, 0).join(mmguard_model::LOG_FILE)).ok()?;
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next()?.split(',').collect();
            let col = |name: &str| header.iter().position(|h| *h == name);
            let (stage, val) = (col("stage")?, col("val_loss")?);
            let mut series: Vec<Series> = Vec::new();
            for (k, line) in lines.enumerate() {
                let f: Vec<&str> = line.split(',').collect();
                let (Some(name), Some(v)) = (f.get(stage), f.get(val).and_then(|v| v.parse::<f64>().ok())) else {
                    continue;
                };
                if series.last().is_none_or(|s| s.label != *name) {
                    series.push(Series { label: (*name).into(), points: Vec::new() });
                }
                series.last_mut().expect("just pushed").points.push(((k + 1) as f64, v));
            }
            Some(Panel {
                title: format!("{} (seed 0)", m.label()),
                x_label: "epoch".into(),
                y_label: "validation loss".into(),
                log_y: true,
                y_range: None,
                series,
            })
        })
        .collect()
}

/// Writes `report.md`, `results.csv`, `results.json`, `errors.png`, `curves.png` and
/// `training.png` into
/// `out`; returns the Markdown.
pub fn write_report(
    out: &Path,
    methods: &[Method],
    results: &[SeedResult],
    data: &str,
    wall_seconds: f64,
) -> Result<String> {
    let summaries = summarize(methods, results);
    let md = markdown(&summaries, results, data, wall_seconds);
    let path = out.join("report.md");
    std::fs::write(&path, &md).map_err(io(&path))?;
    let mut csv = String::from(
        "method,seeds,camera_mean,camera_std,sensor_mean,sensor_std,combined_mean,combined_std,auroc_camera,auroc_sensor,train_seconds,train_samples_per_s,infer_samples_per_s\n",
    );
    for m in &summaries {
        let a = |k: usize| m.auroc[k].map_or(String::new(), |v| format!("{:.4}", v.mean));
        let _ = writeln!(
            csv,
            "{},{},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{:.6e},{},{},{:.1},{:.1},{:.1}",
            m.method.name(),
            m.seeds,
            m.camera.mean,
            m.camera.std,
            m.sensor.mean,
            m.sensor.std,
            m.combined.mean,
            m.combined.std,
            a(0),
            a(1),
            m.train_seconds.mean,
            m.train_samples_per_s.mean,
            m.infer_samples_per_s.mean
        );
    }
    let path = out.join("results.csv");
    std::fs::write(&path, csv).map_err(io(&path))?;
    let path = out.join("results.json");
    let json = serde_json::json!({ "summary": summaries, "runs": results, "paper_table_1": PAPER_TABLE });
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("serialises")).map_err(io(&path))?;
    // MMSSL against the baselines in the first row, against its ablations in the second: a
    // failed ablation would otherwise set the scale for everything
    let row = |ablations: bool| -> Vec<&Summary> {
        summaries.iter().filter(|m| m.method == Method::Mmssl || m.method.is_ablation() == ablations).collect()
    };
    let mut rows = vec![row(false)];
    if summaries.iter().any(|m| m.method.is_ablation()) {
        rows.push(row(true));
    }
    rows.retain(|r| !r.is_empty());
    let bars = |title: &str, row: &[&Summary], get: fn(&Summary) -> Stat| BarPanel {
        title: title.into(),
        y_label: "MSE × 10⁻²".into(),
        bars: row
            .iter()
            .map(|m| Bar { label: m.method.short_label().into(), mean: get(m).mean * 100.0, std: get(m).std * 100.0 })
            .collect(),
    };
    let panels: Vec<BarPanel> = rows
        .iter()
        .flat_map(|row| {
            [
                bars("camera", row, |m| m.camera),
                bars("sensor", row, |m| m.sensor),
                bars("combined", row, |m| m.combined),
            ]
        })
        .collect();
    if !panels.is_empty() {
        bars_png(&out.join("errors.png"), &panels, Grid { columns: 3, panel_width: 420, panel_height: 280 })?;
    }
    let curves = curve_panels(results);
    if !curves.is_empty() {
        panels_png(&out.join("curves.png"), &curves, Grid { columns: 3, panel_width: 420, panel_height: 320 })?;
    }
    let training = training_panels(out, methods);
    if !training.is_empty() {
        panels_png(&out.join("training.png"), &training, Grid { columns: 3, panel_width: 360, panel_height: 260 })?;
    }
    Ok(md)
}

/// Writes the downstream heads' report into `out/heads/` and appends it to `out/report.md`
/// (headings one level down); returns the appended Markdown.
pub fn write_heads_report(out: &Path, results: &[HeadResult], task: &str, source: &str) -> Result<String> {
    let md = mmguard_robust::write_report(&out.join("heads"), results, task, source)?;
    let section = format!(
        "\n## Downstream heads on each seed's MMSSL encoders (`heads/`)\n\n{}",
        md.lines()
            .skip(1)
            .map(|l| if l.starts_with('#') { format!("#{l}") } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n")
    );
    let path = out.join("report.md");
    let mut text = std::fs::read_to_string(&path).map_err(io(&path))?;
    text.push_str(&section);
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(section)
}
