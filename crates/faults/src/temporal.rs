//! Faults over time: a fault starts at an onset inside an episode, lasts for a duration (or to
//! the end), and is permanent, intermittent or growing, so a stream shows the transition from
//! healthy to faulty.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{CameraFault, Faulted, Frame, SensorFault, Window};

/// How an active fault behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Pattern {
    /// Full severity from onset on (a broken part).
    Permanent,
    /// On for the first `duty` share of every `period` readings, off for the rest (a loose
    /// connector, a vibrating cable).
    Intermittent {
        /// Cycle length, readings (at least 1).
        period: usize,
        /// Share of the cycle the fault is on, in (0, 1].
        duty: f32,
    },
    /// Severity rises linearly from 0 at onset to full after `ramp` readings (dirt building up,
    /// a sensor drifting out of calibration, a heating element ageing).
    Growing {
        /// Readings to full severity (at least 1).
        ramp: usize,
    },
}

/// When a fault is active in an episode and how strongly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// First faulty reading, counted from the episode's start.
    pub onset: usize,
    /// Readings the fault lasts; `None` lasts to the end of the episode.
    pub duration: Option<usize>,
    /// Behaviour while active.
    pub pattern: Pattern,
}

impl Schedule {
    /// A fault present in every reading at full severity.
    pub const ALWAYS: Schedule = Schedule { onset: 0, duration: None, pattern: Pattern::Permanent };

    /// Share of the fault's severity at reading `t` of the episode, in [0, 1]; 0 means healthy.
    pub fn level(&self, t: usize) -> f32 {
        if t < self.onset || self.duration.is_some_and(|d| t >= self.onset + d) {
            return 0.0;
        }
        let since = t - self.onset;
        match self.pattern {
            Pattern::Permanent => 1.0,
            Pattern::Intermittent { period, duty } => {
                let period = period.max(1);
                let on = ((duty.clamp(0.0, 1.0) * period as f32).ceil() as usize).max(1);
                if since % period < on {
                    1.0
                } else {
                    0.0
                }
            }
            Pattern::Growing { ramp } => ((since + 1) as f32 / ramp.max(1) as f32).min(1.0),
        }
    }

    /// The readings of an episode of `len` readings in which the fault may act.
    fn active_span(&self, len: usize) -> std::ops::Range<usize> {
        let start = self.onset.min(len);
        let end = self.duration.map_or(len, |d| (self.onset + d).min(len));
        start..end
    }
}

/// Applies a camera fault to every frame of an episode ([L, 3, H, W] on the [0, 1] scale): frame
/// t gets the fault at `severity · level(t)`. The frozen-frame fault holds the last healthy frame
/// (the one before onset).
pub fn camera_stream(
    fault: CameraFault,
    severity: f32,
    schedule: &Schedule,
    frames: &[f32],
    height: usize,
    width: usize,
    rng: &mut impl Rng,
) -> Faulted {
    let n = 3 * height * width;
    let mut values = frames.to_vec();
    let mut mask = vec![false; frames.len()];
    let held = schedule.onset.saturating_sub(1);
    let previous = frames.get(held * n..(held + 1) * n);
    for (t, (out, m)) in values.chunks_exact_mut(n).zip(mask.chunks_exact_mut(n)).enumerate() {
        let level = schedule.level(t);
        if level == 0.0 {
            continue;
        }
        let frame = Frame { pixels: &frames[t * n..(t + 1) * n], height, width, previous };
        let f = fault.apply(frame, severity * level, rng);
        out.copy_from_slice(&f.values);
        m.copy_from_slice(&f.mask);
    }
    Faulted { values, mask }
}

/// Applies a sensor fault to an episode's readings ([L, D] on the [0, 1] scale). The fault acts
/// on the active span as one window (a drift starts from zero at onset, a stuck value holds the
/// reading at onset); reading t then takes `level(t)` of the fault's change: none while the
/// fault is off, all of it while on, a growing share while it grows.
pub fn sensor_stream(
    fault: SensorFault,
    severity: f32,
    schedule: &Schedule,
    readings: &[f32],
    columns: usize,
    rng: &mut impl Rng,
) -> Faulted {
    let len = readings.len() / columns.max(1);
    let span = schedule.active_span(len);
    let mut values = readings.to_vec();
    if span.is_empty() {
        return Faulted::identity(readings);
    }
    let active = &readings[span.start * columns..span.end * columns];
    let f = fault.apply(Window { values: active, len: span.len(), columns }, severity, rng);
    for (k, t) in span.clone().enumerate() {
        let level = schedule.level(t);
        for c in 0..columns {
            let (clean, faulty) = (active[k * columns + c], f.values[k * columns + c]);
            values[t * columns + c] = blend(clean, faulty, level);
        }
    }
    let region = vec![true; readings.len()];
    Faulted::within(readings, values, &region)
}

