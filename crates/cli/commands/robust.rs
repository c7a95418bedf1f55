//! `mmguard robust`: downstream heads on a run's frozen encoders.

use mmguard_model::compute;
use mmguard_model::Run;
use mmguard_robust::{run_study, task_description, write_report, write_results, HeadMethod, StudyConfig};

use crate::args::{expand, RobustArgs};

pub fn run(a: RobustArgs) -> anyhow::Result<()> {
    let run = Run::load(&a.run, &compute::device())?;
    let path = a.data.clone().unwrap_or_else(|| run.config.data.path.clone().into());
    let data = super::load_dataset(&path)?;
    let mut cfg: StudyConfig = match &a.config {
        Some(p) => super::read_json_config(p)?,
        None => StudyConfig::default(),
    };
    cfg.task.label_key = a.label_key;
    cfg.task.regression_column = a.regression_column;
    cfg.methods = expand(&a.methods, &HeadMethod::ALL);
    cfg.label_fractions = a.label_fractions;
    if let Some(e) = a.epochs {
        cfg.schedule.epochs = e;
    }
    if let Some(f) = cfg.label_fractions.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
        anyhow::bail!("--label-fractions: {f} is not a share in (0, 1]");
    }
    let task = task_description(&data, &cfg)?;
    let seeds: Vec<u64> = (0..a.seeds as u64).collect();
    let results = run_study(&run, &data, &cfg, &seeds)?;
    write_results(&a.out, &cfg, &results)?;
    let source = format!("run {} on {}", a.run.display(), path.display());
    println!("{}", write_report(&a.out, &results, &task, &source)?);
    tracing::info!("report written to {}", a.out.display());
    Ok(())
}
