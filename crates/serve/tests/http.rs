//! The real server on a loopback port, called with a real HTTP client: answers equal the
//! library's for the same samples (JSON with raw or PNG frames, npz batches, concurrent requests
//! batched together), rules name their channel, malformed requests get a 4xx naming the field
//! while the server stays ready, the admin endpoints need the token, a reload swaps the run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use mmguard_data::Dataset;
use mmguard_loadtest::{request_body, BodyKind};
use mmguard_model::Thresholds;
use mmguard_serve::pipeline::{Pipeline, Sample, BAD_SENSOR_FAILURE, GOOD};
use mmguard_serve::{Admin, AppState, BatchConfig, ConnectionLimits, Limits, RuleConfig, Service};
use mmguard_train::{train, TrainConfig};
use mmguard_twin::TwinConfig;
use serde_json::{json, Value};

struct Server {
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn serve(service: Arc<Service>, limits: Limits) -> Server {
    serve_with(service, limits, Admin::Token("s3cret".into()))
}

fn serve_with(service: Arc<Service>, limits: Limits, admin: Admin) -> Server {
    listen(AppState::new(service, limits, admin), ConnectionLimits::default())
}

/// `state` behind the real listener on a loopback port, until the test ends.
fn listen(state: AppState, connections: ConnectionLimits) -> Server {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(mmguard_serve::serve(listener, state, connections, std::future::pending()));
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

/// One tiny trained run for every test of this file (trained once).
struct Fixture {
    dir: tempfile::TempDir,
    data: Dataset,
}

impl Fixture {
    fn run(&self) -> PathBuf {
        self.dir.path().join("run")
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arm.npz");
        let twin =
            TwinConfig { episodes: 8, samples_per_episode: 40, height: 32, width: 32, seed: 9, ..Default::default() };
        mmguard_twin::write(&twin, &path).unwrap();
        let data = Dataset::load(&path).unwrap();
        train(&data, &TrainConfig::tiny(), &dir.path().join("run")).unwrap();
        Fixture { dir, data }
    })
}

fn service(run: &Path, batching: BatchConfig) -> Arc<Service> {
    Arc::new(Service::new(Pipeline::load(run, RuleConfig::default()).unwrap(), RuleConfig::default(), batching))
}

/// The fixture's run served on a loopback port, and the pipeline it started with.
fn started(batching: BatchConfig) -> (Arc<Pipeline>, Server) {
    let service = service(&fixture().run(), batching);
    (service.pipeline(), serve(service, LIMITS))
}

impl Server {
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn text(&self, path: &str) -> String {
        client().get(&self.at(path)).call().unwrap().body_mut().read_to_string().unwrap()
    }
}

const LIMITS: Limits =
    Limits { max_body_bytes: 1 << 20, max_batch: 16, max_decoded_bytes: 1 << 20, max_in_flight: 64, ..Limits::DEFAULT };

/// What the library answers, through the same serialisation as the server: equal text is
/// equal f32 bits.
fn library(pipeline: &Pipeline, samples: &[Sample]) -> Value {
    serde_json::from_str(&serde_json::to_string(&pipeline.infer(samples)).unwrap()).unwrap()
}

#[test]
fn the_server_answers_like_the_library_in_json_png_and_npz() {
    let data = &fixture().data;
    let (pipeline, server) = started(BatchConfig::default());
    let infer = server.at("/v1/infer");
    let g = pipeline.geometry();
    let (t, d) = (g.window, g.columns.len());
    assert_eq!(server.text("/healthz"), "ok");

    // a batch over HTTP equals the library on the same samples, bit for bit
    let ends = [20, 60, 100, 140, 200, 260];
    let batch = samples(data, &ends, t);
    let body = json!({ "samples": batch.iter().map(|s| as_json(s, d)).collect::<Vec<_>>() });
    let (status, got) = post(&infer, "application/json", body.to_string().as_bytes());
    assert_eq!(status, 200, "{got}");
    let want = library(&pipeline, &batch);
    assert_eq!(got["answers"], want);
    assert_eq!(got["model_version"], pipeline.version());

    // the same batch as an npz body (the data contract's keys, windows [N, T, D])
    let (status, got) = post(&infer, "application/x-npz", &request_body(data, g, &ends, BodyKind::Npz));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["answers"], want);

