//! Smooth random joint trajectories: minimum-jerk moves between task-space waypoints, some of
//! them pushes through the object.

use rand::Rng;

use crate::arm::{inverse, Joints, JOINTS};

/// A joint-space path sampled at a fixed rate, with velocities and accelerations.
#[derive(Debug, Clone)]
pub struct Trajectory {
    /// Angles per sample.
    pub q: Vec<Joints>,
    /// Angular velocities per sample, rad/s.
    pub qd: Vec<Joints>,
    /// Angular accelerations per sample, rad/s².
    pub qdd: Vec<Joints>,
}

/// Minimum-jerk profile s(τ) = 10τ³ − 15τ⁴ + 6τ⁵ and its first two derivatives in τ.
pub(crate) fn min_jerk(tau: f64) -> (f64, f64, f64) {
    let t2 = tau * tau;
    let t3 = t2 * tau;
    (
        10.0 * t3 - 15.0 * t3 * tau + 6.0 * t3 * t2,
        30.0 * t2 - 60.0 * t3 + 30.0 * t3 * tau,
        60.0 * tau - 180.0 * t2 + 120.0 * t3,
    )
}

/// The next waypoints, as (tool position, hand pitch): either one free move anywhere in the
/// workspace, or a push: down in front of the object (seen from the base), then through it.
pub fn plan(rng: &mut impl Rng, object: [f64; 2], push_probability: f64) -> Vec<([f64; 3], f64)> {
    let down = -std::f64::consts::FRAC_PI_2;
    if rng.random_bool(push_probability) {
        let dir = object[1].atan2(object[0]) + rng.random_range(-0.12..0.12);
        let r = object[0].hypot(object[1]);
        let at = |d: f64| [d * dir.cos(), d * dir.sin(), 0.04];
        vec![(at(r - 0.15), down), (at(r + rng.random_range(0.05..0.15)), down)]
    } else {
        let yaw = rng.random_range(-1.1..1.1);
        let r = rng.random_range(0.3..0.75);
        let z = rng.random_range(0.1..0.55);
        vec![([r * f64::cos(yaw), r * f64::sin(yaw), z], rng.random_range(down..-0.3))]
    }
}

/// A minimum-jerk move from `from` to the waypoint, lasting 0.8–2 s, then a hold of up to
/// 0.4 s; returns the samples at `rate` Hz and the final joint angles.
pub fn segment(rng: &mut impl Rng, from: Joints, target: ([f64; 3], f64), rate: f64) -> (Trajectory, Joints) {
    let mut to = inverse(target.0, target.1);
    // move the shorter way round in yaw
    let dyaw = (to[0] - from[0] + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
    to[0] = from[0] + dyaw;
    let duration = rng.random_range(0.8..2.0);
    let steps = (duration * rate).round() as usize;
    let mut out = Trajectory { q: Vec::new(), qd: Vec::new(), qdd: Vec::new() };
    for k in 1..=steps {
        let (s, ds, dds) = min_jerk(k as f64 / steps as f64);
        out.q.push(std::array::from_fn(|j| from[j] + (to[j] - from[j]) * s));
        out.qd.push(std::array::from_fn(|j| (to[j] - from[j]) * ds / duration));
        out.qdd.push(std::array::from_fn(|j| (to[j] - from[j]) * dds / (duration * duration)));
    }
    let hold = (rng.random_range(0.0..0.4) * rate).round() as usize;
    for _ in 0..hold {
        out.q.push(to);
        out.qd.push([0.0; JOINTS]);
        out.qdd.push([0.0; JOINTS]);
    }
    (out, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn segments_are_smooth_and_their_velocity_matches_their_path() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut from = [0.0, 0.8, -1.2, -1.1];
        for _ in 0..6 {
            for target in plan(&mut rng, [0.5, 0.1], 0.5) {
                let (tr, to) = segment(&mut rng, from, target, 20.0);
                let last = *tr.q.last().unwrap();
                assert!(last.iter().zip(&to).all(|(a, b)| (a - b).abs() < 1e-12));
                for k in 1..tr.q.len() - 1 {
                    for j in 0..JOINTS {
                        // central difference of the angle against the analytic velocity
                        let fd = (tr.q[k + 1][j] - tr.q[k - 1][j]) * 10.0;
                        let mean = (tr.qd[k + 1][j] + 2.0 * tr.qd[k][j] + tr.qd[k - 1][j]) / 4.0;
                        assert!((fd - mean).abs() < 0.35, "joint {j} step {k}: {fd} vs {mean}");
                    }
                }
                from = to;
            }
        }
    }
}
