//! Sensor faults on a [T, D] window scaled to [0, 1].

use rand::seq::index::sample;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::{Faulted, UnknownFault};

/// A sensor window to corrupt: T readings of D columns, time-major.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// Values, [T, D] in [0, 1] (training scale).
    pub values: &'a [f32],
    /// Readings T.
    pub len: usize,
    /// Columns D.
    pub columns: usize,
}

/// Sensor fault kinds. Each documents its physical meaning and what severity s ∈ [0, 1] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorFault {
    /// Test fault (evaluation protocol): wrong amplifier gain. Every column of the window is
    /// multiplied by 1 + U(0, 5·s), one factor per column.
    Gain,
    /// Electrical noise: additive N(0, (0.3·s)²) on every reading.
    Noise,
    /// Calibration drift: each column ramps away linearly, reaching ±0.8·s at the last reading.
    Drift,
    /// A frozen transducer: ⌈s·D⌉ random columns hold their first reading for the whole window.
    Stuck,
    /// Electromagnetic spikes: each reading, with probability 0.2·s, jumps by ±(0.5..1.5)·s.
    Spikes,
    /// A broken wire: ⌈s·D⌉ random columns read 0.
    DeadChannel,
    /// Lost packets: each reading, with probability 0.3·s, becomes NaN. Caught by the rule
    /// checks, not by the learned model.
    NanDropout,
    /// Calibration offset: every column biased by ±0.5·s (random sign per column).
    Offset,
    /// A sudden shift (re-mounted sensor, slipped coupling): ⌈s·D⌉ random columns jump by
    /// ±0.5·s from a random reading on.
    Step,
    /// A coarse converter: values rounded to 2 + 62·(1 − s) levels over [0, 1].
    Quantization,
    /// Range limit of the transducer: values clipped at 1 − 0.7·s.
    Saturation,
    /// Lost stretch of the stream: a block of ⌈0.6·s·T⌉ consecutive readings reads 0.
    Cutout,
    /// Latency: the window lags by ⌈s·T/4⌉ readings (its first reading repeated in front).
    Latency,
    /// The whole modality is gone: every reading 0 for any s > 0.
    Missing,
}

impl SensorFault {
    /// Every sensor fault, in a fixed order.
    pub const ALL: [SensorFault; 14] = [
        Self::Gain,
        Self::Noise,
        Self::Drift,
        Self::Stuck,
        Self::Spikes,
        Self::DeadChannel,
        Self::NanDropout,
        Self::Offset,
        Self::Step,
        Self::Quantization,
        Self::Saturation,
        Self::Cutout,
        Self::Latency,
        Self::Missing,
    ];

    /// The fault's name as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gain => "gain",
            Self::Noise => "noise",
            Self::Drift => "drift",
            Self::Stuck => "stuck",
            Self::Spikes => "spikes",
            Self::DeadChannel => "dead_channel",
            Self::NanDropout => "nan_dropout",
            Self::Offset => "offset",
            Self::Step => "step",
            Self::Quantization => "quantization",
            Self::Saturation => "saturation",
            Self::Cutout => "cutout",
            Self::Latency => "latency",
            Self::Missing => "missing",
        }
    }

    /// Looks a fault up by name.
    pub fn from_name(name: &str) -> Result<Self, UnknownFault> {
        Self::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| UnknownFault {
            modality: "sensor",
            name: name.into(),
            known: Self::ALL.map(Self::name).join(", "),
        })
    }

    /// Applies the fault at severity `s` (clamped to [0, 1]).
    pub fn apply(self, window: Window<'_>, s: f32, rng: &mut impl Rng) -> Faulted {
        let s = s.clamp(0.0, 1.0);
        let x = window.values;
        if s == 0.0 {
            return Faulted::identity(x);
        }
        let (t, d) = (window.len, window.columns);
        debug_assert_eq!(x.len(), t * d);
        let mut out = x.to_vec();
        let mut region = vec![false; x.len()];
        let some_columns = |rng: &mut dyn rand::RngCore| {
            let k = ((s * d as f32).ceil() as usize).clamp(1, d);
            sample(rng, d, k).into_vec()
        };
        match self {
            Self::Gain => {
                for j in 0..d {
                    let g = 1.0 + rng.random_range(0.0..=5.0 * s);
                    for r in 0..t {
                        out[r * d + j] = x[r * d + j] * g;
                        region[r * d + j] = true;
                    }
                }
            }
            Self::Noise => {
                let normal = Normal::new(0.0f32, 0.3 * s).expect("finite sigma");
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v + normal.sample(rng);
                }
                region.fill(true);
            }
            Self::Drift => {
                for j in 0..d {
                    let end = if rng.random_bool(0.5) { 0.8 * s } else { -0.8 * s };
                    for r in 0..t {
                        out[r * d + j] = x[r * d + j] + end * (r + 1) as f32 / t as f32;
                        region[r * d + j] = true;
                    }
                }
            }
            Self::Stuck => {
                for j in some_columns(rng) {
                    for r in 0..t {
                        out[r * d + j] = x[j];
                        region[r * d + j] = true;
                    }
                }
            }
            Self::Spikes => {
                for k in 0..x.len() {
                    if rng.random_bool(f64::from(0.2 * s)) {
                        let size = rng.random_range(0.5..1.5) * s;
                        out[k] = x[k] + if rng.random_bool(0.5) { size } else { -size };
                        region[k] = true;
                    }
                }
            }
            Self::DeadChannel => {
                for j in some_columns(rng) {
                    for r in 0..t {
                        out[r * d + j] = 0.0;
                        region[r * d + j] = true;
                    }
                }
            }
            Self::NanDropout => {
                for k in 0..x.len() {
                    if rng.random_bool(f64::from(0.3 * s)) {
                        out[k] = f32::NAN;
                        region[k] = true;
                    }
                }
            }
            Self::Offset => {
                for j in 0..d {
                    let bias = if rng.random_bool(0.5) { 0.5 * s } else { -0.5 * s };
                    for r in 0..t {
                        out[r * d + j] = x[r * d + j] + bias;
                        region[r * d + j] = true;
                    }
                }
            }
            Self::Step => {
                let from = rng.random_range(0..t);
                for j in some_columns(rng) {
                    let jump = if rng.random_bool(0.5) { 0.5 * s } else { -0.5 * s };
                    for r in from..t {
                        out[r * d + j] = x[r * d + j] + jump;
                        region[r * d + j] = true;
                    }
                }
            }
            Self::Quantization => {
                let levels = 2.0 + 62.0 * (1.0 - s);
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = (v * levels).round() / levels;
                }
                region.fill(true);
            }
            Self::Saturation => {
                let limit = 1.0 - 0.7 * s;
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v.min(limit);
                }
                region.fill(true);
            }
            Self::Cutout => {
                let len = ((0.6 * s * t as f32).ceil() as usize).clamp(1, t);
                let start = rng.random_range(0..=t - len);
                for r in start..start + len {
                    for j in 0..d {
                        out[r * d + j] = 0.0;
                        region[r * d + j] = true;
                    }
                }
            }
            Self::Latency => {
                let lag = ((s * t as f32 / 4.0).ceil() as usize).max(1).min(t.saturating_sub(1));
                for r in 0..t {
                    let src = r.saturating_sub(lag);
                    out[r * d..(r + 1) * d].copy_from_slice(&x[src * d..(src + 1) * d]);
                }
                region.fill(true);
            }
            Self::Missing => {
                out.fill(0.0);
                region.fill(true);
            }
        }
        Faulted::within(x, out, &region)
    }
}
