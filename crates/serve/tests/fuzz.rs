//! The request decoders under arbitrary and mutated input: no panic, every refusal is a 4xx
//! naming a field, and the JSON fast path gives what the reference decoder gives.

use std::path::Path;

use base64::Engine;
use mmguard_data::npz::{write_npz_to, Array, ArrayData};
use mmguard_serve::decode::{decode_json, decode_json_value, decode_npz};
use mmguard_serve::Refusal;
use mmguard_serve::{Geometry, Limits};
use proptest::prelude::*;
use serde_json::{json, Value};

fn geometry() -> Geometry {
    Geometry { height: 4, width: 4, window: 3, columns: vec!["a".into(), "b".into()] }
}

const LIMITS: Limits =
    Limits { max_body_bytes: 1 << 20, max_batch: 4, max_decoded_bytes: 1 << 16, max_in_flight: 1, ..Limits::DEFAULT };

fn valid_sample() -> Value {
    json!({ "camera": { "raw": vec![9; 48] }, "sensor": [[0.5, 1.0], [0.5, 1.0], [0.5, 1.0]], "device": "d", "timestamp": 1.0 })
}

fn valid_npz() -> Vec<u8> {
    let camera = Array { shape: vec![2, 3, 4, 4], data: ArrayData::U8(vec![9; 96]) };
    let sensor = Array { shape: vec![2, 3, 2], data: ArrayData::F32(vec![0.5; 12]) };
    write_npz_to(Path::new("body"), std::io::Cursor::new(Vec::new()), &[("camera", &camera), ("sensor", &sensor)])
        .unwrap()
        .into_inner()
}

fn refused_properly(e: &Refusal) -> Result<(), TestCaseError> {
    prop_assert!(e.kind.is_client_error(), "{e:?}");
    prop_assert!(!e.field.is_empty(), "{e:?}");
    Ok(())
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("JSON numbers are finite", |x| x.is_finite()).prop_map(|x| json!(x)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map("[a-z]{1,8}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a path chosen by `picks` (each pick selects a child) with `with`.
fn mutate(v: &mut Value, picks: &[usize], with: Value) {
    let child = match (v, picks.first()) {
        (Value::Object(m), Some(&p)) if !m.is_empty() => {
            let key = m.keys().nth(p % m.len()).cloned().unwrap();
            m.get_mut(&key)
        }
        (Value::Array(a), Some(&p)) if !a.is_empty() => {
            let n = a.len();
            a.get_mut(p % n)
        }
        (v, _) => {
            *v = with;
            return;
        }
    };
    if let Some(c) = child {
        mutate(c, &picks[1..], with);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_without_panicking(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        for decode in [decode_json, decode_npz] {
            if let Err(e) = decode(&body, &geometry(), &LIMITS) {
                refused_properly(&e)?;
            }
        }
    }

    #[test]
    fn a_valid_sample_with_one_value_replaced_decodes_or_is_refused(
        picks in prop::collection::vec(any::<usize>(), 1..5),
        with in any_json(),
        batch in any::<bool>(),
    ) {
        let mut value = if batch { json!({ "samples": [valid_sample(), valid_sample()] }) } else { valid_sample() };
        mutate(&mut value, &picks, with);
        let body = value.to_string();
        let got = decode_json(body.as_bytes(), &geometry(), &LIMITS);
        if let Err(e) = &got {
            refused_properly(e)?;
        }
        // Debug text: NaN (a null reading) compares equal to itself there
        let reference = decode_json_value(body.as_bytes(), &geometry(), &LIMITS);
        prop_assert_eq!(format!("{got:?}"), format!("{reference:?}"));
    }

    #[test]
    fn a_png_frame_of_arbitrary_bytes_is_refused_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        header in any::<bool>(),
    ) {
        // half of the cases start like a real PNG so that the decoder gets past the signature
        let mut png = if header { b"\x89PNG\r\n\x1a\n".to_vec() } else { Vec::new() };
        png.extend(bytes);
        let mut value = valid_sample();
        value["camera"] = json!({ "png": base64::engine::general_purpose::STANDARD.encode(&png) });
        let e = decode_json(value.to_string().as_bytes(), &geometry(), &LIMITS).unwrap_err();
        refused_properly(&e)?;
        prop_assert_eq!(e.field, "camera.png");
    }

    #[test]
    fn a_valid_npz_with_bytes_flipped_or_cut_decodes_or_is_refused(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut body = valid_npz();
        for (at, byte) in flips {
            let n = body.len();
            body[at % n] ^= byte;
        }
        body.truncate(body.len() - cut % 64);
        if let Err(e) = decode_npz(&body, &geometry(), &LIMITS) {
            refused_properly(&e)?;
        }
    }
}
