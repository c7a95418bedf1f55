//! Host-side numerics for ModalImmune (`docs/methods/modalimmune.md`, b.2, b.4, b.5): the
//! stable rank of an embedding covariance, extreme eigenvalues of a symmetric operator known
//! only by its products (a Hessian–vector product), Hessian–vector products from gradients, and
//! the certified Neumann series for a damped inverse.
//!
//! Operators are closures `v ↦ A·v` on `f64` slices, so the same code serves a covariance
//! matrix, a small test matrix and a network's Hessian.

/// A dominant eigenpair.
#[derive(Debug, Clone, PartialEq)]
pub struct Eigen {
    /// Rayleigh quotient vᵀAv of the final unit vector.
    pub value: f64,
    /// The final unit vector.
    pub vector: Vec<f64>,
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Inner product.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Power iteration from `start` (any non-zero vector): the eigenvalue of largest magnitude,
/// with its sign, of a symmetric operator.
pub fn power_iteration(op: &mut dyn FnMut(&[f64]) -> Vec<f64>, start: &[f64], iterations: usize) -> Eigen {
    let n0 = norm(start);
    let mut v: Vec<f64> = if n0 > 0.0 { start.iter().map(|x| x / n0).collect() } else { vec![1.0; start.len()] };
    for _ in 0..iterations {
        let w = op(&v);
        let n = norm(&w);
        if n == 0.0 {
            return Eigen { value: 0.0, vector: v };
        }
        v = w.into_iter().map(|x| x / n).collect();
    }
    let value = dot(&v, &op(&v));
    Eigen { value, vector: v }
}

/// The smallest and largest eigenvalue of a symmetric operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spectrum {
    /// λ_min.
    pub min: f64,
    /// λ_max.
    pub max: f64,
}

/// λ_min and λ_max by two power iterations: first the eigenvalue of largest magnitude λ₁, then
/// the one farthest from it, by power iteration on the shifted operator A − λ₁I.
pub fn extreme_eigenvalues(op: &mut dyn FnMut(&[f64]) -> Vec<f64>, start: &[f64], iterations: usize) -> Spectrum {
    let first = power_iteration(op, start, iterations);
    let l1 = first.value;
    let mut shifted = |v: &[f64]| -> Vec<f64> { op(v).into_iter().zip(v).map(|(a, x)| a - l1 * x).collect() };
    // a start away from the first eigenvector, so the shifted iteration does not begin at its
    // zero eigenvalue
    let other: Vec<f64> = start.iter().enumerate().map(|(i, x)| x + if i % 2 == 0 { 0.5 } else { -0.5 }).collect();
    let second = power_iteration(&mut shifted, &other, iterations).value + l1;
    Spectrum { min: l1.min(second), max: l1.max(second) }
}

/// Covariance of the rows of `e` ([rows, cols], row-major), centred, with `eps` on the
/// diagonal: Σ = ĒᵀĒ / (rows − 1) + εI, [cols, cols].
pub fn covariance(e: &[f32], rows: usize, cols: usize, eps: f64) -> Vec<f64> {
    let mut mean = vec![0.0f64; cols];
    for r in e.chunks_exact(cols) {
        for (m, &x) in mean.iter_mut().zip(r) {
            *m += f64::from(x) / rows as f64;
        }
    }
    let mut cov = vec![0.0f64; cols * cols];
    for r in e.chunks_exact(cols) {
        let c: Vec<f64> = r.iter().zip(&mean).map(|(&x, m)| f64::from(x) - m).collect();
        for i in 0..cols {
            for j in 0..cols {
                cov[i * cols + j] += c[i] * c[j];
            }
        }
    }
    let denom = rows.saturating_sub(1).max(1) as f64;
    for (k, v) in cov.iter_mut().enumerate() {
        *v /= denom;
        if k % (cols + 1) == 0 {
            *v += eps;
        }
    }
    cov
}

/// Trace and top eigenpair of the covariance of the rows of `e` ([rows, cols]), the eigenpair by
/// power iteration from `start` (warm starts make a few iterations enough).
pub fn covariance_top(e: &[f32], rows: usize, cols: usize, eps: f64, start: &[f64], iterations: usize) -> (f64, Eigen) {
    let cov = covariance(e, rows, cols, eps);
    let trace: f64 = (0..cols).map(|i| cov[i * cols + i]).sum();
    let mut op = |v: &[f64]| -> Vec<f64> { cov.chunks_exact(cols).map(|row| dot(row, v)).collect() };
    (trace, power_iteration(&mut op, start, iterations))
}

