//! A Gaussian model of clean sensor windows, and the per-column maps of a faulty window that
//! it and the decoded correction find most likely.
//!
//! Why: the learned repair's gain, offset and affine maps ([`crate::SensorMix`]) used to be
//! fitted column by column against the decoded correction, so each map inherited the
//! correction's error in the column's level — on the arm demo run 0.68 of the 0.71 ×10⁻² that
//! the gain map left on the sensor test fault. Clean windows are far from independent columns:
//! a joint's velocity is its angle's rate of change, the tool's position follows the joints.
//! A full-covariance Gaussian over the flattened window [T·D] holds these relations; finding
//! the gains of *all* columns at once that make the repaired window likely under it, with the
//! correction as a weak pull, pins the levels the correction alone got wrong. Measured on the
//! same run, sensor gain at severity 1 (×10⁻²): the column-wise gain map 0.676, the joint map
//! 0.40; offset 1.29 → 1.15.
//!
//! Each map is linear in its coefficients θ (gain `x = a⊙y`, offset `x = y + b`, affine
//! `x = a⊙y + b`, per column), so the most likely window is one small linear solve:
//! minimise `(x − μ)ᵀ P (x − μ) + Σ_q β_col(q) (x_q − r_q)²` over θ, with `P` the clean
//! windows' precision, `r` the decoded correction and `β_j = weight / spread_j²` (the
//! decoder's clean error per column).
//!
//! The same prior also gates: a sensor window's [`CleanPrior::distance`] flags the sensor
//! modality where it reaches the run's novelty threshold, calibrated on clean validation
//! episodes like the detector's thresholds. Why: the detector's sensor score saturates, so the
//! predictive calibration puts its threshold deep in the saturated range (0.9964 on the arm
//! demo run), where two of 850 gain-faulted test windows fell short of it and cost
//! 0.23 ×10⁻² of the gated sensor error — a quarter of it. Their windows are nothing like
//! clean ones: a per-column gain of up to 6 moves a window far from the clean windows'
//! Gaussian, on a scale that does not saturate.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::sensor_mix::SLOPE_LIMIT;

/// A map of a faulty column whose coefficients the prior fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    /// `x = a·y` per column.
    Gain,
    /// `x = y + b` per column.
    Offset,
    /// `x = a·y + b` per column.
    Affine,
}

/// Which distances under the prior the gate's novelty thresholds read.
///
/// Why the columns: a window's distance sums its departure over all T·D readings, so a fault
/// that breaks one column's relation to the others (two torques exchanged, a wiring error on
/// one angle) is diluted by the T·D − T readings it leaves alone. Its column's distance given
/// the others is not. It gets a threshold of its own beside the window's: one threshold on
/// the larger of the two sat where the column distances of clean windows sit (577 against
/// the window's 27 on the arm demo run) and let weak steps and offsets through that the
/// window's threshold had flagged (sensor step at severity 0.25: 79 % → 24 % flagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Novelty {
    /// [`CleanPrior::distance`] of the whole window (runs before the columns).
    #[default]
    Window,
    /// The window's distance and, with a threshold of its own, the largest column's given the
    /// others ([`CleanPrior::column_distance`]).
    Columns,
}

impl Novelty {
    /// Every statistic, in the order the CLI lists them.
    pub const ALL: [Novelty; 2] = [Novelty::Window, Novelty::Columns];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Novelty::Window => "window",
            Novelty::Columns => "columns",
        }
    }
}

/// Mean and precision of clean windows [T, D] flattened time-major, and how much the decoded
/// correction pulls. Made by [`CleanPrior::fit`] or loaded from a run and then never changed
/// (the fields are private), so what is derived from them cannot go stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanPrior {
    /// Readings per window, T·D.
    size: usize,
    /// Mean clean window, [T·D].
    mean: Vec<f32>,
    /// Upper triangle of the precision `(Σ + εI)⁻¹`, row by row, [T·D·(T·D+1)/2].
    precision: Vec<f32>,
    /// Pull of the decoded correction, relative to its clean error.
    weight: f32,
    /// P in full and P·μ, derived from the fields above on the first repair.
    #[serde(skip)]
    derived: Derived,
}

