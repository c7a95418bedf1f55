//! `mmguard loadtest`: one load test per rate against a running server; reports printed and
//! written as JSON.

use anyhow::Context;
use mmguard_loadtest::LoadConfig;

use crate::args::LoadtestArgs;

pub fn run(a: LoadtestArgs) -> anyhow::Result<()> {
    let data = super::load_dataset(&a.data)?;
    let mut reports = Vec::new();
    for &rate in &a.rate {
        let cfg = LoadConfig {
            url: a.url.clone(),
            rate,
            duration_s: a.duration,
            batch: a.batch,
            connections: a.connections,
            body: a.body.into(),
        };
        let report = mmguard_loadtest::run(&cfg, &data)?;
        println!("{report}");
        reports.push(report);
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&reports)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {}", a.out.display());
    Ok(())
}