/// Stable rank tr Σ / λ_max(Σ) of the covariance of the rows of `e` ([rows, cols]): in [1, cols];
/// 1 when all variance lies along one direction (spectral collapse), `cols` when it is
/// isotropic. Equals ‖Ē‖_F² / ‖Ē‖₂², the nuclear/operator-norm ratio of a PSD Σ.
pub fn stable_rank(e: &[f32], rows: usize, cols: usize, eps: f64, iterations: usize) -> f64 {
    let start: Vec<f64> = (0..cols).map(|i| 1.0 + i as f64 / cols as f64).collect();
    let (trace, top) = covariance_top(e, rows, cols, eps, &start, iterations);
    if top.value <= 0.0 {
        return 1.0;
    }
    trace / top.value
}

/// Hessian–vector product H·v from gradients alone, by the central difference
/// (∇L(θ + hv̂) − ∇L(θ − hv̂)) / 2h · ‖v‖ with v̂ = v/‖v‖: exact for a quadratic loss, O(h²)
/// otherwise. For frameworks without double backward.
pub fn hvp_by_differences(grad: &mut dyn FnMut(&[f64]) -> Vec<f64>, theta: &[f64], v: &[f64], h: f64) -> Vec<f64> {
    let n = norm(v);
    if n == 0.0 {
        return vec![0.0; v.len()];
    }
    let at = |sign: f64| -> Vec<f64> { theta.iter().zip(v).map(|(t, x)| t + sign * h * x / n).collect() };
    let (plus, minus) = (grad(&at(1.0)), grad(&at(-1.0)));
    plus.iter().zip(&minus).map(|(p, m)| (p - m) / (2.0 * h) * n).collect()
}

/// Which inverse the Neumann series approximates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NeumannMode {
    /// (H + δI)⁻¹v, what an implicit hyper-gradient at a stationary point needs, with damping δ
    /// and the certificate ‖(H+δI)⁻¹v − x_J‖ ≤ (1 − αμ)^{J+1}‖v‖/μ (μ = λ_min + δ, α = 1/L).
    #[default]
    Inverse,
    /// The paper's Eq. 15: (I − αH)⁻¹v = Σ (αH)^j v with α‖H‖ = ρ < 1 and the tail bound
    /// ρ^{J+1}‖v‖/(1 − ρ). Kept for fidelity; it is the inverse of another operator.
    Paper,
}

/// How the series is set up.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeumannConfig {
    /// Which inverse.
    pub mode: NeumannMode,
    /// Inverse mode: damping δ as a share of λ_max (enough that a short series can certify).
    pub damping_share: f64,
    /// Paper mode: ρ = α‖H‖.
    pub contraction: f64,
    /// Relative error the certificate must reach: bound ≤ tolerance · ‖v‖ / μ (inverse mode) or
    /// ≤ tolerance · ‖v‖ (paper mode).
    pub tolerance: f64,
    /// Most terms allowed.
    pub max_terms: usize,
}

impl Default for NeumannConfig {
    fn default() -> Self {
        Self { mode: NeumannMode::Inverse, damping_share: 0.1, contraction: 0.9, tolerance: 0.1, max_terms: 50 }
    }
}

/// The record of one certified solve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Certificate {
    /// The inverse approximated.
    pub mode: NeumannMode,
    /// Terms J after the first.
    pub terms: usize,
    /// Damping δ (0 in paper mode).
    pub damping: f64,
    /// Step α.
    pub alpha: f64,
    /// Proven bound on the error of the returned vector.
    pub bound: f64,
}

/// Why a solve could not be certified (the meta step is skipped and counted).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Uncertified {
    /// The damped operator is not positive definite (strong negative curvature).
    #[error("damped curvature not positive (μ = {mu:.3e})")]
    NotPositive {
        /// λ_min + δ.
        mu: f64,
    },
    /// The bound needs more terms than allowed.
    #[error("{needed} terms needed, at most {max} allowed")]
    TooManyTerms {
        /// Terms the bound needs.
        needed: usize,
        /// The limit.
        max: usize,
    },
}

/// Smallest J ≥ 0 with q^{J+1} · scale ≤ target (q in (0, 1)).
fn terms_for(q: f64, scale: f64, target: f64) -> usize {
    if scale <= target {
        return 0;
    }
    ((target / scale).ln() / q.ln() - 1.0).ceil().max(0.0) as usize
}

