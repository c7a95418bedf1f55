//! Shapes, the contraction property of the corrector, and bit-exact save / load.

use burn::tensor::{Device, Distribution, Tensor};
use mmguard_model::{HostBatch, ModelConfig, Run, Thresholds};

mod common;
use common::run_config;

fn tiny() -> ModelConfig {
    let mut cfg = ModelConfig::new(16, 32, 5, 8);
    cfg.stage1.camera_channels = [4, 8, 8, 4];
    cfg.stage1.sensor_channels = [8, 8, 4];
    cfg.block = mmguard_model::BlockConfig {
        hidden: 32,
        detector_hidden: 8,
        camera_latent: cfg.stage1.camera_latent(),
        ..mmguard_model::BlockConfig::new(cfg.stage1.joint_latent())
    };
    cfg
}

fn batch(b: usize, cfg: &ModelConfig) -> HostBatch {
    let s = &cfg.stage1;
    HostBatch {
        len: b,
        camera: (0..b * 3 * s.height * s.width).map(|k| (k % 13) as f32 / 13.0).collect(),
        sensor: (0..b * s.window * s.sensor_dim).map(|k| (k % 7) as f32 / 7.0).collect(),
    }
}

#[test]
fn latent_sizes_follow_the_geometry() {
    let cfg = ModelConfig::new(64, 64, 18, 16);
    assert_eq!(cfg.stage1.camera_latent(), 512);
    assert_eq!(cfg.stage1.sensor_latent(), 128);
    assert_eq!(cfg.block.latent, 640);
    let wide = ModelConfig::new(48, 96, 3, 8);
    assert_eq!(wide.stage1.camera_latent(), 32 * 3 * 6);
}

#[test]
fn pipeline_shapes_and_gate() {
    let device = Device::flex();
    let cfg = tiny();
    let model = cfg.init(&device);
    let b = batch(3, &cfg);
    let out = model.run(&cfg, &b, Thresholds::uniform(2.0), &device);
    assert_eq!(out.inference.scores.len(), 3);
    assert_eq!(out.corrected_camera.len(), b.camera.len());
    assert_eq!(out.autoencoder_sensor.len(), b.sensor.len());
    // a threshold above every probability flags nothing: the input passes through bit for bit
    assert_eq!(out.inference.camera, b.camera);
    assert_eq!(out.inference.sensor, b.sensor);
    assert!(out.inference.flags.iter().all(|f| !f[0] && !f[1]));
    // a threshold of 0 flags everything: the selective decode equals the full decode
    let all = model.run(&cfg, &b, Thresholds::uniform(0.0), &device);
    assert_eq!(all.inference.camera, all.corrected_camera);
    assert_eq!(all.inference.sensor, all.corrected_sensor);
    assert!(all.inference.camera.iter().all(|v| (0.0..=1.0).contains(v)));
    // a threshold between the two scores of sample 0 substitutes exactly one modality there
    let s = all.inference.scores[0];
    let mid = (s[0] + s[1]) / 2.0;
    let one = model.infer(&cfg, &b, Thresholds::uniform(mid), &device);
    let frame = 3 * 16 * 32;
    let cam_flagged = one.flags[0][0];
    assert_eq!(cam_flagged, !one.flags[0][1]);
    let expect_cam = if cam_flagged { &all.corrected_camera[..frame] } else { &b.camera[..frame] };
    assert_eq!(&one.camera[..frame], expect_cam);
}

#[test]
fn corrector_is_a_contraction() {
    let device = Device::flex();
    let cfg = ModelConfig::new(64, 64, 18, 16);
    let mut block = cfg.block.init(&device);
    // a few power-iteration steps stand in for the refresh after each training step
    block.corrector = block.corrector.power_iteration(30);
    let a = Tensor::<2>::random([256, 256], Distribution::Normal(0.0, 1.0), &device);
    let b = a.clone() + Tensor::<2>::random([256, 256], Distribution::Normal(0.0, 0.3), &device);
    let ca = block.corrector.forward(a.clone());
    let cb = block.corrector.forward(b.clone());
    let num = (ca - cb).square().sum_dim(1).sqrt().into_data().try_into_vec::<f32>().unwrap();
    let den = (a - b).square().sum_dim(1).sqrt().into_data().try_into_vec::<f32>().unwrap();
    let worst = num.iter().zip(&den).map(|(n, d)| n / d).fold(0.0f32, f32::max);
    assert!(worst < 1.0, "‖C(a) − C(b)‖/‖a − b‖ reached {worst}");
    let bound = block.corrector.lipschitz_bound();
    assert!(bound < 1.0, "certified bound {bound}");
    assert!(f64::from(worst) <= bound + 1e-4, "empirical {worst} above bound {bound}");
}

