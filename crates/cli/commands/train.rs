//! `mmguard train`

use mmguard_faults::Fault;
use mmguard_train::TrainConfig;

use crate::args::{TrainArgs, TrainOptions};

pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let data = super::load_dataset(&a.data)?;
    let cfg = config(&a.options)?;
    let report = mmguard_train::train(&data, &cfg, &a.out)?;
    tracing::info!(
        "run written to {}: stage 1 {} epochs (val {:.5}), stage 2 {} epochs (val {:.5}), thresholds {}, Lip(C) ≤ {:.4}",
        a.out.display(),
        report.stage1_epochs,
        report.stage1_best_val,
        report.stage2_epochs,
        report.stage2_best_val,
        report.thresholds,
        report.corrector_lipschitz_bound
    );
    Ok(())
}

/// The training configuration: defaults, then the JSON file, then the flags.
pub(crate) fn config(o: &TrainOptions) -> anyhow::Result<TrainConfig> {
    let mut cfg = match &o.config {
        Some(p) => super::read_json_config(p)?,
        None => TrainConfig::default(),
    };
    if let Some(v) = o.seed {
        cfg.seed = v;
    }
    if let Some(v) = o.stage1_epochs {
        cfg.stage1.epochs = v;
    }
    if let Some(v) = o.stage2_epochs {
        cfg.stage2.schedule.epochs = v;
    }
    if let Some(v) = o.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = o.window {
        cfg.window = v;
    }
    if let Some(v) = o.gamma {
        cfg.stage2.modulation.gamma = v;
    }
    if let Some(v) = o.clip {
        cfg.stage2.modulation.corrector_clip = (v > 0.0).then_some(v);
    }
    if o.no_renormalize {
        cfg.stage2.modulation.renormalize = false;
    }
    if let Some(v) = o.false_alarm_rate {
        cfg.target_false_alarm_rate = v;
    }
    if let Some(dir) = &o.reuse_stage1 {
        cfg.reuse_stage1 = Some(dir.clone());
    }
    if !o.hold_out.is_empty() {
        let held = o.hold_out.iter().map(|n| Fault::from_name(n.trim())).collect::<Result<Vec<_>, _>>()?;
        cfg.stage2.faults = cfg.stage2.faults.without(&held);
    }
    cfg.progress = !o.quiet;
    Ok(cfg)
}
