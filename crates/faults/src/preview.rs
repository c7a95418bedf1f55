//! Pictures of the catalogue: every camera fault at several severities on one frame, and every
//! sensor fault (and the temporal patterns) on one channel over an episode.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::temporal::sensor_stream;
use crate::{CameraFault, Frame, Pattern, Schedule, SensorFault};

/// An RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixels, [height, width, 3].
    pub pixels: Vec<u8>,
}

/// One row per camera fault, one column per severity: the frame ([3, H, W] in [0, 1]) with the
/// fault applied, tiles separated by a 2-pixel white gap. `previous` feeds the frozen-frame fault.
pub fn camera_grid(frame: &[f32], previous: &[f32], height: usize, width: usize, severities: &[f32], seed: u64) -> Rgb {
    const GAP: usize = 2;
    let faults = CameraFault::ALL;
    let (gw, gh) = (severities.len() * (width + GAP) + GAP, faults.len() * (height + GAP) + GAP);
    let mut pixels = vec![255u8; gw * gh * 3];
    let plane = height * width;
    for (row, fault) in faults.iter().enumerate() {
        for (col, &s) in severities.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let input = Frame { pixels: frame, height, width, previous: Some(previous) };
            let out = fault.apply(input, s, &mut rng).values;
            let (top, left) = (GAP + row * (height + GAP), GAP + col * (width + GAP));
            for r in 0..height {
                for c in 0..width {
                    for ch in 0..3 {
                        let v = (out[ch * plane + r * width + c].clamp(0.0, 1.0) * 255.0).round() as u8;
                        pixels[((top + r) * gw + left + c) * 3 + ch] = v;
                    }
                }
            }
        }
    }
    Rgb { width: gw, height: gh, pixels }
}

/// One channel over an episode, clean and with a fault at several severities.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The fault and its schedule, e.g. `sensor/drift, from 25 %`.
    pub title: String,
    /// The clean channel.
    pub clean: Vec<f32>,
    /// (severity, faulty channel).
    pub faulty: Vec<(f32, Vec<f32>)>,
}

/// Every sensor fault from a quarter of the episode on, then three temporal patterns (an
/// intermittent offset, a growing noise, a drift that ends), on `column` of an episode's
/// readings ([L, D], scaled to [0, 1]), at each of `severities`.
pub fn sensor_traces(readings: &[f32], columns: usize, column: usize, severities: &[f32], seed: u64) -> Vec<Trace> {
    let len = readings.len() / columns.max(1);
    let onset = len / 4;
    let permanent = Schedule { onset, duration: None, pattern: Pattern::Permanent };
    let mut cases: Vec<(SensorFault, Schedule, String)> =
        SensorFault::ALL.iter().map(|&f| (f, permanent, format!("sensor/{}", f.name()))).collect();
    cases.push((
        SensorFault::Offset,
        Schedule { onset, duration: None, pattern: Pattern::Intermittent { period: (len / 8).max(2), duty: 0.5 } },
        "sensor/offset, intermittent".into(),
    ));
    cases.push((
        SensorFault::Noise,
        Schedule { onset, duration: None, pattern: Pattern::Growing { ramp: len - onset } },
        "sensor/noise, growing".into(),
    ));
    cases.push((
        SensorFault::Drift,
        Schedule { onset, duration: Some(len / 2), pattern: Pattern::Permanent },
        "sensor/drift, then repaired".into(),
    ));
    let channel = |v: &[f32]| v.iter().skip(column).step_by(columns).copied().collect::<Vec<f32>>();
    cases
        .into_iter()
        .map(|(fault, schedule, title)| Trace {
            title,
            clean: channel(readings),
            faulty: severities
                .iter()
                .map(|&s| {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    (s, channel(&sensor_stream(fault, s, &schedule, readings, columns, &mut rng).values))
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_traces_cover_every_fault_and_start_healthy() {
        let (len, d) = (80, 3);
        let x: Vec<f32> = (0..len * d).map(|k| 0.5 + 0.3 * (k as f32 * 0.05).sin()).collect();
        let traces = sensor_traces(&x, d, 1, &[0.5, 1.0], 3);
        assert_eq!(traces.len(), SensorFault::ALL.len() + 3);
        for t in &traces {
            assert_eq!(t.clean.len(), len);
            for (_, f) in &t.faulty {
                // healthy before onset (a quarter of the episode)
                assert_eq!(&f[..20], &t.clean[..20], "{}", t.title);
            }
        }
        let gain = &traces[0];
        assert_ne!(gain.faulty[1].1[79], gain.clean[79]);
    }

    #[test]
    fn grid_has_a_tile_per_fault_and_severity_and_severity_0_is_the_frame() {
        let (h, w) = (16, 16);
        let frame: Vec<f32> = (0..3 * h * w).map(|k| (k % 50) as f32 / 50.0).collect();
        let g = camera_grid(&frame, &frame, h, w, &[0.0, 1.0], 1);
        assert_eq!((g.width, g.height), (2 * 18 + 2, CameraFault::ALL.len() * 18 + 2));
        // the first tile of every row is the untouched frame
        for row in 0..CameraFault::ALL.len() {
            let top = 2 + row * 18;
            let px = |r: usize, c: usize, ch: usize| g.pixels[((top + r) * g.width + 2 + c) * 3 + ch];
            assert_eq!(px(3, 5, 1), (frame[256 + 3 * 16 + 5] * 255.0).round() as u8);
        }
    }
}
