//! `mmguard eval`

use anyhow::{bail, Context};
use mmguard_data::npz::{ArrayData, NpzReader};
use mmguard_eval::{evaluate, evaluate_stream, to_csv, write_curves, EvalConfig, EvalReport};
use mmguard_faults::inject::LEVEL_KEYS;
use mmguard_faults::{Compound, Fault, COMMON_CAUSE};
use mmguard_model::compute;
use mmguard_model::Run;

use crate::args::{EvalArgs, EvalJob, EvalMode, EvalTarget, StreamArgs, SweepArgs};

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let a = match a.into_job() {
        EvalJob::Mode(EvalMode::Sweep(s)) => return sweep(&s),
        EvalJob::Mode(EvalMode::Stream(s)) => return stream(&s),
        EvalJob::Protocol(target) => target,
    };
    let report = eval_run(&a.run, a.data.as_deref(), a.threshold, a.seed)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_markdown());
    }
    Ok(())
}

/// Parses `--faults`: `all`, `compound`, and names, comma-separated.
fn fault_specs(list: &str) -> anyhow::Result<Vec<Compound>> {
    let mut specs = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "all" => specs.extend(Fault::all().into_iter().map(Compound::single)),
            "compound" => specs.extend(COMMON_CAUSE.iter().map(|n| Compound::from_name(n).expect("known names"))),
            name => specs.push(Compound::from_name(name)?),
        }
    }
    if specs.is_empty() {
        bail!("--faults: no fault named in '{list}'");
    }
    Ok(specs)
}

fn sweep(s: &SweepArgs) -> anyhow::Result<()> {
    let (a, faults) = (&s.target, fault_specs(&s.faults)?);
    if let Some(bad) = s.severities.iter().find(|s| !(0.0..=1.0).contains(*s)) {
        bail!("--severities: {bad} is outside [0, 1]");
    }
    let run = Run::load(&a.run, &compute::device())?;
    let path = a.data.clone().unwrap_or_else(|| run.config.data.path.clone().into());
    let data = super::load_dataset(&path)?;
    if !(s.min_level.is_finite() && s.min_level >= 0.0) {
        bail!("--min-level {}: expected a change of 0 or more", s.min_level);
    }
    let rows = mmguard_eval::sweep(&run, &data, &faults, &s.severities, a.seed, s.min_level)?;
    if let Some(dir) = &s.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let csv = dir.join("sweep.csv");
        std::fs::write(&csv, to_csv(&rows)).with_context(|| format!("writing {}", csv.display()))?;
        let json = dir.join("sweep.json");
        std::fs::write(&json, serde_json::to_string_pretty(&rows)?)
            .with_context(|| format!("writing {}", json.display()))?;
        let plots = write_curves(&rows, dir)?;
        tracing::info!(
            "wrote {}, {}, {} and {}",
            csv.display(),
            json.display(),
            plots[0].display(),
            plots[1].display()
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "| fault | modality | severity | faulty input | autoencoder | MMSSL (gated) | AUROC | flagged | changed | AUROC, changed | in training |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:?} | {} | {:.3} | {:.3} | {:.3} | {} | {:.3} | {:.3} | {} | {} |",
            r.fault,
            r.modality,
            r.severity,
            r.faulty_input_mse * 100.0,
            r.autoencoder_mse * 100.0,
            r.corrected_mse * 100.0,
            r.auroc.map_or("–".into(), |v| format!("{v:.4}")),
            r.flagged,
            r.changed,
            r.auroc_changed.map_or("–".into(), |v| format!("{v:.4}")),
            match r.trained {
                Some(true) => "yes",
                Some(false) => "**held out**",
                None => "–",
            }
        );
    }
    println!(
        "\nMSE × 10⁻² on the row's modality; AUROC of its gate margin, faulty against clean copies; \
         'changed': the share of faulty copies that some element moved by more than {} of its range, \
         'AUROC, changed' over those alone; 'in training': whether stage 2 trained on every part of \
         the fault.",
        s.min_level
    );
    Ok(())
}

fn stream(s: &StreamArgs) -> anyhow::Result<()> {
    let a: &EvalTarget = &s.target;
    let path = a.data.as_ref().context("eval stream needs --data: a file made by `mmguard faults inject`")?;
    if !(s.min_level.is_finite() && s.min_level >= 0.0) {
        bail!("--min-level {}: expected a fault level of 0 or more", s.min_level);
    }
    let run = Run::load(&a.run, &compute::device())?;
    let data = super::load_dataset(path)?;
    let mut reader = NpzReader::open(path)?;
    let mut levels: [Vec<f32>; 2] = Default::default();
    for (level, key) in levels.iter_mut().zip(LEVEL_KEYS) {
        *level = match reader.read(key)?.map(|a| a.data) {
            Some(ArrayData::F32(v)) => v,
            Some(other) => bail!("{}: key '{key}' is {}, expected float32", path.display(), other.dtype()),
            None => bail!("{}: no '{key}' key; make a stream with `mmguard faults inject`", path.display()),
        };
    }
    let report = evaluate_stream(&run, &data, &levels, a.threshold, s.min_level)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_markdown());
    }
    Ok(())
}

/// Loads the run and the data (the run's own file by default) and evaluates.
pub(crate) fn eval_run(
    run_dir: &std::path::Path,
    data: Option<&std::path::Path>,
    threshold: Option<f32>,
    seed: u64,
) -> anyhow::Result<EvalReport> {
    let run = Run::load(run_dir, &compute::device())?;
    let path = data.map(std::path::PathBuf::from).unwrap_or_else(|| run.config.data.path.clone().into());
    let data = super::load_dataset(&path)?;
    Ok(evaluate(&run, &data, &EvalConfig { threshold, seed, ..EvalConfig::default() })?)
}