/// The full precision matrix (row-major, f64) and P·μ, built once per prior: every flagged
/// window's repair needs both, and building them (2·(T·D)² operations) cost as much as one of
/// the three map solves. Not serialised and not part of a prior's identity: equal fields give
/// equal matrices, and a clone derives its own.
#[derive(Default)]
struct Derived(OnceLock<(Vec<f64>, Vec<f64>)>);

impl Clone for Derived {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "derived" } else { "not derived" })
    }
}

/// Largest T·D a prior is fitted for or loaded with: fitting holds two dense (T·D)² f64
/// matrices (16 MB at 1024) and the run's `config.json` the packed precision (half a million
/// numbers at 1024); the arm and welding twins' windows hold 16 × 18 and 16 × 24 readings.
pub const MAX_SIZE: usize = 1024;

fn cholesky(a: &mut [f64], n: usize) -> bool {
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return false;
                }
                a[i * n + i] = s.sqrt();
            } else {
                a[i * n + j] = s / a[j * n + j];
            }
        }
    }
    true
}

/// Solves `L Lᵀ x = b` in place, `L` the lower triangle of `l`.
fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * b[k]).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * b[k]).sum();
        b[i] = (b[i] - s) / l[i * n + i];
    }
}

impl CleanPrior {
    /// Fits mean and precision on clean windows (each `size` readings), the covariance's
    /// diagonal raised by `ridge` × its mean so that directions clean data never moves in
    /// stay finite. `None` without at least two windows or where the matrix is not positive
    /// definite.
    pub fn fit(windows: &[f32], size: usize, ridge: f64, weight: f32) -> Option<Self> {
        let n = windows.len() / size.max(1);
        if n < 2 || size == 0 || size > MAX_SIZE {
            return None;
        }
        let mut mean = vec![0.0f64; size];
        for w in windows.chunks_exact(size) {
            for (m, &v) in mean.iter_mut().zip(w) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0f64; size * size];
        let mut c = vec![0.0f64; size];
        for w in windows.chunks_exact(size) {
            for ((c, &v), &m) in c.iter_mut().zip(w).zip(&mean) {
                *c = f64::from(v) - m;
            }
            for i in 0..size {
                let row = &mut cov[i * size..=i * size + i];
                for (a, &cj) in row.iter_mut().zip(&c) {
                    *a += c[i] * cj;
                }
            }
        }
        let scale = (0..size).map(|i| cov[i * size + i]).sum::<f64>() / (n * size) as f64;
        let eps = ridge * scale.max(f64::MIN_POSITIVE);
        for i in 0..size {
            for j in 0..=i {
                cov[i * size + j] /= n as f64;
            }
            cov[i * size + i] += eps;
        }
        if !cholesky(&mut cov, size) {
            return None;
        }
        let mut precision = Vec::with_capacity(size * (size + 1) / 2);
        let mut columns = vec![0.0f64; size * size];
        for j in 0..size {
            let mut e = vec![0.0; size];
            e[j] = 1.0;
            cholesky_solve(&cov, size, &mut e);
            columns[j * size..(j + 1) * size].copy_from_slice(&e);
        }
        for i in 0..size {
            precision.extend((i..size).map(|j| columns[j * size + i] as f32));
        }
        let mean = mean.into_iter().map(|m| m as f32).collect();
        let prior = Self { size, mean, precision, weight, derived: Derived::default() };
        prior.precision.iter().all(|p| p.is_finite()).then_some(prior)
    }

