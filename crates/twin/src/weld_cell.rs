//! The dual-arm welding cell. Two plates lie side by side on the table; their joint is the
//! seam. Arm A carries the welding torch, arm B a clamp roller that presses the plates just
//! ahead of the torch, so B's motion follows A's through the task. A cycle: both arms idle at
//! home, approach the start of a seam segment together, weld it (A's torch moves along the seam
//! with a small weave, B keeps its lead; the arc glows and throws sparks, a bead is left
//! behind), and retract.
//!
//! The process signals come from a constant-voltage welding source: the current follows the
//! job's set-point and drops by 4 A per millimetre of extra torch stand-off; the plates are
//! slightly warped, so the stand-off (and with it current and voltage) varies along the seam.
//! The arc's glow grows with the current, which ties the camera to the process signals.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::arm::{forward, inverse, Joints, JOINTS};
use crate::render::{arm, render_solids, room, Glow, Shape, Solid, View, V3};
use crate::trajectory::min_jerk;
use crate::{Episode, TwinConfig};

/// Phase names, by label.
pub const PHASES: [&str; 4] = ["idle", "approach", "weld", "retract"];

const BASE: [V3; 2] = [[0.05, -0.35, 0.0], [0.05, 0.35, 0.0]];
/// Plate thickness, metres.
const PLATE: f64 = 0.03;
/// Plates' half-length along the seam.
const PLATE_HALF_LEN: f64 = 0.16;
/// Nominal distance from the torch tip to the work, metres.
const STANDOFF: f64 = 0.015;
/// How far ahead of the torch (along the seam) and beside it the clamp presses, metres.
const LEAD: f64 = 0.05;
const CLAMP_SIDE: f64 = -0.06;
const CLAMP_RADIUS: f64 = 0.035;
/// Torch pitch: tilted 20° from vertical.
const TORCH_PITCH: f64 = -std::f64::consts::FRAC_PI_2 + 0.35;
const DOWN: f64 = -std::f64::consts::FRAC_PI_2;
/// Current lost per metre of extra stand-off (4 A/mm), and arc voltage gained (0.5 V/mm).
const AMPS_PER_METRE: f64 = 4000.0;
const VOLTS_PER_METRE: f64 = 500.0;

/// Sensor columns: name, unit, and the standard deviation of the measurement noise.
pub(crate) fn columns() -> Vec<(String, &'static str, f64)> {
    let mut c = Vec::new();
    for a in ["a", "b"] {
        for j in 0..JOINTS {
            c.push((format!("{a}_j{j}_angle"), "rad", 0.002));
        }
        for j in 0..JOINTS {
            c.push((format!("{a}_j{j}_velocity"), "rad/s", 0.01));
        }
    }
    c.push(("weld_current".into(), "A", 1.5));
    c.push(("arc_voltage".into(), "V", 0.15));
    c.push(("wire_feed".into(), "m/min", 0.03));
    c.push(("arc_on".into(), "1", 0.0));
    c
}

/// The two plates: seam along y at `seam_x`, centred on `centre_y`, warped by a smooth bump.
struct Workpiece {
    seam_x: f64,
    centre_y: f64,
    warp_amplitude: f64,
    warp_phase: f64,
}

impl Workpiece {
    /// Height of the seam's surface at `y`.
    fn seam_z(&self, y: f64) -> f64 {
        PLATE + self.warp_amplitude * (12.0 * (y - self.centre_y) + self.warp_phase).sin()
    }

    fn solids(&self) -> [Solid; 2] {
        let (y0, y1) = (self.centre_y - PLATE_HALF_LEN, self.centre_y + PLATE_HALF_LEN);
        let steel = [0.55, 0.57, 0.6];
        [
            Solid {
                shape: Shape::Cuboid { lo: [self.seam_x - 0.12, y0, 0.0], hi: [self.seam_x - 0.003, y1, PLATE] },
                albedo: steel,
            },
            Solid {
                shape: Shape::Cuboid { lo: [self.seam_x + 0.003, y0, 0.0], hi: [self.seam_x + 0.12, y1, PLATE] },
                albedo: steel,
            },
        ]
    }
}

