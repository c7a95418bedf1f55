//! `GET /openapi.json`: the API as an OpenAPI 3.1 document, with the run's own shapes (frame
//! size, window length, column names) written into the schemas so that a client generator or a
//! reader sees exactly what this server takes.

use serde_json::{json, Value};

use crate::decode::Limits;
use crate::http::NPZ;
use crate::pipeline::{Geometry, BAD_SENSOR_FAILURE, GOOD, UNCERTAIN_SUBSTITUTE};

/// The document for a run of `geometry` under `limits`.
pub fn document(g: &Geometry, limits: &Limits) -> Value {
    let (h, w, t, d) = (g.height, g.width, g.window, g.columns.len());
    let error = json!({ "description": "Refused; the error names the field", "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mmguard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Detects which modality of a camera + sensor sample is faulty, substitutes it from the healthy one, and gives a status per channel (OPC UA codes).",
        },
        "paths": {
            "/healthz": { "get": { "summary": "Alive", "responses": { "200": { "description": "ok" } } } },
            "/readyz": { "get": { "summary": "Model loaded: version and the shape of a sample", "responses": { "200": { "description": "ready" } } } },
            "/metrics": { "get": { "summary": "Prometheus text exposition", "responses": { "200": { "description": "metrics" } } } },
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/v1/infer": { "post": {
                "summary": "Check, gate and correct one sample or a batch",
                "requestBody": { "required": true, "content": {
                    "application/json": { "schema": { "oneOf": [
                        { "$ref": "#/components/schemas/Sample" },
                        { "type": "object", "required": ["samples"], "properties": { "samples": {
                            "type": "array", "minItems": 1, "maxItems": limits.max_batch,
                            "items": { "$ref": "#/components/schemas/Sample" } } } },
                    ] } },
                    NPZ: { "schema": { "type": "string", "format": "binary", "description": format!(
                        "NumPy .npz with `camera` uint8 [N, 3, {h}, {w}], `sensor` float32 [N, {t}, {d}] (NaN: missing), optional `t` [N] (time stamps); N ≤ {}.", limits.max_batch) } },
                } },
                "responses": {
                    "200": { "description": "One answer per sample, in order", "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/InferResponse" } } } },
                    "400": error, "413": error, "415": error,
                    "503": { "description": "The queue is full or too many requests are in flight; retry later", "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/Error" } } } },
                },
            } },
            "/v1/threshold": {
                "get": { "summary": "The gate thresholds in use and the calibrated ones, per modality", "responses": { "200": { "description": "thresholds" } } },
                "put": {
                    "summary": "Change the gate thresholds at run time: both (threshold) or one modality (camera, sensor), and the sensor's novelty distance (a positive number, or null to gate by the scores alone; only for a run with a clean prior); logged with X-Operator and time",
                    "security": [{ "bearer": [] }],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": {
                        "type": "object", "additionalProperties": false, "minProperties": 1, "properties": {
                            "threshold": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
                            "camera": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
                            "sensor": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 },
                            "novelty": { "type": ["number", "null"], "exclusiveMinimum": 0 } } } } } },
                    "responses": { "200": { "description": "changed" }, "400": error, "401": error },
                },
            },
            "/v1/reload": { "post": {
                "summary": "Load another run and swap it in atomically; requests in flight finish on the old one",
                "security": [{ "bearer": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["run"], "properties": { "run": { "type": "string" } } } } } },
                "responses": { "200": { "description": "swapped" }, "400": error, "401": error,
                    "422": { "description": "The run did not load; the old one keeps serving", "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/Error" } } } } },
            } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "Required by the admin endpoints when the server has an admin token" } },
            "schemas": {
                "Sample": { "type": "object", "required": ["camera", "sensor"], "properties": {
                    "camera": { "oneOf": [
                        { "type": "object", "required": ["png"], "properties": { "png": {
                            "type": "string", "contentEncoding": "base64", "description": format!("8-bit RGB or RGBA PNG, {w}×{h}") } } },
                        { "type": "object", "required": ["raw"], "properties": { "raw": {
                            "type": "array", "minItems": 3 * h * w, "maxItems": 3 * h * w,
                            "items": { "type": "integer", "minimum": 0, "maximum": 255 },
                            "description": format!("uint8, channel-first [3, {h}, {w}], row 0 = top") } } },
                    ] },
                    "sensor": { "type": "array", "minItems": t, "maxItems": t, "description": format!(
                        "{t} readings, oldest first, in physical units; columns: {}", g.columns.join(", ")),
                        "items": { "type": "array", "minItems": d, "maxItems": d,
                            "items": { "type": ["number", "null"], "description": "null: a missing reading" } } },
                    "device": { "type": "string", "description": "Frozen-frame rule: compared with this device's previous frame" },
                    "timestamp": { "type": "number", "description": "Seconds; passed back" },
                } },
                "Answer": { "type": "object", "properties": {
                    "scores": { "type": ["array", "null"], "items": { "type": "number" }, "description": "Fault probability (camera, sensor); null on the rule path" },
                    "channel_scores": { "type": "object", "description": "Fault probability per sensor column and per image region (row-major from the top left); absent on the rule path and for runs without per-channel scores", "properties": {
                        "sensor": { "type": "array", "items": { "type": "number" } },
                        "camera_regions": { "type": "array", "items": { "type": "number" } } } },
                    "flags": { "type": "array", "items": { "type": "boolean" }, "description": "Faulty (camera, sensor)" },
                    "route": { "enum": ["rule", "bypass", "corrected"] },
                    "violations": { "type": "array", "items": { "type": "object", "properties": {
                        "rule": { "enum": ["not-finite", "out-of-range", "stuck", "rate-of-change", "frozen-frame", "black-frame", "white-frame"] },
                        "channel": { "type": "string" }, "detail": { "type": "string" } } } },
                    "camera_status": { "type": "integer", "description": format!(
                        "OPC UA: Good {GOOD:#010x}, Uncertain_SubstituteValue {UNCERTAIN_SUBSTITUTE:#010x}, Bad_SensorFailure {BAD_SENSOR_FAILURE:#010x}") },
                    "sensor_status": { "type": "array", "items": { "type": "integer" }, "description": "OPC UA status per column" },
                    "camera": { "type": ["array", "null"], "items": { "type": "integer" }, "description": "The substituted frame (uint8 [3, H, W]) when the camera was corrected" },
                    "sensor": { "type": "array", "items": { "type": "number" }, "description": "The output window [T, D], row-major, physical units" },
                    "timestamp": { "type": ["number", "null"] },
                } },
                "InferResponse": { "type": "object", "properties": {
                    "model_version": { "type": "string" },
                    "latency_ms": { "type": "number" },
                    "answers": { "type": "array", "items": { "$ref": "#/components/schemas/Answer" } },
                } },
                "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": {
                    "field": { "type": "string", "description": "e.g. samples[3].sensor[2][5], camera.png, body" },
                    "expected": { "type": "string" }, "found": { "type": "string" } } } } },
            },
        },
    })
}
