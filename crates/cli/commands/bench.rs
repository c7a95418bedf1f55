//! `mmguard bench --speed`

use mmguard_train::speed::{measure, SpeedConfig};

use crate::args::BenchArgs;

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    let report = measure(&SpeedConfig { sensor_dim: a.sensor_dim, reps: a.reps, ..SpeedConfig::default() });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_markdown());
    }
    Ok(())
}
