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
}

impl SensorFault {
    /// Every sensor fault, in a fixed order.
    pub const ALL: [SensorFault; 7] =
        [Self::Gain, Self::Noise, Self::Drift, Self::Stuck, Self::Spikes, Self::DeadChannel, Self::NanDropout];

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
        }
        Faulted::within(x, out, &region)
    }
}
