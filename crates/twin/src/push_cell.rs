//! The single-arm cell: a four-joint arm moves along smooth random trajectories above a table
//! and pushes a red cube around. 18 sensors: joint angles, velocities and torques, the tool
//! position and the object position. Phases: 0 still, 1 moving, 2 in contact with the object.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::arm::{forward, inverse, torques, JOINTS};
use crate::render::{render, Scene, View};
use crate::{trajectory, Episode, TwinConfig};

/// Phase names, by label.
pub const PHASES: [&str; 3] = ["still", "moving", "contact"];

const OBJECT_HALF: f64 = 0.05;
const TOOL_RADIUS: f64 = 0.035;
/// Share of moves that are pushes.
const PUSH_PROBABILITY: f64 = 0.4;

/// Sensor columns: name, unit, and the standard deviation of the measurement noise.
pub(crate) fn columns() -> Vec<(String, &'static str, f64)> {
    let mut c = Vec::new();
    for j in 0..JOINTS {
        c.push((format!("j{j}_angle"), "rad", 0.002));
    }
    for j in 0..JOINTS {
        c.push((format!("j{j}_velocity"), "rad/s", 0.01));
    }
    for j in 0..JOINTS {
        c.push((format!("j{j}_torque"), "N m", 0.05));
    }
    for (prefix, sd) in [("tool", 0.001), ("object", 0.001)] {
        for axis in ["x", "y", "z"] {
            c.push((format!("{prefix}_{axis}"), "m", sd));
        }
    }
    c
}

/// One episode of the cell.
pub(crate) fn simulate(cfg: &TwinConfig, seed: u64) -> Episode {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cols = columns();
    let noise: Vec<Normal<f64>> = cols.iter().map(|c| Normal::new(0.0, c.2).expect("finite sd")).collect();
    let yaw: f64 = rng.random_range(-0.8..0.8);
    let reach: f64 = rng.random_range(0.4..0.7);
    let mut object = [reach * yaw.cos(), reach * yaw.sin(), OBJECT_HALF];
    let n = cfg.samples_per_episode;
    let mut q_now = {
        let first = trajectory::plan(&mut rng, [object[0], object[1]], 0.0)[0];
        inverse(first.0, first.1)
    };
    // waypoints are planned one move at a time, from where the object really is by then
    let mut pending = std::collections::VecDeque::new();
    let mut path = trajectory::Trajectory { q: Vec::new(), qd: Vec::new(), qdd: Vec::new() };
    let frame_len = 3 * cfg.height * cfg.width;
    let mut ep = Episode::with_capacity(cfg, n, cols.len());
    let view = View::default();
    for k in 0..n {
        while path.q.len() <= k {
            if pending.is_empty() {
                pending.extend(trajectory::plan(&mut rng, [object[0], object[1]], PUSH_PROBABILITY));
            }
            let target = pending.pop_front().expect("just planned");
            let (seg, to) = trajectory::segment(&mut rng, q_now, target, cfg.rate_hz);
            path.q.extend(seg.q);
            path.qd.extend(seg.qd);
            path.qdd.extend(seg.qdd);
            q_now = to;
        }
        let (q, qd, qdd) = (path.q[k], path.qd[k], path.qdd[k]);
        let pose = forward(&q);
        let tool = pose.tool();
        let contact = push(&mut object, tool);
        let tau = torques(&q, &qd, &qdd);
        let moving = qd.iter().any(|v| v.abs() > 0.05);
        ep.phase.push(if contact {
            2
        } else if moving {
            1
        } else {
            0
        });
        let truth: Vec<f64> = q.iter().chain(&qd).chain(&tau).chain(&tool).chain(&object).copied().collect();
        for (v, nz) in truth.iter().zip(&noise) {
            ep.sensor.push((v + nz.sample(&mut rng)) as f32);
        }
        ep.time.push((k as f64 / cfg.rate_hz) as f32);
        let scene = Scene { arm: pose, object, object_half: OBJECT_HALF };
        render(&scene, &view, cfg.height, cfg.width, &mut ep.camera[k * frame_len..(k + 1) * frame_len]);
    }
    ep
}

/// Moves the object out of the tool's way when the tool touches it; returns whether it did.
fn push(object: &mut [f64; 3], tool: [f64; 3]) -> bool {
    let reach = OBJECT_HALF + TOOL_RADIUS;
    let (dx, dy) = (object[0] - tool[0], object[1] - tool[1]);
    let dist = dx.hypot(dy);
    if tool[2] - TOOL_RADIUS > 2.0 * OBJECT_HALF || dist >= reach {
        return false;
    }
    let (ux, uy) = if dist > 1e-9 { (dx / dist, dy / dist) } else { (1.0, 0.0) };
    object[0] = (tool[0] + ux * reach).clamp(-0.3, 1.05);
    object[1] = (tool[1] + uy * reach).clamp(-0.8, 0.8);
    true
}