/// What the cell does at one sample, before sensors and rendering.
struct Step {
    q: [Joints; 2],
    phase: i32,
    /// Arc current, A (0 with the arc off).
    current: f64,
    voltage: f64,
    wire_feed: f64,
    /// Bead laid so far in the current weld: start and end of the seam stretch.
    bead: Option<(V3, V3)>,
}

fn target(arm_index: usize, world: V3, pitch: f64) -> Joints {
    let b = BASE[arm_index];
    inverse([world[0] - b[0], world[1] - b[1], world[2] - b[2]], pitch)
}

/// Minimum-jerk joint moves of both arms from `from` to `to`, together, over `steps` samples.
fn move_both(from: [Joints; 2], to: [Joints; 2], steps: usize, phase: i32, out: &mut Vec<Step>) {
    for k in 1..=steps {
        let (s, _, _) = min_jerk(k as f64 / steps as f64);
        let q = std::array::from_fn(|a| std::array::from_fn(|j| from[a][j] + (to[a][j] - from[a][j]) * s));
        out.push(Step { q, phase, current: 0.0, voltage: 0.0, wire_feed: 0.0, bead: None });
    }
}

fn home(rng: &mut impl Rng) -> [Joints; 2] {
    let mut jitter = || rng.random_range(-0.04..0.04);
    [
        target(0, [0.3 + jitter(), -0.2 + jitter(), 0.45 + jitter()], -1.0),
        target(1, [0.3 + jitter(), 0.2 + jitter(), 0.45 + jitter()], -1.0),
    ]
}

/// Plans whole cycles until there are `n` samples.
fn plan(rng: &mut impl Rng, work: &Workpiece, rate: f64, n: usize) -> Vec<Step> {
    let mut steps = Vec::with_capacity(n + 200);
    let mut at = home(rng);
    let secs = |rng: &mut dyn rand::RngCore, lo: f64, hi: f64| (rng.random_range(lo..hi) * rate).round() as usize;
    // an episode starts somewhere in the idle time
    let idle = secs(rng, 0.1, 1.0);
    while steps.len() < n {
        for _ in 0..idle.max(1) {
            steps.push(Step { q: at, phase: 0, current: 0.0, voltage: 0.0, wire_feed: 0.0, bead: None });
        }
        let dir = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let length = rng.random_range(0.08..0.16);
        let start_y = work.centre_y - dir * rng.random_range(0.0..(PLATE_HALF_LEN - 0.02 - length / 2.0).max(0.01));
        let speed = rng.random_range(0.06..0.10);
        let set_current = rng.random_range(140.0..200.0);
        let (weave_amp, weave_hz) = (0.003, rng.random_range(2.0..3.0));
        let torch = |y: f64, t: f64| {
            let weave = weave_amp * (std::f64::consts::TAU * weave_hz * t).sin();
            // the torch follows the nominal (flat) seam; the warp changes its stand-off
            [work.seam_x + weave, y, PLATE + STANDOFF]
        };
        let clamp = |y: f64| [work.seam_x + CLAMP_SIDE, y + dir * LEAD, work.seam_z(y + dir * LEAD) + CLAMP_RADIUS];
        let start = [target(0, torch(start_y, 0.0), TORCH_PITCH), target(1, clamp(start_y), DOWN)];
        move_both(at, start, secs(rng, 1.0, 1.6), 1, &mut steps);
        let weld_steps = (length / speed * rate).round() as usize;
        for k in 0..weld_steps {
            let t = k as f64 / rate;
            let y = start_y + dir * speed * t;
            let tip = torch(y, t);
            let standoff = tip[2] - work.seam_z(y);
            // the source needs a few samples to reach its set-point after ignition
            let ramp = 1.0 - (-(k as f64 + 1.0) / 1.5).exp();
            let current = (set_current * ramp - AMPS_PER_METRE * (standoff - STANDOFF)).max(0.0);
            let bead_start = [work.seam_x, start_y, work.seam_z(start_y)];
            steps.push(Step {
                q: [target(0, tip, TORCH_PITCH), target(1, clamp(y), DOWN)],
                phase: 2,
                current,
                voltage: 14.0 + 0.05 * set_current + VOLTS_PER_METRE * (standoff - STANDOFF),
                wire_feed: set_current / 25.0 * ramp,
                bead: Some((bead_start, [work.seam_x, y, work.seam_z(y)])),
            });
        }
        let last = steps.last().map_or(start, |s| s.q);
        at = home(rng);
        move_both(last, at, secs(rng, 0.8, 1.3), 3, &mut steps);
    }
    steps.truncate(n);
    steps
}