    // one sample, its frame as a PNG: the same answer as the raw frame
    let png: Value = serde_json::from_slice(&request_body(data, g, &ends[..1], BodyKind::Png)).unwrap();
    let mut one = as_json(&batch[0], d);
    one["camera"] = png["samples"][0]["camera"].clone();
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

    // /readyz gives what a client needs to build a sample; /openapi.json lists every route
    let ready: Value = serde_json::from_str(&server.text("/readyz")).unwrap();
    assert_eq!(ready["geometry"]["window"], t);
    let doc: Value = serde_json::from_str(&server.text("/openapi.json")).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for route in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/infer", "/v1/threshold", "/v1/reload"] {
        assert!(paths.contains_key(route), "{route} not documented");
    }
    for (route, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let url = server.at(route);
            let status = match method.as_str() {
                "get" => client().get(&url).call().unwrap().status().as_u16(),
                "post" => client().post(&url).send(&b"{}"[..]).unwrap().status().as_u16(),
                "put" => client().put(&url).send(&b"{}"[..]).unwrap().status().as_u16(),
                other => panic!("undocumented method {other}"),
            };
            assert!(status != 404 && status != 405, "{method} {route} documented but not served: {status}");
        }
    }
    assert_eq!(doc["components"]["schemas"]["Sample"]["properties"]["sensor"]["minItems"], t);
}

#[test]
fn malformed_requests_get_a_4xx_naming_the_field_and_the_server_stays_ready() {
    let fx = fixture();
    let (pipeline, server) = started(BatchConfig::default());
    let infer = server.at("/v1/infer");
    let g = pipeline.geometry();
    let (t, d) = (g.window, g.columns.len());
    let batch = samples(&fx.data, &[20, 60], t);
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
    let mut long_device = sample.clone();
    long_device["device"] = json!("d".repeat(129));
    let too_many = json!({ "samples": vec![sample.clone(); 17] });
    let nan = sample.to_string().replacen("[[", "[[NaN,", 1);
    let mut bad_npz = request_body(&fx.data, g, &[20, 60], BodyKind::Npz);
    bad_npz.truncate(bad_npz.len() / 2);
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
        (long_device.to_string().into_bytes(), "application/json", 400, "device"),
        (too_many.to_string().into_bytes(), "application/json", 413, "samples"),
        (nan.into_bytes(), "application/json", 400, "body"),
        (b"".to_vec(), "application/json", 400, "body"),
        (bad_npz, "application/x-npz", 400, "body"),
        (sample.to_string().into_bytes(), "application/x-npz", 400, "body"),
    ];
    for (body, kind, code, field) in cases {
        let (status, got) = post(&infer, kind, &body);
        assert_eq!(status, code, "{field}: {got}");
        assert_eq!(got["error"]["field"], field, "{got}");
    }

    // a body declared over the limit is refused on its headers alone, before a byte of it is read
    let mut socket = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let size = LIMITS.max_body_bytes + 1;
    write!(socket, "POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""field":"body""#), "{answer}");

    let ready: Value = serde_json::from_str(&server.text("/readyz")).unwrap();
    assert_eq!(ready["ready"], true);
    let (status, _) = post(&infer, "application/json", as_json(&batch[0], d).to_string().as_bytes());
    assert_eq!(status, 200, "still serving");
    let text = server.text("/metrics");
    for line in ["mmguard_rejects_total{field=\"raw\"} 2", "mmguard_rejects_total{field=\"body\"} 7"] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
}

