//! Request bodies to samples, checked against the run's [`Geometry`]: JSON (one sample or
//! `{"samples": [...]}`, frames as raw uint8 or base64 PNG) and `application/x-npz` batches with
//! the data contract's keys. Every way a body can be wrong is a [`Refusal`] naming the field
//! (`samples[3].sensor[2][5]`, `camera`), what was expected and what was found; none panics
//! (`tests/fuzz.rs` feeds them arbitrary bytes).

use std::path::Path;

use base64::Engine;
use mmguard_data::layout::channel_first_into;
use mmguard_data::npz::{ArrayData, NpzReader};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::pipeline::{Geometry, Sample};
use crate::refusal::{Kind, Refusal};

/// Limits on what a request may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest body, bytes.
    pub max_body_bytes: usize,
    /// Most samples in one request.
    pub max_batch: usize,
    /// Most bytes a PNG frame, or an npz body's arrays together, may decode to: a small
    /// compressed body can claim gigabytes.
    pub max_decoded_bytes: usize,
    /// Most inference requests decoded or answered at once; the permit is taken once the body
    /// is in, so slow senders do not hold it, and more get 503.
    pub max_in_flight: usize,
    /// Most bytes of request bodies held at once (being read, or read and not yet answered);
    /// a body that does not fit is refused with 503 before it is read.
    pub max_body_memory_bytes: usize,
    /// Milliseconds a body may take to arrive in full, counted from the end of its headers.
    pub body_timeout_ms: u64,
    /// Slowest body accepted: after a grace second, fewer bytes than this rate × the time since
    /// the headers cut the request with 408.
    pub min_body_bytes_per_s: u64,
    /// Milliseconds from the end of the body to the answer (decoding, queue and model); later
    /// the request is answered 503 (`deadline`).
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Limits {
    /// The defaults, as a constant (tests build their limits from it).
    pub const DEFAULT: Self = Self {
        max_body_bytes: 16 << 20,
        max_batch: 256,
        max_decoded_bytes: 64 << 20,
        max_in_flight: 64,
        max_body_memory_bytes: 256 << 20,
        body_timeout_ms: 30_000,
        min_body_bytes_per_s: 16 << 10,
        request_timeout_ms: 30_000,
    };
}

/// Longest device id, bytes.
pub const MAX_DEVICE_ID: usize = 128;

/// A JSON value described for an error message.
pub fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// The 413 of a request with more samples than `limits` allow; `found` says how many.
fn too_many(found: impl Into<String>, limits: &Limits) -> Refusal {
    Refusal::with(Kind::TooLarge, "samples", format!("at most {} samples", limits.max_batch), found)
}

/// A JSON body the typed path refuses is walked again as a generic [`Value`] to name the field
/// only up to this size: a `Value` tree costs about 17 times the text it was parsed from, so a
/// 16 MiB body would take some 270 MB per request. A bigger refused body is told where the
/// typed parser stopped (line and column) or what was wrong with which sample.
pub const FIELD_ERRORS_UP_TO: usize = 1 << 20;

/// The samples of a JSON body. Valid bodies take a typed fast path (serde straight into the
/// sample's buffers: 0.5 → 0.1 ms for a 64×64 frame); anything it cannot take goes through
/// [`decode_json_value`], which gives the same samples or the error naming the field
/// (`tests/fuzz.rs` checks that both agree), when it is at most [`FIELD_ERRORS_UP_TO`] long.
pub fn decode_json(body: &[u8], geometry: &Geometry, limits: &Limits) -> Result<Vec<Sample>, Refusal> {
    match fast::decode(body, geometry, limits) {
        Ok(samples) => Ok(samples),
        Err(_) if body.len() <= FIELD_ERRORS_UP_TO => decode_json_value(body, geometry, limits),
        Err(fast::Refused::TooManySamples(reason)) => Err(too_many(reason, limits)),
        Err(fast::Refused::Invalid(reason)) => {
            Err(Refusal::bad("body", "a request as /openapi.json describes", reason))
        }
    }
}

