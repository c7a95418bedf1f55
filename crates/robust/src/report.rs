//! The study's report: Markdown tables (mean ± std over seeds) and two charts.

use std::fmt::Write as _;
use std::path::Path;

use mmguard_eval::Stat;
use mmguard_plot::{bars_png, panels_png, Bar, BarPanel, Grid, Panel, Series};

use crate::study::{HeadMethod, HeadResult, Input, Route};
use crate::{Error, Result};

/// Accuracy, macro-F1 and MAE of one condition over seeds.
#[derive(Debug, Clone, Copy)]
struct Cell {
    accuracy: Stat,
    f1: Stat,
    mae: Stat,
}

fn cell(results: &[&HeadResult], input: &Input, route: Route) -> Option<Cell> {
    let pick = |f: &dyn Fn(&crate::score::TaskScore) -> f64| -> Vec<f64> {
        results
            .iter()
            .filter_map(|r| r.scores.iter().find(|s| &s.input == input && s.route == route).map(|s| f(&s.score)))
            .collect()
    };
    let acc = pick(&|s| s.accuracy);
    (!acc.is_empty()).then(|| Cell {
        accuracy: Stat::of(&acc),
        f1: Stat::of(&pick(&|s| s.macro_f1)),
        mae: Stat::of(&pick(&|s| s.mae)),
    })
}

fn pm(s: Stat) -> String {
    format!("{:.3} ± {:.3}", s.mean, s.std)
}

fn group(results: &[HeadResult], method: HeadMethod, fraction: f64) -> Vec<&HeadResult> {
    results.iter().filter(|r| r.method == method && r.label_fraction == fraction).collect()
}

/// The label shares the semi-supervised heads ran at, ascending.
fn label_fractions(results: &[HeadResult]) -> Vec<f64> {
    let mut f: Vec<f64> = results.iter().filter(|r| r.method.semi_supervised()).map(|r| r.label_fraction).collect();
    f.sort_by(f64::total_cmp);
    f.dedup();
    f
}

fn methods(results: &[HeadResult]) -> Vec<HeadMethod> {
    HeadMethod::ALL.into_iter().chain(HeadMethod::EXTRA).filter(|m| results.iter().any(|r| r.method == *m)).collect()
}

/// Writes `report.md`, `missing.png` and `faults.png` into `dir`; returns the Markdown.
pub fn write_report(dir: &Path, results: &[HeadResult], task: &str, source: &str) -> Result<String> {
    let mut md = String::new();
    let seeds = results.iter().map(|r| r.seed).max().map_or(0, |s| s + 1);
    let _ = writeln!(md, "# Downstream heads on frozen MMSSL encoders\n");
    let majority = results.first().map_or(0.0, |r| r.majority_share);
    let _ = writeln!(
        md,
        "{source}; task: {task}; mean ± std over {seeds} seed(s); MAE in the column's unit; always answering \
         the most common test class scores {majority:.3}.\n"
    );
    let _ = writeln!(md, "## Missing modality (all labels)\n");
    let _ = writeln!(md, "| head | accuracy | camera missing | sensor missing | macro-F1 | camera missing | sensor missing | MAE | camera missing | sensor missing | train s |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    let inputs = [Input::Clean, Input::CameraMissing, Input::SensorMissing];
    for m in methods(results) {
        let g = group(results, m, 1.0);
        let cells: Vec<Cell> = inputs.iter().filter_map(|i| cell(&g, i, Route::Direct)).collect();
        if cells.len() != 3 {
            continue;
        }
        let secs = Stat::of(&g.iter().map(|r| r.train_seconds).collect::<Vec<_>>());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            m.name(),
            pm(cells[0].accuracy),
            pm(cells[1].accuracy),
            pm(cells[2].accuracy),
            pm(cells[0].f1),
            pm(cells[1].f1),
            pm(cells[2].f1),
            pm(cells[0].mae),
            pm(cells[1].mae),
            pm(cells[2].mae),
            secs.mean
        );
    }
    let fractions = label_fractions(results);
    if !fractions.is_empty() {
        let _ = writeln!(md, "\n## Label fraction (accuracy; macro-F1 with both modalities)\n");
        let _ = writeln!(md, "| head | labels | accuracy | camera missing | sensor missing | macro-F1 |");
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for m in methods(results).into_iter().filter(|m| m.semi_supervised()) {
            for &f in &fractions {
                let g = group(results, m, f);
                let cells: Vec<Cell> = inputs.iter().filter_map(|i| cell(&g, i, Route::Direct)).collect();
                if cells.len() == 3 {
                    let _ = writeln!(
                        md,
                        "| {} | {:.0} % | {} | {} | {} | {} |",
                        m.name(),
                        f * 100.0,
                        pm(cells[0].accuracy),
                        pm(cells[1].accuracy),
                        pm(cells[2].accuracy),
                        pm(cells[0].f1)
                    );
                }
            }
        }
    }
    let faults: Vec<(String, f32)> = {
        let mut v = Vec::new();
        for s in results.first().map(|r| r.scores.as_slice()).unwrap_or_default() {
            if let Input::Fault { fault, severity } = &s.input {
                if !v.contains(&(fault.clone(), *severity)) {
                    v.push((fault.clone(), *severity));
                }
            }
        }
        v
    };
    let top = faults.iter().map(|f| f.1).fold(0.0f32, f32::max);
    if !faults.is_empty() {
        let _ = writeln!(
            md,
            "\n## Faults at severity {top} (accuracy: straight / MMSSL gate → drop the flagged modality / gate → MMSSL's correction)\n"
        );
        let names: Vec<&str> = faults.iter().filter(|f| f.1 == top).map(|f| f.0.as_str()).collect();
        let _ = writeln!(md, "| head | {} |", names.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(names.len()));
        for m in methods(results) {
            let g = group(results, m, 1.0);
            let row: Vec<String> = names
                .iter()
                .map(|&n| {
                    let input = Input::Fault { fault: n.into(), severity: top };
                    let a = |r| cell(&g, &input, r).map_or("–".into(), |c| format!("{:.3}", c.accuracy.mean));
                    format!("{} / {} / {}", a(Route::Direct), a(Route::GateDrop), a(Route::GateCorrect))
                })
                .collect();
            let _ = writeln!(md, "| {} | {} |", m.name(), row.join(" | "));
        }
    }
    let _ = writeln!(
        md,
        "\nCharts: `missing.png` (accuracy by available modalities), `faults.png` (accuracy against severity)."
    );
    let path = dir.join("report.md");
    std::fs::write(&path, &md).map_err(|source| Error::Io { path, source })?;
    charts(dir, results, &faults)?;
    Ok(md)
}