/// One episode of the cell.
pub(crate) fn simulate(cfg: &TwinConfig, seed: u64) -> Episode {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cols = columns();
    let noise: Vec<Normal<f64>> = cols.iter().map(|c| Normal::new(0.0, c.2).expect("finite sd")).collect();
    let work = Workpiece {
        seam_x: rng.random_range(0.45..0.58),
        centre_y: rng.random_range(-0.03..0.03),
        warp_amplitude: rng.random_range(0.0..0.003),
        warp_phase: rng.random_range(0.0..std::f64::consts::TAU),
    };
    let n = cfg.samples_per_episode;
    let steps = plan(&mut rng, &work, cfg.rate_hz, n);
    let frame_len = 3 * cfg.height * cfg.width;
    let mut ep = Episode::with_capacity(cfg, n, cols.len());
    let view = View { eye: [1.7, 0.0, 1.25], target: [0.3, 0.0, 0.22], fov_deg: 48.0 };
    let mut beads: Vec<(V3, V3)> = Vec::new();
    let mut welding: Option<(V3, V3)> = None;
    for k in 0..n {
        let step = &steps[k];
        // velocities by central differences of the planned angles
        let (prev, next) = (&steps[k.saturating_sub(1)], &steps[(k + 1).min(n - 1)]);
        let span = ((k + 1).min(n - 1) - k.saturating_sub(1)).max(1) as f64 / cfg.rate_hz;
        let qd: [Joints; 2] = std::array::from_fn(|a| std::array::from_fn(|j| (next.q[a][j] - prev.q[a][j]) / span));
        let arc = step.current > 0.0;
        let mut truth = Vec::with_capacity(cols.len());
        for (q, v) in step.q.iter().zip(&qd) {
            truth.extend_from_slice(q);
            truth.extend_from_slice(v);
        }
        truth.extend([step.current, step.voltage, step.wire_feed, f64::from(u8::from(arc))]);
        for (c, (v, nz)) in truth.iter().zip(&noise).enumerate() {
            // a switched-off source reads zero, with no measurement noise (the last four columns
            // are the process signals)
            let off = !arc && c + 4 >= cols.len();
            ep.sensor.push(if off { *v as f32 } else { (v + nz.sample(&mut rng)) as f32 });
        }
        ep.phase.push(step.phase);
        ep.time.push((k as f64 / cfg.rate_hz) as f32);
        // the bead under way grows with the torch; a finished one stays
        match step.bead {
            Some(b) => welding = Some(b),
            None => beads.extend(welding.take()),
        }
        let poses = [forward(&step.q[0]).translated(BASE[0]), forward(&step.q[1]).translated(BASE[1])];
        let mut solids = room();
        solids.extend(work.solids());
        let bead_colour = [0.32, 0.28, 0.26];
        for &(a, b) in beads.iter().chain(welding.iter()) {
            solids.push(Solid { shape: Shape::Capsule { a, b, r: 0.008 }, albedo: bead_colour });
        }
        solids.extend(arm(&poses[0], [[0.95, 0.55, 0.1], [0.95, 0.55, 0.1], [0.18, 0.18, 0.2]], [0.7, 0.45, 0.2]));
        solids.extend(arm(&poses[1], [[0.15, 0.4, 0.9], [0.15, 0.4, 0.9], [0.8, 0.8, 0.82]], [0.95, 0.9, 0.2]));
        let mut glows = Vec::new();
        if arc {
            let tip = poses[0].tool();
            let strength = step.current / 160.0;
            glows.push(Glow {
                centre: tip,
                radius: 0.035 * strength,
                colour: [1.0, 0.92, 0.75],
                intensity: 2.5 * strength,
            });
            for _ in 0..5 {
                let spark = [
                    tip[0] + rng.random_range(-0.06..0.06),
                    tip[1] + rng.random_range(-0.06..0.06),
                    tip[2] + rng.random_range(0.0..0.07),
                ];
                glows.push(Glow { centre: spark, radius: 0.008, colour: [1.0, 0.55, 0.1], intensity: 1.5 });
            }
        }
        render_solids(
            &solids,
            &glows,
            &view,
            cfg.height,
            cfg.width,
            &mut ep.camera[k * frame_len..(k + 1) * frame_len],
        );
    }
    ep
}