#[test]
fn the_threshold_needs_the_token_and_the_metrics_count_what_happened() {
    let fx = fixture();
    let (pipeline, server) = started(BatchConfig::default());
    let infer = server.at("/v1/infer");
    let (t, d) = (pipeline.geometry().window, pipeline.columns().len());
    let batch = samples(&fx.data, &[20, 60, 100, 140, 200, 260], t);
    let body = json!({ "samples": batch.iter().map(|s| as_json(s, d)).collect::<Vec<_>>() });
    let mut broken = as_json(&batch[1], d);
    broken["sensor"][3][2] = Value::Null;
    assert_eq!(post(&infer, "application/json", broken.to_string().as_bytes()).0, 200);
    assert_eq!(post(&infer, "text/plain", b"x").0, 415);
    // the gate at run time: only with the token; a threshold near 0 flags every modality
    let url = server.at("/v1/threshold");
    let put = |token: Option<&str>, body: Value| -> (u16, Value) {
        let mut req = client().put(&url).header("content-type", "application/json").header("x-operator", "test");
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.send(body.to_string().as_bytes()).unwrap();
        let status = resp.status().as_u16();
        (status, serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap())
    };
    let calibrated = pipeline.thresholds();
    assert_eq!(put(None, json!({ "threshold": 0.5 })).0, 401);
    let (status, got) = put(Some("wrong"), json!({ "threshold": 0.5 }));
    assert_eq!((status, got["error"]["field"].as_str()), (401, Some("authorization")));
    let (status, got) = put(Some("s3cret"), json!({ "threshold": 1.5 }));
    assert_eq!((status, got["error"]["field"].as_str()), (400, Some("threshold")));
    let (status, got) = put(Some("s3cret"), json!({ "camera": 0.5, "sensr": 0.5 }));
    assert_eq!((status, got["error"]["field"].as_str()), (400, Some("sensr")));
    let (status, got) = put(Some("s3cret"), json!({ "sensor": 1e-300 }));
    assert_eq!((status, got["error"]["field"].as_str()), (400, Some("sensor")), "rounds to 0 as f32");
    assert_eq!(pipeline.thresholds(), calibrated, "refused changes change nothing");
    // one modality alone
    let (status, got) = put(Some("s3cret"), json!({ "sensor": 0.25 }));
    assert_eq!(status, 200, "{got}");
    assert_eq!(pipeline.thresholds(), Thresholds { sensor: 0.25, ..calibrated });
    let (status, got) = put(Some("s3cret"), json!({ "threshold": 1e-6 }));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["previous"]["sensor"].as_f64().unwrap() as f32, 0.25);
    assert_eq!(
        pipeline.thresholds(),
        Thresholds { camera: 1e-6, sensor: 1e-6, ..calibrated },
        "the channel and novelty thresholds stay"
    );
    let (_, got) = post(&infer, "application/json", body.to_string().as_bytes());
    assert!(got["answers"].as_array().unwrap().iter().all(|a| a["route"] != "bypass"), "{got}");
    assert_eq!(got["answers"], library(&pipeline, &batch));
    // the sensor's novelty threshold: changed, switched off, refused where it is no distance
    let novelty = calibrated.novelty.expect("the tiny run is calibrated with the clean prior");
    let (status, got) = put(Some("s3cret"), json!({ "novelty": -1.0 }));
    assert_eq!((status, got["error"]["field"].as_str()), (400, Some("novelty")));
    let (status, got) = put(Some("s3cret"), json!({ "novelty": "far" }));
    assert_eq!((status, got["error"]["field"].as_str()), (400, Some("novelty")));
    assert_eq!(pipeline.thresholds().novelty, Some(novelty));
    assert_eq!(put(Some("s3cret"), json!({ "novelty": null })).0, 200);
    assert_eq!(pipeline.thresholds(), Thresholds { camera: 1e-6, sensor: 1e-6, novelty: None, ..calibrated });
    assert_eq!(put(Some("s3cret"), json!({ "novelty": 2.0 * novelty })).0, 200);
    assert_eq!(pipeline.thresholds().novelty, Some(2.0 * novelty));
    assert_eq!(put(Some("s3cret"), json!({ "novelty": novelty })).0, 200);
    let now: Value = serde_json::from_str(&server.text("/v1/threshold")).unwrap();
    assert_eq!(now["calibrated"]["camera"].as_f64().unwrap() as f32, calibrated.camera);
    assert_eq!(now["calibrated"]["sensor"].as_f64().unwrap() as f32, calibrated.sensor);

    // the metrics counted what happened
    let text = server.text("/metrics");
    for line in [
        "mmguard_requests_total{outcome=\"answered\"}",
        "mmguard_requests_total{outcome=\"unsupported_encoding\"}",
        "mmguard_samples_total{route=\"corrected\"}",
        "mmguard_faults_total{by=\"not-finite\",modality=\"sensor\"} 1",
        "mmguard_batch_size_count",
        "mmguard_queue_depth 0",
        "mmguard_bypass_ratio",
        "mmguard_resident_memory_bytes",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
}