/// The typed fast path: an error whenever the body is anything but a valid request.
mod fast {
    use std::cell::Cell;
    use std::marker::PhantomData;

    use serde::de::{Deserializer, Error as _, SeqAccess, Visitor};
    use serde::Deserialize;

    use super::{decode_png, Geometry, Limits, Sample};

    /// A batch, or the fields of a single sample at the top level.
    #[derive(Deserialize)]
    struct Body {
        samples: Option<Capped<Item, SAMPLES>>,
        camera: Option<Camera>,
        sensor: Option<Window>,
        device: Option<String>,
        timestamp: Option<f64>,
    }

    #[derive(Deserialize)]
    struct Item {
        camera: Camera,
        sensor: Window,
        device: Option<String>,
        timestamp: Option<f64>,
    }

    #[derive(Deserialize)]
    struct Camera {
        raw: Option<Capped<u8, PIXELS>>,
        png: Option<String>,
    }

    /// Rows of readings, `null` for a missing one.
    type Window = Capped<Capped<Option<f32>, COLUMNS>, ROWS>;

    /// Which cap a list has.
    const SAMPLES: usize = 0;
    const ROWS: usize = 1;
    const COLUMNS: usize = 2;
    const PIXELS: usize = 3;
    const NAMES: [&str; 4] = ["samples", "rows", "readings in a row", "frame values"];

    thread_local! {
        /// The caps of the body being parsed on this thread ([`SAMPLES`], [`ROWS`], …).
        static CAPS: Cell<[usize; 4]> = const { Cell::new([usize::MAX; 4]) };
        /// Set when the list of samples passed its cap: serde's errors are text, and this says
        /// which refusal it was without reading the text back.
        static TOO_MANY_SAMPLES: Cell<bool> = const { Cell::new(false) };
    }

    /// Why the typed path refused a body.
    pub(super) enum Refused {
        /// More samples than the request's cap (a 413), with the parser's message.
        TooManySamples(String),
        /// Anything else, in short: the parser's message with its line and column, or the
        /// sample and the part of it.
        Invalid(String),
    }

    /// A list that is refused as soon as it grows past its cap, while it is parsed: serde fills
    /// a `Vec` before anything can look at its length, and a body of `[],` rows takes about
    /// eight times its text in row headers.
    struct Capped<T, const K: usize>(Vec<T>);

    impl<'de, T: Deserialize<'de>, const K: usize> Deserialize<'de> for Capped<T, K> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct List<T, const K: usize>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>, const K: usize> Visitor<'de> for List<T, K> {
                type Value = Capped<T, K>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(f, "a list of at most {} {}", CAPS.with(Cell::get)[K], NAMES[K])
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let cap = CAPS.with(Cell::get)[K];
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(cap));
                    while let Some(x) = seq.next_element()? {
                        if out.len() == cap {
                            if K == SAMPLES {
                                TOO_MANY_SAMPLES.with(|t| t.set(true));
                            }
                            return Err(A::Error::custom(format!("more than {cap} {}", NAMES[K])));
                        }
                        out.push(x);
                    }
                    Ok(Capped(out))
                }
            }
            d.deserialize_seq(List(PhantomData))
        }
    }

    /// The samples, or why not.
    pub(super) fn decode(body: &[u8], g: &Geometry, limits: &Limits) -> Result<Vec<Sample>, Refused> {
        CAPS.with(|c| c.set([limits.max_batch, g.window, g.columns.len(), g.frame_len()]));
        TOO_MANY_SAMPLES.with(|t| t.set(false));
        let body: Body = serde_json::from_slice(body).map_err(|e| match TOO_MANY_SAMPLES.with(Cell::get) {
            true => Refused::TooManySamples(e.to_string()),
            false => Refused::Invalid(e.to_string()),
        })?;
        items(body, g, limits).map_err(Refused::Invalid)
    }

    fn items(body: Body, g: &Geometry, limits: &Limits) -> Result<Vec<Sample>, String> {
        let items = match body {
            Body { samples: Some(items), .. } => items.0,
            Body { samples: None, camera: Some(camera), sensor: Some(sensor), device, timestamp } => {
                vec![Item { camera, sensor, device, timestamp }]
            }
            _ => return Err("neither a sample nor {\"samples\": [...]}".into()),
        };
        if items.is_empty() {
            return Err("no samples".into());
        }
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| sample(item, g, limits).map_err(|e| format!("samples[{i}]: {e}")))
            .collect()
    }

    fn sample(item: Item, g: &Geometry, limits: &Limits) -> Result<Sample, &'static str> {
        let camera = match item.camera {
            Camera { raw: Some(raw), .. } => raw.0,
            Camera { raw: None, png: Some(text) } => {
                use base64::Engine;
                let bytes =
                    base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| "camera.png is not base64")?;
                decode_png(&bytes, g.height, g.width, limits.max_decoded_bytes)
                    .map_err(|_| "camera.png is no PNG of the model's frame size")?
            }
            Camera { raw: None, png: None } => return Err("camera has neither raw nor png"),
        };
        let d = g.columns.len();
        if item.device.as_ref().is_some_and(|id| id.len() > super::MAX_DEVICE_ID) {
            return Err("device id too long");
        }
        if camera.len() != g.frame_len() {
            return Err("camera.raw is not the model's frame size");
        }
        let rows = item.sensor.0;
        if rows.len() != g.window || rows.iter().any(|r| r.0.len() != d) {
            return Err("sensor is not the model's window of its columns");
        }
        let sensor = rows.into_iter().flat_map(|r| r.0).map(|x| x.unwrap_or(f32::NAN)).collect();
        Ok(Sample { camera, sensor, device: item.device, timestamp: item.timestamp })
    }
}

