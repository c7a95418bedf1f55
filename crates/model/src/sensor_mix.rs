//! A learned choice, per sensor column, between the correction and maps of the faulty column.
//!
//! The rule of [`InputRepair::window`] keeps an affine map `a·x + b` of the faulty column when
//! it matches the decoded correction, else the correction. Measured on the arm demo run (850
//! test windows, sensor gain at severity 1, ×10⁻²): the decoded correction alone 0.903, of it
//! 0.677 the per-window level of each column; the rule 0.868; the gain map `c·x` applied
//! always 0.672 — but applied always it makes drift, noise, spikes, steps and stuck readings
//! worse, and every fixed rule tried for when to use which map traded one fault for another.
//! Which map undoes a fault depends on the fault, which the window's statistics show.
//!
//! So a small head, shared by all columns, reads per column how well each candidate agrees
//! with the correction, the maps' coefficients, the column's spread, its fault score and which
//! column it is, and mixes six candidates with softmax weights: the decoded correction, the
//! rule's output, the input as it came, the gain map `c·x`, the offset map `x + b` and the
//! affine map. It is fitted after stage 2 on faulty copies of half of the validation episodes
//! with the catalogue's sensor faults (`mmguard_train`), the rest of the model frozen, and kept
//! only where it beats the rule on the other half. Its weights are a few thousand numbers, stored in the run's
//! `config.json` with the repair's tolerances and applied on the host.

use serde::{Deserialize, Serialize};

use crate::clean_prior::{CleanPrior, Map};
use crate::input_repair::InputRepair;
use crate::layers::LEAKY_SLOPE;

/// The candidates the head mixes, in the order of its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// The decoded correction.
    Decoded,
    /// [`InputRepair::window`]'s output (the repair without the head).
    Rule,
    /// The column as it came.
    Input,
    /// `c·x` closest to the correction in least squares, or with a [`CleanPrior`] the most
    /// likely gains of all columns at once.
    Gain,
    /// `x + b`, the column moved to the correction's mean, or the prior's most likely offsets.
    Offset,
    /// `a·x + b` closest to the correction in least squares, or the prior's most likely maps.
    Affine,
}

impl Candidate {
    /// Every candidate, in output order.
    pub const ALL: [Candidate; 6] =
        [Candidate::Decoded, Candidate::Rule, Candidate::Input, Candidate::Gain, Candidate::Offset, Candidate::Affine];
}

/// Number of candidates.
pub const CANDIDATES: usize = Candidate::ALL.len();

/// Features per column before the column's one-hot code.
pub const BASE_FEATURES: usize = 14;

/// A gain or affine slope outside [1/LIMIT, LIMIT] is no map of a sensor fault (a column with
/// almost no variation gives any slope) and its candidate is the correction.
pub(crate) const SLOPE_LIMIT: f64 = 64.0;

/// The columns of one window, ready for the head: features [D, F] and candidates [D, K, T].
#[derive(Debug, Clone, PartialEq)]
pub struct MixInput {
    /// Per column, [`BASE_FEATURES`] numbers and then the column's one-hot code.
    pub features: Vec<f32>,
    /// Per column, the [`CANDIDATES`] candidate columns of T readings each.
    pub candidates: Vec<f32>,
}

/// The fitted head: F → hidden (LeakyReLU) → [`CANDIDATES`] logits; weights row-major as
/// `x · W + b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorMix {
    /// Hidden width.
    pub hidden: usize,
    /// First layer, [F, hidden].
    pub w1: Vec<f32>,
    /// Its bias, [hidden].
    pub b1: Vec<f32>,
    /// Second layer, [hidden, CANDIDATES].
    pub w2: Vec<f32>,
    /// Its bias, [CANDIDATES].
    pub b2: Vec<f32>,
}

/// Widest hidden layer a valid head has (training makes 32).
pub const MAX_HIDDEN: usize = 4096;

/// Largest weight magnitude a valid head holds: with the features bounded, the logits then stay
/// finite.
pub const WEIGHT_LIMIT: f32 = 1e3;

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