#[test]
fn requests_arriving_together_run_as_one_batch_and_equal_the_library() {
    let fx = fixture();
    // a long wait so that all requests of this test join the first one's batch
    let (pipeline, server) = started(BatchConfig { max_wait_us: 2_000_000, ..BatchConfig::default() });
    let infer = server.at("/v1/infer");
    let (t, d) = (pipeline.geometry().window, pipeline.columns().len());
    let batch = samples(&fx.data, &[20, 60, 100, 140, 200, 260], t);
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = batch
            .iter()
            .map(|sample| {
                let (infer, body) = (&infer, as_json(sample, d).to_string());
                s.spawn(move || post(infer, "application/json", body.as_bytes()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (k, (status, got)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "{got}");
        assert_eq!(got["answers"][0], library(&pipeline, &batch[k..=k])[0], "sample {k}");
    }
    let text = server.text("/metrics");
    let calls: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mmguard_batch_size_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(calls < batch.len() as f64, "{} requests in {calls} model calls:\n{text}", batch.len());
}

#[test]
fn a_draining_server_is_not_ready_and_takes_no_new_inference() {
    let state = AppState::new(service(&fixture().run(), BatchConfig::default()), LIMITS, Admin::Closed);
    let server = listen(state.clone(), ConnectionLimits::default());
    let status = |path: &str| client().get(&server.at(path)).call().unwrap().status().as_u16();
    assert_eq!(status("/readyz"), 200);
    state.drain();
    assert_eq!(status("/readyz"), 503);
    assert_eq!(status("/healthz"), 200, "alive while it drains");
    let (code, got) = post(&server.at("/v1/infer"), "application/json", b"{}");
    assert_eq!((code, got["error"]["found"].as_str()), (503, Some("draining")), "{got}");
}

#[test]
fn admin_is_closed_without_a_token_and_takes_only_json() {
    let run = fixture().run();
    let send = |server: &Server, route: &str, kind: &str, token: Option<&str>, body: &str| -> (u16, Value) {
        let url = server.at(route);
        let mut req = if route == "/v1/reload" { client().post(&url) } else { client().put(&url) };
        req = req.header("content-type", kind);
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.send(body.as_bytes()).unwrap();
        let status = resp.status().as_u16();
        (status, serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap())
    };
    let threshold = r#"{"threshold": 0.5}"#;
    // closed by default: no token, no --admin-open
    let closed = serve_with(service(&run, BatchConfig::default()), LIMITS, Admin::Closed);
    for route in ["/v1/threshold", "/v1/reload"] {
        let (status, got) = send(&closed, route, "application/json", None, threshold);
        assert_eq!((status, got["error"]["field"].as_str()), (403, Some("authorization")), "{route}: {got}");
    }
    // a token: a cross-origin "simple" request (text/plain) is refused even with it
    let guarded = serve(service(&run, BatchConfig::default()), LIMITS);
    let (status, got) = send(&guarded, "/v1/threshold", "text/plain", Some("s3cret"), threshold);
    assert_eq!((status, got["error"]["field"].as_str()), (415, Some("content-type")), "{got}");
    // a refused reload does not tell which paths exist
    let secret = std::env::temp_dir().join("mmguard-no-such-run");
    let (status, got) =
        send(&guarded, "/v1/reload", "application/json", Some("s3cret"), &json!({ "run": secret }).to_string());
    assert_eq!(status, 422);
    assert!(!got.to_string().contains("mmguard-no-such-run") && !got.to_string().contains("No such file"), "{got}");
    // opened on purpose: JSON from anyone
    let open = serve_with(service(&run, BatchConfig::default()), LIMITS, Admin::Open);
    assert_eq!(send(&open, "/v1/threshold", "application/json", None, threshold).0, 200);
    assert_eq!(send(&open, "/v1/threshold", "text/plain", None, threshold).0, 415);
}

/// Every weight times 10³⁰: finite numbers whose products overflow.
struct Overflow;

impl burn::module::ModuleMapper for Overflow {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::tensor::Tensor<D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<D>> {
        param.map(|t| t.mul_scalar(1e30))
    }
}

#[test]
fn a_run_whose_arithmetic_overflows_is_refused_before_it_serves() {
    let run = mmguard_model::Run::load(&fixture().run(), &mmguard_model::compute::device()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let corrector = run.model.block.corrector.clone();
    let mut huge = burn::module::Module::map(run.model, &mut Overflow);
    // a corrector scaled so is no contraction and is refused at load; the rest is the warm-up's
    huge.block.corrector = corrector;
    mmguard_model::Run::save(dir.path(), &run.config, &huge).unwrap();
    let e = Pipeline::load(dir.path(), RuleConfig::default()).unwrap_err().to_string();
    assert!(e.contains("warm-up") && e.contains("not finite"), "{e}");
}

#[test]
fn the_model_version_changes_with_the_weights() {
    let fx = fixture();
    let copies = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let to = copies.path().join(name).join("run");
        std::fs::create_dir_all(&to).unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(fx.run().join(f), to.join(f)).unwrap();
        }
        to
    };
    let (same, reweighted) = (copy("a"), copy("b"));
    // the file ends with its last weight's top byte (little-endian): one exponent bit flipped
    // scales that weight by 4 or 1/4, a valid run with other weights
    let weights = reweighted.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let version = |dir: &Path| Pipeline::load(dir, RuleConfig::default()).unwrap().version().to_string();
    assert_eq!(version(&same), version(&fx.run()), "same files, same name: same version");
    assert_ne!(version(&reweighted), version(&same), "other weights under the same config");
}

#[test]
fn a_reload_swaps_the_run_and_a_bad_one_leaves_the_old_serving() {
    let fx = fixture();
    let service = service(&fx.run(), BatchConfig::default());
    let before = service.pipeline();
    let server = serve(service.clone(), LIMITS);
    // the same weights under another name: a new version
    let copy = tempfile::tempdir().unwrap();
    let other = copy.path().join("retrained");
    std::fs::create_dir(&other).unwrap();
    for entry in std::fs::read_dir(fx.run()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), other.join(entry.file_name())).unwrap();
        }
    }
    let url = server.at("/v1/reload");
    let reload = |token: &str, body: Value| -> (u16, Value) {
        let mut resp = client()
            .post(&url)
            .header("authorization", &format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("x-operator", "test")
            .send(body.to_string().as_bytes())
            .unwrap();
        let status = resp.status().as_u16();
        (status, serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap())
    };
    assert_eq!(reload("wrong", json!({ "run": other })).0, 401);
    let (status, got) = reload("s3cret", json!({ "run": copy.path().join("absent") }));
    assert_eq!((status, got["error"]["field"].as_str()), (422, Some("run")), "{got}");
    assert_eq!(reload("s3cret", json!({ "run": 3 })).0, 400);
    assert_eq!(service.pipeline().version(), before.version(), "refused reloads change nothing");

    let (status, got) = reload("s3cret", json!({ "run": other }));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["previous"], before.version());
    assert!(got["model_version"].as_str().unwrap().starts_with("retrained@"), "{got}");
    let (t, d) = (before.geometry().window, before.columns().len());
    let sample = samples(&fx.data, &[60], t);
    let (_, answer) = post(&server.at("/v1/infer"), "application/json", as_json(&sample[0], d).to_string().as_bytes());
    assert_eq!(answer["model_version"], got["model_version"]);
    // a request that picked the old run before the swap still answers on it
    assert_eq!(before.infer(&sample)[0].route, service.pipeline().infer(&sample)[0].route);
    assert!(!Arc::ptr_eq(&before, &service.pipeline()));
}

