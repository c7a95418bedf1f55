//! Detection beyond the test faults, on a tiny model trained on a small twin file: the
//! per-channel scores point at the faulted sensor column and image region, and a run trained
//! with fault kinds held out is swept with every row marked as seen or held out; a stream's
//! windows are classed by their fault levels.

use burn::tensor::Device;
use mmguard_faults::{CameraFault, Compound, Fault, SensorFault};
use mmguard_model::{host_batch, Run};
use mmguard_train::{calibrate_gate, prepare, train, GateOptions, TrainConfig};

mod common;

fn config() -> TrainConfig {
    let mut cfg = TrainConfig::tiny();
    cfg.stage1.epochs = 10;
    cfg.stage1.patience = 10;
    cfg.stage2.schedule.epochs = 12;
    cfg.stage2.schedule.patience = 12;
    cfg
}

/// Mean of each channel's score over a batch, [C].
fn mean_channel_scores(scores: &[f32], channels: usize) -> Vec<f32> {
    let n = scores.len() / channels;
    (0..channels).map(|c| scores.iter().skip(c).step_by(channels).sum::<f32>() / n as f32).collect()
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

#[test]
fn channel_scores_point_at_the_faulted_column_and_region() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::small_twin(dir.path(), 5);
    let cfg = config();
    train(&data, &cfg, &dir.path().join("run")).unwrap();
    let run = Run::load(&dir.path().join("run"), &Device::flex()).unwrap();
    let mc = &run.config.model;
    let s1 = &mc.stage1;
    let evidence = mc.block.evidence.as_ref().expect("the default detector reads evidence");
    let (d, regions) = (s1.sensor_dim, evidence.grid * evidence.grid);
    let prep = prepare(&data, cfg.window, &cfg.split).unwrap();
    let clean = host_batch(&data, &prep.test.ends, s1.window, &run.config.normalization);

    // sensor: column 5 turns into noise around its own level, every other column is untouched
    let mut faulty = clean.clone();
    let column = 5;
    for (k, v) in faulty.sensor.iter_mut().enumerate() {
        if k % d == column {
            *v += if (k / d) % 2 == 0 { 0.3 } else { -0.3 };
        }
    }
    let thresholds = run.config.gate.thresholds();
    let out = run.model.infer(mc, &faulty, thresholds, &Device::flex());
    let scores = mean_channel_scores(&out.channel_scores, d + regions);
    assert_eq!(argmax(&scores[..d]), column, "sensor column scores {:?}", &scores[..d]);

    // camera: the top-left region of a 4 × 4 grid painted white
    let mut faulty = clean.clone();
    let (h, w) = (s1.height, s1.width);
    for b in 0..faulty.len {
        for c in 0..3 {
            for y in 0..h / 4 {
                for x in 0..w / 4 {
                    faulty.camera[b * 3 * h * w + c * h * w + y * w + x] = 1.0;
                }
            }
        }
    }
    let out = run.model.infer(mc, &faulty, thresholds, &Device::flex());
    let scores = mean_channel_scores(&out.channel_scores, d + regions);
    assert_eq!(argmax(&scores[d..]), 0, "region scores {:?}", &scores[d..]);

    // a calibration that also relights the validation episodes to the training episodes'
    // lightings moves the camera's threshold only: the sensor's comes from the windows as they are
    let options = cfg.gate_options(&prep);
    assert_eq!(options.relight, None, "the twin's lighting does not vary");
    let norm = &run.config.normalization;
    let plain = calibrate_gate(&run.model, mc, &data, &prep.val, norm, options.clone());
    let relit = GateOptions { relight: Some(prep.split.train.clone()), ..options };
    let relit = calibrate_gate(&run.model, mc, &data, &prep.val, norm, relit);
    assert_eq!(relit.relight, Some(prep.split.train.len()));
    let (p, r) = (plain.thresholds(), relit.thresholds());
    assert_eq!((p.sensor, p.novelty), (r.sensor, r.novelty));
    assert_ne!(p.camera, r.camera, "relit copies changed no camera score");

    // a stream's windows are faulty above the minimum level, healthy at 0, and left out between
    let (mut camera, mut sensor) = (vec![0.0f32; data.len()], vec![0.0f32; data.len()]);
    let episode = prep.split.test[0];
    let samples: Vec<usize> = (0..data.len()).filter(|&i| data.episode[i] == episode).collect();
    let half = samples.len() / 2;
    for (k, &i) in samples.iter().enumerate() {
        sensor[i] = if k < half { 0.005 } else { 1.0 };
        camera[i] = 1.0;
    }
    let all = mmguard_eval::evaluate_stream(&run, &data, &[camera.clone(), sensor.clone()], None, 0.0).unwrap();
    let some = mmguard_eval::evaluate_stream(&run, &data, &[camera, sensor], None, 0.01).unwrap();
    let (a, s) = (&all.modalities[1], &some.modalities[1]);
    assert_eq!((a.faint_windows, a.faulty_windows + a.healthy_windows), (0, all.windows));
    assert!(s.faint_windows > 0 && s.faulty_windows < a.faulty_windows);
    assert_eq!(s.faulty_windows + s.healthy_windows + s.faint_windows, all.windows);
    assert_eq!(s.healthy_windows, a.healthy_windows, "a faint window is never counted healthy");
    assert_eq!(all.modalities[0], some.modalities[0], "the camera's levels are 0 or 1");
}

