//! The HTTP face of the service: `app(state)` builds the routes apart from the server, so tests
//! and the binary serve the same thing. The routes and bodies are described at
//! `GET /openapi.json` ([`crate::openapi`]).
//!
//! Every malformed request is answered 4xx with `{"error": {"field", "expected", "found"}}`, is
//! counted in `mmguard_rejects_total`, and the server keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::batcher::BatchError;
use crate::decode::{decode_json, decode_npz, kind_of, Limits};
use crate::pipeline::Answer;
use crate::refusal::{Kind, Refusal};
use crate::service::Service;
use mmguard_model::Thresholds;

/// Content type of a binary batch.
pub const NPZ: &str = "application/x-npz";

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The run in use, the batcher and the metrics.
    pub service: Arc<Service>,
    /// Request limits.
    pub limits: Limits,
    /// Who may use the admin endpoints.
    pub admin: Admin,
    /// Inference requests admitted now (at most `limits.max_in_flight`).
    in_flight: Arc<Semaphore>,
    /// Bytes of request bodies held now (at most `limits.max_body_memory_bytes`).
    body_memory: Arc<Semaphore>,
    /// Set on shutdown: `/readyz` and new inference requests answer 503 while admitted ones
    /// finish.
    draining: Arc<std::sync::atomic::AtomicBool>,
}

/// Who may change the gate or the run (`PUT /v1/threshold`, `POST /v1/reload`). Closed unless
/// the operator gives a token or opens them on purpose: a web page in a local browser can send
/// a cross-origin "simple" request to a loopback port, so reaching the port proves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// Refused with 403 (the default).
    Closed,
    /// `Authorization: Bearer <token>` required.
    Token(Arc<str>),
    /// Anyone who reaches the port (`--admin-open`; the server logs a warning).
    Open,
}

impl Admin {
    /// The token if there is one, else open or closed as `open` says.
    pub fn from_settings(token: Option<&str>, open: bool) -> Self {
        match (token, open) {
            (Some(t), _) => Self::Token(t.into()),
            (None, true) => Self::Open,
            (None, false) => Self::Closed,
        }
    }
}

impl AppState {
    /// The state of a server of `service` under `limits`.
    pub fn new(service: Arc<Service>, limits: Limits, admin: Admin) -> Self {
        let in_flight = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
        let body_memory = Arc::new(Semaphore::new(limits.max_body_memory_bytes.min(Semaphore::MAX_PERMITS)));
        Self { service, limits, admin, in_flight, body_memory, draining: Arc::default() }
    }

