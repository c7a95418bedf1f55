//! End to end through the real binary: generate → inspect → train → eval on a tiny twin
//! dataset, and clear errors (exit code 2) on broken input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn mmguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmguard")).args(args).output().expect("binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = mmguard(args);
    assert!(out.status.success(), "mmguard {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A configuration small enough to train in seconds: 32×32 frames, narrow layers, few epochs.
const TINY: &str = r#"{
  "window": 8,
  "batch_size": 32,
  "architecture": { "camera_channels": [8, 16, 16, 8], "sensor_channels": [16, 16, 8], "hidden": 64, "detector_hidden": 16 },
  "stage1": { "epochs": 12, "learning_rate": 0.003, "patience": 12 },
  "stage2": { "schedule": { "epochs": 15, "learning_rate": 0.002, "patience": 15 } }
}"#;

fn json_at(v: &serde_json::Value, path: &str) -> f64 {
    path.split('.').fold(v, |v, k| &v[k]).as_f64().unwrap_or_else(|| panic!("{path} missing in {v}"))
}

#[test]
fn generate_train_eval_lowers_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    ok(&[
        "generate",
        "--out",
        &d("arm.npz"),
        "--episodes",
        "10",
        "--samples",
        "60",
        "--height",
        "32",
        "--width",
        "32",
        "--seed",
        "3",
    ]);
    let inspect = ok(&["inspect", &d("arm.npz"), "--json"]);
    let summary: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(summary["samples"], 600);
    assert_eq!(summary["columns"].as_array().unwrap().len(), 18);

    std::fs::write(dir.path().join("tiny.json"), TINY).unwrap();
    ok(&["train", "--data", &d("arm.npz"), "--out", &d("run"), "--config", &d("tiny.json"), "--quiet"]);
    for f in ["config.json", "model.safetensors", "metrics.json", "train_log.csv"] {
        assert!(Path::new(&d("run")).join(f).exists(), "{f} missing from the run");
    }
    let report: serde_json::Value = serde_json::from_str(&ok(&["eval", "--run", &d("run"), "--json"])).unwrap();
    assert_eq!(report["subset"], "test split");
    for m in ["camera", "sensor"] {
        let faulty = json_at(&report, &format!("faulty_input_mse.{m}"));
        let ungated = json_at(&report, &format!("ungated_mse.{m}"));
        let gated = json_at(&report, &format!("corrected_mse.{m}"));
        assert!(ungated < faulty, "{m}: correction {ungated} not below the faulty input {faulty}");
        assert!(gated <= faulty, "{m}: gated output {gated} above the faulty input {faulty}");
        assert!(json_at(&report, &format!("detection.{m}.auroc")) > 0.5);
    }
    assert!(json_at(&report, "corrected_mse.sensor") < json_at(&report, "faulty_input_mse.sensor"));
    let combined = json_at(&report, "corrected_mse.combined");
    assert!(
        (combined - json_at(&report, "corrected_mse.camera") - json_at(&report, "corrected_mse.sensor")).abs() < 1e-12
    );
    assert!(json_at(&report, "false_alarm_rate") <= 1.0);

    // the same seed gives the same numbers
    ok(&["train", "--data", &d("arm.npz"), "--out", &d("run2"), "--config", &d("tiny.json"), "--quiet"]);
    let again: serde_json::Value = serde_json::from_str(&ok(&["eval", "--run", &d("run2"), "--json"])).unwrap();
    assert_eq!(report["corrected_mse"], again["corrected_mse"]);
    assert_eq!(report["detection"], again["detection"]);

    // stage 1 taken from the first run: same seed, so stage 2 and the results come out the same
    ok(&[
        "train",
        "--data",
        &d("arm.npz"),
        "--out",
        &d("run3"),
        "--config",
        &d("tiny.json"),
        "--reuse-stage1",
        &d("run"),
        "--quiet",
    ]);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run3/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["training"]["stage1_epochs"], 0);
    let reused: serde_json::Value = serde_json::from_str(&ok(&["eval", "--run", &d("run3"), "--json"])).unwrap();
    assert_eq!(report["corrected_mse"], reused["corrected_mse"]);

    // severity sweep: no change at severity 0, the uncorrected error rises with severity
    let sweep: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "sweep",
        "--run",
        &d("run"),
        "--faults",
        "camera/blur,sensor/drift,camera/glare+sensor/noise",
        "--severities",
        "0,0.5,1",
        "--json",
        "--out",
        &d("sweep"),
    ]))
    .unwrap();
    let rows = sweep.as_array().unwrap();
    // the compound on both modalities has a row per modality and severity
    assert_eq!(rows.len(), 6 + 6);
    assert_eq!(rows[6]["fault"], "camera/glare+sensor/noise");
    assert_eq!((&rows[6]["modality"], &rows[7]["modality"]), (&"camera".into(), &"sensor".into()));
    for fault in rows[..6].chunks(3) {
        let input: Vec<f64> = fault.iter().map(|r| r["faulty_input_mse"].as_f64().unwrap()).collect();
        assert_eq!(input[0], 0.0, "{}", fault[0]["fault"]);
        assert_eq!(fault[0]["auroc"], 0.5);
        assert!(input[0] < input[1] && input[1] < input[2], "{}: {input:?}", fault[0]["fault"]);
    }
    let compound_sensor: Vec<f64> =
        rows[6..].iter().skip(1).step_by(2).map(|r| r["faulty_input_mse"].as_f64().unwrap()).collect();
    assert!(compound_sensor[0] == 0.0 && compound_sensor[1] < compound_sensor[2], "{compound_sensor:?}");
    let csv = std::fs::read_to_string(dir.path().join("sweep/sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    assert!(csv.lines().nth(4).unwrap().starts_with("sensor/drift,sensor,0,"));
    for png in ["robustness_error.png", "robustness_detection.png"] {
        assert!(std::fs::metadata(dir.path().join("sweep").join(png)).unwrap().len() > 10_000, "{png}");
    }

    // a stream whose camera breaks halfway through every episode
    ok(&[
        "faults",
        "inject",
        "--data",
        &d("arm.npz"),
        "--out",
        &d("stream.npz"),
        "--fault",
        "camera/noise",
        "--onset",
        "0.5",
    ]);
    let stream: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "stream", "--run", &d("run"), "--data", &d("stream.npz"), "--json"]))
            .unwrap();
    // the spelling before the subcommand still works, for one release, and says so
    let old = mmguard(&["eval", "--run", &d("run"), "--data", &d("stream.npz"), "--stream", "--json"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&old.stdout).unwrap(), stream);
    assert!(String::from_utf8_lossy(&old.stderr).contains("now `eval stream`"));
    let camera = &stream["modalities"][0];
    assert_eq!(camera["faulty_episodes"], 10);
    assert_eq!(camera["faulty_windows"], 10 * 30);
    // the tiny model's camera score rises on the faulty windows (the full-size demo run flags
    // them all, see the README)
    assert!(json_at(camera, "auroc") > 0.55, "{camera}");
    assert_eq!(stream["modalities"][1]["faulty_windows"], 0);
    let out = mmguard(&["eval", "stream", "--run", &d("run"), "--data", &d("arm.npz")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("faults inject"));

    // missing modality: each absent modality is reconstructed better than by zeros
    for m in report["missing_modality"].as_array().unwrap() {
        assert!(m["reconstructed_mse"].as_f64().unwrap() < m["zero_fill_mse"].as_f64().unwrap(), "{m}");
    }

    // the sensor-faulty copies column by column: every column named, in the file's order, and
    // the per-column errors average to the sensor figure
    let columns = report["sensor_columns"].as_array().unwrap();
    assert_eq!(columns.len(), 18);
    assert_eq!(columns[0]["name"], "j0_angle");
    let mean = |key: &str| columns.iter().map(|c| c[key].as_f64().unwrap()).sum::<f64>() / 18.0;
    for (key, total) in [("faulty_input", "faulty_input_mse"), ("corrected", "corrected_mse")] {
        let whole = report[total]["sensor"].as_f64().unwrap();
        assert!((mean(key) - whole).abs() <= 1e-9 * whole.max(1.0), "{key}: {} vs {whole}", mean(key));
    }

    // another file with the run's columns is evaluated whole
    ok(&[
        "generate",
        "--out",
        &d("other.npz"),
        "--episodes",
        "2",
        "--samples",
        "30",
        "--height",
        "32",
        "--width",
        "32",
        "--seed",
        "9",
    ]);
    let other: serde_json::Value =
        serde_json::from_str(&ok(&["eval", "--run", &d("run"), "--data", &d("other.npz"), "--json"])).unwrap();
    assert_eq!(other["subset"], "all");
    assert_eq!(other["windows"], 2 * (30 - 8 + 1));

    // a file the run cannot take is refused with a clear message
    ok(&["generate", "--out", &d("wide.npz"), "--episodes", "3", "--samples", "20", "--height", "32", "--width", "48"]);
    let out = mmguard(&["eval", "--run", &d("run"), "--data", &d("wide.npz")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("32x48") && err.contains("32x32"), "{err}");
}

#[test]
fn broken_files_give_exit_code_2_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.npz");
    std::fs::write(&path, b"PK\x03\x04 not really a zip").unwrap();
    let out = mmguard(&["inspect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.npz") && err.contains("not a readable .npz"), "{err}");
    let out = mmguard(&["train", "--data", dir.path().join("absent.npz").to_str().unwrap(), "--out", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // the file and what the system said, once
    assert!(err.contains("absent.npz") && err.matches("(os error 2)").count() == 1, "{err}");
    // a FIFO would block its reader until something writes: refused before it is opened (should
    // a reader open it anyway, a writer arrives after 10 s, so the test fails instead of hanging)
    let fifo = dir.path().join("fifo.npz");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let unblock = fifo.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(10));
        drop(std::fs::OpenOptions::new().write(true).open(unblock));
    });
    let out = mmguard(&["inspect", fifo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fifo.npz") && err.contains("not a regular file"), "{err}");
}

#[test]
fn the_welding_cell_trains_and_evaluates_and_its_data_goes_out_and_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    let small = ["--episodes", "10", "--samples", "60", "--height", "32", "--width", "32", "--seed", "4"];
    ok(&[&["generate", "--scene", "dual-weld", "--out", &d("weld.npz")][..], &small[..]].concat());
    let summary: serde_json::Value = serde_json::from_str(&ok(&["inspect", &d("weld.npz"), "--json"])).unwrap();
    let columns: Vec<String> =
        summary["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    for process in ["weld_current", "arc_voltage", "wire_feed", "arc_on"] {
        assert!(columns.iter().any(|c| c == process), "{process} missing from {columns:?}");
    }
    std::fs::write(dir.path().join("tiny.json"), TINY).unwrap();
    ok(&["train", "--data", &d("weld.npz"), "--out", &d("run"), "--config", &d("tiny.json"), "--quiet"]);
    let report: serde_json::Value = serde_json::from_str(&ok(&["eval", "--run", &d("run"), "--json"])).unwrap();
    for m in ["camera", "sensor"] {
        let faulty = json_at(&report, &format!("faulty_input_mse.{m}"));
        let ungated = json_at(&report, &format!("ungated_mse.{m}"));
        assert!(ungated < faulty, "{m}: correction {ungated} not below the faulty input {faulty}");
    }

    // downstream heads on the run's frozen encoders: the four phases of the weld, with the
    // controller, Hessian checks and meta steps frequent enough to happen on a tiny file
    let study = r#"{ "modalimmune": { "control_every": 2, "masking": { "every": 3 }, "meta": { "every": 4 } },
                     "faults": { "faults": ["camera/blur"], "severities": [1.0] } }"#;
    std::fs::write(dir.path().join("study.json"), study).unwrap();
    let robust = ["robust", "--run", &d("run"), "--seeds", "1", "--epochs", "2", "--label-fractions", "0.5,1"];
    let flags = ["--methods", "robult,modalimmune", "--config", &d("study.json"), "--out", &d("robust")];
    let md = ok(&[&robust[..], &flags[..]].concat());
    assert!(md.contains("| robult | 50 % |") && md.contains("| modalimmune |"), "{md}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d("robust/results.json")).unwrap()).unwrap();
    let immune = results["results"].as_array().unwrap().iter().find(|r| r["method"] == "modalimmune").unwrap();
    assert!(!immune["log"]["meta"].as_array().unwrap().is_empty(), "{}", immune["log"]);
    for png in ["robust/missing.png", "robust/faults.png", "robust/labels.png"] {
        assert!(std::fs::metadata(d(png)).unwrap().len() > 5_000, "{png}");
    }
    let out = mmguard(&[&robust[..], &["--label-key", "quality", "--out", &d("robust2")][..]].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quality") && err.contains("phase"), "{err}");

    // export → import gives the same file back; pictures of the faults come out of the same data
    ok(&["export", "--data", &d("weld.npz"), "--out", &d("export")]);
    let out = ok(&[
        "import",
        "--images",
        &d("export/frames"),
        "--csv",
        &d("export/sensors.csv"),
        "--labels",
        "phase",
        "--out",
        &d("back.npz"),
    ]);
    assert!(out.contains("imported 600 samples in 10 episodes"), "{out}");
    let back: serde_json::Value = serde_json::from_str(&ok(&["inspect", &d("back.npz"), "--json"])).unwrap();
    assert_eq!(back["fingerprint"], summary["fingerprint"]);
    ok(&["faults", "preview", "--data", &d("weld.npz"), "--out", &d("cam.png"), "--sensor-out", &d("sensor.png")]);
    for png in ["cam.png", "sensor.png"] {
        assert!(std::fs::metadata(d(png)).unwrap().len() > 5_000, "{png}");
    }
    let (cam, sensor) = (d("bad-cam.png"), d("bad-sensor.png"));
    let out = mmguard(&[
        "faults",
        "preview",
        "--data",
        &d("weld.npz"),
        "--column",
        "torque",
        "--out",
        &cam,
        "--sensor-out",
        &sensor,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("weld_current"));
    assert!(!Path::new(&cam).exists() && !Path::new(&sensor).exists(), "a refused preview wrote a file");
}

#[test]
fn bench_compares_the_methods_over_seeds_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    let small = ["--episodes", "10", "--samples", "60", "--height", "32", "--width", "32", "--seed", "5"];
    ok(&[&["generate", "--out", &d("arm.npz")][..], &small[..]].concat());
    std::fs::write(dir.path().join("tiny.json"), TINY).unwrap();
    let bench = |methods: &str, seeds: &str| {
        let (data, config, out) = (d("arm.npz"), d("tiny.json"), d("report"));
        ok(&[
            "bench",
            "--data",
            &data,
            "--config",
            &config,
            "--methods",
            methods,
            "--seeds",
            seeds,
            "--out",
            &out,
            "--quiet",
        ])
    };
    // every method once
    let md = bench("all", "1");
    for label in [
        "MMSSL",
        "MMSSL, no gate",
        "MMSSL, no modulation",
        "MMSSL, single stage",
        "MMSSL, dense encoders",
        "MMSSL, no evidence",
        "MMSSL, test-fault mix",
        "MMSSL, one threshold",
        "MMSSL, whole-modality substitution",
        "MMSSL, raw latent",
        "MMSSL, decoded output (no input repair)",
        "MMSSL, highway decoder",
        "MMAE",
        "MMFR",
        "MMCF",
        "MMGAN",
        "MMUGAN",
    ] {
        assert!(md.contains(&format!("| {label} | 1 |")), "{label} missing:\n{md}");
    }
    assert!(
        md.contains("Table 1") && md.contains("best baseline (MM") && md.contains("ablation MMSSL, no gate"),
        "{md}"
    );
    for f in ["report.md", "results.csv", "results.json", "errors.png", "curves.png", "training.png"] {
        assert!(dir.path().join("report").join(f).exists(), "{f} missing");
    }
    assert!(md.contains("Severity curves") && md.contains("| sensor/stuck |"), "{md}");
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report/results.json")).unwrap()).unwrap()
    };
    let results = read();
    let runs = results["runs"].as_array().unwrap();
    assert_eq!(runs.len(), mmguard_bench::Method::ALL.len());
    // the same faulty copies for every method, in the protocol and in the severity curves
    assert!(runs.iter().all(|r| r["result"]["faulty_input_mse"] == runs[0]["result"]["faulty_input_mse"]));
    let curve_inputs = |r: &serde_json::Value| -> Vec<f64> {
        r["curves"].as_array().unwrap().iter().map(|p| p["faulty_input_mse"].as_f64().unwrap()).collect()
    };
    assert_eq!(curve_inputs(&runs[0]).len(), 6 * 3);
    assert!(runs.iter().all(|r| curve_inputs(r) == curve_inputs(&runs[0])));
    // the error of the faulty input grows with severity on every curve
    assert!(curve_inputs(&runs[0]).chunks(3).all(|c| c[0] < c[1] && c[1] < c[2]), "{:?}", curve_inputs(&runs[0]));
    let run = |name: &str| runs.iter().find(|r| r["method"] == name).unwrap()["result"].clone();
    // MMFR and MMGAN are the MMAE plus a regulariser or an adversary: other weights, other numbers
    for other in ["mmfr", "mmgan", "mmugan"] {
        assert_ne!(run(other)["output_mse"], run("mmae")["output_mse"], "{other}");
    }
    assert!(json_at(&run("mmae"), "output_mse.sensor") < json_at(&run("mmae"), "faulty_input_mse.sensor"));
    // the no-gate ablation is the MMSSL model of the same seed, every sample corrected: it
    // changes clean copies, which the gated model leaves alone
    assert!(json_at(&run("mmssl-no-gate"), "clean_mse.combined") > json_at(&run("mmssl"), "clean_mse.combined"));
    // the single-stage and dense-encoder ablations are models of their own, trained and saved
    for (ablation, log_stage) in [("mmssl-single-stage", "joint,"), ("mmssl-dense-encoders", "stage1,")] {
        assert_ne!(run(ablation)["output_mse"], run("mmssl")["output_mse"], "{ablation}");
        let log = std::fs::read_to_string(dir.path().join("report/runs").join(ablation).join("seed-0/train_log.csv"));
        assert!(log.unwrap().contains(log_stage), "{ablation}");
    }
    let dense = std::fs::read_to_string(dir.path().join("report/runs/mmssl-dense-encoders/seed-0/config.json"));
    assert!(dense.unwrap().contains(r#""encoder": "dense""#));

    // a second seed for one method: seed 0 is reused (its result not rewritten), seed 1 differs
    let seed0_path = dir.path().join("report/runs/mmae/seed-0/result.json");
    let written = std::fs::metadata(&seed0_path).unwrap().modified().unwrap();
    let again = bench("mmae", "2");
    assert_eq!(std::fs::metadata(&seed0_path).unwrap().modified().unwrap(), written);
    assert!(again.contains("| MMAE | 2 |"), "{again}");
    // the display flag does not decide a result: without --quiet nothing is trained again
    let (data, config, out) = (d("arm.npz"), d("tiny.json"), d("report"));
    ok(&["bench", "--data", &data, "--config", &config, "--methods", "mmae", "--seeds", "2", "--out", &out]);
    assert_eq!(std::fs::metadata(&seed0_path).unwrap().modified().unwrap(), written);
    let summary = read()["summary"][0].clone();
    assert_eq!(summary["method"], "mmae");
    assert!(json_at(&summary, "combined.std") > 0.0);

    // downstream heads on the (reused) MMSSL encoders, appended to the report
    let (data, config, out) = (d("arm.npz"), d("tiny.json"), d("report"));
    let heads = ["--heads", "robult,modalimmune-supervised", "--quiet"];
    let md = ok(&[
        &["bench", "--data", &data, "--config", &config, "--methods", "mmssl", "--seeds", "1", "--out", &out][..],
        &heads[..],
    ]
    .concat());
    assert!(
        md.contains("Downstream heads") && md.contains("| robult | 1 % |") && md.contains("| modalimmune-supervised |"),
        "{md}"
    );
    let report = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    assert!(report.contains("### Missing modality"), "{report}");
    assert!(
        dir.path().join("report/heads/results.json").exists() || dir.path().join("report/heads/report.md").exists()
    );

    let out = mmguard(&["bench", "--data", &d("arm.npz"), "--methods", "mmssl,vae", "--out", &d("r2")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'vae'") && stderr.contains("mmugan"), "{stderr}");
}

/// A GET over a plain socket (the end-to-end tests have no HTTP client library).
fn http_get(address: &str, path: &str) -> String {
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    write!(socket, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut socket, &mut answer).unwrap();
    answer
}

#[test]
fn serve_answers_a_load_test_and_stops_cleanly_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    ok(&["generate", "--out", &d("arm.npz"), "--episodes", "6", "--samples", "40", "--height", "32", "--width", "32"]);
    let fast = TINY.replace("\"epochs\": 12", "\"epochs\": 1").replace("\"epochs\": 15", "\"epochs\": 1");
    std::fs::write(dir.path().join("tiny.json"), fast).unwrap();
    ok(&["train", "--data", &d("arm.npz"), "--out", &d("run"), "--config", &d("tiny.json"), "--quiet"]);
    // a batch waits up to 1 s for company: time to send SIGTERM while one is in flight
    // and a client that never finishes its request holds the drain for at most 2 s
    std::fs::write(
        dir.path().join("serve.toml"),
        "listen = \"127.0.0.1:0\"\ndrain_deadline_s = 2\n[batching]\nmax_wait_us = 1000000\n",
    )
    .unwrap();

    let mut server = Command::new(env!("CARGO_BIN_EXE_mmguard"))
        .args(["serve", "--run", &d("run"), "--config", &d("serve.toml")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while url.is_none() && log.read_line(&mut line).unwrap() > 0 {
        url = line.split_whitespace().find(|w| w.starts_with("http://")).map(String::from);
        line.clear();
    }
    let url = url.expect("the server names its address");

    let out = ok(&[
        "loadtest",
        "--url",
        &url,
        "--data",
        &d("arm.npz"),
        "--rate",
        "40",
        "--duration",
        "1",
        "--out",
        &d("lt.json"),
    ]);
    assert!(out.contains("p99"), "{out}");
    let reports: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d("lt.json")).unwrap()).unwrap();
    let r = &reports[0];
    assert_eq!((r["sent"].as_u64(), r["ok"].as_u64()), (Some(40), Some(40)), "{r}");
    assert_eq!(r["errors"], serde_json::json!({}));
    assert!(json_at(r, "server.model_calls") >= 1.0, "{r}");
    assert!(json_at(r, "latency_ms.p99") >= json_at(r, "latency_ms.p50"));

    ok(&["request", "--url", &url, "--data", &d("arm.npz"), "--batch", "2", "--out", &d("body.json")]);
    let body: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d("body.json")).unwrap()).unwrap();
    assert_eq!(body["samples"].as_array().map(Vec::len), Some(2));
    assert!(body["samples"][0]["camera"]["png"].is_string(), "{body}");
    let early = mmguard(&["request", "--url", &url, "--data", &d("arm.npz"), "--index", "0"]);
    assert_eq!(early.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&early.stderr).contains("--index 0"));

    // SIGTERM with a request in flight: it is answered, then the server exits 0
    let mut socket = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    let request = std::fs::read(d("body.json")).unwrap();
    let head = format!(
        "POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        request.len()
    );
    socket.write_all(&[head.as_bytes(), &request].concat()).unwrap();
    let address = url.trim_start_matches("http://");
    let waiting = || http_get(address, "/metrics").contains("mmguard_queue_depth 2");
    let since = std::time::Instant::now();
    while !waiting() {
        assert!(since.elapsed().as_secs() < 10, "the request never reached the queue");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut stalled = std::net::TcpStream::connect(address).unwrap();
    stalled.write_all(b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
    let status = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(status.success());
    let signalled = std::time::Instant::now();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut socket, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("\"route\"").count(), 2, "{answer}");
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        if signalled.elapsed().as_secs() > 20 {
            server.kill().unwrap();
            panic!("the server did not exit within its drain deadline");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exit.success(), "the server did not exit 0 on SIGTERM");
    assert!(signalled.elapsed().as_secs_f64() < 8.0, "exit {:.1} s after SIGTERM", signalled.elapsed().as_secs_f64());
    drop(stalled);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut log, &mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest}");
    let gone = mmguard(&["loadtest", "--url", &url, "--data", &d("arm.npz"), "--duration", "1"]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("/readyz"));
}