fn rms_between(a: &[f32], b: &[f32]) -> f64 {
    (a.iter().zip(b).map(|(&x, &y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len().max(1) as f64).sqrt()
}

fn spread(v: &[f32]) -> f64 {
    let m = mean(v);
    (v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// ln of a slope in [1/LIMIT, LIMIT], or `None`.
fn log_slope(s: f64) -> Option<f64> {
    (s.is_finite() && (1.0 / SLOPE_LIMIT..=SLOPE_LIMIT).contains(&s)).then(|| s.ln())
}

/// Candidates [K, T] and base features of one column: input `x`, decoded `r`, the rule's `q`,
/// its clean error `sigma`, its fault score `score`.
#[allow(clippy::too_many_arguments)]
fn column(
    x: &[f32],
    r: &[f32],
    q: &[f32],
    sigma: f32,
    score: f32,
    joint: &[Option<Vec<f32>>],
    cand: &mut [f32],
    feat: &mut [f32],
) {
    let t = x.len();
    let sigma = f64::from(sigma);
    let finite = x.iter().all(|v| v.is_finite());
    let (mx, mr) = (mean(x), mean(r));
    let (mut xx, mut xr, mut vx, mut cxr) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(r) {
        let (a, b) = (f64::from(a), f64::from(b));
        xx += a * a;
        xr += a * b;
        vx += (a - mx).powi(2);
        cxr += (a - mx) * (b - mr);
    }
    let gain = if finite && xx > 1e-12 { log_slope(xr / xx) } else { None };
    let slope = if finite && vx > 1e-12 { log_slope(cxr / vx) } else { None };
    let map = |k: Candidate, cand: &mut [f32], f: &dyn Fn(f64) -> f64| {
        let out = &mut cand[k as usize * t..(k as usize + 1) * t];
        for ((o, &v), &d) in out.iter_mut().zip(x).zip(r) {
            *o = if finite { f(f64::from(v)) as f32 } else { d };
        }
    };
    cand[..t].copy_from_slice(r);
    cand[t..2 * t].copy_from_slice(q);
    map(Candidate::Input, cand, &|v| v);
    match gain {
        Some(g) => map(Candidate::Gain, cand, &|v| g.exp() * v),
        None => cand[3 * t..4 * t].copy_from_slice(r),
    }
    map(Candidate::Offset, cand, &|v| v + mr - mx);
    match slope {
        Some(a) => map(Candidate::Affine, cand, &|v| a.exp() * (v - mx) + mr),
        None => cand[5 * t..6 * t].copy_from_slice(r),
    }
    for (k, joint) in [Candidate::Gain, Candidate::Offset, Candidate::Affine].into_iter().zip(joint) {
        if let Some(joint) = joint {
            cand[k as usize * t..(k as usize + 1) * t].copy_from_slice(joint);
        }
    }
    // agreement of every candidate but the correction with it, in units of the clean error
    for (k, f) in feat[..CANDIDATES - 1].iter_mut().enumerate() {
        let c = &cand[(k + 1) * t..(k + 2) * t];
        *f = (rms_between(c, r) / sigma).ln_1p() as f32;
    }
    let rest = [
        gain.unwrap_or(0.0),
        f64::from(u8::from(gain.is_some())),
        slope.unwrap_or(0.0),
        f64::from(u8::from(slope.is_some())),
        if finite { ((mr - mx) / sigma).asinh() } else { 0.0 },
        if finite { (spread(x) / sigma).asinh() } else { 0.0 },
        (spread(r) / sigma).asinh(),
        f64::from(score),
        mr,
    ];
    for (f, v) in feat[CANDIDATES - 1..BASE_FEATURES].iter_mut().zip(rest) {
        *f = v as f32;
    }
}

impl SensorMix {
    /// Input width for windows of `columns` columns.
    pub fn features(columns: usize) -> usize {
        BASE_FEATURES + columns
    }

    /// The head's input for one window: `input` and `decoded` [T, D] (time-major), the
    /// repair's tolerances, the clean-window prior the maps are fitted with (if any), the
    /// columns' fault scores [D].
    pub fn prepare(
        repair: &InputRepair,
        prior: Option<&CleanPrior>,
        input: &[f32],
        decoded: &[f32],
        scores: &[f32],
    ) -> MixInput {
        let d = repair.sensor_spread.len();
        let t = input.len() / d;
        let f = Self::features(d);
        let mut ruled = decoded.to_vec();
        repair.window(input, &mut ruled);
        let mut features = vec![0.0f32; d * f];
        let mut candidates = vec![0.0f32; d * CANDIDATES * t];
        let col = |v: &[f32], j: usize| -> Vec<f32> { (0..t).map(|i| v[i * d + j]).collect() };
        let joint = prior.map_or_else(Vec::new, |p| {
            p.repair(&[Map::Gain, Map::Offset, Map::Affine], input, decoded, &repair.sensor_spread)
        });
        for j in 0..d {
            let joint: Vec<Option<Vec<f32>>> = joint.iter().map(|w| w.as_ref().map(|w| col(w, j))).collect();
            let feat = &mut features[j * f..(j + 1) * f];
            column(
                &col(input, j),
                &col(decoded, j),
                &col(&ruled, j),
                repair.sensor_spread[j],
                scores[j],
                &joint,
                &mut candidates[j * CANDIDATES * t..(j + 1) * CANDIDATES * t],
                feat,
            );
            feat[BASE_FEATURES + j] = 1.0;
        }
        MixInput { features, candidates }
    }

    /// The head's softmax weights for one column's features.
    pub fn weights(&self, features: &[f32]) -> [f32; CANDIDATES] {
        let h = self.hidden;
        let mut hidden = self.b1.clone();
        for (i, &x) in features.iter().enumerate() {
            for (a, &w) in hidden.iter_mut().zip(&self.w1[i * h..(i + 1) * h]) {
                *a += x * w;
            }
        }
        let mut logits = [0.0f32; CANDIDATES];
        logits.copy_from_slice(&self.b2);
        for (i, &a) in hidden.iter().enumerate() {
            let a = if a >= 0.0 { a } else { LEAKY_SLOPE as f32 * a };
            for (l, &w) in logits.iter_mut().zip(&self.w2[i * CANDIDATES..(i + 1) * CANDIDATES]) {
                *l += a * w;
            }
        }
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp = logits.map(|l| (l - top).exp());
        let sum: f32 = exp.iter().sum();
        exp.map(|e| e / sum)
    }

    /// Repairs one decoded window [T, D] in place from the input window, with the columns'
    /// fault scores [D]; the gain, offset and affine candidates are fitted under `prior` where
    /// the run has one ([`ModelConfig::clean_prior`](crate::ModelConfig::clean_prior)), else
    /// column by column against the correction.
    pub fn window(
        &self,
        repair: &InputRepair,
        prior: Option<&CleanPrior>,
        input: &[f32],
        decoded: &mut [f32],
        scores: &[f32],
    ) {
        let d = repair.sensor_spread.len();
        let t = input.len() / d;
        let f = Self::features(d);
        let mix = Self::prepare(repair, prior, input, decoded, scores);
        for j in 0..d {
            let w = self.weights(&mix.features[j * f..(j + 1) * f]);
            let cand = &mix.candidates[j * CANDIDATES * t..(j + 1) * CANDIDATES * t];
            for i in 0..t {
                decoded[i * d + j] = (0..CANDIDATES).map(|k| w[k] * cand[k * t + i]).sum();
            }
        }
    }

    /// Why this head cannot serve windows of `window` readings of `columns` columns, if it
    /// cannot: the field and the reason.
    pub fn problem(&self, columns: usize) -> Option<(String, String)> {
        let (f, h) = (Self::features(columns), self.hidden);
        if h > MAX_HIDDEN {
            return Some(("hidden".into(), format!("{h}; expected at most {MAX_HIDDEN}")));
        }
        let shapes = [
            ("w1", &self.w1, f * h),
            ("b1", &self.b1, h),
            ("w2", &self.w2, h * CANDIDATES),
            ("b2", &self.b2, CANDIDATES),
        ];
        for (name, v, n) in shapes {
            if v.len() != n {
                return Some((
                    name.into(),
                    format!("{} values; expected {n} for {columns} columns and {h} hidden", v.len()),
                ));
            }
            if let Some(k) = v.iter().position(|x| !(x.is_finite() && x.abs() <= WEIGHT_LIMIT)) {
                return Some((
                    format!("{name}[{k}]"),
                    format!("{}; expected a finite weight within ±{WEIGHT_LIMIT}", v[k]),
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repair(d: usize) -> InputRepair {
        InputRepair { tolerance: 3.0, camera_spread: vec![0.02; 3], sensor_spread: vec![0.02; d], mix: None }
    }

    /// A head that always picks candidate `k`.
    fn picking(k: Candidate, d: usize) -> SensorMix {
        let h = 2;
        let mut b2 = vec![0.0; CANDIDATES];
        b2[k as usize] = 40.0;
        SensorMix {
            hidden: h,
            w1: vec![0.0; SensorMix::features(d) * h],
            b1: vec![0.0; h],
            w2: vec![0.0; h * CANDIDATES],
            b2,
        }
    }

    #[test]
    fn the_maps_undo_their_fault_and_the_head_picks_among_them() {
        let (t, d) = (16, 2);
        let clean: Vec<f32> = (0..t * d).map(|k| 0.4 + 0.2 * ((k / d) as f32 * 0.5 + (k % d) as f32).sin()).collect();
        // the correction: right on average, wrong in detail
        let decoded: Vec<f32> =
            clean.iter().enumerate().map(|(k, &c)| c + if (k / d) % 2 == 0 { 0.03 } else { -0.03 }).collect();
        let err = |v: &[f32]| v.iter().zip(&clean).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / v.len() as f32;
        let scores = vec![1.0; d];
        let gained: Vec<f32> = clean.iter().map(|&c| 3.0 * c).collect();
        let offset: Vec<f32> = clean.iter().map(|&c| c + 0.3).collect();
        for (pick, faulty) in [(Candidate::Gain, &gained), (Candidate::Offset, &offset), (Candidate::Affine, &gained)] {
            let mut out = decoded.clone();
            picking(pick, d).window(&repair(d), None, faulty, &mut out, &scores);
            assert!(err(&out) < 0.1 * err(&decoded), "{pick:?}: {} vs decoded {}", err(&out), err(&decoded));
        }
        let mut out = decoded.clone();
        picking(Candidate::Input, d).window(&repair(d), None, &gained, &mut out, &scores);
        assert_eq!(out, gained);
        let mut out = decoded.clone();
        picking(Candidate::Decoded, d).window(&repair(d), None, &gained, &mut out, &scores);
        assert_eq!(out, decoded);
    }

    #[test]
    fn weights_are_a_softmax_and_non_finite_input_keeps_the_correction() {
        let (t, d) = (8, 3);
        let mix = SensorMix {
            hidden: 3,
            w1: (0..SensorMix::features(d) * 3).map(|k| ((k * 37) % 11) as f32 / 11.0 - 0.5).collect(),
            b1: vec![0.1, -0.2, 0.3],
            w2: (0..3 * CANDIDATES).map(|k| ((k * 13) % 7) as f32 / 7.0 - 0.5).collect(),
            b2: vec![0.0; CANDIDATES],
        };
        let mut input: Vec<f32> = (0..t * d).map(|k| (k as f32 * 0.3).cos() * 0.4 + 0.5).collect();
        input[4] = f32::NAN;
        let decoded = vec![0.5f32; t * d];
        let prepared = SensorMix::prepare(&repair(d), None, &input, &decoded, &[0.2, 0.9, 0.5]);
        assert!(prepared.features.iter().all(|f| f.is_finite()));
        let w = mix.weights(&prepared.features[..SensorMix::features(d)]);
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6 && w.iter().all(|&x| x > 0.0), "{w:?}");
        let mut out = decoded.clone();
        mix.window(&repair(d), None, &input, &mut out, &[0.2, 0.9, 0.5]);
        // column 1 holds the NaN: every candidate is the correction there
        assert!((0..t).all(|i| (out[i * d + 1] - 0.5).abs() < 1e-6), "{out:?}");
        assert!(out.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn a_head_of_the_wrong_shape_or_with_huge_weights_is_named() {
        let mut mix = picking(Candidate::Rule, 4);
        assert_eq!(mix.problem(4), None);
        assert_eq!(mix.problem(5).map(|p| p.0), Some("w1".into()));
        mix.w2[3] = 1e30;
        assert_eq!(mix.problem(4).map(|p| p.0), Some("w2[3]".into()));
    }
}
