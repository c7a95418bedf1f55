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

/// Loads a dataset and reports its warnings (missing sidecar, …) on the log.
pub(crate) fn load_dataset(path: &std::path::Path) -> anyhow::Result<mmguard_data::Dataset> {
    let data = mmguard_data::Dataset::load(path)?;
    for w in &data.warnings {
        tracing::warn!("{w}");
    }
    Ok(data)
}