#[test]
fn requests_beyond_the_in_flight_limit_get_503_and_the_next_one_is_admitted() {
    let fx = fixture();
    // the first request waits a second in the batcher for company (it shows in the queue depth)
    let service = service(&fx.run(), BatchConfig { max_wait_us: 1_000_000, ..BatchConfig::default() });
    let (t, d) = (service.pipeline().geometry().window, service.pipeline().columns().len());
    let server = serve(service, Limits { max_in_flight: 1, ..LIMITS });
    let infer = server.at("/v1/infer");
    let body = as_json(&samples(&fx.data, &[60], t)[0], d).to_string();
    std::thread::scope(|s| {
        let first = s.spawn(|| post(&infer, "application/json", body.as_bytes()));
        while !server.text("/metrics").contains("mmguard_queue_depth 1") {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (status, got) = post(&infer, "application/json", body.as_bytes());
        assert_eq!((status, got["error"]["field"].as_str()), (503, Some("requests")), "{got}");
        assert_eq!(first.join().unwrap().0, 200);
    });
    assert_eq!(post(&infer, "application/json", body.as_bytes()).0, 200);
    assert!(server.text("/metrics").contains("mmguard_rejects_total{field=\"requests\"} 1"));
}

/// A raw TCP connection to the server: what broken or hostile clients send.
fn raw(server: &Server) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    stream
}

