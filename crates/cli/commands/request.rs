//! `mmguard request`: the body of an inference request for samples of a dataset.

use std::io::Write;

use anyhow::Context;

use crate::args::RequestArgs;

pub fn run(a: RequestArgs) -> anyhow::Result<()> {
    let data = super::load_dataset(&a.data)?;
    let served = mmguard_loadtest::served(&a.url)?;
    let ends = mmguard_loadtest::usable_windows(&data, &served.geometry)?;
    let first = match a.index {
        None => 0,
        Some(i) => ends.iter().position(|&e| e == i).with_context(|| {
            format!(
                "--index {i}: sample {i} of {} has no full window of {} readings inside its episode (usable: {} … {}, not the first {} of an episode)",
                a.data.display(),
                served.geometry.window,
                ends[0],
                ends[ends.len() - 1],
                served.geometry.window - 1
            )
        })?,
    };
    let picked = ends
        .get(first..first + a.batch)
        .with_context(|| format!("--batch {}: only {} usable windows from there", a.batch, ends.len() - first))?;
    let body = mmguard_loadtest::request_body(&data, &served.geometry, picked, a.body.into());
    match &a.out {
        Some(path) => std::fs::write(path, &body).with_context(|| format!("writing {}", path.display()))?,
        None => std::io::stdout().write_all(&body).context("writing the body")?,
    }
    Ok(())
}