/// A tiny model with fresh weights saved as a run: its sizes, the model, the directory and the
/// run's configuration.
fn saved_tiny_run(device: &Device) -> (ModelConfig, mmguard_model::Mmssl, tempfile::TempDir, mmguard_model::RunConfig) {
    let cfg = tiny();
    let model = cfg.init(device);
    let dir = tempfile::tempdir().unwrap();
    let config = run_config(&cfg, (0..5).map(|j| format!("c{j}")).collect());
    Run::save(dir.path(), &config, &model).unwrap();
    (cfg, model, dir, config)
}

#[test]
fn saved_run_loads_bit_exact() {
    let device = Device::flex();
    let (cfg, model, dir, config) = saved_tiny_run(&device);
    let run = Run::load(dir.path(), &device).unwrap();
    assert_eq!(run.config, config);
    let b = batch(2, &cfg);
    let x = model.run(&cfg, &b, Thresholds::uniform(0.5), &device);
    let y = run.model.run(&cfg, &b, Thresholds::uniform(0.5), &device);
    assert_eq!(x.corrected_camera, y.corrected_camera);
    assert_eq!(x.corrected_sensor, y.corrected_sensor);
    assert_eq!(x.inference, y.inference);
    // a weights file from another architecture is refused with the file named
    let mut other = config.clone();
    other.model.block.hidden = 16;
    mmguard_model::write_json(&dir.path().join("config.json"), &other).unwrap();
    let e = Run::load(dir.path(), &device).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn reference_model_flops_by_hand() {
    let f = ModelConfig::new(64, 64, 18, 16).forward_flops();
    // camera encoder: 3→32 at 32², 32→64 at 16², 64→64 at 8², 64→32 at 4², k = 4
    let cam = 2 * 16 * (3 * 32 * 1024 + 32 * 64 * 256 + 64 * 64 * 64 + 64 * 32 * 16);
    // sensor encoder: 18→64 k3 at 16, 64→64 k4 at 8, 64→32 k4 at 4
    let sen = 2 * (18 * 64 * 3 * 16 + 64 * 64 * 4 * 8 + 64 * 32 * 4 * 4);
    assert_eq!(f.encoders, (cam + sen) as u64);
    assert_eq!(f.decoders, f.encoders);
    // G of the default highway decoder outputs a prediction and a gate per latent value
    let block = 2 * (640 * 256 + 256 * 256 + 256 * 64 + 64 * 2 + 2 * 256 * 256 + 256 * 2 * 640);
    assert_eq!(f.block, block as u64);
}

#[test]
fn the_split_decoder_keeps_a_share_of_the_camera_latent_and_predicts_the_sensor_part() {
    let device = Device::flex();
    let mut cfg = tiny();
    cfg.block.decoder = mmguard_model::LatentDecoder::Split;
    let (lc, l) = (cfg.stage1.camera_latent(), cfg.block.latent);
    let block = cfg.block.init(&device);
    let z = Tensor::<2>::random([3, l], Distribution::Normal(0.0, 1.0), &device);
    let out = block.forward(z.clone(), None);
    let g = block.decoder.forward(out.corrected.clone());
    assert_eq!(g.dims(), [3, l + lc], "a prediction per value and a gate per camera value");
    let host = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().unwrap();
    let (g, z, latent) = (host(g), host(z), host(out.latent));
    for b in 0..3 {
        let row = |v: &[f32], w: usize| v[b * w..(b + 1) * w].to_vec();
        let (g, z, latent) = (row(&g, l + lc), row(&z, l), row(&latent, l));
        for k in 0..l {
            let want = if k < lc {
                let keep = 1.0 / (1.0 + (-g[l + k]).exp());
                keep * z[k] + (1.0 - keep) * g[k]
            } else {
                g[k]
            };
            assert!((latent[k] - want).abs() < 1e-5, "value {k} of sample {b}: {} vs {want}", latent[k]);
        }
    }
    // a run that says split but not where is refused
    let mut broken = cfg.clone();
    broken.block.camera_latent = 0;
    let dir = tempfile::tempdir().unwrap();
    Run::save(dir.path(), &run_config(&broken, (0..5).map(|j| format!("c{j}")).collect()), &cfg.init(&device)).unwrap();
    let e = Run::load(dir.path(), &device).unwrap_err().to_string();
    assert!(e.contains("model.block.camera_latent"), "{e}");
}

#[test]
fn data_must_match_the_runs_geometry_and_columns() {
    let device = Device::flex();
    let cfg = tiny();
    let dir = tempfile::tempdir().unwrap();
    let col = |n: &str| mmguard_data::Column { name: n.into(), unit: String::new() };
    let config = run_config(&cfg, ["a", "b", "c", "d", "e"].map(String::from).to_vec());
    Run::save(dir.path(), &config, &cfg.init(&device)).unwrap();
    let run = Run::load(dir.path(), &device).unwrap();
    let data = |h: usize, w: usize, names: &[&str]| mmguard_data::Dataset {
        path: "d.npz".into(),
        camera: vec![0; 3 * h * w],
        height: h,
        width: w,
        sensor: vec![0.0; names.len()],
        layout: mmguard_data::SensorLayout::Readings,
        episode: vec![0],
        has_episode_key: true,
        time: None,
        columns: names.iter().map(|n| col(n)).collect(),
        metadata: Default::default(),
        extra_keys: vec![],
        warnings: vec![],
    };
    assert!(run.check_compatible(&data(16, 32, &["a", "b", "c", "d", "e"])).is_ok());
    // no sidecar: generic names, only the count is checked
    assert!(run.check_compatible(&data(16, 32, &["s0", "s1", "s2", "s3", "s4"])).is_ok());
    let e = run.check_compatible(&data(16, 32, &["a", "b", "x", "d", "e"])).unwrap_err().to_string();
    assert!(e.contains("\"x\"") && e.contains("d.npz"), "{e}");
    assert!(run.check_compatible(&data(16, 32, &["s0", "s1", "s2", "s3"])).is_err());
    let e = run.check_compatible(&data(32, 32, &["a", "b", "c", "d", "e"])).unwrap_err().to_string();
    assert!(e.contains("32x32") && e.contains("16x32"), "{e}");
}

#[test]
fn a_block_with_evidence_scores_every_channel_and_loads_bit_exact() {
    let device = Device::flex();
    let mut cfg = tiny();
    cfg.block.evidence = Some(mmguard_model::Evidence::new(&cfg.stage1, 4));
    // a latent scale that is not the identity, and a score temperature: both travel with the run
    let l = cfg.stage1.joint_latent();
    cfg.block.latent_scale = Some(mmguard_model::LatentScale {
        mean: (0..l).map(|k| (k % 5) as f32 * 0.1).collect(),
        std: (0..l).map(|k| 0.5 + (k % 3) as f32).collect(),
    });
    cfg.block.score_temperature = Some(4.0);
    let model = cfg.init(&device);
    let b = batch(3, &cfg);
    let out = model.run(&cfg, &b, Thresholds::uniform(2.0), &device);
    // 5 sensor columns and 4 × 4 image regions
    assert_eq!(out.inference.channel_scores.len(), 3 * (5 + 16));
    assert!(out.inference.channel_scores.iter().all(|p| (0.0..=1.0).contains(p)));
    // per-modality thresholds: a camera threshold of 0 and a sensor one above 1 flag the camera only
    let cam_only = model.infer(&cfg, &b, Thresholds { camera: 0.0, sensor: 2.0, ..Thresholds::uniform(0.0) }, &device);
    assert!(cam_only.flags.iter().all(|f| f[0] && !f[1]));
    assert_eq!(cam_only.sensor, b.sensor);
    // channel substitution: of a flagged sensor window only the columns whose score reaches the
    // channel threshold are replaced, the others pass through bit for bit
    let c = 5 + 16;
    let column_scores = &out.inference.channel_scores[..5];
    let mut sorted = column_scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    let cut = sorted[2];
    let some = model.infer(&cfg, &b, Thresholds::uniform(0.0).with_channel(Some(cut)), &device);
    let win = 8 * 5;
    for j in 0..5 {
        let take = out.inference.channel_scores[j] >= cut;
        assert_eq!(some.substituted_columns[j], take);
        for r in 0..8 {
            let (got, input, corrected) =
                (some.sensor[r * 5 + j], b.sensor[r * 5 + j], out.corrected_sensor[r * 5 + j]);
            assert_eq!(got, if take { corrected } else { input }, "column {j}, reading {r}");
        }
    }
    assert!(some.substituted_columns[..5].iter().any(|&s| !s) && some.substituted_columns[..5].iter().any(|&s| s));
    // of a flagged frame only the regions (a 4 × 4 grid of 4 × 8 pixels here) whose score
    // reaches the threshold are replaced, in every colour channel
    let region_scores = &out.inference.channel_scores[5..c];
    let mut sorted = region_scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    let cut = sorted[8];
    let some = model.infer(&cfg, &b, Thresholds::uniform(0.0).with_channel(Some(cut)), &device);
    let (h, w) = (16, 32);
    for k in 0..3 * h * w {
        let (y, x) = ((k / w) % h, k % w);
        let take = region_scores[(y / 4) * 4 + x / 8] >= cut;
        let (got, input, corrected) = (some.camera[k], b.camera[k], out.corrected_camera[k]);
        assert_eq!(got, if take { corrected } else { input }, "pixel {k}");
    }
    assert!(region_scores.iter().any(|&s| s < cut) && region_scores.iter().any(|&s| s >= cut));
    // a channel threshold above every score substitutes the whole modality
    let whole = model.infer(&cfg, &b, Thresholds::uniform(0.0).with_channel(Some(2.0)), &device);
    assert_eq!(&whole.sensor[..win], &out.corrected_sensor[..win]);
    assert_eq!(out.inference.channel_scores.len(), 3 * c);
    let dir = tempfile::tempdir().unwrap();
    let config = run_config(&cfg, (0..5).map(|j| format!("c{j}")).collect());
    Run::save(dir.path(), &config, &model).unwrap();
    let run = Run::load(dir.path(), &device).unwrap();
    assert_eq!(run.config, config);
    assert_eq!(
        run.config.gate.thresholds(),
        Thresholds { camera: 0.4, sensor: 0.6, ..Thresholds::uniform(0.0).with_channel(Some(0.5)) }
    );
    assert_eq!(run.model.run(&cfg, &b, Thresholds::uniform(0.5), &device).inference, out_at(&model, &cfg, &b));
    // a run written before the evidence existed has neither field and loads as the paper's detector
    let mut old: serde_json::Value = serde_json::to_value(&config).unwrap();
    for key in ["evidence", "latent_scale", "score_temperature"] {
        old["model"]["block"].as_object_mut().unwrap().remove(key);
    }
    old["gate"].as_object_mut().unwrap().remove("per_modality");
    let back: mmguard_model::RunConfig = serde_json::from_value(old).unwrap();
    assert_eq!((back.model.block.evidence, back.model.block.latent_scale), (None, None));
    assert_eq!(back.gate.thresholds(), Thresholds::uniform(0.5));
}

fn out_at(model: &mmguard_model::Mmssl, cfg: &ModelConfig, b: &HostBatch) -> mmguard_model::Inference {
    model.run(cfg, b, Thresholds::uniform(0.5), &Device::flex()).inference
}

#[test]
fn a_flagged_modality_keeps_the_input_that_agrees_with_its_correction() {
    let device = Device::flex();
    let mut cfg = tiny();
    let model = cfg.init(&device);
    let b = batch(2, &cfg);
    let plain = model.run(&cfg, &b, Thresholds::uniform(0.0), &device);
    // a tolerance that spans the untrained decoder's error on half the pixels, not on the others
    let frame = 3 * 16 * 32;
    let mut gaps: Vec<f32> = (0..frame).map(|i| (b.camera[i] - plain.corrected_camera[i]).abs()).collect();
    gaps.sort_by(f32::total_cmp);
    let spread = gaps[frame / 2];
    cfg.repair = Some(mmguard_model::InputRepair {
        tolerance: 1.0,
        camera_spread: vec![spread; 3],
        sensor_spread: vec![1e-3; 5],
        mix: None,
    });
    let repaired = model.infer(&cfg, &b, Thresholds::uniform(0.0), &device);
    let (mut kept, mut rebuilt) = (0, 0);
    for i in 0..frame {
        let (input, decoded) = (b.camera[i], plain.corrected_camera[i]);
        if (input - decoded).abs() <= spread {
            assert_eq!(repaired.camera[i], input, "pixel {i} agrees with its correction and is kept");
            kept += 1;
        } else {
            assert_eq!(repaired.camera[i], decoded, "pixel {i} disagrees and is rebuilt");
            rebuilt += 1;
        }
    }
    assert!(kept > 0 && rebuilt > 0);
    // the ungated reference carries the same repair, and an unflagged sample is still untouched
    let reference = model.run(&cfg, &b, Thresholds::uniform(0.0), &device);
    assert_eq!(reference.corrected_camera[..frame], repaired.camera[..frame]);
    let untouched = model.infer(&cfg, &b, Thresholds::uniform(2.0), &device);
    assert_eq!((untouched.camera, untouched.sensor), (b.camera.clone(), b.sensor.clone()));
    // the repair travels with the run
    let dir = tempfile::tempdir().unwrap();
    let config = run_config(&cfg, (0..5).map(|j| format!("c{j}")).collect());
    Run::save(dir.path(), &config, &model).unwrap();
    assert_eq!(Run::load(dir.path(), &device).unwrap().config.model.repair, cfg.repair);
}

#[test]
fn an_output_path_corrects_through_its_own_autoencoder_and_travels_with_the_run() {
    let device = Device::flex();
    let mut cfg = tiny();
    cfg.block.output_path = true;
    let model = cfg.init(&device);
    let output = model.block.output.as_ref().expect("an output path");
    let s1 = &cfg.stage1;
    let b = batch(3, &cfg);
    let out = model.run(&cfg, &b, Thresholds::uniform(0.0), &device);
    // the correction reads the output path's latent of the input and decodes with its decoders
    let frame = b.camera_tensor(s1, &device);
    let latent = output.encode(frame.clone(), b.sensor_tensor(s1, &device));
    let latent = model.block.correct(mmguard_model::OutputInput { latent, frame });
    let (camera, sensor) = output.reconstruct(s1, latent);
    assert_eq!((&out.corrected_camera, &out.corrected_sensor), (&camera, &sensor));
    // not the frozen stage 1's decoding of the detection latent
    let mut plain_cfg = cfg.clone();
    plain_cfg.block.output_path = false;
    let without = mmguard_model::Mmssl { stage1: model.stage1.clone(), block: model.block.clone() };
    assert_ne!(out.corrected_sensor, {
        let mut m = without;
        m.block.output = None;
        m.run(&plain_cfg, &b, Thresholds::uniform(0.0), &device).corrected_sensor
    });
    // a flagged row is corrected alone as in the batch; an unflagged modality passes untouched
    let cam_only = model.infer(&cfg, &b, Thresholds { camera: 0.0, sensor: 2.0, ..Thresholds::uniform(0.0) }, &device);
    assert_eq!(cam_only.sensor, b.sensor);
    assert_eq!(cam_only.camera, out.inference.camera);
    let dir = tempfile::tempdir().unwrap();
    let config = run_config(&cfg, (0..5).map(|j| format!("c{j}")).collect());
    Run::save(dir.path(), &config, &model).unwrap();
    let run = Run::load(dir.path(), &device).unwrap();
    assert_eq!(run.model.run(&cfg, &b, Thresholds::uniform(0.0), &device).inference, out.inference);
}

/// NaN in every weight: a run that would serve every sample as `bypass` with status Good.
struct Poison;

impl burn::module::ModuleMapper for Poison {
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        param.map(|t| t.mul_scalar(f32::NAN))
    }
}

