//! `mmguard loadtest`: drives a running server with real samples from a dataset at a fixed
//! request rate and reports throughput, latency percentiles, errors and the server's memory.
//!
//! The load is open-loop: request i is due at `start + i / rate` whether or not earlier ones
//! have been answered, and its latency counts from the time it was due. A slow server therefore
//! shows up as latency instead of silently lowering the rate (no coordinated omission); requests
//! that a saturated client could not start within 1 ms of their time are counted as `late`.
//!
//! Only HTTP: it needs nothing from the server's crates, so it measures what any client sees.
//! [`request_body`] also writes single requests (`mmguard request`, for `curl`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mmguard_data::layout::interleave_into;
use mmguard_data::npz::{write_npz_to, Array, ArrayData};
use mmguard_data::{Dataset, Geometry};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How requests carry their samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    /// JSON with raw uint8 frames.
    Json,
    /// JSON with base64 PNG frames (what a camera client sends: 7 instead of 54 kB at 64×64).
    Png,
    /// `application/x-npz` with the data contract's keys.
    Npz,
}

/// A channel-first uint8 frame as a base64 PNG.
fn png_base64(frame: &[u8], h: usize, w: usize) -> String {
    use base64::Engine;
    let mut interleaved = vec![0; frame.len()];
    interleave_into(frame, &mut interleaved);
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    // writing into memory cannot fail for a frame of the declared size
    if let Ok(mut writer) = encoder.write_header() {
        let _ = writer.write_image_data(&interleaved);
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One load test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadConfig {
    /// Base URL of the server (`http://127.0.0.1:8080`).
    pub url: String,
    /// Requests per second.
    pub rate: f64,
    /// Seconds of load.
    pub duration_s: f64,
    /// Samples per request.
    pub batch: usize,
    /// Client threads, each with one keep-alive connection: enough to keep `rate` going while
    /// requests are in flight.
    pub connections: usize,
    /// Body encoding.
    pub body: BodyKind,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (any order); `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Self {
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// What the server's `/metrics` said before and after the load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerSide {
    /// Resident memory before, bytes.
    pub memory_before: f64,
    /// Resident memory after, bytes.
    pub memory_after: f64,
    /// Model calls during the load.
    pub model_calls: f64,
    /// Samples per model call during the load.
    pub mean_batch: f64,
}

/// The outcome of one load test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// What was run.
    pub config: LoadConfig,
    /// Model version that answered.
    pub model_version: String,
    /// Requests sent.
    pub sent: usize,
    /// Requests answered 200.
    pub ok: usize,
    /// Failed requests by HTTP status, or `transport` when no answer came.
    pub errors: BTreeMap<String, usize>,
    /// Requests started more than 1 ms after they were due (the client could not keep up).
    pub late: usize,
    /// Wall time from the first request due to the last answer, seconds.
    pub elapsed_s: f64,
    /// Answered requests per second.
    pub throughput_rps: f64,
    /// Answered samples per second.
    pub samples_per_s: f64,
    /// Latency of answered requests, from the time each was due, milliseconds.
    pub latency_ms: Option<Percentiles>,
    /// The server's own figures, when its `/metrics` could be read.
    pub server: Option<ServerSide>,
}

/// Why a load test could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The server did not answer `/readyz`.
    #[error("{url}/readyz: {reason}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The dataset does not fit the served model.
    #[error("{data}: {reason}")]
    Mismatch {
        /// The dataset's file.
        data: String,
        /// What differs.
        reason: String,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
}

fn get(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("HTTP {}", resp.status()));
    }
    resp.body_mut().read_to_string().map_err(|e| e.to_string())
}

/// The windows of `data` that fit the served model, or why none do.
pub fn usable_windows(data: &Dataset, g: &Geometry) -> Result<Vec<usize>, LoadError> {
    let mismatch = |reason: String| LoadError::Mismatch { data: data.path.display().to_string(), reason };
    if (data.height, data.width, data.sensor_dim()) != (g.height, g.width, g.columns.len()) {
        return Err(mismatch(format!(
            "frames {}×{} with {} columns, the server takes {}×{} with {} ({})",
            data.height,
            data.width,
            data.sensor_dim(),
            g.height,
            g.width,
            g.columns.len(),
            g.columns.join(", ")
        )));
    }
    let windows = data.windows(g.window, &data.episode_ids()).map_err(|e| mismatch(e.to_string()))?;
    if windows.ends.is_empty() {
        return Err(mismatch(format!("no window of {} readings", g.window)));
    }
    Ok(windows.ends)
}

/// A request body with the windows ending at `ends` (from [`usable_windows`]).
pub fn request_body(data: &Dataset, g: &Geometry, ends: &[usize], kind: BodyKind) -> Vec<u8> {
    let d = g.columns.len();
    match kind {
        BodyKind::Json | BodyKind::Png => {
            let samples: Vec<Value> = ends
                .iter()
                .map(|&i| {
                    let rows: Vec<&[f32]> = data.sensor_window(i, g.window).chunks(d).collect();
                    let camera = if kind == BodyKind::Png {
                        json!({ "png": png_base64(data.frame(i), g.height, g.width) })
                    } else {
                        json!({ "raw": data.frame(i) })
                    };
                    json!({ "camera": camera, "sensor": rows, "timestamp": i })
                })
                .collect();
            json!({ "samples": samples }).to_string().into_bytes()
        }
        BodyKind::Npz => {
            let n = ends.len() as u64;
            let camera = Array {
                shape: vec![n, 3, g.height as u64, g.width as u64],
                data: ArrayData::U8(ends.iter().flat_map(|&i| data.frame(i).iter().copied()).collect()),
            };
            let sensor = Array {
                shape: vec![n, g.window as u64, d as u64],
                data: ArrayData::F32(
                    ends.iter().flat_map(|&i| data.sensor_window(i, g.window).iter().copied()).collect(),
                ),
            };
            let stamps = Array { shape: vec![n], data: ArrayData::F64(ends.iter().map(|&i| i as f64).collect()) };
            // an in-memory writer fails only on a broken array, and these are built right here
            write_npz_to(
                std::path::Path::new("body"),
                std::io::Cursor::new(Vec::new()),
                &[("camera", &camera), ("sensor", &sensor), ("t", &stamps)],
            )
            .map(std::io::Cursor::into_inner)
            .unwrap_or_default()
        }
    }
}

/// Request bodies of `batch` windows each, spread over the dataset.
fn bodies(data: &Dataset, g: &Geometry, batch: usize, kind: BodyKind, count: usize) -> Result<Vec<Vec<u8>>, LoadError> {
    let ends = usable_windows(data, g)?;
    Ok((0..count)
        .map(|k| {
            let pick: Vec<usize> = (0..batch).map(|j| ends[(k * batch + j) * 7 % ends.len()]).collect();
            request_body(data, g, &pick, kind)
        })
        .collect())
}

/// The model a server runs, from its `/readyz`.
#[derive(Debug, Clone)]
pub struct Served {
    /// Shape of a sample.
    pub geometry: Geometry,
    /// Run identity.
    pub model_version: String,
}

/// Asks the server at `url` what it serves.
pub fn served(url: &str) -> Result<Served, LoadError> {
    let url = url.trim_end_matches('/');
    let unreachable = |reason: String| LoadError::Unreachable { url: url.to_string(), reason };
    let text = get(&agent(Duration::from_secs(10)), &format!("{url}/readyz")).map_err(unreachable)?;
    let ready: Value = serde_json::from_str(&text).map_err(|e| unreachable(format!("not an mmguard /readyz: {e}")))?;
    let geometry = serde_json::from_value(ready["geometry"].clone())
        .map_err(|e| unreachable(format!("no geometry in /readyz: {e}")))?;
    Ok(Served { geometry, model_version: ready["model_version"].as_str().unwrap_or_default().to_string() })
}

/// One metric's value from the text exposition format.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Resident memory, model calls and samples in them, from `/metrics`.
fn scrape(agent: &ureq::Agent, url: &str) -> Option<(f64, f64, f64)> {
    let text = get(agent, &format!("{url}/metrics")).ok()?;
    Some((
        metric(&text, "mmguard_resident_memory_bytes")?,
        metric(&text, "mmguard_batch_size_count")?,
        metric(&text, "mmguard_batch_size_sum")?,
    ))
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into()
}

/// Runs one load test against a ready server with samples from `data`.
pub fn run(cfg: &LoadConfig, data: &Dataset) -> Result<LoadReport, LoadError> {
    if !(cfg.rate > 0.0 && cfg.duration_s > 0.0 && cfg.batch > 0 && cfg.connections > 0) {
        return Err(LoadError::Invalid(format!(
            "rate, duration, batch and connections must be positive (got {}, {}, {}, {})",
            cfg.rate, cfg.duration_s, cfg.batch, cfg.connections
        )));
    }
    let url = cfg.url.trim_end_matches('/').to_string();
    let admin = agent(Duration::from_secs(10));
    let served = served(&url)?;
    let bodies = bodies(data, &served.geometry, cfg.batch, cfg.body, 64)?;
    let kind = match cfg.body {
        BodyKind::Json | BodyKind::Png => "application/json",
        BodyKind::Npz => "application/x-npz",
    };
    let before = scrape(&admin, &url);

    let total = (cfg.rate * cfg.duration_s).round().max(1.0) as usize;
    let next = AtomicUsize::new(0);
    let start = Instant::now() + Duration::from_millis(50);
    let infer = format!("{url}/v1/infer");
    let results: Vec<(Vec<f64>, BTreeMap<String, usize>, usize)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cfg.connections)
            .map(|_| {
                let (next, bodies, infer) = (&next, &bodies, &infer);
                s.spawn(move || {
                    let client = agent(Duration::from_secs(30));
                    let (mut latencies, mut errors, mut late) = (Vec::new(), BTreeMap::new(), 0);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let due = start + Duration::from_secs_f64(i as f64 / cfg.rate);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        } else if now - due > Duration::from_millis(1) {
                            late += 1;
                        }
                        let outcome = client
                            .post(infer)
                            .header("content-type", kind)
                            .send(&bodies[i % bodies.len()][..])
                            .map_err(|_| "transport".to_string())
                            .and_then(|mut r| {
                                let status = r.status().as_u16();
                                // read the answer to the end: the connection is reused
                                r.body_mut().read_to_vec().map_err(|_| "transport".to_string())?;
                                if status == 200 {
                                    Ok(())
                                } else {
                                    Err(status.to_string())
                                }
                            });
                        match outcome {
                            Ok(()) => latencies.push(due.elapsed().as_secs_f64() * 1e3),
                            Err(key) => *errors.entry(key).or_insert(0) += 1,
                        }
                    }
                    (latencies, errors, late)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
    });
    let elapsed_s = start.elapsed().as_secs_f64();
    let after = scrape(&admin, &url);

    let mut latencies = Vec::with_capacity(total);
    let mut errors = BTreeMap::new();
    let mut late = 0;
    for (l, e, n) in results {
        latencies.extend(l);
        for (k, v) in e {
            *errors.entry(k).or_insert(0) += v;
        }
        late += n;
    }
    let ok = latencies.len();
    let server = before.zip(after).map(|((m0, c0, s0), (m1, c1, s1))| ServerSide {
        memory_before: m0,
        memory_after: m1,
        model_calls: c1 - c0,
        mean_batch: if c1 > c0 { (s1 - s0) / (c1 - c0) } else { 0.0 },
    });
    Ok(LoadReport {
        config: cfg.clone(),
        model_version: served.model_version,
        sent: total,
        ok,
        errors,
        late,
        elapsed_s,
        throughput_rps: ok as f64 / elapsed_s,
        samples_per_s: (ok * cfg.batch) as f64 / elapsed_s,
        latency_ms: Percentiles::of(&latencies),
        server,
    })
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        writeln!(f, "{} req/s × {} s, batch {}, {:?} bodies → {}", c.rate, c.duration_s, c.batch, c.body, c.url)?;
        writeln!(
            f,
            "  sent {}, ok {}, errors {:?}, late starts {}; {:.1} req/s, {:.1} samples/s",
            self.sent, self.ok, self.errors, self.late, self.throughput_rps, self.samples_per_s
        )?;
        if let Some(l) = &self.latency_ms {
            writeln!(
                f,
                "  latency ms: p50 {:.2}, p95 {:.2}, p99 {:.2}, max {:.2}, mean {:.2}",
                l.p50, l.p95, l.p99, l.max, l.mean
            )?;
        }
        if let Some(s) = &self.server {
            write!(
                f,
                "  server: {} model calls, {:.2} samples per call, memory {:.1} → {:.1} MB",
                s.model_calls,
                s.mean_batch,
                s.memory_before / 1e6,
                s.memory_after / 1e6
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(&v).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(p.mean, 50.5);
        assert_eq!(Percentiles::of(&[3.0]).unwrap().p99, 3.0);
        assert!(Percentiles::of(&[]).is_none());
    }

    #[test]
    fn a_metric_is_read_by_its_exact_name() {
        let text = "# HELP x\nmmguard_batch_size_sum 12\nmmguard_batch_size_count 4\n";
        assert_eq!(metric(text, "mmguard_batch_size_count"), Some(4.0));
        assert_eq!(metric(text, "mmguard_batch_size"), None);
    }
}
