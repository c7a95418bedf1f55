//! The fault contract, checked on random inputs: severity 0 is the identity, the same seed gives
//! the same output, the mask marks exactly what changed, and severity 1 changes something.

use mmguard_faults::temporal::{camera_stream, sensor_stream};
use mmguard_faults::{CameraFault, Faulted, Frame, Pattern, Schedule, SensorFault, Window};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const H: usize = 16;
const W: usize = 32;

fn frame_values() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (prop::collection::vec(0.0f32..=1.0, 3 * H * W), prop::collection::vec(0.0f32..=1.0, 3 * H * W))
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn changed(input: &[f32], out: &Faulted) -> Vec<bool> {
    input.iter().zip(&out.values).map(|(a, b)| a.to_bits() != b.to_bits()).collect()
}

fn camera(f: CameraFault, cur: &[f32], prev: &[f32], s: f32, seed: u64) -> Faulted {
    let frame = Frame { pixels: cur, height: H, width: W, previous: Some(prev) };
    f.apply(frame, s, &mut ChaCha8Rng::seed_from_u64(seed))
}

fn sensor(f: SensorFault, x: &[f32], d: usize, s: f32, seed: u64) -> Faulted {
    let w = Window { values: x, len: x.len() / d, columns: d };
    f.apply(w, s, &mut ChaCha8Rng::seed_from_u64(seed))
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let pattern = prop_oneof![
        Just(Pattern::Permanent),
        (1usize..8, 0.1f32..=1.0).prop_map(|(period, duty)| Pattern::Intermittent { period, duty }),
        (1usize..20).prop_map(|ramp| Pattern::Growing { ramp }),
    ];
    (0usize..30, prop::option::of(1usize..30), pattern).prop_map(|(onset, duration, pattern)| Schedule {
        onset,
        duration,
        pattern,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn streams_are_healthy_where_the_schedule_is_off(x in prop::collection::vec(0.0f32..=1.0, 40 * 3), sched in schedule(), seed in any::<u64>()) {
        for f in SensorFault::ALL {
            let out = sensor_stream(f, 1.0, &sched, &x, 3, &mut ChaCha8Rng::seed_from_u64(seed));
            prop_assert_eq!(&out.mask, &changed(&x, &out), "{:?} mask differs from the change", f);
            for t in 0..40 {
                if sched.level(t) == 0.0 {
                    prop_assert_eq!(bits(&out.values[t * 3..t * 3 + 3]), bits(&x[t * 3..t * 3 + 3]), "{:?} reading {} off", f, t);
                }
            }
        }
        let n = 3 * H * W;
        let frames: Vec<f32> = (0..6 * n).map(|k| x[k % x.len()]).collect();
        for f in CameraFault::ALL {
            let out = camera_stream(f, 1.0, &sched, &frames, H, W, &mut ChaCha8Rng::seed_from_u64(seed));
            prop_assert_eq!(&out.mask, &changed(&frames, &out), "{:?} mask differs from the change", f);
            for t in (0..6).filter(|&t| sched.level(t) == 0.0) {
                prop_assert_eq!(bits(&out.values[t * n..(t + 1) * n]), bits(&frames[t * n..(t + 1) * n]));
            }
        }
    }

    #[test]
    fn camera_faults_keep_the_contract((cur, prev) in frame_values(), s in 0.0f32..=1.0, seed in any::<u64>()) {
        for f in CameraFault::ALL {
            let zero = camera(f, &cur, &prev, 0.0, seed);
            prop_assert_eq!(bits(&zero.values), bits(&cur), "{:?} at severity 0", f);
            prop_assert_eq!(zero.changed(), 0);
            let a = camera(f, &cur, &prev, s, seed);
            let b = camera(f, &cur, &prev, s, seed);
            prop_assert_eq!(bits(&a.values), bits(&b.values), "{:?} not repeatable", f);
            prop_assert_eq!(&a.mask, &changed(&cur, &a), "{:?} mask differs from the change", f);
            prop_assert!(a.values.iter().all(|v| (0.0..=1.0).contains(v)), "{:?} left [0, 1]", f);
            let full = camera(f, &cur, &prev, 1.0, seed);
            prop_assert!(full.changed() > 0, "{:?} at severity 1 changed nothing", f);
        }
    }

    #[test]
    fn sensor_faults_keep_the_contract(x in prop::collection::vec(0.0f32..=1.0, 16 * 5), s in 0.0f32..=1.0, seed in any::<u64>()) {
        for f in SensorFault::ALL {
            let zero = sensor(f, &x, 5, 0.0, seed);
            prop_assert_eq!(bits(&zero.values), bits(&x), "{:?} at severity 0", f);
            let a = sensor(f, &x, 5, s, seed);
            let b = sensor(f, &x, 5, s, seed);
            prop_assert_eq!(bits(&a.values), bits(&b.values), "{:?} not repeatable", f);
            prop_assert_eq!(&a.mask, &changed(&x, &a), "{:?} mask differs from the change", f);
            let full = sensor(f, &x, 5, 1.0, seed);
            prop_assert!(full.changed() > 0, "{:?} at severity 1 changed nothing", f);
        }
    }
}

#[test]
fn test_fault_noise_hits_about_half_the_pixels_with_sigma_one_half() {
    let cur = vec![0.5f32; 3 * 64 * 64];
    let out = CameraFault::Noise.apply(
        Frame { pixels: &cur, height: 64, width: 64, previous: None },
        1.0,
        &mut ChaCha8Rng::seed_from_u64(1),
    );
    let share = out.changed() as f64 / cur.len() as f64;
    assert!((0.47..0.53).contains(&share), "changed share {share}");
    // N(0, 0.5²) clipped to ±0.5 around 0.5: E[(x' − x)²] = 0.25·(0.683 − 2φ(1)) + 0.25·0.317 ≈ 0.129
    let mse: f64 =
        out.values.iter().zip(&cur).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / out.changed() as f64;
    assert!((0.115..0.145).contains(&mse), "mse on changed pixels {mse}");
}

#[test]
fn test_fault_gain_scales_each_column_by_one_factor_between_1_and_6() {
    let x: Vec<f32> = (0..16 * 4).map(|k| 0.1 + (k % 7) as f32 / 10.0).collect();
    let out = sensor(SensorFault::Gain, &x, 4, 1.0, 9);
    for j in 0..4 {
        let g = out.values[j] / x[j];
        assert!((1.0..=6.0).contains(&g));
        for r in 0..16 {
            assert!((out.values[r * 4 + j] / x[r * 4 + j] - g).abs() < 1e-5);
        }
    }
}

#[test]
fn frozen_without_previous_frame_is_identity_and_occlusion_is_a_block() {
    let cur: Vec<f32> = (0..3 * H * W).map(|k| (k % 97) as f32 / 97.0).collect();
    let f = Frame { pixels: &cur, height: H, width: W, previous: None };
    assert_eq!(CameraFault::Frozen.apply(f, 1.0, &mut ChaCha8Rng::seed_from_u64(0)).changed(), 0);
    let occ = CameraFault::Occlusion.apply(f, 0.5, &mut ChaCha8Rng::seed_from_u64(0));
    let rows: Vec<usize> = (0..H).filter(|r| (0..W).any(|c| occ.mask[r * W + c])).collect();
    let cols: Vec<usize> = (0..W).filter(|c| (0..H).any(|r| occ.mask[r * W + c])).collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(cols.len(), 10);
}

#[test]
fn names_round_trip_and_unknown_names_are_listed() {
    for f in CameraFault::ALL {
        assert_eq!(CameraFault::from_name(f.name()).unwrap(), f);
    }
    for f in SensorFault::ALL {
        assert_eq!(SensorFault::from_name(f.name()).unwrap(), f);
    }
    for f in mmguard_faults::Fault::all() {
        assert_eq!(mmguard_faults::Fault::from_name(&f.name()).unwrap(), f);
    }
    assert!(mmguard_faults::Fault::from_name("noise").is_err());
    let e = SensorFault::from_name("wobble").unwrap_err().to_string();
    assert!(e.contains("wobble") && e.contains("dead_channel"), "{e}");
}

#[test]
fn catalogue_faults_do_what_their_names_say() {
    let x: Vec<f32> = (0..16 * 3).map(|k| ((k * 7) % 16) as f32 / 16.0).collect();
    let q = sensor(SensorFault::Quantization, &x, 3, 1.0, 0);
    assert!(q.values.iter().all(|v| [0.0, 0.5, 1.0].contains(v)), "{:?}", q.values);
    let sat = sensor(SensorFault::Saturation, &x, 3, 1.0, 0);
    assert!(sat.values.iter().all(|&v| v <= 0.3 + 1e-6));
    let lag = sensor(SensorFault::Latency, &x, 3, 1.0, 0);
    // T = 16, lag 4: reading 10 shows what reading 6 read
    assert_eq!(&lag.values[30..33], &x[18..21]);
    let cut = sensor(SensorFault::Cutout, &x, 3, 0.5, 0);
    let zero_rows: Vec<usize> = (0..16).filter(|r| cut.values[r * 3..r * 3 + 3].iter().all(|&v| v == 0.0)).collect();
    assert!(zero_rows.len() >= 5 && zero_rows.windows(2).all(|w| w[1] == w[0] + 1), "{zero_rows:?}");
    assert!(sensor(SensorFault::Missing, &x, 3, 0.1, 0).values.iter().all(|&v| v == 0.0));

    let frame: Vec<f32> = (0..3 * H * W).map(|k| (k % 89) as f32 / 89.0).collect();
    let white = camera(CameraFault::White, &frame, &frame, 1.0, 0);
    assert!(white.values.iter().all(|&v| v == 1.0));
    let sp = camera(CameraFault::SaltPepper, &frame, &frame, 1.0, 0);
    assert!(sp.values.iter().zip(&sp.mask).all(|(&v, &m)| !m || v == 0.0 || v == 1.0));
    let dropped = camera(CameraFault::Dropped, &frame, &frame, 0.5, 0);
    let zero_rows: Vec<usize> = (0..H)
        .filter(|&r| (0..3).all(|c| dropped.values[c * H * W + r * W..][..W].iter().all(|&v| v == 0.0)))
        .collect();
    assert!(zero_rows.len() >= H / 2 && zero_rows.windows(2).all(|w| w[1] == w[0] + 1), "{zero_rows:?}");
    assert!(camera(CameraFault::Dropped, &frame, &frame, 1.0, 0).values.iter().all(|&v| v == 0.0));
    let glare = camera(CameraFault::Glare, &frame, &frame, 1.0, 0);
    assert!(glare.values.iter().zip(&frame).all(|(g, f)| g >= f), "glare only brightens");
    let flat = camera(CameraFault::Contrast, &frame, &frame, 1.0, 0);
    let spread = |v: &[f32]| v.iter().cloned().fold(f32::MIN, f32::max) - v.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread(&flat.values) < 0.25 * spread(&frame));
}
