//! The downstream study on a tiny twin run: every head trains and is scored under every
//! condition, ModalImmune logs its controller, curvature checks and certificates, a seed gives
//! the same numbers twice, and a missing label key, a foreign run or an unknown column are named.

use burn::tensor::Device;
use mmguard_data::Dataset;
use mmguard_eval::CurveConfig;
use mmguard_model::Run;
use mmguard_robust::study::{Input, Route};
use mmguard_robust::{run_study, HeadMethod, HeadSchedule, StudyConfig};
use mmguard_train::{train, TrainConfig};
use mmguard_twin::TwinConfig;

fn tiny_run(dir: &std::path::Path) -> (Run, Dataset) {
    let path = dir.join("arm.npz");
    let twin =
        TwinConfig { episodes: 10, samples_per_episode: 60, height: 32, width: 32, seed: 5, ..Default::default() };
    mmguard_twin::write(&twin, &path).unwrap();
    let data = Dataset::load(&path).unwrap();
    let cfg = TrainConfig::tiny();
    train(&data, &cfg, &dir.join("run")).unwrap();
    (Run::load(&dir.join("run"), &Device::flex()).unwrap(), data)
}

fn study() -> StudyConfig {
    let mut cfg = StudyConfig {
        methods: vec![
            HeadMethod::Robult,
            HeadMethod::RobultSupervised,
            HeadMethod::Modalimmune,
            HeadMethod::ModalimmuneFisher,
            HeadMethod::ModalimmuneSupervised,
            HeadMethod::ModalimmunePaper,
            HeadMethod::RobultFineTuned,
        ],
        label_fractions: vec![0.05, 1.0],
        schedule: HeadSchedule { epochs: 3, batch_size: 32, ..HeadSchedule::default() },
        faults: CurveConfig {
            faults: vec!["camera/noise".into(), "sensor/gain".into()],
            severities: vec![1.0],
            seed: 0,
        },
        ..StudyConfig::default()
    };
    cfg.modalimmune.control_every = 3;
    cfg.modalimmune.masking.every = 4;
    cfg.modalimmune.meta.every = 5;
    cfg
}

#[test]
fn heads_are_scored_under_every_condition_modalimmune_logs_its_decisions_and_bad_requests_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (run, data) = tiny_run(dir.path());
    let mut cfg = study();
    cfg.task.label_key = "quality".into();
    let err = run_study(&run, &data, &cfg, &[0]).unwrap_err().to_string();
    assert!(err.contains("quality") && err.contains("phase"), "{err}");

    let other = dir.path().join("other.npz");
    let twin =
        TwinConfig { episodes: 10, samples_per_episode: 60, height: 32, width: 32, seed: 6, ..Default::default() };
    mmguard_twin::write(&twin, &other).unwrap();
    let err = run_study(&run, &Dataset::load(&other).unwrap(), &study(), &[0]).unwrap_err().to_string();
    assert!(err.contains("other.npz") && err.contains("trained on"), "{err}");

    let mut cfg = study();
    cfg.task.regression_column = Some("j9_angle".into());
    let err = run_study(&run, &data, &cfg, &[0]).unwrap_err().to_string();
    assert!(err.contains("j9_angle") && err.contains("j0_angle"), "{err}");

    let cfg = study();
    let results = run_study(&run, &data, &cfg, &[0]).unwrap();
    // Robult and its reference at two label fractions, the ModalImmune heads and Robult with
    // tuned encoders at all labels
    assert_eq!(results.len(), 2 * 2 + 4 + 1);
    for r in &results {
        assert_eq!(r.scores.len(), 3 + 2 * 3, "{:?}", r.method);
        for s in &r.scores {
            assert!((0.0..=1.0).contains(&s.score.accuracy) && s.score.mae.is_finite(), "{s:?}");
        }
        let routes = |input: &Input| r.scores.iter().filter(|s| &s.input == input).map(|s| s.route).collect::<Vec<_>>();
        let noise = Input::Fault { fault: "camera/noise".into(), severity: 1.0 };
        assert_eq!(routes(&noise), [Route::Direct, Route::GateDrop, Route::GateCorrect]);
    }

    let immune = results.iter().find(|r| r.method == HeadMethod::Modalimmune).unwrap();
    let log = &immune.log;
    let steps = log["control"].as_array().unwrap().last().unwrap()["step"].as_u64().unwrap();
    assert!(steps >= 3);
    let chosen: u64 = log["control"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chosen"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>())
        .sum();
    assert_eq!(chosen, steps, "every step's arm is counted once");
    let meta = log["meta"].as_array().unwrap();
    assert!(!meta.is_empty(), "meta steps every 5 steps");
    let mut certified = 0;
    for m in meta {
        // each meta step is either certified (terms within the limit, finite bound) or skipped
        // with its reason, never both
        match (m["certificate"].is_null(), m["skipped"].is_null()) {
            (false, true) => {
                certified += 1;
                assert!(m["certificate"]["terms"].as_u64().unwrap() <= 50);
                assert!(m["certificate"]["bound"].as_f64().unwrap().is_finite());
            }
            (true, false) => assert!(!m["skipped"].as_str().unwrap().is_empty()),
            other => panic!("meta record {m} is {other:?}"),
        }
    }
    assert_eq!(meta.len() - certified, log["meta_skipped"].as_u64().unwrap() as usize);
    assert!(!log["curvature"].as_array().unwrap().is_empty(), "Hessian checks every 4 steps");
    let fisher = results.iter().find(|r| r.method == HeadMethod::ModalimmuneFisher).unwrap();
    assert!(fisher.log["curvature"].as_array().unwrap().is_empty(), "Fisher masking takes no Hessian");
    // the paper's masking rule looks for a negative eigenvalue of a Fisher matrix: there is none
    let paper = results.iter().find(|r| r.method == HeadMethod::ModalimmunePaper).unwrap();
    let checks = paper.log["curvature"].as_array().unwrap();
    assert!(!checks.is_empty());
    for c in checks {
        let (min, max) = (c["spectrum"][0].as_f64().unwrap(), c["spectrum"][1].as_f64().unwrap());
        assert!(min >= -1e-6 * max.abs().max(1e-12) && c["masked"] == false, "{c}");
    }
    let plain = results.iter().find(|r| r.method == HeadMethod::ModalimmuneSupervised).unwrap();
    assert!(plain.log["meta"].as_array().unwrap().is_empty(), "the reference has no regulariser to adapt");

    // the same configuration and seed give the same scores
    let again = run_study(
        &run,
        &data,
        &StudyConfig { methods: vec![HeadMethod::Robult, HeadMethod::Modalimmune], ..cfg },
        &[0],
    )
    .unwrap();
    for r in &again {
        let first = results.iter().find(|x| x.method == r.method && x.label_fraction == r.label_fraction).unwrap();
        assert_eq!(
            serde_json::to_string(&first.scores).unwrap(),
            serde_json::to_string(&r.scores).unwrap(),
            "{:?}",
            r.method
        );
    }
}