/// Everything the server sends until it closes the connection; `None` if it did not close it
/// within the read timeout.
fn until_closed(stream: &mut std::net::TcpStream) -> Option<String> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).ok().map(|_| String::from_utf8_lossy(&out).into_owned())
}

/// Starts a request whose body is announced as `length` bytes and sends only its first byte.
fn slow_body(server: &Server, length: usize) -> std::net::TcpStream {
    let mut stream = raw(server);
    write!(
        stream,
        "POST /v1/infer HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{{"
    )
    .unwrap();
    stream
}

/// Waits until the server's own metrics say `line` (read in-process: a connection of the test
/// would count too).
fn wait_for_metric(service: &Service, line: &str) {
    let t0 = std::time::Instant::now();
    while !service.metrics.render().lines().any(|l| l == line) {
        assert!(t0.elapsed().as_secs() < 20, "metrics never said {line}:\n{}", service.metrics.render());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn slow_bodies_hold_no_in_flight_permit_and_are_cut_below_the_minimum_rate() {
    let fx = fixture();
    let service = service(&fx.run(), BatchConfig::default());
    let (t, d) = (service.pipeline().geometry().window, service.pipeline().columns().len());
    let limits = Limits { max_in_flight: 1, min_body_bytes_per_s: 1000, ..LIMITS };
    let server = serve(service.clone(), limits);
    let mut slow: Vec<_> = (0..4).map(|_| slow_body(&server, 10_000)).collect();
    // with the permit taken before the body, the first slow client would hold the only one
    let body = as_json(&samples(&fx.data, &[60], t)[0], d).to_string();
    assert_eq!(post(&server.at("/v1/infer"), "application/json", body.as_bytes()).0, 200);
    for stream in &mut slow {
        let text = until_closed(stream).expect("a slow body is cut, not held open");
        assert!(text.starts_with("HTTP/1.1 408") && text.contains(r#""field":"body""#), "{text}");
    }
    assert!(service.metrics.render().contains("mmguard_requests_total{outcome=\"timed_out\"} 4"));
}

#[test]
fn bodies_beyond_the_memory_budget_get_503_before_they_are_read() {
    let fx = fixture();
    let service = service(&fx.run(), BatchConfig::default());
    let (t, d) = (service.pipeline().geometry().window, service.pipeline().columns().len());
    let body = as_json(&samples(&fx.data, &[60], t)[0], d).to_string();
    let budget = 2 * body.len();
    let server = serve(service.clone(), Limits { max_body_memory_bytes: budget, min_body_bytes_per_s: 1000, ..LIMITS });
    // a slow client reserves all but a few bytes of the budget
    let mut hog = slow_body(&server, budget - 10);
    wait_for_metric(&service, &format!("mmguard_body_bytes_held {}", budget - 10));
    let (status, got) = post(&server.at("/v1/infer"), "application/json", body.as_bytes());
    assert_eq!((status, got["error"]["field"].as_str()), (503, Some("memory")), "{got}");
    assert!(until_closed(&mut hog).is_some_and(|t| t.starts_with("HTTP/1.1 408")));
    // its share comes back when it is cut
    assert_eq!(post(&server.at("/v1/infer"), "application/json", body.as_bytes()).0, 200);
}

#[test]
fn an_answer_later_than_the_request_deadline_is_a_503() {
    let fx = fixture();
    // a lone request waits two seconds in the batcher for company
    let service = service(&fx.run(), BatchConfig { max_wait_us: 2_000_000, ..BatchConfig::default() });
    let (t, d) = (service.pipeline().geometry().window, service.pipeline().columns().len());
    let server = serve(service, Limits { request_timeout_ms: 200, ..LIMITS });
    let body = as_json(&samples(&fx.data, &[60], t)[0], d).to_string();
    let (status, got) = post(&server.at("/v1/infer"), "application/json", body.as_bytes());
    assert_eq!((status, got["error"]["field"].as_str()), (503, Some("deadline")), "{got}");
}

#[test]
fn connections_over_the_cap_get_503_and_idle_or_half_sent_ones_are_closed_at_the_header_timeout() {
    let service = service(&fixture().run(), BatchConfig::default());
    let state = AppState::new(service.clone(), LIMITS, Admin::Closed);
    let server = listen(state, ConnectionLimits { max_connections: 4, header_timeout_ms: 300 });
    let mut held: Vec<_> = (0..4).map(|_| raw(&server)).collect();
    wait_for_metric(&service, "mmguard_open_connections 4");
    let over = until_closed(&mut raw(&server)).expect("refused at once");
    assert!(over.starts_with("HTTP/1.1 503") && over.contains(r#""field":"connections""#), "{over}");
    let (head, body) = over.split_once("\r\n\r\n").expect("a header and a body");
    assert!(head.contains(&format!("content-length: {}", body.len())), "{over}");
    assert!(service.metrics.render().contains("mmguard_connections_refused_total 1"));
    // a header that never ends and sockets that never send: closed, not held
    write!(held[0], "GET /healthz HTTP/1.1\r\nhost: te").unwrap();
    for stream in &mut held {
        assert!(until_closed(stream).is_some(), "connection left open past the header timeout");
    }
    wait_for_metric(&service, "mmguard_open_connections 0");
    assert_eq!(server.text("/healthz"), "ok");
}

#[test]
fn a_thousand_idle_sockets_do_not_keep_requests_out() {
    let fx = fixture();
    let service = service(&fx.run(), BatchConfig::default());
    let (t, d) = (service.pipeline().geometry().window, service.pipeline().columns().len());
    let server = serve(service.clone(), LIMITS);
    // both ends of every socket live in this process
    let descriptors = mmguard_serve::raise_descriptor_limit().unwrap_or(1024);
    let n = 1000.min((descriptors.saturating_sub(256) / 2) as usize);
    assert!(n >= 400, "descriptor limit {descriptors} leaves room for only {n} sockets");
    let idle: Vec<_> = (0..n).map(|_| raw(&server)).collect();
    wait_for_metric(&service, &format!("mmguard_open_connections {n}"));
    let body = as_json(&samples(&fx.data, &[60], t)[0], d).to_string();
    assert_eq!(post(&server.at("/v1/infer"), "application/json", body.as_bytes()).0, 200);
    drop(idle);
}