/// The reference JSON decoder: walks the body as a [`Value`] and names the field of the first
/// thing wrong.
pub fn decode_json_value(body: &[u8], geometry: &Geometry, limits: &Limits) -> Result<Vec<Sample>, Refusal> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Refusal::bad("body", "JSON", e.to_string()))?;
    let (list, prefix): (Vec<&Value>, &str) = match value.get("samples") {
        Some(Value::Array(a)) => (a.iter().collect(), "samples"),
        Some(other) => return Err(Refusal::bad("samples", "an array of samples", kind_of(other))),
        None if value.is_object() => (vec![&value], ""),
        None => return Err(Refusal::bad("body", "a sample object or {\"samples\": [...]}", kind_of(&value))),
    };
    if list.is_empty() {
        return Err(Refusal::bad("samples", "at least one sample", "an empty array"));
    }
    if list.len() > limits.max_batch {
        return Err(too_many(list.len().to_string(), limits));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let at = if prefix.is_empty() { String::new() } else { format!("{prefix}[{i}].") };
            sample(v, &at, geometry, limits)
        })
        .collect()
}

fn sample(v: &Value, at: &str, g: &Geometry, limits: &Limits) -> Result<Sample, Refusal> {
    let (t, d) = (g.window, g.columns.len());
    let Some(obj) = v.as_object() else {
        return Err(Refusal::bad(at.trim_end_matches('.'), "a sample object", kind_of(v)));
    };
    let field = |name: &str| format!("{at}{name}");
    let camera = match obj.get("camera") {
        None => return Err(Refusal::bad(field("camera"), "{\"png\": base64} or {\"raw\": [uint8]}", "nothing")),
        Some(c) => frame(c, &field("camera"), g, limits)?,
    };
    let rows = match obj.get("sensor") {
        Some(Value::Array(rows)) => rows,
        other => {
            return Err(Refusal::bad(
                field("sensor"),
                format!("{t} rows of {d} numbers"),
                other.map_or("nothing".into(), kind_of),
            ))
        }
    };
    if rows.len() != t {
        return Err(Refusal::bad(
            field("sensor"),
            format!("{t} rows (the model's window)"),
            format!("{} rows", rows.len()),
        ));
    }
    let mut sensor = Vec::with_capacity(t * d);
    for (k, row) in rows.iter().enumerate() {
        let cells = row.as_array().filter(|r| r.len() == d).ok_or_else(|| {
            Refusal::bad(format!("{at}sensor[{k}]"), format!("{d} numbers ({})", g.columns.join(", ")), kind_of(row))
        })?;
        for (j, c) in cells.iter().enumerate() {
            // JSON has no NaN; `null` stands for a missing reading and reaches the NaN rule
            let x = match c {
                Value::Number(n) => n.as_f64().map(|x| x as f32),
                Value::Null => Some(f32::NAN),
                _ => None,
            }
            .ok_or_else(|| Refusal::bad(format!("{at}sensor[{k}][{j}]"), "a number or null", kind_of(c)))?;
            sensor.push(x);
        }
    }
    let device = match obj.get("device") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_DEVICE_ID => Some(s.clone()),
        Some(Value::String(s)) => {
            return Err(Refusal::bad(field("device"), format!("at most {MAX_DEVICE_ID} bytes"), s.len().to_string()))
        }
        Some(other) => return Err(Refusal::bad(field("device"), "a string", kind_of(other))),
    };
    let timestamp = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => return Err(Refusal::bad(field("timestamp"), "a number (seconds)", kind_of(other))),
    };
    Ok(Sample { camera, sensor, device, timestamp })
}

