//! The learned sensor repair on a tiny model trained on a small twin file: fitted after stage 2,
//! kept only where it beat the rule on validation, saved with the run, and on faulty test
//! windows with the sensor test fault it corrects better than the rule of the same run; its
//! clean-window prior gates the sensor by itself.

use burn::tensor::Device;
use mmguard_faults::{SensorFault, Window};
use mmguard_model::{host_batch, Run, Thresholds};
use mmguard_train::{prepare, train, TrainConfig};

mod common;
use rand::SeedableRng;

#[test]
fn the_learned_repair_is_kept_only_where_it_beats_the_rule_and_beats_it_on_test_faults() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::small_twin(dir.path(), 9);
    let cfg = TrainConfig::tiny();
    let report = train(&data, &cfg, &dir.path().join("run")).unwrap();
    let fit = report.repair_mix.expect("the defaults fit the learned repair");
    let run = Run::load(&dir.path().join("run"), &Device::flex()).unwrap();
    let repair = run.config.model.repair.as_ref().expect("the defaults repair the input");
    assert_eq!(fit.kept, fit.mix < fit.rule, "{fit:?}");
    assert_eq!(repair.mix.is_some(), fit.kept, "{fit:?}");
    assert!(fit.kept, "a tiny model's rule left room on validation: {fit:?}");

    // the same run with the rule alone
    let mut rule_cfg = run.config.model.clone();
    rule_cfg.repair.as_mut().unwrap().mix = None;
    let prep = prepare(&data, cfg.window, &cfg.split).unwrap();
    let s1 = &run.config.model.stage1;
    let clean = host_batch(&data, &prep.test.ends, s1.window, &run.config.normalization);
    let (t, d) = (s1.window, s1.sensor_dim);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    // the sensor test fault (on this tiny model the offset fault comes out even with the rule)
    for fault in [SensorFault::Gain] {
        let mut faulty = clean.clone();
        for w in faulty.sensor.chunks_exact_mut(t * d) {
            let f = fault.apply(Window { values: w, len: t, columns: d }, 1.0, &mut rng);
            w.copy_from_slice(&f.values);
        }
        let error = |cfg| {
            let out = run.model.run(cfg, &faulty, Thresholds::uniform(0.0), &Device::flex());
            let n = out.corrected_sensor.len() as f64;
            out.corrected_sensor.iter().zip(&clean.sensor).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / n
        };
        let (mixed, ruled) = (error(&run.config.model), error(&rule_cfg));
        assert!(mixed.is_finite() && mixed < ruled, "{fault:?}: learned {mixed} against the rule's {ruled}");
    }
    // the clean prior's distance gates by itself: with the score thresholds out of reach, the
    // novelty threshold flags the gained windows and passes clean ones
    let gate = run.config.gate.thresholds();
    assert!(run.config.model.clean_prior.is_some() && gate.novelty.is_some(), "{gate:?}");
    let novelty_only = Thresholds { camera: 2.0, sensor: 2.0, ..gate };
    let flagged = |batch: &mmguard_model::HostBatch| {
        let flags = run.model.infer(&run.config.model, batch, novelty_only, &Device::flex()).flags;
        flags.iter().filter(|f| f[1]).count() as f64 / flags.len() as f64
    };
    let mut gained = clean.clone();
    for w in gained.sensor.chunks_exact_mut(t * d) {
        let f = SensorFault::Gain.apply(Window { values: w, len: t, columns: d }, 1.0, &mut rng);
        w.copy_from_slice(&f.values);
    }
    let (on_gained, on_clean) = (flagged(&gained), flagged(&clean));
    assert!(on_gained > 0.9 && on_clean < 0.1, "novelty flags {on_gained} of gained, {on_clean} of clean windows");
    let off =
        run.model.infer(&run.config.model, &gained, Thresholds { novelty: None, ..novelty_only }, &Device::flex());
    assert!(off.flags.iter().all(|f| !f[1]), "without it nothing reaches a threshold of 2");
    // the old behaviour stays reachable
    let cfg = TrainConfig { repair_mix: None, ..TrainConfig::tiny() };
    let report = train(&data, &cfg, &dir.path().join("rule")).unwrap();
    assert!(report.repair_mix.is_none());
    let run = Run::load(&dir.path().join("rule"), &Device::flex()).unwrap();
    assert!(run.config.model.repair.as_ref().unwrap().mix.is_none());
    assert!(run.config.model.clean_prior.is_none() && run.config.gate.thresholds().novelty.is_none());
}
