//! One module per subcommand, each turning flags into library calls.

mod bench;
mod calibrate;
mod demo;
mod eval;
mod export;
mod faults;
mod generate;
mod import;
mod inspect;
mod loadtest;
mod request;
mod robust;
mod serve;
mod train;

use crate::args::{Cli, Command};

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Import(a) => import::run(a),
        Command::Export(a) => export::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::Faults(c) => faults::run(c),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Robust(a) => robust::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Loadtest(a) => loadtest::run(a),
        Command::Request(a) => request::run(a),
    }
}

/// Reads a JSON configuration file (`--config` of train, bench and robust): a regular file only
/// (a FIFO would block), errors naming the file.
pub(crate) fn read_json_config<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    use anyhow::Context;
    mmguard_data::ensure_regular_file(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Loads a dataset and reports its warnings (missing sidecar, …) on the log.
pub(crate) fn load_dataset(path: &std::path::Path) -> anyhow::Result<mmguard_data::Dataset> {
    let data = mmguard_data::Dataset::load(path)?;
    for w in &data.warnings {
        tracing::warn!("{w}");
    }
    Ok(data)
}