fn frame(v: &Value, at: &str, g: &Geometry, limits: &Limits) -> Result<Vec<u8>, Refusal> {
    let (h, w) = (g.height, g.width);
    let want = g.frame_len();
    if let Some(raw) = v.get("raw") {
        let list =
            raw.as_array().ok_or_else(|| Refusal::bad(format!("{at}.raw"), "an array of uint8", kind_of(raw)))?;
        if list.len() != want {
            return Err(Refusal::bad(
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
                    .ok_or_else(|| Refusal::bad(format!("{at}.raw[{i}]"), "an integer 0–255", kind_of(p)))
            })
            .collect();
    }
    let Some(text) = v.get("png") else {
        return Err(Refusal::bad(at, "{\"png\": base64} or {\"raw\": [uint8]}", kind_of(v)));
    };
    let text = text.as_str().ok_or_else(|| Refusal::bad(format!("{at}.png"), "a base64 string", kind_of(text)))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Refusal::bad(format!("{at}.png"), "base64", e.to_string()))?;
    decode_png(&bytes, h, w, limits.max_decoded_bytes)
        .map_err(|found| Refusal::bad(format!("{at}.png"), format!("an RGB PNG of {w}×{h}"), found))
}

/// An 8-bit RGB (or RGBA, alpha dropped) PNG as a channel-first frame.
fn decode_png(bytes: &[u8], h: usize, w: usize, max_bytes: usize) -> Result<Vec<u8>, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_limits(png::Limits { bytes: max_bytes });
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
    channel_first_into(&buf[..out.buffer_size()], channels, &mut frame);
    Ok(frame)
}