#[test]
fn a_run_that_cannot_serve_is_refused_naming_the_field() {
    let device = Device::flex();
    let (_, model, dir, config) = saved_tiny_run(&device);
    assert!(Run::load(dir.path(), &device).is_ok());
    let good: serde_json::Value = serde_json::to_value(&config).unwrap();
    let cases: [(&str, serde_json::Value, &str); 9] = [
        ("/gate/threshold", 5.0.into(), "gate.threshold"),
        ("/gate/per_modality/sensor", (-1.0).into(), "gate.per_modality.sensor"),
        ("/model/block/rho", 2.0.into(), "model.block.rho"),
        ("/model/stage1/height", 65.into(), "model.stage1.height"),
        ("/normalization/min", serde_json::json!([0.0, 0.0, 2.0, 0.0, 0.0]), "normalization.min[2]"),
        ("/normalization/max", serde_json::json!([1.0, 1.0]), "normalization.max"),
        ("/columns", serde_json::json!([{ "name": "a", "unit": "" }]), "columns"),
        ("/model/block/alpha", 1.5.into(), "model.block.alpha"),
        ("/model/block/latent", 7.into(), "model.block.latent"),
    ];
    for (pointer, value, field) in cases {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer} in the config")) = value;
        std::fs::write(dir.path().join("config.json"), serde_json::to_string(&bad).unwrap()).unwrap();
        let e = Run::load(dir.path(), &device).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains(field), "{pointer}: {e}");
    }
    std::fs::write(dir.path().join("config.json"), serde_json::to_string(&good).unwrap()).unwrap();
    assert!(Run::load(dir.path(), &device).is_ok(), "the good config loads again");
    // a power-iteration vector that no longer estimates σ(W): finite weights, no contraction
    let mut broken = model.clone();
    let u = &mut broken.block.corrector.l1.u;
    *u = burn::module::Param::initialized(u.id, Tensor::<1>::zeros(u.val().dims(), &device)).set_require_grad(false);
    Run::save(dir.path(), &config, &broken).unwrap();
    let e = Run::load(dir.path(), &device).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("block.corrector") && e.contains("Lipschitz"), "{e}");
    // weights that are not finite numbers
    Run::save(dir.path(), &config, &burn::module::Module::map(model, &mut Poison)).unwrap();
    let e = Run::load(dir.path(), &device).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("NaN") && e.contains("finite"), "{e}");
}