    /// Starts draining (every clone of the state sees it): not ready, no new inference.
    pub fn drain(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The 503 of a server that is shutting down.
fn draining() -> Refusal {
    Refusal::with(Kind::Unavailable, "server", "a server that is not shutting down", "draining")
}

/// The answer to `/v1/infer`.
#[derive(Debug, Serialize)]
pub struct InferResponse {
    /// Identity of the run that answered.
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
        .route("/v1/reload", post(reload))
        .route("/metrics", get(|State(state): State<AppState>| async move { state.service.metrics.render() }))
        .route(
            "/openapi.json",
            get(|State(state): State<AppState>| async move {
                Json(crate::openapi::document(state.service.pipeline().geometry(), &state.limits))
            }),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Result<Json<Value>, Refusal> {
    if state.is_draining() {
        return Err(draining());
    }
    let pipeline = state.service.pipeline();
    Ok(Json(serde_json::json!({
        "ready": true,
        "model_version": pipeline.version(),
        "geometry": pipeline.geometry(),
    })))
}

/// A body the size limit cut off, or that could not be read, as a [`Refusal`].
fn body_error(e: &BytesRejection, limits: &Limits) -> Refusal {
    let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { Kind::TooLarge } else { Kind::Invalid };
    Refusal::with(kind, "body", format!("at most {} bytes", limits.max_body_bytes), e.body_text())
}

/// The HTTP status of each kind of refusal: the one place where the service's refusals meet
/// HTTP.
pub fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Kind::TimedOut => StatusCode::REQUEST_TIMEOUT,
        Kind::Unauthorized => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (status(self.kind), Json(serde_json::json!({ "error": self }))).into_response()
    }
}

async fn infer(State(state): State<AppState>, request: Request) -> Result<Json<InferResponse>, Refusal> {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let answer = admitted(&state, &parts.headers, body, start).await;
    let metrics = &state.service.metrics;
    match &answer {
        Ok(_) => metrics.request(None, start.elapsed().as_secs_f64()),
        Err(e) => {
            metrics.request(Some(e.kind), start.elapsed().as_secs_f64());
            metrics.reject(&e.field);
        }
    }
    answer.map(Json)
}

/// An inference request through admission: not draining, its body read within the memory
/// budget and the body deadlines, then an in-flight permit (a slow sender holds none), then the
/// answer within the request deadline.
async fn admitted(state: &AppState, headers: &HeaderMap, body: Body, start: Instant) -> Result<InferResponse, Refusal> {
    if state.is_draining() {
        return Err(draining());
    }
    let (body, _memory) = read_body(state, headers, body).await?;
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        let max = state.limits.max_in_flight;
        return Err(Refusal::with(
            Kind::Unavailable,
            "requests",
            format!("at most {max} in flight (retry later)"),
            format!("{max} in flight"),
        ));
    };
    let deadline = Duration::from_millis(state.limits.request_timeout_ms);
    tokio::time::timeout(deadline, answer(state, headers, body, start)).await.unwrap_or_else(|_| {
        Err(Refusal::with(
            Kind::Unavailable,
            "deadline",
            format!("an answer within {} ms", deadline.as_millis()),
            "no answer in time (retry later)",
        ))
    })
}

/// A body's share of the memory budget, given back (and shown in `mmguard_body_bytes_held`)
/// when the request is done with it.
struct BodyShare {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    metrics: crate::Metrics,
}

impl BodyShare {
    fn new(permit: OwnedSemaphorePermit, bytes: usize, metrics: &crate::Metrics) -> Self {
        let bytes = bytes as i64;
        metrics.body_bytes(bytes);
        Self { _permit: permit, bytes, metrics: metrics.clone() }
    }
}

impl Drop for BodyShare {
    fn drop(&mut self) {
        self.metrics.body_bytes(-self.bytes);
    }
}

/// A body starts to count against the minimum rate after this long (connection set-up, the
/// client's first write).
const RATE_GRACE: Duration = Duration::from_secs(1);

/// Reads an inference body: refused before reading when it declares more than the limit or
/// does not fit the memory budget (a body without a length reserves the whole limit); cut with
/// 408 when it arrives slower than the minimum rate or not within the body timeout. The permit
/// holds the body's share of the budget until the answer is sent.
async fn read_body(state: &AppState, headers: &HeaderMap, mut body: Body) -> Result<(Bytes, BodyShare), Refusal> {
    let limits = &state.limits;
    let max = limits.max_body_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large = |n: String| Refusal::with(Kind::TooLarge, "body", format!("at most {max} bytes"), n);
    if let Some(n) = declared.filter(|&n| n > max as u64) {
        return Err(too_large(format!("{n} bytes")));
    }
    let reserve = declared.map_or(max, |n| n as usize);
    let memory = u32::try_from(reserve)
        .ok()
        .and_then(|n| state.body_memory.clone().try_acquire_many_owned(n).ok())
        .map(|permit| BodyShare::new(permit, reserve, &state.service.metrics))
        .ok_or_else(|| {
            Refusal::with(
                Kind::Unavailable,
                "memory",
                format!("room for {reserve} more body bytes (retry later)"),
                format!(
                    "{} bytes of bodies held",
                    limits.max_body_memory_bytes - state.body_memory.available_permits()
                ),
            )
        })?;
    let begun = tokio::time::Instant::now();
    let end = begun + Duration::from_millis(limits.body_timeout_ms);
    let rate = limits.min_body_bytes_per_s.max(1) as f64;
    let mut bytes = Vec::with_capacity(reserve);
    loop {
        // the next bytes are due before the average rate since the headers falls below the minimum
        let due = end.min(begun + RATE_GRACE + Duration::from_secs_f64(bytes.len() as f64 / rate));
        match tokio::time::timeout_at(due, body.frame()).await {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > max {
                        return Err(too_large(format!("more than {max} bytes")));
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) => return Err(Refusal::bad("body", "a complete body", e.to_string())),
            Err(_) => {
                return Err(Refusal::with(
                    Kind::TimedOut,
                    "body",
                    format!(
                        "the whole body within {} ms, at {} bytes/s or more",
                        limits.body_timeout_ms, limits.min_body_bytes_per_s
                    ),
                    format!("{} bytes after {} ms", bytes.len(), begun.elapsed().as_millis()),
                ))
            }
        }
    }
    Ok((Bytes::from(bytes), memory))
}

async fn answer(state: &AppState, headers: &HeaderMap, body: Bytes, start: Instant) -> Result<InferResponse, Refusal> {
    let pipeline = state.service.pipeline();
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let limits = state.limits;
    let decode = if kind.starts_with("application/json") {
        decode_json
    } else if kind.starts_with(NPZ) {
        decode_npz
    } else {
        return Err(Refusal::with(
            Kind::UnsupportedEncoding,
            "content-type",
            format!("application/json or {NPZ}"),
            if kind.is_empty() { "none" } else { kind },
        ));
    };
    // decoding a large batch is milliseconds of CPU: off the async threads
    let run = pipeline.clone();
    let samples = tokio::task::spawn_blocking(move || decode(&body, run.geometry(), &limits))
        .await
        .map_err(|e| internal(&e))??;
    let answers = state.service.infer(pipeline.clone(), samples).await.map_err(|e| match e {
        BatchError::QueueFull(n) => {
            Refusal::with(Kind::Unavailable, "queue", "room in the queue (retry later)", format!("{n} samples waiting"))
        }
        BatchError::Failed => internal(&e),
    })?;
    Ok(InferResponse {
        model_version: pipeline.version().into(),
        latency_ms: start.elapsed().as_secs_f64() * 1e3,
        answers,
    })
}

fn internal(e: &dyn std::fmt::Display) -> Refusal {
    Refusal::with(Kind::Internal, "", "an answer", e.to_string())
}

/// Who is asking, if [`Admin`] allows it, the name from `X-Operator` (else `anonymous`) for the
/// change log. The body must be declared JSON: a browser sends `text/plain` cross-origin
/// without asking first, `application/json` only after a preflight this server never grants.
fn authorize<'h>(state: &AppState, headers: &'h HeaderMap) -> Result<&'h str, Refusal> {
    match &state.admin {
        Admin::Closed => {
            return Err(Refusal::with(
                Kind::Forbidden,
                "authorization",
                "a server started with --admin-token (or --admin-open)",
                "admin endpoints closed",
            ))
        }
        Admin::Token(token) => {
            let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
            if given.strip_prefix("Bearer ") != Some(token.as_ref()) {
                let found = if given.is_empty() { "none" } else { "a wrong token" };
                return Err(Refusal::with(Kind::Unauthorized, "authorization", "Bearer <admin token>", found));
            }
        }
        Admin::Open => {}
    }
    let kind = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if kind.split(';').next().map(str::trim) != Some("application/json") {
        let found = if kind.is_empty() { "none".to_string() } else { kind.to_string() };
        return Err(Refusal::with(Kind::UnsupportedEncoding, "content-type", "application/json", found));
    }
    Ok(headers.get("x-operator").and_then(|v| v.to_str().ok()).unwrap_or("anonymous"))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn json_body(body: Result<Bytes, BytesRejection>, limits: &Limits) -> Result<Value, Refusal> {
    let body = body.map_err(|e| body_error(&e, limits))?;
    serde_json::from_slice(&body).map_err(|e| Refusal::bad("body", "JSON", e.to_string()))
}

