//! Smooth random joint trajectories: minimum-jerk moves between task-space waypoints, some of
//! them low and behind the object so that the arm pushes it.

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
fn min_jerk(tau: f64) -> (f64, f64, f64) {
    let t2 = tau * tau;
    let t3 = t2 * tau;
    (
        10.0 * t3 - 15.0 * t3 * tau + 6.0 * t3 * t2,
        30.0 * t2 - 60.0 * t3 + 30.0 * t3 * tau,
        60.0 * tau - 180.0 * t2 + 120.0 * t3,
    )
}

/// A random task-space waypoint: `push` targets sit just behind `object` (seen from the base)
/// at table height, the others anywhere in the workspace.
pub fn waypoint(rng: &mut impl Rng, object: [f64; 2], push: bool) -> ([f64; 3], f64) {
    let down = -std::f64::consts::FRAC_PI_2;
    if push {
        let dir = object[1].atan2(object[0]) + rng.random_range(-0.5..0.5);
        let r = object[0].hypot(object[1]) + rng.random_range(0.05..0.18);
        ([r * dir.cos(), r * dir.sin(), 0.04], down)
    } else {
        let yaw = rng.random_range(-1.1..1.1);
        let r = rng.random_range(0.3..0.75);
        let z = rng.random_range(0.1..0.55);
        ([r * f64::cos(yaw), r * f64::sin(yaw), z], rng.random_range(down..-0.3))
    }
}

/// Builds a trajectory of `samples` points at `rate` Hz through random waypoints, starting at
/// `start`. Each move lasts 0.8–2 s, followed by a hold of up to 0.4 s.
pub fn generate(rng: &mut impl Rng, start: Joints, object: [f64; 2], samples: usize, rate: f64) -> Trajectory {
    let mut out = Trajectory { q: Vec::with_capacity(samples), qd: Vec::new(), qdd: Vec::new() };
    let mut from = start;
    let mut goal_object = object;
    while out.q.len() < samples {
        let push = rng.random_bool(0.45);
        let (target, phi) = waypoint(rng, goal_object, push);
        let mut to = inverse(target, phi);
        // move the shorter way round in yaw
        let dyaw = (to[0] - from[0] + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
        to[0] = from[0] + dyaw;
        let duration = rng.random_range(0.8..2.0);
        let steps = (duration * rate).round() as usize;
        for k in 1..=steps {
            let (s, ds, dds) = min_jerk(k as f64 / steps as f64);
            let mut q = [0.0; JOINTS];
            let mut qd = [0.0; JOINTS];
            let mut qdd = [0.0; JOINTS];
            for j in 0..JOINTS {
                let delta = to[j] - from[j];
                q[j] = from[j] + delta * s;
                qd[j] = delta * ds / duration;
                qdd[j] = delta * dds / (duration * duration);
            }
            out.q.push(q);
            out.qd.push(qd);
            out.qdd.push(qdd);
        }
        let hold = (rng.random_range(0.0..0.4) * rate).round() as usize;
        for _ in 0..hold {
            out.q.push(to);
            out.qd.push([0.0; JOINTS]);
            out.qdd.push([0.0; JOINTS]);
        }
        from = to;
        // later pushes aim a little further along, where the object will have gone
        goal_object = [goal_object[0] * 1.05, goal_object[1] * 1.05];
    }
    out.q.truncate(samples);
    out.qd.truncate(samples);
    out.qdd.truncate(samples);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn trajectory_is_smooth_and_its_velocity_matches_its_path() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let tr = generate(&mut rng, [0.0, 0.8, -1.2, -1.1], [0.5, 0.1], 200, 20.0);
        assert_eq!(tr.q.len(), 200);
        for k in 1..199 {
            for j in 0..JOINTS {
                // central difference of the angle against the analytic velocity
                let fd = (tr.q[k + 1][j] - tr.q[k - 1][j]) * 10.0;
                let mean = (tr.qd[k + 1][j] + 2.0 * tr.qd[k][j] + tr.qd[k - 1][j]) / 4.0;
                assert!((fd - mean).abs() < 0.35, "joint {j} step {k}: {fd} vs {mean}");
            }
        }
    }
}