#[cfg(test)]
mod tests {
    use crate::{generate, SceneKind, TwinConfig};

    fn weld() -> crate::Generated {
        let cfg = TwinConfig {
            scene: SceneKind::DualWeld,
            episodes: 3,
            samples_per_episode: 100,
            height: 48,
            width: 48,
            seed: 3,
            ..Default::default()
        };
        generate(&cfg).unwrap()
    }

    #[test]
    fn the_arc_burns_exactly_while_welding_and_its_current_is_a_welding_current() {
        let g = weld();
        let d = g.dataset.sensor_dim();
        assert_eq!(g.dataset.columns[d - 4].name, "weld_current");
        let mut welding = 0;
        for (i, &phase) in g.phase.iter().enumerate() {
            let row = &g.dataset.sensor[i * d..(i + 1) * d];
            let (current, arc_on) = (row[d - 4], row[d - 1]);
            assert_eq!(arc_on == 1.0, phase == 2, "sample {i}: phase {phase}, arc {arc_on}");
            if phase == 2 {
                welding += 1;
                assert!((40.0..230.0).contains(&current), "sample {i}: {current} A");
            } else {
                assert_eq!(current, 0.0, "sample {i}");
            }
        }
        assert!(welding > 30, "{welding} of 300 samples welding");
        for p in 0..4 {
            assert!(g.phase.contains(&p), "phase {p} never occurs");
        }
    }

    #[test]
    fn the_arc_shows_in_the_frame() {
        let g = weld();
        let ds = &g.dataset;
        let glare =
            |i: usize| ds.frame(i).chunks(ds.height * ds.width).next().unwrap().iter().filter(|&&v| v > 245).count();
        let mean = |weld: bool| {
            let idx: Vec<usize> = (0..ds.len()).filter(|&i| (g.phase[i] == 2) == weld).collect();
            idx.iter().map(|&i| glare(i) as f64).sum::<f64>() / idx.len() as f64
        };
        let (on, off) = (mean(true), mean(false));
        assert!(on > 2.0 * off + 1.0, "bright pixels with the arc on {on:.1}, off {off:.1}");
    }

    #[test]
    fn the_clamp_arm_moves_with_the_torch_arm() {
        // both arms approach and retract together: their shoulder velocities are correlated
        let g = weld();
        let d = g.dataset.sensor_dim();
        let col =
            |c: usize| -> Vec<f64> { (0..g.phase.len()).map(|i| f64::from(g.dataset.sensor[i * d + c])).collect() };
        let (a, b) = (col(5), col(13));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (ma, mb) = (mean(&a), mean(&b));
        let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let var = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>();
        let r = cov / (var(&a, ma) * var(&b, mb)).sqrt();
        assert!(r > 0.5, "correlation of the two shoulders' velocities {r:.2}");
    }
}
