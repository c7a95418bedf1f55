//! Property of the run validator: whatever number a `config.json` holds in any field, loading
//! the run either refuses it with an error naming the file, or gives a run whose thresholds are
//! probabilities, whose corrector is a contraction, and that infers finite outputs (everything
//! flagged and corrected) without panicking. A field the validator forgets shows up here.

use burn::tensor::Device;
use mmguard_model::{HostBatch, ModelConfig, Run, Thresholds};
use proptest::prelude::*;

mod common;
use common::run_config;
use serde_json::{json, Value};

/// A tiny model with every optional part (evidence, latent scale, temperature, output path,
/// input repair with a learned sensor mix, the clean prior and a novelty threshold).
fn model_config() -> ModelConfig {
    let mut cfg = ModelConfig::new(16, 16, 3, 4);
    cfg.stage1.camera_channels = [2, 4, 4, 2];
    cfg.stage1.sensor_channels = [4, 4, 2];
    let l = cfg.stage1.joint_latent();
    cfg.block = mmguard_model::BlockConfig {
        hidden: 8,
        detector_hidden: 4,
        evidence: Some(mmguard_model::Evidence::new(&cfg.stage1, 4)),
        latent_scale: Some(mmguard_model::LatentScale { mean: vec![0.1; l], std: vec![0.5; l] }),
        score_temperature: Some(4.0),
        output_path: true,
        ..mmguard_model::BlockConfig::new(l)
    };
    let (f, h, k) = (mmguard_model::SensorMix::features(3), 2, mmguard_model::sensor_mix::CANDIDATES);
    cfg.repair = Some(mmguard_model::InputRepair {
        tolerance: 3.0,
        camera_spread: vec![0.02; 3],
        sensor_spread: vec![0.02; 3],
        mix: Some(mmguard_model::SensorMix {
            hidden: h,
            w1: vec![0.1; f * h],
            b1: vec![0.0; h],
            w2: vec![0.1; h * k],
            b2: vec![0.0; k],
        }),
    });
    let windows: Vec<f32> = (0..4 * 3 * 20).map(|q| ((q * 7919) % 101) as f32 / 101.0).collect();
    cfg.clean_prior = mmguard_model::CleanPrior::fit(&windows, 4 * 3, 1e-3, 0.1);
    assert!(cfg.clean_prior.is_some());
    cfg
}

/// A saved run of fresh weights, and its `config.json` as JSON.
fn saved(device: &Device) -> (tempfile::TempDir, Value) {
    let cfg = model_config();
    let d = cfg.stage1.sensor_dim;
    let mut config = run_config(&cfg, (0..d).map(|j| format!("c{j}")).collect());
    config.gate.per_modality.as_mut().unwrap().novelty = Some(5.0);
    let dir = tempfile::tempdir().unwrap();
    Run::save(dir.path(), &config, &cfg.init(device)).unwrap();
    (dir, serde_json::to_value(&config).unwrap())
}

/// JSON pointers of every number in the config, outside the free-form training record and the
/// version stamp.
fn numbers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Number(_) => out.push(at),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| numbers(x, format!("{at}/{i}"), out)),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| !(at.is_empty() && (*k == "training" || *k == "versions")))
            .for_each(|(k, x)| numbers(x, format!("{at}/{k}"), out)),
        _ => {}
    }
}

fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(-1),
            json!(2),
            json!(3),
            json!(0.5),
            json!(0.999999),
            json!(1.000001),
            json!(1e-30),
            json!(-1e-30),
            json!(1e30),
            json!(-1e30),
            json!(1e300),
            json!(u64::MAX),
            json!(null),
        ]),
        (0u64..64).prop_map(|n| json!(n)),
        (-10.0f64..10.0).prop_map(|x| json!(x)),
    ]
}

fn mid_range_batch(cfg: &ModelConfig) -> HostBatch {
    let s = &cfg.stage1;
    HostBatch { len: 2, camera: vec![0.5; 2 * 3 * s.height * s.width], sensor: vec![0.5; 2 * s.window * s.sensor_dim] }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_number_in_any_field_is_refused_by_name_or_loads_a_run_that_infers(
        picks in prop::collection::vec((any::<prop::sample::Index>(), any_number()), 1..3),
    ) {
        let device = Device::flex();
        let (dir, good) = saved(&device);
        let mut pointers = Vec::new();
        numbers(&good, String::new(), &mut pointers);
        let mut bad = good.clone();
        for (pick, value) in &picks {
            let pointer: &String = pick.get(&pointers);
            *bad.pointer_mut(pointer).unwrap() = value.clone();
        }
        std::fs::write(dir.path().join("config.json"), serde_json::to_string(&bad).unwrap()).unwrap();
        match Run::load(dir.path(), &device) {
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.contains("config.json") || text.contains("model.safetensors"), "{text}");
            }
            Ok(run) => {
                let cfg = &run.config.model;
                let gate = &run.config.gate;
                let t = gate.thresholds();
                for p in [gate.threshold, t.camera, t.sensor, t.channel.unwrap_or(0.0)] {
                    prop_assert!((0.0..=1.0).contains(&p), "a threshold {p} loaded");
                }
                prop_assert!(t.novelty.is_none_or(|n| n.is_finite() && n > 0.0), "a novelty threshold {:?} loaded", t.novelty);
                let gated = run.model.infer(cfg, &mid_range_batch(cfg), t, &device);
                prop_assert!(gated.sensor.iter().all(|x| x.is_finite()));
                let inference = run.model.infer(cfg, &mid_range_batch(cfg), Thresholds::uniform(0.0), &device);
                prop_assert!(inference.scores.iter().flatten().all(|s| (0.0..=1.0).contains(s)), "{:?}", inference.scores);
                prop_assert!(inference.camera.iter().chain(&inference.sensor).all(|x| x.is_finite()));
                prop_assert!(run.model.block.corrector.lipschitz_bound() < 1.0);
            }
        }
    }
}