/// Adds a constant to every weight: a readout that has learned something.
struct Shift(f32);

impl burn::module::ModuleMapper for Shift {
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        let by = self.0;
        param.map(|t| t.add_scalar(by))
    }
}

#[test]
fn keypoints_start_silent_move_only_the_sensor_correction_and_travel_with_the_run() {
    use burn::module::Module;
    let device = Device::flex();
    let mut cfg = tiny();
    cfg.block.output_path = true;
    cfg.block.decoder = mmguard_model::LatentDecoder::Split;
    cfg.block.keypoints = 4;
    let model = cfg.init(&device);
    let b = batch(3, &cfg);
    let keypoints = model.block.keypoints.clone().expect("keypoints");
    let coords = keypoints.coordinates(b.camera_tensor(&cfg.stage1, &device)).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(coords.len(), 3 * 2 * 4);
    assert!(coords.iter().all(|c| (-1.0..=1.0).contains(c)), "{coords:?}");
    // a fresh readout adds nothing: the block corrects as it would without keypoints
    let out = model.run(&cfg, &b, Thresholds::uniform(0.0), &device);
    let mut plain_cfg = cfg.clone();
    plain_cfg.block.keypoints = 0;
    let mut plain = model.clone();
    plain.block.keypoints = None;
    assert_eq!(plain.run(&plain_cfg, &b, Thresholds::uniform(0.0), &device).inference, out.inference);
    // a trained readout changes the corrected sensor window and leaves the camera's correction
    let mut trained = model.clone();
    trained.block.keypoints = Some(keypoints.map(&mut Shift(0.05)));
    let moved = trained.run(&cfg, &b, Thresholds::uniform(0.0), &device);
    assert_ne!(moved.corrected_sensor, out.corrected_sensor);
    assert_eq!(moved.corrected_camera, out.corrected_camera);
    let dir = tempfile::tempdir().unwrap();
    Run::save(dir.path(), &run_config(&cfg, (0..5).map(|j| format!("c{j}")).collect()), &trained).unwrap();
    let run = Run::load(dir.path(), &device).unwrap();
    assert_eq!(run.model.run(&cfg, &b, Thresholds::uniform(0.0), &device).inference, moved.inference);
}
