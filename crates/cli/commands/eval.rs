//! `mmguard eval`

use burn::tensor::Device;
use mmguard_eval::{evaluate, EvalConfig, EvalReport};
use mmguard_model::Run;

use crate::args::EvalArgs;

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let report = eval_run(&a.run, a.data.as_deref(), a.threshold, a.seed)?;
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
    let run = Run::load(run_dir, &Device::flex())?;
    let path = data.map(std::path::PathBuf::from).unwrap_or_else(|| run.config.data.path.clone().into());
    let data = super::load_dataset(&path)?;
    Ok(evaluate(&run, &data, &EvalConfig { threshold, seed, ..EvalConfig::default() })?)
}