async fn threshold(State(state): State<AppState>) -> Json<Value> {
    let pipeline = state.service.pipeline();
    Json(serde_json::json!({
        "thresholds": pipeline.thresholds(),
        "calibrated": pipeline.calibrated_thresholds(),
        "model_version": pipeline.version(),
    }))
}

/// `PUT /v1/threshold` with `{"threshold": θ}` (both modalities) or `{"camera": θ}`,
/// `{"sensor": θ}` or both, each θ in (0, 1), for the run in use (a reload brings the new run's
/// calibrated thresholds). Every change is logged with who and when.
async fn set_threshold(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Refusal> {
    let who = authorize(&state, &headers)?;
    let value = json_body(body, &state.limits)?;
    let pipeline = state.service.pipeline();
    let old = pipeline.thresholds();
    let new = new_thresholds(&value, old, pipeline.calibrated_thresholds().novelty)?;
    pipeline.set_thresholds(new);
    tracing::info!(
        who,
        when = unix_now(),
        old_camera = old.camera,
        old_sensor = old.sensor,
        camera = new.camera,
        sensor = new.sensor,
        old_novelty = old.novelty,
        novelty = new.novelty,
        version = pipeline.version(),
        "gate thresholds changed"
    );
    Ok(Json(serde_json::json!({ "thresholds": pipeline.thresholds(), "previous": old })))
}

/// The thresholds a `PUT /v1/threshold` body asks for, starting from the ones in use; the
/// run's calibrated novelty says whether it has the prior a novelty threshold needs.
fn new_thresholds(value: &Value, old: Thresholds, calibrated_novelty: Option<f32>) -> Result<Thresholds, Refusal> {
    let known = ["threshold", "camera", "sensor", "novelty"];
    if let Some(key) = value.as_object().and_then(|o| o.keys().find(|k| !known.contains(&k.as_str()))) {
        return Err(Refusal::bad(key.as_str(), "one of threshold, camera, sensor, novelty", "an unknown key"));
    }
    let read = |key: &'static str| -> Result<Option<f32>, Refusal> {
        match value.get(key) {
            None => Ok(None),
            // (0, 1) as an f32: a value that rounds to 0 or 1 would flag everything or nothing
            Some(Value::Number(n)) => n
                .as_f64()
                .map(|t| t as f32)
                .filter(|t| *t > 0.0 && *t < 1.0)
                .map(Some)
                .ok_or_else(|| Refusal::bad(key, "a number in (0, 1)", n.to_string())),
            Some(other) => Err(Refusal::bad(key, "a number in (0, 1)", kind_of(other))),
        }
    };
    // the sensor's distance threshold under the clean prior: a positive distance, or null to
    // gate by the scores alone; only a run calibrated with one has the prior to measure it
    let novelty = match value.get("novelty") {
        None => None,
        Some(_) if old.novelty.is_none() && calibrated_novelty.is_none() => {
            return Err(Refusal::bad("novelty", "no novelty: this run was calibrated without one", "a number"));
        }
        Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => Some(Some(
            n.as_f64()
                .map(|t| t as f32)
                .filter(|t| t.is_finite() && *t > 0.0)
                .ok_or_else(|| Refusal::bad("novelty", "a positive distance, or null", n.to_string()))?,
        )),
        Some(other) => return Err(Refusal::bad("novelty", "a positive distance, or null", kind_of(other))),
    };
    let (both, camera, sensor) = (read("threshold")?, read("camera")?, read("sensor")?);
    if both.is_none() && camera.is_none() && sensor.is_none() && novelty.is_none() {
        return Err(Refusal::bad("threshold", "a number in (0, 1), or camera, sensor and/or novelty", "nothing"));
    }
    let base = both.map_or(old, |t| old.with_scores(t));
    Ok(Thresholds {
        camera: camera.unwrap_or(base.camera),
        sensor: sensor.unwrap_or(base.sensor),
        novelty: novelty.unwrap_or(old.novelty),
        ..old
    })
}

