//! The HTTP face of the pipeline: `app(state)` builds the routes apart from the server, so tests
//! and the binary serve the same thing.
//!
//! `POST /v1/infer` takes one sample or `{"samples": [...]}` as JSON: `camera` is
//! `{"png": "<base64>"}` or `{"raw": [uint8 × 3·H·W]}` (channel-first), `sensor` is T rows of D
//! numbers in physical units, `device` and `timestamp` are optional. Every malformed request is
//! answered 4xx with `{"error": {"field", "expected", "found"}}` and the server keeps serving.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::Metrics;
use crate::pipeline::{Answer, Pipeline, Sample};

/// Limits on what a request may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest body, bytes.
    pub max_body_bytes: usize,
    /// Most samples in one request.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 16 << 20, max_batch: 256 }
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The loaded run.
    pub pipeline: Arc<Pipeline>,
    /// Request limits.
    pub limits: Limits,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
    /// Bearer token the admin endpoints require (none: open).
    pub admin_token: Option<Arc<str>>,
}

impl AppState {
    /// State with fresh metrics and open admin endpoints.
    pub fn new(pipeline: Arc<Pipeline>, limits: Limits) -> Self {
        Self { pipeline, limits, metrics: Metrics::new(), admin_token: None }
    }
}

/// A request the server refuses, with what was wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// The offending field, as a path (`samples[3].sensor[2]`), or `body`.
    pub field: String,
    /// What was expected there.
    pub expected: String,
    /// What was found.
    pub found: String,
}

impl ApiError {
    fn bad(field: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, field: field.into(), expected: expected.into(), found: found.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self }))).into_response()
    }
}

/// The answer to `/v1/infer`.
#[derive(Debug, Serialize)]
pub struct InferResponse {
    /// Run identity.
    pub model_version: String,
    /// Time from the request's arrival to the answer, milliseconds.
    pub latency_ms: f64,
    /// One answer per sample, in order.
    pub answers: Vec<Answer>,
}

/// The routes.
pub fn app(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/infer", post(infer))
        .route("/v1/threshold", get(threshold).put(set_threshold))
        .route("/metrics", get(|State(state): State<AppState>| async move { state.metrics.render() }))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::json!({ "ready": true, "model_version": state.pipeline.version() }))
}

async fn infer(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<InferResponse>, ApiError> {
    let start = Instant::now();
    let answer = answer(&state, &headers, &body, start).await;
    let status = answer.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200);
    state.metrics.request(status, start.elapsed().as_secs_f64());
    answer.map(Json)
}

async fn answer(state: &AppState, headers: &HeaderMap, body: &[u8], start: Instant) -> Result<InferResponse, ApiError> {
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !kind.starts_with("application/json") {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            field: "content-type".into(),
            expected: "application/json".into(),
            found: if kind.is_empty() { "none".into() } else { kind.into() },
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad("body", "JSON", e.to_string()))?;
    let samples = decode(&value, state)?;
    let pipeline = state.pipeline.clone();
    let answers = tokio::task::spawn_blocking(move || pipeline.infer(&samples))
        .await
        .map_err(|e| ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, ..ApiError::bad("", "", e.to_string()) })?;
    state.metrics.answers(&answers);
    Ok(InferResponse {
        model_version: state.pipeline.version().into(),
        latency_ms: start.elapsed().as_secs_f64() * 1e3,
        answers,
    })
}

async fn threshold(State(state): State<AppState>) -> Json<Value> {
    Json(serde_json::json!({
        "threshold": state.pipeline.threshold(),
        "calibrated": state.pipeline.calibrated_threshold(),
        "model_version": state.pipeline.version(),
    }))
}

/// `PUT /v1/threshold {"threshold": θ}`, θ in (0, 1); with a token configured the request
/// needs `Authorization: Bearer <token>`. Every change is logged with who (`X-Operator`, else
/// the anonymous token holder) and when.
async fn set_threshold(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if let Some(token) = &state.admin_token {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        if given.strip_prefix("Bearer ") != Some(token.as_ref()) {
            return Err(ApiError {
                status: StatusCode::UNAUTHORIZED,
                ..ApiError::bad(
                    "authorization",
                    "Bearer <admin token>",
                    if given.is_empty() { "none" } else { "a wrong token" },
                )
            });
        }
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::bad("body", "JSON", e.to_string()))?;
    let new = match value.get("threshold") {
        Some(Value::Number(n)) => n.as_f64().filter(|t| *t > 0.0 && *t < 1.0),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad("threshold", "a number in (0, 1)", value.get("threshold").map_or("nothing".into(), kind_of))
    })?;
    let old = state.pipeline.threshold();
    state.pipeline.set_threshold(new as f32);
    let who = headers.get("x-operator").and_then(|v| v.to_str().ok()).unwrap_or("anonymous");
    let when = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    tracing::info!(who, when, old, new, "gate threshold changed");
    Ok(Json(serde_json::json!({ "threshold": state.pipeline.threshold(), "previous": old })))
}

fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// The samples of a request body, checked against the model's geometry.
pub fn decode(value: &Value, state: &AppState) -> Result<Vec<Sample>, ApiError> {
    let (list, prefix): (Vec<&Value>, &str) = match value.get("samples") {
        Some(Value::Array(a)) => (a.iter().collect(), "samples"),
        Some(other) => return Err(ApiError::bad("samples", "an array of samples", kind_of(other))),
        None if value.is_object() => (vec![value], ""),
        None => return Err(ApiError::bad("body", "a sample object or {\"samples\": [...]}", kind_of(value))),
    };
    if list.is_empty() {
        return Err(ApiError::bad("samples", "at least one sample", "an empty array"));
    }
    if list.len() > state.limits.max_batch {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..ApiError::bad("samples", format!("at most {} samples", state.limits.max_batch), format!("{}", list.len()))
        });
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let at = if prefix.is_empty() { String::new() } else { format!("{prefix}[{i}].") };
            sample(v, &at, &state.pipeline)
        })
        .collect()
}

fn sample(v: &Value, at: &str, pipeline: &Pipeline) -> Result<Sample, ApiError> {
    let (h, w, t, d) = pipeline.geometry();
    let Some(obj) = v.as_object() else {
        return Err(ApiError::bad(at.trim_end_matches('.'), "a sample object", kind_of(v)));
    };
    let field = |name: &str| format!("{at}{name}");
    let camera = match obj.get("camera") {
        None => return Err(ApiError::bad(field("camera"), "{\"png\": base64} or {\"raw\": [uint8]}", "nothing")),
        Some(c) => frame(c, &field("camera"), h, w)?,
    };
    let rows = match obj.get("sensor") {
        Some(Value::Array(rows)) => rows,
        other => {
            return Err(ApiError::bad(
                field("sensor"),
                format!("{t} rows of {d} numbers"),
                other.map_or("nothing".into(), kind_of),
            ))
        }
    };
    if rows.len() != t {
        return Err(ApiError::bad(
            field("sensor"),
            format!("{t} rows (the model's window)"),
            format!("{} rows", rows.len()),
        ));
    }
    let mut sensor = Vec::with_capacity(t * d);
    for (k, row) in rows.iter().enumerate() {
        let cells = row.as_array().filter(|r| r.len() == d).ok_or_else(|| {
            ApiError::bad(
                format!("{at}sensor[{k}]"),
                format!("{d} numbers ({})", pipeline.columns().join(", ")),
                kind_of(row),
            )
        })?;
        for (j, c) in cells.iter().enumerate() {
            // JSON has no NaN; `null` stands for a missing reading and reaches the NaN rule
            let x = match c {
                Value::Number(n) => n.as_f64().map(|x| x as f32),
                Value::Null => Some(f32::NAN),
                _ => None,
            }
            .ok_or_else(|| ApiError::bad(format!("{at}sensor[{k}][{j}]"), "a number or null", kind_of(c)))?;
            sensor.push(x);
        }
    }
    let device = match obj.get("device") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(ApiError::bad(field("device"), "a string", kind_of(other))),
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => return Err(ApiError::bad(field("timestamp"), "a number (seconds)", kind_of(other))),
    };
    Ok(Sample { camera, sensor, device, timestamp })
}

fn frame(v: &Value, at: &str, h: usize, w: usize) -> Result<Vec<u8>, ApiError> {
    let want = 3 * h * w;
    if let Some(raw) = v.get("raw") {
        let list =
            raw.as_array().ok_or_else(|| ApiError::bad(format!("{at}.raw"), "an array of uint8", kind_of(raw)))?;
        if list.len() != want {
            return Err(ApiError::bad(
                format!("{at}.raw"),
                format!("{want} values (3×{h}×{w})"),
                format!("{}", list.len()),
            ));
        }
        return list
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.as_u64()
                    .filter(|&x| x <= 255)
                    .map(|x| x as u8)
                    .ok_or_else(|| ApiError::bad(format!("{at}.raw[{i}]"), "an integer 0–255", kind_of(p)))
            })
            .collect();
    }
    let Some(text) = v.get("png") else {
        return Err(ApiError::bad(at, "{\"png\": base64} or {\"raw\": [uint8]}", kind_of(v)));
    };
    let text = text.as_str().ok_or_else(|| ApiError::bad(format!("{at}.png"), "a base64 string", kind_of(text)))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| ApiError::bad(format!("{at}.png"), "base64", e.to_string()))?;
    decode_png(&bytes, h, w)
        .map_err(|found| ApiError::bad(format!("{at}.png"), format!("an RGB PNG of {w}×{h}"), found))
}

/// An 8-bit RGB (or RGBA, alpha dropped) PNG as a channel-first frame.
fn decode_png(bytes: &[u8], h: usize, w: usize) -> Result<Vec<u8>, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_limits(png::Limits { bytes: 64 << 20 });
    let mut reader = decoder.read_info().map_err(|e| format!("undecodable PNG: {e}"))?;
    let info = reader.info();
    let (pw, ph) = (info.width as usize, info.height as usize);
    if (pw, ph) != (w, h) {
        return Err(format!("{pw}×{ph}"));
    }
    let mut buf = vec![0; reader.output_buffer_size().ok_or("a PNG too large to decode")?];
    let out = reader.next_frame(&mut buf).map_err(|e| format!("undecodable PNG: {e}"))?;
    let channels = match (out.color_type, out.bit_depth) {
        (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
        (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
        (c, b) => return Err(format!("{c:?} at {b:?}")),
    };
    let mut frame = vec![0; 3 * h * w];
    for (p, px) in buf[..out.buffer_size()].chunks_exact(channels).enumerate() {
        for c in 0..3 {
            frame[c * h * w + p] = px[c];
        }
    }
    Ok(frame)
}
