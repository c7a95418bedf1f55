//! The real server on a loopback port, called with a real HTTP client: answers equal the
//! library's for the same samples, PNG and raw frames give the same answer, rules name their
//! channel, and malformed requests get a 4xx naming the field while the server stays ready.

use std::sync::Arc;

use base64::Engine;
use mmguard_data::Dataset;
use mmguard_serve::pipeline::{Pipeline, Sample, BAD_SENSOR_FAILURE, GOOD};
use mmguard_serve::{app, AppState, Limits, RuleConfig};
use mmguard_train::{train, TrainConfig};
use mmguard_twin::TwinConfig;
use serde_json::{json, Value};

struct Server {
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn serve(pipeline: Arc<Pipeline>, limits: Limits) -> Server {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState { admin_token: Some("s3cret".into()), ..AppState::new(pipeline, limits) };
    rt.spawn(async move { axum::serve(listener, app(state)).await });
    Server { url, _rt: rt }
}

fn client() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn post(url: &str, kind: &str, body: &[u8]) -> (u16, Value) {
    let mut resp = client().post(url).header("content-type", kind).send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Windows of the dataset as requests: frame of the window's last sample, its readings.
fn samples(data: &Dataset, ends: &[usize], t: usize) -> Vec<Sample> {
    ends.iter()
        .map(|&i| Sample {
            camera: data.frame(i).to_vec(),
            sensor: data.sensor_window(i, t).to_vec(),
            device: None,
            timestamp: Some(i as f64),
        })
        .collect()
}

fn as_json(s: &Sample, d: usize) -> Value {
    let rows: Vec<Vec<f32>> = s.sensor.chunks(d).map(<[f32]>::to_vec).collect();
    json!({ "camera": { "raw": s.camera }, "sensor": rows, "timestamp": s.timestamp })
}

#[test]
fn the_server_answers_like_the_library_and_refuses_bad_requests_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arm.npz");
    let twin =
        TwinConfig { episodes: 8, samples_per_episode: 40, height: 32, width: 32, seed: 9, ..Default::default() };
    mmguard_twin::write(&twin, &path).unwrap();
    let data = Dataset::load(&path).unwrap();
    let cfg = TrainConfig::tiny();
    train(&data, &cfg, &dir.path().join("run")).unwrap();
    let pipeline = Arc::new(Pipeline::load(&dir.path().join("run"), RuleConfig::default()).unwrap());
    let server = serve(pipeline.clone(), Limits { max_body_bytes: 1 << 20, max_batch: 16 });
    let infer = format!("{}/v1/infer", server.url);
    let (_, _, t, d) = pipeline.geometry();

    let mut ok = client().get(&format!("{}/healthz", server.url)).call().unwrap();
    assert_eq!(ok.body_mut().read_to_string().unwrap(), "ok");

    // a batch over HTTP equals the library on the same samples, bit for bit
    let batch = samples(&data, &[20, 60, 100, 140, 200, 260], t);
    let body = json!({ "samples": batch.iter().map(|s| as_json(s, d)).collect::<Vec<_>>() });
    let (status, got) = post(&infer, "application/json", body.to_string().as_bytes());
    assert_eq!(status, 200, "{got}");
    // through the same serialisation as the server: equal text is equal f32 bits
    let want: Value = serde_json::from_str(&serde_json::to_string(&pipeline.infer(&batch)).unwrap()).unwrap();
    assert_eq!(got["answers"], want);
    assert_eq!(got["model_version"], pipeline.version());

    // one sample, its frame as a PNG: the same answer as the raw frame
    let (h, w) = (32, 32);
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        let mut writer = enc.write_header().unwrap();
        let frame = &batch[0].camera;
        let interleaved: Vec<u8> = (0..h * w).flat_map(|p| (0..3).map(move |c| frame[c * h * w + p])).collect();
        writer.write_image_data(&interleaved).unwrap();
    }
    let mut one = as_json(&batch[0], d);
    one["camera"] = json!({ "png": base64::engine::general_purpose::STANDARD.encode(&png_bytes) });
    let (status, got) = post(&infer, "application/json", one.to_string().as_bytes());
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["answers"][0], want[0]);

    // a missing reading is a rule violation on its channel, the model is not asked
    let mut broken = as_json(&batch[1], d);
    broken["sensor"][3][2] = Value::Null;
    let (_, got) = post(&infer, "application/json", broken.to_string().as_bytes());
    let a = &got["answers"][0];
    assert_eq!(a["route"], "rule");
    assert_eq!(a["violations"][0]["rule"], "not-finite");
    let column = pipeline.columns()[2].clone();
    assert_eq!(a["violations"][0]["channel"], column.as_str());
    assert_eq!(a["sensor_status"][2], BAD_SENSOR_FAILURE);
    assert_eq!(a["sensor_status"][0], GOOD);

    // malformed requests: 4xx naming the field, and the server keeps serving
    let sample = as_json(&batch[0], d);
    let mut short = sample.clone();
    short["sensor"].as_array_mut().unwrap().pop();
    let mut wide = sample.clone();
    wide["sensor"][0].as_array_mut().unwrap().push(json!(1.0));
    let mut word = sample.clone();
    word["sensor"][1][0] = json!("high");
    let mut big = sample.clone();
    big["camera"]["raw"][5] = json!(300);
    let mut small_frame = sample.clone();
    small_frame["camera"]["raw"].as_array_mut().unwrap().truncate(100);
    let mut junk_png = sample.clone();
    junk_png["camera"] = json!({ "png": base64::engine::general_purpose::STANDARD.encode(b"not a png") });
    let mut bad_b64 = sample.clone();
    bad_b64["camera"] = json!({ "png": "***" });
    let mut no_camera = sample.clone();
    no_camera.as_object_mut().unwrap().remove("camera");
    let mut bad_device = sample.clone();
    bad_device["device"] = json!(7);
    let too_many = json!({ "samples": vec![sample.clone(); 17] });
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"{not json".to_vec(), "application/json", 400, "body"),
        (sample.to_string().into_bytes(), "text/plain", 415, "content-type"),
        (b"[1, 2]".to_vec(), "application/json", 400, "body"),
        (json!({ "samples": [] }).to_string().into_bytes(), "application/json", 400, "samples"),
        (json!({ "samples": 3 }).to_string().into_bytes(), "application/json", 400, "samples"),
        (short.to_string().into_bytes(), "application/json", 400, "sensor"),
        (wide.to_string().into_bytes(), "application/json", 400, "sensor[0]"),
        (word.to_string().into_bytes(), "application/json", 400, "sensor[1][0]"),
        (big.to_string().into_bytes(), "application/json", 400, "camera.raw[5]"),
        (small_frame.to_string().into_bytes(), "application/json", 400, "camera.raw"),
        (junk_png.to_string().into_bytes(), "application/json", 400, "camera.png"),
        (bad_b64.to_string().into_bytes(), "application/json", 400, "camera.png"),
        (no_camera.to_string().into_bytes(), "application/json", 400, "camera"),
        (bad_device.to_string().into_bytes(), "application/json", 400, "device"),
        (too_many.to_string().into_bytes(), "application/json", 413, "samples"),
    ];
    for (body, kind, code, field) in cases {
        let (status, got) = post(&infer, kind, &body);
        assert_eq!(status, code, "{field}: {got}");
        assert_eq!(got["error"]["field"], field, "{got}");
    }
    // the gate at run time: only with the token; a threshold near 0 flags every modality
    let url = format!("{}/v1/threshold", server.url);
    let put = |token: Option<&str>, body: Value| -> (u16, Value) {
        let mut req = client().put(&url).header("content-type", "application/json").header("x-operator", "test");
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.send(body.to_string().as_bytes()).unwrap();
        let status = resp.status().as_u16();
        (status, serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap())
    };
    let calibrated = pipeline.threshold();
    assert_eq!(put(None, json!({ "threshold": 0.5 })).0, 401);
    let (status, got) = put(Some("wrong"), json!({ "threshold": 0.5 }));
    assert_eq!((status, got["error"]["field"].as_str()), (401, Some("authorization")));
    let (status, got) = put(Some("s3cret"), json!({ "threshold": 1.5 }));
    assert_eq!((status, got["error"]["field"].as_str()), (400, Some("threshold")));
    assert_eq!(pipeline.threshold(), calibrated, "refused changes change nothing");
    let (status, got) = put(Some("s3cret"), json!({ "threshold": 1e-6 }));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["previous"].as_f64().unwrap() as f32, calibrated);
    let (_, got) = post(&infer, "application/json", body.to_string().as_bytes());
    assert!(got["answers"].as_array().unwrap().iter().all(|a| a["route"] != "bypass"), "{got}");
    let want: Value = serde_json::from_str(&serde_json::to_string(&pipeline.infer(&batch)).unwrap()).unwrap();
    assert_eq!(got["answers"], want);
    let mut read = client().get(&url).call().unwrap();
    let now: Value = serde_json::from_str(&read.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(now["calibrated"].as_f64().unwrap() as f32, calibrated);

    // the metrics counted what happened
    let mut m = client().get(&format!("{}/metrics", server.url)).call().unwrap();
    let text = m.body_mut().read_to_string().unwrap();
    for line in [
        "mmguard_requests_total{status=\"200\"}",
        "mmguard_requests_total{status=\"400\"}",
        "mmguard_requests_total{status=\"415\"}",
        "mmguard_samples_total{route=\"corrected\"}",
        "mmguard_faults_total{by=\"not-finite\",modality=\"sensor\"} 1",
        "mmguard_batch_size_count",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let mut ready = client().get(&format!("{}/readyz", server.url)).call().unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let r: Value = serde_json::from_str(&ready.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(r["ready"], true);
}