/// Approximates the configured inverse applied to `v` with a truncated Neumann series on the
/// operator `op` (one product per term), whose extreme eigenvalues are `spectrum`; returns the
/// vector and its certificate, or why none could be given.
pub fn neumann_solve(
    op: &mut dyn FnMut(&[f64]) -> Vec<f64>,
    v: &[f64],
    spectrum: Spectrum,
    cfg: &NeumannConfig,
) -> Result<(Vec<f64>, Certificate), Uncertified> {
    let vn = norm(v);
    let (alpha, damping, q, scale, target) = match cfg.mode {
        NeumannMode::Inverse => {
            let damping = cfg.damping_share * spectrum.max.max(0.0);
            let (l, mu) = (spectrum.max + damping, spectrum.min + damping);
            if mu <= 0.0 || l <= 0.0 {
                return Err(Uncertified::NotPositive { mu });
            }
            let alpha = 1.0 / l;
            // error ≤ (1 − αμ)^{J+1} ‖v‖/μ, wanted ≤ tolerance ‖v‖/μ
            (alpha, damping, 1.0 - alpha * mu, vn / mu, cfg.tolerance * vn / mu)
        }
        NeumannMode::Paper => {
            let top = spectrum.max.abs().max(spectrum.min.abs());
            let alpha = if top > 0.0 { cfg.contraction / top } else { 1.0 };
            let rho = alpha * top;
            (alpha, 0.0, rho, vn / (1.0 - rho), cfg.tolerance * vn)
        }
    };
    let terms = if q <= 0.0 { 0 } else { terms_for(q, scale, target) };
    if terms > cfg.max_terms {
        return Err(Uncertified::TooManyTerms { needed: terms, max: cfg.max_terms });
    }
    let mut term = v.to_vec();
    let mut sum = v.to_vec();
    for _ in 0..terms {
        let hv = op(&term);
        term = match cfg.mode {
            // v_j = (I − α(H + δI)) v_{j−1}
            NeumannMode::Inverse => term.iter().zip(&hv).map(|(t, h)| t - alpha * (h + damping * t)).collect(),
            // v_j = αH v_{j−1}
            NeumannMode::Paper => hv.iter().map(|h| alpha * h).collect(),
        };
        for (s, t) in sum.iter_mut().zip(&term) {
            *s += t;
        }
    }
    let solution = match cfg.mode {
        NeumannMode::Inverse => sum.into_iter().map(|s| alpha * s).collect(),
        NeumannMode::Paper => sum,
    };
    let bound = if q <= 0.0 { 0.0 } else { q.powi(terms as i32 + 1) * scale };
    Ok((solution, Certificate { mode: cfg.mode, terms, damping, alpha, bound }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matvec(a: &[f64], n: usize) -> impl FnMut(&[f64]) -> Vec<f64> + '_ {
        move |v: &[f64]| a.chunks_exact(n).map(|row| dot(row, v)).collect()
    }

    /// Gaussian elimination with partial pivoting, for reference solutions.
    fn solve(a: &[f64], b: &[f64]) -> Vec<f64> {
        let n = b.len();
        let mut m: Vec<Vec<f64>> = (0..n).map(|i| [&a[i * n..(i + 1) * n], &[b[i]]].concat()).collect();
        for c in 0..n {
            let p = (c..n).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs())).unwrap();
            m.swap(c, p);
            for r in 0..n {
                if r != c {
                    let f = m[r][c] / m[c][c];
                    let pivot = m[c].clone();
                    for (x, y) in m[r].iter_mut().zip(&pivot) {
                        *x -= f * y;
                    }
                }
            }
        }
        (0..n).map(|i| m[i][n] / m[i][i]).collect()
    }

    fn dist(a: &[f64], b: &[f64]) -> f64 {
        norm(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>())
    }

    /// An SPD matrix with eigenvalues `eig` in a rotated basis (Householder reflection).
    fn spd(eig: &[f64]) -> Vec<f64> {
        let n = eig.len();
        let u: Vec<f64> = (0..n).map(|i| (i as f64 + 1.0).sqrt()).collect();
        let un = dot(&u, &u);
        let q = |i: usize, j: usize| f64::from(u8::from(i == j)) - 2.0 * u[i] * u[j] / un;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| q(i, k) * eig[k] * q(j, k)).sum();
            }
        }
        a
    }

    #[test]
    fn stable_rank_of_known_spectra() {
        // zero-mean orthogonal columns with norms a, b, c: Σ = diag(a², b², c²)·4/3
        let cols = |a: f32, b: f32, c: f32| -> Vec<f32> {
            let h = [[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]];
            h.iter().flat_map(|r| [a * r[0], b * r[1], c * r[2]]).collect()
        };
        let r = |e: &[f32]| stable_rank(e, 4, 3, 0.0, 100);
        assert!((r(&cols(1.0, 1.0, 1.0)) - 3.0).abs() < 1e-9);
        assert!((r(&cols(2.0, 0.0, 0.0)) - 1.0).abs() < 1e-9);
        assert!((r(&cols(2.0, 1.0, 0.0)) - 1.25).abs() < 1e-9);
        // a constant embedding has no variance: collapsed, rank 1
        assert!((stable_rank(&[0.5; 12], 4, 3, 0.0, 50) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn extreme_eigenvalues_of_known_matrices() {
        for eig in [[-2.0, 1.0, 5.0], [0.5, 3.0, 9.0], [-7.0, -1.0, 2.0]] {
            let a = spd(&eig);
            let s = extreme_eigenvalues(&mut matvec(&a, 3), &[1.0, 0.3, -0.2], 500);
            assert!((s.min - eig[0]).abs() < 1e-6 && (s.max - eig[2]).abs() < 1e-6, "{eig:?}: {s:?}");
        }
    }

    #[test]
    fn hvp_of_a_quadratic_is_its_hessian_times_v() {
        // L(θ) = ½ θᵀAθ + bᵀθ, ∇L = Aθ + b, ∇²L = A
        let a = spd(&[1.0, 4.0, 10.0]);
        let b = [0.3, -1.0, 2.0];
        let mut grad = |t: &[f64]| -> Vec<f64> { matvec(&a, 3)(t).iter().zip(&b).map(|(x, y)| x + y).collect() };
        let v = [0.2, -0.7, 1.1];
        let hv = hvp_by_differences(&mut grad, &[1.0, 2.0, -3.0], &v, 1e-3);
        assert!(dist(&hv, &matvec(&a, 3)(&v)) < 1e-9, "{hv:?}");
        // L = Σ θ⁴: H = diag(12θ²), second-order accurate in h
        let mut quartic = |t: &[f64]| -> Vec<f64> { t.iter().map(|x| 4.0 * x * x * x).collect() };
        let theta = [0.5, -1.0, 2.0];
        let exact: Vec<f64> = theta.iter().zip(&v).map(|(t, x)| 12.0 * t * t * x).collect();
        assert!(dist(&hvp_by_differences(&mut quartic, &theta, &v, 1e-4), &exact) < 1e-6);
    }

    #[test]
    fn neumann_inverse_meets_its_certificate() {
        let eig = [0.05, 1.0, 3.0, 8.0];
        let a = spd(&eig);
        let v = [1.0, -2.0, 0.5, 3.0];
        let spectrum = Spectrum { min: eig[0], max: eig[3] };
        let cfg = NeumannConfig::default();
        let (x, cert) = neumann_solve(&mut matvec(&a, 4), &v, spectrum, &cfg).unwrap();
        let damped: Vec<f64> =
            a.iter().enumerate().map(|(k, x)| x + if k % 5 == 0 { cert.damping } else { 0.0 }).collect();
        let exact = solve(&damped, &v);
        let err = dist(&x, &exact);
        assert!(err <= cert.bound, "error {err} above the bound {}", cert.bound);
        assert!(cert.bound <= cfg.tolerance * norm(&v) / (eig[0] + cert.damping) * (1.0 + 1e-12));
        assert!(cert.terms > 0 && cert.terms <= cfg.max_terms && (cert.damping - 0.8).abs() < 1e-12);
        // one term fewer would not have certified: J is the smallest that does
        let mu = eig[0] + cert.damping;
        let q = 1.0 - cert.alpha * mu;
        assert!(q.powi(cert.terms as i32) * norm(&v) / mu > cfg.tolerance * norm(&v) / mu);
    }

    #[test]
    fn neumann_refuses_what_it_cannot_certify() {
        let a = spd(&[-3.0, 1.0, 2.0]);
        let s = Spectrum { min: -3.0, max: 2.0 };
        let err = neumann_solve(&mut matvec(&a, 3), &[1.0, 1.0, 1.0], s, &NeumannConfig::default()).unwrap_err();
        assert!(matches!(err, Uncertified::NotPositive { .. }), "{err}");
        let ill = NeumannConfig { damping_share: 0.0, max_terms: 10, ..NeumannConfig::default() };
        let s = Spectrum { min: 1e-3, max: 10.0 };
        let a = spd(&[1e-3, 1.0, 10.0]);
        let err = neumann_solve(&mut matvec(&a, 3), &[1.0, 1.0, 1.0], s, &ill).unwrap_err();
        assert!(matches!(err, Uncertified::TooManyTerms { max: 10, .. }), "{err}");
    }

    #[test]
    fn neumann_paper_mode_solves_its_own_operator() {
        let eig = [-1.0, 0.5, 2.0];
        let a = spd(&eig);
        let v = [0.4, 1.0, -0.6];
        let cfg = NeumannConfig { mode: NeumannMode::Paper, ..NeumannConfig::default() };
        let (x, cert) = neumann_solve(&mut matvec(&a, 3), &v, Spectrum { min: -1.0, max: 2.0 }, &cfg).unwrap();
        // (I − αA) x = v
        let op: Vec<f64> =
            a.iter().enumerate().map(|(k, h)| if k % 4 == 0 { 1.0 } else { 0.0 } - cert.alpha * h).collect();
        let err = dist(&x, &solve(&op, &v));
        assert!(err <= cert.bound && cert.bound <= cfg.tolerance * norm(&v), "{err} {cert:?}");
    }
}