fn charts(dir: &Path, results: &[HeadResult], faults: &[(String, f32)]) -> Result<()> {
    let inputs =
        [(Input::Clean, "both"), (Input::CameraMissing, "camera missing"), (Input::SensorMissing, "sensor missing")];
    let panels: Vec<BarPanel> = inputs
        .iter()
        .map(|(input, title)| BarPanel {
            title: (*title).into(),
            y_label: "accuracy".into(),
            bars: methods(results)
                .into_iter()
                .filter_map(|m| {
                    let c = cell(&group(results, m, 1.0), input, Route::Direct)?;
                    Some(Bar {
                        label: m.name().replace("modalimmune", "MI"),
                        mean: c.accuracy.mean,
                        std: c.accuracy.std,
                    })
                })
                .collect(),
        })
        .filter(|p| !p.bars.is_empty())
        .collect();
    if !panels.is_empty() {
        bars_png(&dir.join("missing.png"), &panels, Grid { columns: 3, panel_width: 520, panel_height: 300 })?;
    }
    let fractions = label_fractions(results);
    if fractions.len() > 1 {
        let panels: Vec<Panel> = inputs
            .iter()
            .map(|(input, title)| Panel {
                title: (*title).into(),
                x_label: "share of training labels (log)".into(),
                y_label: "accuracy".into(),
                log_y: false,
                y_range: Some((0.0, 1.0)),
                series: methods(results)
                    .into_iter()
                    .filter(|m| m.semi_supervised())
                    .map(|m| Series {
                        label: m.name().into(),
                        points: fractions
                            .iter()
                            .filter_map(|&f| {
                                let c = cell(&group(results, m, f), input, Route::Direct)?;
                                Some((f.log10(), c.accuracy.mean))
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        panels_png(&dir.join("labels.png"), &panels, Grid { columns: 3, panel_width: 420, panel_height: 300 })?;
    }
    let mut names: Vec<&str> = faults.iter().map(|f| f.0.as_str()).collect();
    names.dedup();
    let panels: Vec<Panel> = names
        .iter()
        .map(|&n| Panel {
            title: n.into(),
            x_label: "severity".into(),
            y_label: "accuracy".into(),
            log_y: false,
            y_range: Some((0.0, 1.0)),
            series: methods(results)
                .into_iter()
                .map(|m| Series {
                    label: m.name().into(),
                    points: faults
                        .iter()
                        .filter(|f| f.0 == n)
                        .filter_map(|(fault, severity)| {
                            let input = Input::Fault { fault: fault.clone(), severity: *severity };
                            let c = cell(&group(results, m, 1.0), &input, Route::Direct)?;
                            Some((f64::from(*severity), c.accuracy.mean))
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    if !panels.is_empty() {
        panels_png(&dir.join("faults.png"), &panels, Grid { columns: 3, panel_width: 420, panel_height: 300 })?;
    }
    Ok(())
}