    /// Why this prior cannot serve windows of `size` readings, if it cannot: field and reason.
    pub fn problem(&self, size: usize) -> Option<(String, String)> {
        let packed = size * (size + 1) / 2;
        if self.size > MAX_SIZE {
            return Some(("size".into(), format!("{}; expected at most {MAX_SIZE}", self.size)));
        }
        if self.size != size {
            return Some(("size".into(), format!("{}; expected {size} (window × columns)", self.size)));
        }
        for (name, v, n) in [("mean", &self.mean, size), ("precision", &self.precision, packed)] {
            if v.len() != n {
                return Some((name.into(), format!("{} values; expected {n}", v.len())));
            }
            if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                return Some((format!("{name}[{k}]"), format!("{}; expected a finite number", v[k])));
            }
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Some(("weight".into(), format!("{}; expected a positive number", self.weight)));
        }
        None
    }

    /// Mahalanobis distance² of a window [T·D] from the clean mean, per reading (never below 0,
    /// which the f32 precision's rounding could otherwise give in its weakest directions); ∞ for
    /// a window with non-finite readings or of another size.
    pub fn distance(&self, window: &[f32]) -> f64 {
        let m = self.size;
        if window.len() != m || !window.iter().all(|v| v.is_finite()) {
            return f64::INFINITY;
        }
        let c: Vec<f64> = window.iter().zip(&self.mean).map(|(&x, &u)| f64::from(x) - f64::from(u)).collect();
        let mut sum = 0.0f64;
        let mut k = 0;
        for i in 0..m {
            // upper triangle: the diagonal once, every pair above it twice
            sum += f64::from(self.precision[k]) * c[i] * c[i];
            for j in i + 1..m {
                sum += 2.0 * f64::from(self.precision[k + j - i]) * c[i] * c[j];
            }
            k += m - i;
        }
        (sum / m as f64).max(0.0)
    }

    /// Per column j, the Mahalanobis distance² of its T readings from what the clean windows'
    /// Gaussian expects of them given every other column's readings, per reading: with
    /// `g = P (x − μ)` and `A` the column's readings, `g_Aᵀ P_AA⁻¹ g_A / T` — the conditional
    /// residual's distance. ∞ for every column of a window with non-finite readings or of
    /// another size.
    pub fn column_distances(&self, window: &[f32], columns: usize) -> Vec<f64> {
        let m = self.size;
        if columns == 0 || !m.is_multiple_of(columns) || window.len() != m || !window.iter().all(|v| v.is_finite()) {
            return vec![f64::INFINITY; columns];
        }
        let (p, _) = self.derived();
        let t = m / columns;
        let c: Vec<f64> = window.iter().zip(&self.mean).map(|(&x, &u)| f64::from(x) - f64::from(u)).collect();
        let g: Vec<f64> = p.chunks_exact(m).map(|row| row.iter().zip(&c).map(|(a, b)| a * b).sum()).collect();
        (0..columns)
            .map(|j| {
                let mut block: Vec<f64> = (0..t)
                    .flat_map(|a| (0..t).map(move |b| (a, b)))
                    .map(|(a, b)| p[(a * columns + j) * m + b * columns + j])
                    .collect();
                if !cholesky(&mut block, t) {
                    return f64::INFINITY;
                }
                let ga: Vec<f64> = (0..t).map(|a| g[a * columns + j]).collect();
                let mut x = ga.clone();
                cholesky_solve(&block, t, &mut x);
                (ga.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>() / t as f64).max(0.0)
            })
            .collect()
    }

    /// The largest of [`CleanPrior::column_distances`]: the column that departs most from what
    /// the others say of it.
    pub fn column_distance(&self, window: &[f32], columns: usize) -> f64 {
        self.column_distances(window, columns).into_iter().fold(0.0, f64::max)
    }

    /// The full precision matrix (row-major) and P·μ.
    fn derived(&self) -> &(Vec<f64>, Vec<f64>) {
        self.derived.0.get_or_init(|| {
            let m = self.size;
            let mut p = vec![0.0f64; m * m];
            let mut k = 0;
            for i in 0..m {
                for j in i..m {
                    let v = f64::from(self.precision[k]);
                    p[i * m + j] = v;
                    p[j * m + i] = v;
                    k += 1;
                }
            }
            let pmu = (0..m).map(|q| (0..m).map(|s| p[q * m + s] * f64::from(self.mean[s])).sum()).collect();
            (p, pmu)
        })
    }

    /// The most likely repaired window under `map` for each map in `maps`: `input` and
    /// `decoded` [T, D] time-major, `spread` the decoder's clean error per column [D]. A map
    /// whose solve fails (non-finite input, a singular system) gives `None`.
    pub fn repair(&self, maps: &[Map], input: &[f32], decoded: &[f32], spread: &[f32]) -> Vec<Option<Vec<f32>>> {
        let (m, d) = (self.size, spread.len());
        if input.len() != m || decoded.len() != m || !input.iter().all(|v| v.is_finite()) {
            return vec![None; maps.len()];
        }
        let (p, pmu) = self.derived();
        let beta: Vec<f64> = spread.iter().map(|&s| f64::from(self.weight) / f64::from(s).powi(2)).collect();
        maps.iter().map(|&map| self.solve(map, p, pmu, &beta, input, decoded, d)).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn solve(
        &self,
        map: Map,
        p: &[f64],
        pmu: &[f64],
        beta: &[f64],
        y: &[f32],
        r: &[f32],
        d: usize,
    ) -> Option<Vec<f32>> {
        let m = self.size;
        let unknowns = if map == Map::Affine { 2 * d } else { d };
        // a column that is zero throughout has no gain to find: it is held at the correction,
        // where a free gain would pin it at 0 (a dead or missing sensor) and pull the other
        // columns' gains toward that through P's cross-terms
        let mut energy = vec![0.0f64; d];
        for (q, &v) in y.iter().enumerate() {
            energy[q % d] += f64::from(v).powi(2);
        }
        let held = |j: usize| map == Map::Gain && energy[j] < 1e-12;
        // x = c + Φθ; each reading q has at most two coefficients: (index, factor)
        let phi = |q: usize| -> [(usize, f64); 2] {
            let (j, v) = (q % d, f64::from(y[q]));
            match map {
                Map::Gain if held(j) => [(j, 0.0), (j, 0.0)],
                Map::Gain => [(j, v), (j, 0.0)],
                Map::Offset => [(j, 1.0), (j, 0.0)],
                Map::Affine => [(j, v), (d + j, 1.0)],
            }
        };
        let c: Vec<f64> = (0..m)
            .map(|q| match map {
                Map::Offset => f64::from(y[q]),
                Map::Gain if held(q % d) => f64::from(r[q]),
                _ => 0.0,
            })
            .collect();
        let pc: Vec<f64> = if c.iter().any(|&v| v != 0.0) {
            (0..m).map(|q| (0..m).map(|s| p[q * m + s] * c[s]).sum()).collect()
        } else {
            vec![0.0; m]
        };
        // normal equations Φᵀ(P + B)Φ θ = Φᵀ(Pμ + B r − (P + B) c), B = diag β
        let mut a = vec![0.0f64; unknowns * unknowns];
        let mut rhs = vec![0.0f64; unknowns];
        for q in 0..m {
            let bq = beta[q % d];
            let g = pmu[q] - pc[q] + bq * (f64::from(r[q]) - c[q]);
            for (u, fu) in phi(q) {
                if fu == 0.0 {
                    continue;
                }
                rhs[u] += fu * g;
                // every map but the affine has one coefficient per reading: its zero partner
                // adds nothing, and skipping it halves the solve's main cost
                let row = &p[q * m..(q + 1) * m];
                for (s, &ps) in row.iter().enumerate() {
                    let w = ps + if s == q { bq } else { 0.0 };
                    for (v, fv) in phi(s) {
                        if fv != 0.0 {
                            a[u * unknowns + v] += fu * w * fv;
                        }
                    }
                }
            }
        }
        // a held column's coefficient appears nowhere: the small ridge keeps the system definite
        let trace = (0..unknowns).map(|u| a[u * unknowns + u]).sum::<f64>() / unknowns as f64;
        for u in 0..unknowns {
            a[u * unknowns + u] += 1e-9 * trace.max(f64::MIN_POSITIVE);
        }
        if !cholesky(&mut a, unknowns) {
            return None;
        }
        cholesky_solve(&a, unknowns, &mut rhs);
        // a gain or slope the column-wise maps would refuse (negative, or beyond SLOPE_LIMIT)
        // hands that column the correction, as they do
        let refused = |j: usize| match map {
            Map::Gain | Map::Affine => !held(j) && !(1.0 / SLOPE_LIMIT..=SLOPE_LIMIT).contains(&rhs[j]),
            Map::Offset => false,
        };
        let x: Vec<f32> = (0..m)
            .map(|q| {
                if refused(q % d) {
                    r[q]
                } else {
                    (c[q] + phi(q).iter().map(|&(u, f)| f * rhs[u]).sum::<f64>()) as f32
                }
            })
            .collect();
        x.iter().all(|v| v.is_finite()).then_some(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Windows of two columns where the second is the running sum of the first (a velocity and
    /// its angle), with varying shapes and levels.
    fn windows(n: usize, t: usize, rng: &mut impl Rng) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * t * 2);
        for _ in 0..n {
            let (v0, dv, a0) =
                (rng.random_range(0.1..0.5f32), rng.random_range(-0.02..0.02f32), rng.random_range(0.2..0.6f32));
            let mut a = a0;
            for i in 0..t {
                let v = v0 + dv * i as f32;
                a += 0.1 * v;
                out.extend([v, a]);
            }
        }
        out
    }

    #[test]
    fn joint_gains_find_the_levels_that_a_biased_correction_gets_wrong() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let t = 8;
        let prior = CleanPrior::fit(&windows(400, t, &mut rng), 2 * t, 1e-6, 0.1).expect("positive definite");
        assert_eq!(prior.problem(2 * t), None);
        let clean = windows(1, t, &mut rng);
        let gained: Vec<f32> = clean.iter().enumerate().map(|(q, &x)| x * if q % 2 == 0 { 2.0 } else { 3.5 }).collect();
        // the correction is off in both columns' levels
        let decoded: Vec<f32> =
            clean.iter().enumerate().map(|(q, &x)| x + if q % 2 == 0 { 0.05 } else { -0.08 }).collect();
        let spread = [0.05, 0.05];
        let [gain, offset, affine] =
            prior.repair(&[Map::Gain, Map::Offset, Map::Affine], &gained, &decoded, &spread)[..]
                .to_vec()
                .try_into()
                .unwrap();
        let err = |x: &[f32]| x.iter().zip(&clean).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>();
        let gain = gain.expect("the gain map solves");
        assert!(
            err(&gain) < 0.01 * err(&decoded),
            "joint gain {} against the correction's {}",
            err(&gain),
            err(&decoded)
        );
        assert!(offset.is_some() && affine.is_some());
        // the gained window is far from every clean one
        let clean_far = windows(50, t, &mut rng).chunks(2 * t).map(|w| prior.distance(w)).fold(0.0, f64::max);
        assert!(
            prior.distance(&gained) > 10.0 * clean_far,
            "{} against clean up to {clean_far}",
            prior.distance(&gained)
        );
        // non-finite readings and a window of another size are no input for it
        let mut nan = gained.clone();
        nan[3] = f32::NAN;
        assert_eq!(prior.repair(&[Map::Gain], &nan, &decoded, &spread), vec![None]);
        assert!(prior.problem(3 * t).is_some());
    }

    #[test]
    fn a_prior_needs_two_windows_and_finite_numbers() {
        assert!(CleanPrior::fit(&[0.5; 16], 16, 1e-6, 0.1).is_none());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut prior = CleanPrior::fit(&windows(50, 4, &mut rng), 8, 1e-6, 0.1).unwrap();
        prior.precision[5] = f32::INFINITY;
        assert_eq!(prior.problem(8).map(|p| p.0), Some("precision[5]".into()));
    }

    #[test]
    fn a_dead_column_keeps_the_correction_under_the_gain_map() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let t = 8;
        let prior = CleanPrior::fit(&windows(400, t, &mut rng), 2 * t, 1e-6, 0.1).unwrap();
        let clean = windows(1, t, &mut rng);
        // column 0 dead, column 1 gained
        let faulty: Vec<f32> = clean.iter().enumerate().map(|(q, &x)| if q % 2 == 0 { 0.0 } else { 2.5 * x }).collect();
        // the correction: right where the sensor is dead, off in the live column's level
        let decoded: Vec<f32> = clean.iter().enumerate().map(|(q, &x)| if q % 2 == 0 { x } else { x + 0.05 }).collect();
        let gain = prior.repair(&[Map::Gain], &faulty, &decoded, &[0.05, 0.05])[0].clone().unwrap();
        for (q, (&g, &r)) in gain.iter().zip(&decoded).enumerate().filter(|(q, _)| q % 2 == 0) {
            assert_eq!(g, r, "reading {q} of the dead column");
        }
        let err1: f64 = (0..t).map(|i| f64::from(gain[2 * i + 1] - clean[2 * i + 1]).powi(2)).sum();
        let dec1: f64 = (0..t).map(|i| f64::from(decoded[2 * i + 1] - clean[2 * i + 1]).powi(2)).sum();
        assert!(err1 < 0.1 * dec1, "the live column's gain finds its level: {err1} against {dec1}");
        // a negative gain is refused like the column-wise map refuses it: the correction stays
        let flipped: Vec<f32> = clean.iter().map(|&x| -x).collect();
        let gain = prior.repair(&[Map::Gain], &flipped, &decoded, &[0.05, 0.05])[0].clone().unwrap();
        assert_eq!(gain, decoded);
    }

    /// Windows of `d` columns, each a copy of one shared signal with its own scale and a
    /// little noise of its own: every column is pinned by the others.
    fn tied(n: usize, t: usize, d: usize, rng: &mut impl Rng) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * t * d);
        for _ in 0..n {
            let (level, slope) = (rng.random_range(-1.0..1.0f32), rng.random_range(-0.1..0.1f32));
            for i in 0..t {
                let x = level + slope * i as f32;
                out.extend((0..d).map(|j| (1.0 + 0.5 * j as f32) * x + 0.01 * rng.random_range(-1.0..1.0f32)));
            }
        }
        out
    }

    #[test]
    fn column_distances_point_at_the_column_that_left_the_others() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let (t, d) = (4, 8);
        let prior = CleanPrior::fit(&tied(2000, t, d, &mut rng), t * d, 1e-6, 0.1).unwrap();
        let clean = tied(1, t, d, &mut rng);
        // column 5 reads another column's signal: within its range, but no longer tied
        let mut faulty = clean.clone();
        for i in 0..t {
            faulty[i * d + 5] = -clean[i * d + 5];
        }
        let columns = prior.column_distances(&faulty, d);
        let worst = (0..d).max_by(|&a, &b| columns[a].total_cmp(&columns[b])).unwrap();
        assert_eq!(worst, 5, "column distances {columns:?}");
        let clean_columns = prior.column_distances(&clean, d);
        assert!(clean_columns.iter().all(|&c| c < 0.01 * columns[5]), "clean {clean_columns:?} against {columns:?}");
        // the whole window's distance spreads the same departure over all T·D readings
        let (window, column) = (prior.distance(&faulty), prior.column_distance(&faulty, d));
        assert!(column > 4.0 * window, "column {column} against the window's {window}");
        assert_eq!(column, columns[5]);
        // a window that is not a prior's size, or not finite, is infinitely far in every column
        assert!(prior.column_distances(&faulty[1..], d).iter().all(|c| c.is_infinite()));
        faulty[0] = f32::NAN;
        assert!(prior.column_distances(&faulty, d).iter().all(|c| c.is_infinite()));
    }
}