/// The samples of an `application/x-npz` body: `camera` uint8 [N, 3, H, W] and `sensor` float32
/// [N, T, D] (the data contract's ready-made windows; NaN is a missing reading), optionally `t`
/// float32 or float64 [N] as the time stamps. Other keys are ignored, as in a dataset file.
pub fn decode_npz(body: &[u8], geometry: &Geometry, limits: &Limits) -> Result<Vec<Sample>, Refusal> {
    let label = Path::new("request body");
    let mut npz = NpzReader::from_reader(label, std::io::Cursor::new(body), limits.max_decoded_bytes as u64)
        .map_err(|e| Refusal::bad("body", "an npz archive", e.to_string()))?
        .with_budget(limits.max_decoded_bytes as u64);
    let (h, w, t, d) = (geometry.height, geometry.width, geometry.window, geometry.columns.len());
    let mut read = |key: &str| npz.read(key).map_err(|e| Refusal::bad(key, "a readable array", e.to_string()));
    let camera = read("camera")?.ok_or_else(|| Refusal::bad("camera", format!("uint8 [N, 3, {h}, {w}]"), "no key"))?;
    let sensor = read("sensor")?.ok_or_else(|| Refusal::bad("sensor", format!("float32 [N, {t}, {d}]"), "no key"))?;
    let time = read("t")?;
    let n = camera.shape.first().copied().unwrap_or(0) as usize;
    let ArrayData::U8(frames) = &camera.data else {
        return Err(Refusal::bad("camera", "uint8", camera.data.dtype()));
    };
    if camera.shape != [n as u64, 3, h as u64, w as u64] || n == 0 {
        return Err(Refusal::bad("camera", format!("shape [N ≥ 1, 3, {h}, {w}]"), format!("{:?}", camera.shape)));
    }
    if n > limits.max_batch {
        return Err(too_many(n.to_string(), limits));
    }
    let ArrayData::F32(windows) = &sensor.data else {
        return Err(Refusal::bad("sensor", "float32", sensor.data.dtype()));
    };
    if sensor.shape != [n as u64, t as u64, d as u64] {
        return Err(Refusal::bad("sensor", format!("shape [{n}, {t}, {d}]"), format!("{:?}", sensor.shape)));
    }
    let stamps: Option<Vec<f64>> = match time {
        None => None,
        Some(a) if a.shape != [n as u64] => {
            return Err(Refusal::bad("t", format!("shape [{n}]"), format!("{:?}", a.shape)))
        }
        Some(a) => match a.data {
            ArrayData::F32(v) => Some(v.into_iter().map(f64::from).collect()),
            ArrayData::F64(v) => Some(v),
            other => return Err(Refusal::bad("t", "float32 or float64", other.dtype())),
        },
    };
    let (frame, win) = (geometry.frame_len(), geometry.window_len());
    Ok((0..n)
        .map(|i| Sample {
            camera: frames[i * frame..(i + 1) * frame].to_vec(),
            sensor: windows[i * win..(i + 1) * win].to_vec(),
            device: None,
            timestamp: stamps.as_ref().map(|s| s[i]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use mmguard_data::npz::{write_npz_to, Array};

    use super::*;

    fn geometry() -> Geometry {
        Geometry { height: 16, width: 16, window: 4, columns: vec!["a".into(), "b".into()] }
    }

    fn npz(arrays: &[(&str, &Array)]) -> Vec<u8> {
        write_npz_to(Path::new("body"), std::io::Cursor::new(Vec::new()), arrays).unwrap().into_inner()
    }

    #[test]
    fn a_refused_json_body_over_the_field_error_size_is_told_what_without_a_value_tree() {
        let g = geometry();
        let pad = "x".repeat(FIELD_ERRORS_UP_TO);
        let sample = |rows: usize| serde_json::json!({ "camera": { "raw": vec![0u8; 768] }, "sensor": vec![vec![0.5; 2]; rows], "pad": pad });
        let good = serde_json::to_vec(&sample(4)).unwrap();
        assert!(good.len() > FIELD_ERRORS_UP_TO);
        assert_eq!(decode_json(&good, &g, &Limits::default()).unwrap().len(), 1);
        let short = serde_json::to_vec(&sample(3)).unwrap();
        let e = decode_json(&short, &g, &Limits::default()).unwrap_err();
        assert_eq!((e.kind, e.field.as_str()), (Kind::Invalid, "body"), "{e:?}");
        assert!(e.found.contains("samples[0]") && e.found.contains("sensor"), "{e:?}");
        let cut = &good[..good.len() - 2];
        let e = decode_json(cut, &g, &Limits::default()).unwrap_err();
        assert!(e.field == "body" && e.found.contains("line 1 column"), "{e:?}");
        // lists are refused as they grow past their caps, with the status the small body gets
        let wide =
            serde_json::json!({ "camera": { "raw": vec![0u8; 768] }, "sensor": vec![vec![0.5; 3]; 4], "pad": pad });
        let e = decode_json(&serde_json::to_vec(&wide).unwrap(), &g, &Limits::default()).unwrap_err();
        assert!(e.field == "body" && e.found.contains("more than 2 readings in a row"), "{e:?}");
        let one =
            |n: usize| serde_json::json!({ "camera": { "raw": vec![0u8; 768] }, "sensor": vec![vec![0.5; 2]; n] });
        let many = serde_json::json!({ "samples": vec![one(4); 3], "pad": pad });
        let two = Limits { max_batch: 2, ..Limits::default() };
        let e = decode_json(&serde_json::to_vec(&many).unwrap(), &g, &two).unwrap_err();
        assert_eq!((e.kind, e.field.as_str()), (Kind::TooLarge, "samples"), "{e:?}");
        // the same mistake in a small body is named by its field
        let small =
            serde_json::to_vec(&serde_json::json!({ "camera": { "raw": vec![0u8; 768] }, "sensor": [[0.5, 0.5]] }))
                .unwrap();
        assert_eq!(decode_json(&small, &g, &Limits::default()).unwrap_err().field, "sensor");
    }

    #[test]
    fn an_npz_batch_decodes_to_its_samples_and_each_bad_key_is_named() {
        let g = geometry();
        let camera = Array { shape: vec![2, 3, 16, 16], data: ArrayData::U8((0..1536).map(|i| i as u8).collect()) };
        let sensor = Array { shape: vec![2, 4, 2], data: ArrayData::F32((0..16).map(|i| i as f32).collect()) };
        let t = Array { shape: vec![2], data: ArrayData::F64(vec![1.5, 2.5]) };
        let samples =
            decode_npz(&npz(&[("camera", &camera), ("sensor", &sensor), ("t", &t)]), &g, &Limits::default()).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[1].camera, (768..1536).map(|i| i as u8).collect::<Vec<_>>());
        assert_eq!(samples[1].sensor, (8..16).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(samples[1].timestamp, Some(2.5));

        let wide = Array { shape: vec![2, 4, 3], data: ArrayData::F32(vec![0.0; 24]) };
        let doubles = Array { shape: vec![2, 4, 2], data: ArrayData::F64(vec![0.0; 16]) };
        let small = Array { shape: vec![2, 3, 8, 8], data: ArrayData::U8(vec![0; 384]) };
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (b"PK not a zip".to_vec(), "body", "npz archive"),
            (npz(&[("sensor", &sensor)]), "camera", "no key"),
            (npz(&[("camera", &camera)]), "sensor", "no key"),
            (npz(&[("camera", &camera), ("sensor", &wide)]), "sensor", "[2, 4, 3]"),
            (npz(&[("camera", &camera), ("sensor", &doubles)]), "sensor", "float64"),
            (npz(&[("camera", &small), ("sensor", &sensor)]), "camera", "[2, 3, 8, 8]"),
            (npz(&[("camera", &camera), ("sensor", &sensor), ("t", &camera)]), "t", "[2, 3, 16, 16]"),
        ];
        for (body, field, found) in cases {
            let e = decode_npz(&body, &g, &Limits::default()).unwrap_err();
            assert_eq!(e.field, field, "{e:?}");
            assert!(e.found.contains(found), "{e:?}");
        }
        let one = Limits { max_batch: 1, ..Limits::default() };
        let e = decode_npz(&npz(&[("camera", &camera), ("sensor", &sensor)]), &g, &one).unwrap_err();
        assert_eq!(e.kind, Kind::TooLarge);
    }

    #[test]
    fn a_png_of_another_size_or_depth_is_named_before_its_pixels_are_decoded() {
        let png_of = |w: u32, h: u32, depth: png::BitDepth| {
            let mut bytes = Vec::new();
            let mut enc = png::Encoder::new(&mut bytes, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(depth);
            let per = if depth == png::BitDepth::Sixteen { 6 } else { 3 };
            enc.write_header().unwrap().write_image_data(&vec![7; (w * h) as usize * per]).unwrap();
            bytes
        };
        assert_eq!(decode_png(&png_of(16, 8, png::BitDepth::Eight), 8, 16, 1 << 20).unwrap(), vec![7; 384]);
        assert_eq!(decode_png(&png_of(4000, 4000, png::BitDepth::Eight), 8, 16, 1 << 20).unwrap_err(), "4000×4000");
        assert!(decode_png(&png_of(16, 8, png::BitDepth::Sixteen), 8, 16, 1 << 20).unwrap_err().contains("Sixteen"));
    }
}
