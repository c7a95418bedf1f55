//! What the model's test files share.

use mmguard_model::{ModelConfig, Thresholds};

/// A run configuration around `cfg` with the given sensor column names.
pub fn run_config(cfg: &ModelConfig, columns: Vec<String>) -> mmguard_model::RunConfig {
    let d = columns.len();
    mmguard_model::RunConfig {
        versions: Default::default(),
        model: cfg.clone(),
        columns: columns.into_iter().map(|name| mmguard_data::Column { name, unit: String::new() }).collect(),
        normalization: mmguard_data::MinMax { min: vec![0.0; d], max: vec![1.0; d] },
        gate: mmguard_model::Gate {
            threshold: 0.5,
            per_modality: Some(Thresholds {
                camera: 0.4,
                sensor: 0.6,
                channel: Some(0.5),
                novelty: None,
                novelty_scale: None,
                column_novelty: None,
                column_novelty_scale: None,
            }),
            target_false_alarm_rate: 0.01,
            calibration_samples: 10,
            method: mmguard_model::Calibration::Quantile,
            relight: None,
        },
        data: mmguard_model::Provenance {
            path: "x.npz".into(),
            fingerprint: "0".into(),
            split_config: Default::default(),
            split: mmguard_data::Split { train: vec![0], val: vec![1], test: vec![2] },
        },
        training: serde_json::Value::Null,
    }
}