#[test]
fn a_held_out_sweep_marks_what_stage_2_never_saw() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::small_twin(dir.path(), 5);
    let mut cfg = config();
    let held = [Fault::Camera(CameraFault::Scratches), Fault::Sensor(SensorFault::Step)];
    cfg.stage2.faults = cfg.stage2.faults.without(&held);
    assert!(cfg.stage2.faults.camera.iter().all(|(f, _)| *f != CameraFault::Scratches));
    train(&data, &cfg, &dir.path().join("run")).unwrap();
    let run = Run::load(&dir.path().join("run"), &Device::flex()).unwrap();
    let specs: Vec<Compound> =
        ["camera/scratches", "camera/blur", "sensor/step", "sensor/gain", "camera/blur+sensor/step"]
            .iter()
            .map(|n| Compound::from_name(n).unwrap())
            .collect();
    let rows = mmguard_eval::sweep(&run, &data, &specs, &[1.0], 0, 0.02).unwrap();
    let trained = |fault: &str| rows.iter().find(|r| r.fault == fault).and_then(|r| r.trained);
    assert_eq!(trained("camera/scratches"), Some(false));
    assert_eq!(trained("sensor/step"), Some(false));
    assert_eq!(trained("camera/blur"), Some(true));
    assert_eq!(trained("sensor/gain"), Some(true));
    assert_eq!(trained("camera/blur+sensor/step"), Some(false), "a compound is seen only if every part is");
    // every row is scored, held out or not, and the strongest seen fault is caught
    assert!(rows.iter().all(|r| r.auroc.is_some()));
    let gain = rows.iter().find(|r| r.fault == "sensor/gain").unwrap();
    assert!(gain.auroc.unwrap() > 0.9, "sensor gain at severity 1: AUROC {:?}", gain.auroc);

    // saturation clips only the readings above its limit: the share of copies it changes grows
    // with the severity, from none at 0 (no second AUROC there) to most at 1
    let saturation = [Compound::from_name("sensor/saturation").unwrap()];
    let rows = mmguard_eval::sweep(&run, &data, &saturation, &[0.0, 0.25, 1.0], 0, 0.02).unwrap();
    let changed: Vec<f64> = rows.iter().map(|r| r.changed).collect();
    assert_eq!((changed[0], rows[0].auroc_changed), (0.0, None));
    assert!(changed[1] <= changed[2] && changed[2] > 0.5, "changed shares {changed:?}");
    assert!(rows[2].auroc_changed.is_some());
    // a level beyond the range counts nothing as changed
    let beyond = mmguard_eval::sweep(&run, &data, &saturation, &[1.0], 0, 1.5).unwrap();
    assert_eq!(beyond[0].changed, 0.0);
}
