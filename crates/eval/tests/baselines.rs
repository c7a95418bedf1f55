//! A baseline and MMSSL scored by the same protocol on the same windows: the MMAE trained on
//! faulty inputs brings the faulty modality closer to the clean one, and the protocol gives the
//! same numbers for the same method twice.

use mmguard_data::Dataset;
use mmguard_eval::{protocol, EvalConfig};
use mmguard_model::Gated;
use mmguard_train::{prepare, train, train_mmae, CsvLog, TrainConfig};
use mmguard_twin::TwinConfig;

#[test]
fn mmae_and_mmssl_are_scored_on_the_same_copies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arm.npz");
    let twin =
        TwinConfig { episodes: 10, samples_per_episode: 60, height: 32, width: 32, seed: 3, ..Default::default() };
    mmguard_twin::write(&twin, &path).unwrap();
    let data = Dataset::load(&path).unwrap();
    let mut cfg = TrainConfig::tiny();
    cfg.stage1.epochs = 12;
    cfg.stage1.patience = 12;
    cfg.stage2.schedule.epochs = 15;
    cfg.stage2.schedule.patience = 15;
    let prep = prepare(&data, cfg.window, &cfg.split).unwrap();
    let mut log = CsvLog::create(&dir.path().join("mmae.csv")).unwrap();
    let (mmae, report) = train_mmae(&data, &cfg, &prep, &mut log).unwrap();
    assert!(report.epochs > 0 && report.best_val.is_finite());
    let s1 = &mmae.stage1;
    let eval = EvalConfig::default();
    let got = protocol(&mmae, &data, &prep.test, &prep.norm, s1, &eval);
    for (name, out, input) in [
        ("camera", got.output_mse.camera, got.faulty_input_mse.camera),
        ("sensor", got.output_mse.sensor, got.faulty_input_mse.sensor),
    ] {
        assert!(out < input, "{name}: MMAE output {out} not below the faulty input {input}");
    }
    // the per-column errors of the sensor-faulty copies average to the sensor figure
    assert_eq!(got.sensor_columns.len(), data.columns.len());
    let mean = got.sensor_columns.iter().sum::<f64>() / got.sensor_columns.len() as f64;
    assert!((mean - got.output_mse.sensor).abs() <= 1e-9, "{mean} vs {}", got.output_mse.sensor);
    let again = protocol(&mmae, &data, &prep.test, &prep.norm, s1, &eval);
    assert_eq!(got.output_mse, again.output_mse);

    // MMSSL on the same windows and copies: the faulty inputs are the very same
    train(&data, &cfg, &dir.path().join("run")).unwrap();
    let run = mmguard_model::Run::load(&dir.path().join("run"), &burn::tensor::Device::flex()).unwrap();
    let gated = Gated { model: &run.model, cfg: &run.config.model, thresholds: run.config.gate.thresholds() };
    let mmssl = protocol(&gated, &data, &prep.test, &prep.norm, &run.config.model.stage1, &eval);
    assert_eq!(mmssl.faulty_input_mse, got.faulty_input_mse);
    assert!(mmssl.output_mse.sensor < mmssl.faulty_input_mse.sensor);
}
