//! `mmguard bench`: the method comparison, or `bench speed`.

use anyhow::Context;
use mmguard_bench::{
    bench_budget, run_bench, run_heads, write_heads_report, write_report, BenchConfig, CurveConfig, Method,
};
use mmguard_eval::EvalConfig;
use mmguard_robust::{task_description, write_results, HeadMethod, StudyConfig};
use mmguard_train::speed::{measure, SpeedConfig};

use crate::args::{expand, BenchArgs, BenchMode, SpeedArgs};

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    if let Some(BenchMode::Speed(s)) = &a.mode {
        return speed(s);
    }
    let Some(path) = a.data.as_ref().filter(|_| !a.speed) else {
        tracing::warn!("`bench --speed` is now `bench speed`; the old spelling goes in the next release");
        return speed(&a.old_speed);
    };
    let data = super::load_dataset(path)?;
    let mut train = match &a.config {
        Some(p) => super::read_json_config(p)?,
        None => bench_budget(),
    };
    train.progress = !a.quiet;
    let cfg = BenchConfig {
        methods: expand(&a.methods, &Method::ALL),
        seeds: a.seeds,
        train,
        eval: EvalConfig::default(),
        curves: CurveConfig::default(),
        heads: expand(&a.heads, &HeadMethod::ALL),
        study: StudyConfig::default(),
    };
    let cfg = if a.quick { cfg.quick() } else { cfg };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let start = std::time::Instant::now();
    let results = run_bench(&data, &cfg, &a.out)?;
    let source = path.display().to_string();
    let md = write_report(&a.out, &cfg.methods, &results, &source, start.elapsed().as_secs_f64())?;
    println!("{md}");
    if !cfg.heads.is_empty() {
        let heads = run_heads(&data, &cfg, &a.out)?;
        let task = task_description(&data, &cfg.study)?;
        write_results(&a.out.join("heads"), &StudyConfig { methods: cfg.heads.clone(), ..cfg.study.clone() }, &heads)?;
        println!("{}", write_heads_report(&a.out, &heads, &task, &source)?);
    }
    tracing::info!("report written to {}", a.out.display());
    Ok(())
}

fn speed(a: &SpeedArgs) -> anyhow::Result<()> {
    let report = measure(&SpeedConfig { sensor_dim: a.sensor_dim, reps: a.reps, ..SpeedConfig::default() });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_markdown());
    }
    Ok(())
}