/// `POST /v1/reload {"run": "<run directory>"}`: loads the run and swaps it in; requests in
/// flight finish on the old one. A run that does not load leaves the old one serving.
async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, Refusal> {
    let who = authorize(&state, &headers)?.to_string();
    let value = json_body(body, &state.limits)?;
    let Some(Value::String(dir)) = value.get("run") else {
        return Err(Refusal::bad(
            "run",
            "the path of a run directory, as a string",
            value.get("run").map_or("nothing".into(), kind_of),
        ));
    };
    let dir = PathBuf::from(dir);
    let service = state.service.clone();
    let loaded = tokio::task::spawn_blocking(move || service.reload(&dir).map_err(|e| (dir, e)))
        .await
        .map_err(|e| internal(&e))?;
    match loaded {
        Ok((old, new)) => {
            tracing::info!(who, when = unix_now(), old, new, "run reloaded");
            Ok(Json(serde_json::json!({ "model_version": new, "previous": old })))
        }
        Err((dir, e)) => {
            // the reason stays in the log: the answer must not tell which paths exist
            tracing::warn!(who, run = %dir.display(), error = %e, "reload refused");
            Err(Refusal::with(
                Kind::Unprocessable,
                "run",
                "a trained run directory",
                "a run that does not load (the reason is in the server log)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_refusal_has_its_own_status_a_4xx_exactly_when_the_client_can_fix_it() {
        let statuses: std::collections::HashSet<StatusCode> = Kind::ALL.iter().map(|&k| status(k)).collect();
        assert_eq!(statuses.len(), Kind::ALL.len());
        for kind in Kind::ALL {
            assert_eq!(status(kind).is_client_error(), kind.is_client_error(), "{kind:?}");
        }
        let names: std::collections::HashSet<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), Kind::ALL.len());
    }
}
