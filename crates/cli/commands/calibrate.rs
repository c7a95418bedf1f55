//! `mmguard calibrate`

use anyhow::bail;
use mmguard_model::compute;
use mmguard_model::{write_json, Novelty, Run, CONFIG_FILE};
use mmguard_train::{calibrate_gate, GateOptions};

use crate::args::CalibrateArgs;

pub fn run(a: CalibrateArgs) -> anyhow::Result<()> {
    let mut run = Run::load(&a.run, &compute::device())?;
    // by default the run's own method: recalibrating an older run does not change its kind
    let method = a.method.unwrap_or(run.config.gate.method);
    let path = a.data.unwrap_or_else(|| run.config.data.path.clone().into());
    let data = super::load_dataset(&path)?;
    if !run.config.data.is_from(&data) {
        bail!("{}: not the file the run was trained on (its validation episodes are needed)", path.display());
    }
    let cfg = &run.config;
    let val = data.windows(cfg.model.stage1.window, &cfg.data.split.val)?;
    let rate = a.false_alarm_rate.unwrap_or(cfg.gate.target_false_alarm_rate);
    // the same kind of gate as the run's: per modality or one threshold
    let options = GateOptions {
        rate,
        method,
        per_modality: cfg.gate.per_modality.is_some(),
        channel: cfg.gate.thresholds().channel,
        relight: cfg.gate.relight.map(|_| cfg.data.split.train.clone()),
        // the run's own choice: a gate with a column threshold was calibrated with columns
        novelty: a.novelty.unwrap_or(if cfg.gate.thresholds().column_novelty.is_some() {
            Novelty::Columns
        } else {
            Novelty::Window
        }),
    };
    let gate = calibrate_gate(&run.model, &cfg.model, &data, &val, &cfg.normalization, options);
    let (old, new) = (cfg.gate.thresholds(), gate.thresholds());
    tracing::info!(
        "{}: thresholds {old} → {new} ({} calibration, target false-alarm rate {rate}, {} samples)",
        a.run.display(),
        gate.method,
        gate.calibration_samples
    );
    run.config.gate = gate;
    write_json(&a.run.join(CONFIG_FILE), &run.config)?;
    Ok(())
}