/// `level` of the way from `clean` to `faulty`. A NaN cannot be blended: it appears from half
/// the level on.
fn blend(clean: f32, faulty: f32, level: f32) -> f32 {
    match (level, faulty.is_finite()) {
        (l, _) if l >= 1.0 => faulty,
        (l, _) if l <= 0.0 => clean,
        (l, false) => {
            if l >= 0.5 {
                faulty
            } else {
                clean
            }
        }
        (l, true) => clean + l * (faulty - clean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn levels_follow_the_pattern() {
        let p = Schedule { onset: 3, duration: Some(6), pattern: Pattern::Permanent };
        let l: Vec<f32> = (0..11).map(|t| p.level(t)).collect();
        assert_eq!(l, [0., 0., 0., 1., 1., 1., 1., 1., 1., 0., 0.]);
        let i = Schedule { onset: 2, duration: None, pattern: Pattern::Intermittent { period: 4, duty: 0.5 } };
        let l: Vec<f32> = (0..10).map(|t| i.level(t)).collect();
        assert_eq!(l, [0., 0., 1., 1., 0., 0., 1., 1., 0., 0.]);
        let g = Schedule { onset: 1, duration: None, pattern: Pattern::Growing { ramp: 4 } };
        let l: Vec<f32> = (0..7).map(|t| g.level(t)).collect();
        assert_eq!(l, [0., 0.25, 0.5, 0.75, 1., 1., 1.]);
    }

    #[test]
    fn a_sensor_stream_is_healthy_before_onset_and_after_the_fault_ends() {
        let (len, d) = (40, 3);
        let x: Vec<f32> = (0..len * d).map(|k| 0.2 + 0.5 * ((k as f32) * 0.37).sin().abs()).collect();
        let s = Schedule { onset: 10, duration: Some(15), pattern: Pattern::Permanent };
        let f = sensor_stream(SensorFault::Offset, 1.0, &s, &x, d, &mut ChaCha8Rng::seed_from_u64(1));
        for t in 0..len {
            let changed = (0..d).any(|c| f.mask[t * d + c]);
            assert_eq!(changed, (10..25).contains(&t), "reading {t}");
        }
    }

    #[test]
    fn a_growing_drift_grows() {
        let (len, d) = (50, 2);
        let x = vec![0.5; len * d];
        let s = Schedule { onset: 5, duration: None, pattern: Pattern::Growing { ramp: 45 } };
        let f = sensor_stream(SensorFault::Drift, 1.0, &s, &x, d, &mut ChaCha8Rng::seed_from_u64(2));
        let dev: Vec<f32> = (0..len).map(|t| (f.values[t * d] - 0.5).abs()).collect();
        assert_eq!(dev[4], 0.0);
        assert!(dev[49] > dev[30] && dev[30] > dev[15] && dev[15] > 0.0, "{dev:?}");
    }

    #[test]
    fn an_intermittent_camera_fault_comes_and_goes_and_a_frozen_stream_holds_the_last_healthy_frame() {
        let (h, w, len) = (8, 8, 12);
        let n = 3 * h * w;
        let frames: Vec<f32> = (0..len * n).map(|k| ((k / n) as f32 * 0.07 + (k % n) as f32 * 0.001) % 1.0).collect();
        let s = Schedule { onset: 4, duration: None, pattern: Pattern::Intermittent { period: 4, duty: 0.5 } };
        let f = camera_stream(CameraFault::Black, 1.0, &s, &frames, h, w, &mut ChaCha8Rng::seed_from_u64(3));
        let dark: Vec<bool> = (0..len).map(|t| f.values[t * n..(t + 1) * n].iter().all(|&v| v == 0.0)).collect();
        assert_eq!(dark, [false, false, false, false, true, true, false, false, true, true, false, false]);
        let frozen = Schedule { onset: 6, duration: None, pattern: Pattern::Permanent };
        let f = camera_stream(CameraFault::Frozen, 1.0, &frozen, &frames, h, w, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(&f.values[9 * n..10 * n], &frames[5 * n..6 * n]);
        assert_eq!(&f.values[5 * n..6 * n], &frames[5 * n..6 * n]);
    }
}
