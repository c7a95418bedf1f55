//! `mmguard eval`

use anyhow::{bail, Context};
use burn::tensor::Device;
use mmguard_eval::{evaluate, to_csv, EvalConfig, EvalReport};
use mmguard_faults::Fault;
use mmguard_model::Run;

use crate::args::EvalArgs;

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    if let Some(list) = &a.faults {
        return sweep(&a, list);
    }
    let report = eval_run(&a.run, a.data.as_deref(), a.threshold, a.seed)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_markdown());
    }
    Ok(())
}

fn sweep(a: &EvalArgs, list: &str) -> anyhow::Result<()> {
    let faults = if list == "all" {
        Fault::all()
    } else {
        list.split(',').map(|n| Fault::from_name(n.trim())).collect::<Result<Vec<_>, _>>()?
    };
    if let Some(bad) = a.severities.iter().find(|s| !(0.0..=1.0).contains(*s)) {
        bail!("--severities: {bad} is outside [0, 1]");
    }
    let run = Run::load(&a.run, &Device::flex())?;
    let path = a.data.clone().unwrap_or_else(|| run.config.data.path.clone().into());
    let data = super::load_dataset(&path)?;
    let rows = mmguard_eval::sweep(&run, &data, &faults, &a.severities, a.seed)?;
    if let Some(csv) = &a.csv {
        std::fs::write(csv, to_csv(&rows)).with_context(|| format!("writing {}", csv.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("| fault | severity | faulty input | autoencoder | MMSSL (gated) | AUROC | flagged |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {} | {:.3} |",
            r.fault,
            r.severity,
            r.faulty_input_mse * 100.0,
            r.autoencoder_mse * 100.0,
            r.corrected_mse * 100.0,
            r.auroc.map_or("–".into(), |v| format!("{v:.4}")),
            r.flagged
        );
    }
    println!("\nMSE × 10⁻² on the faulted modality; AUROC of its score, faulty against clean copies.");
    Ok(())
}

/// Loads the run and the data (the run's own file by default) and evaluates.
pub(crate) fn eval_run(
    run_dir: &std::path::Path,
    data: Option<&std::path::Path>,
    threshold: Option<f32>,
    seed: u64,
) -> anyhow::Result<EvalReport> {
    let run = Run::load(run_dir, &Device::flex())?;
    let path = data.map(std::path::PathBuf::from).unwrap_or_else(|| run.config.data.path.clone().into());
    let data = super::load_dataset(&path)?;
    Ok(evaluate(&run, &data, &EvalConfig { threshold, seed, ..EvalConfig::default() })?)
}
