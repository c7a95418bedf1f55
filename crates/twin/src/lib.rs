//! Digital twin of a robot-arm cell that writes datasets in the mmguard data contract.
//!
//! A four-joint arm (base yaw, shoulder, elbow, wrist) moves along smooth random trajectories
//! above a table and pushes a red cube around. Each sample pairs a rendered camera frame with
//! one reading of 18 sensors at 20 Hz: joint angles, velocities and torques, the tool position
//! and the object position. Every episode also carries a task phase label (`phase`: 0 holding
//! still, 1 moving, 2 in contact with the object). The seed fixes everything.
//!
//! This crate does not depend on the deep-learning stack.

pub mod arm;
pub mod render;
pub mod trajectory;

use std::path::Path;

use mmguard_data::npz::{Array, ArrayData};
use mmguard_data::{Column, Dataset, SensorLayout, IMAGE_MULTIPLE};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use arm::{forward, inverse, torques, JOINTS};
use render::{render, Scene, View};

/// Key of the task phase labels written next to the contract's keys.
pub const PHASE_KEY: &str = "phase";

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinConfig {
    /// Number of episodes.
    pub episodes: usize,
    /// Samples per episode.
    pub samples_per_episode: usize,
    /// Sampling rate, Hz.
    pub rate_hz: f64,
    /// Frame height, a multiple of 16.
    pub height: usize,
    /// Frame width, a multiple of 16.
    pub width: usize,
    /// Seed of everything random.
    pub seed: u64,
}

impl Default for TwinConfig {
    fn default() -> Self {
        Self { episodes: 40, samples_per_episode: 100, rate_hz: 20.0, height: 64, width: 64, seed: 0 }
    }
}

/// Errors of the twin.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration the twin cannot generate.
    #[error("invalid twin configuration: {0}")]
    Config(String),
    /// Writing the dataset failed.
    #[error(transparent)]
    Data(#[from] mmguard_data::Error),
}

/// A generated dataset and its phase labels.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The dataset, in the contract's layout.
    pub dataset: Dataset,
    /// Task phase per sample.
    pub phase: Vec<i32>,
}

const OBJECT_HALF: f64 = 0.05;
const TOOL_RADIUS: f64 = 0.035;
/// Share of moves that are pushes.
const PUSH_PROBABILITY: f64 = 0.4;

/// Sensor columns: name, unit, and the standard deviation of the measurement noise.
fn columns() -> Vec<(String, &'static str, f64)> {
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

struct Episode {
    camera: Vec<u8>,
    sensor: Vec<f32>,
    time: Vec<f32>,
    phase: Vec<i32>,
}

fn simulate(cfg: &TwinConfig, seed: u64) -> Episode {
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
    let mut ep = Episode {
        camera: vec![0; n * frame_len],
        sensor: Vec::with_capacity(n * cols.len()),
        time: Vec::with_capacity(n),
        phase: Vec::with_capacity(n),
    };
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

/// Generates a dataset. Episodes run in parallel; each has its own seed drawn from the main
/// seed, so the result does not depend on the number of threads.
pub fn generate(cfg: &TwinConfig) -> Result<Generated, Error> {
    if cfg.height == 0
        || cfg.width == 0
        || !cfg.height.is_multiple_of(IMAGE_MULTIPLE)
        || !cfg.width.is_multiple_of(IMAGE_MULTIPLE)
    {
        return Err(Error::Config(format!(
            "image {}x{}: height and width must be positive multiples of {IMAGE_MULTIPLE}",
            cfg.height, cfg.width
        )));
    }
    if cfg.episodes == 0 || cfg.samples_per_episode == 0 || cfg.rate_hz.is_nan() || cfg.rate_hz <= 0.0 {
        return Err(Error::Config("episodes, samples per episode and rate must be positive".into()));
    }
    let mut master = ChaCha8Rng::seed_from_u64(cfg.seed);
    let seeds: Vec<u64> = (0..cfg.episodes).map(|_| master.random()).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = cfg.episodes.div_ceil(threads);
    let episodes: Vec<Episode> = std::thread::scope(|s| {
        let handles: Vec<_> = seeds
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|&sd| simulate(cfg, sd)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("episode simulation does not panic")).collect()
    });
    let mut ds = Dataset {
        path: Default::default(),
        camera: Vec::new(),
        height: cfg.height,
        width: cfg.width,
        sensor: Vec::new(),
        layout: SensorLayout::Readings,
        episode: Vec::new(),
        has_episode_key: true,
        time: Some(Vec::new()),
        columns: columns().into_iter().map(|(name, unit, _)| Column { name, unit: unit.into() }).collect(),
        metadata: serde_json::Map::new(),
        extra_keys: Vec::new(),
        warnings: Vec::new(),
    };
    ds.metadata.insert("generator".into(), "mmguard-twin".into());
    ds.metadata.insert("scene".into(), "arm".into());
    ds.metadata.insert("twin_config".into(), serde_json::to_value(cfg).expect("config serialises"));
    let mut phase = Vec::new();
    for (e, ep) in episodes.into_iter().enumerate() {
        ds.camera.extend_from_slice(&ep.camera);
        ds.sensor.extend_from_slice(&ep.sensor);
        ds.time.as_mut().expect("set above").extend_from_slice(&ep.time);
        ds.episode.extend(std::iter::repeat_n(e as i32, ep.phase.len()));
        phase.extend_from_slice(&ep.phase);
    }
    Ok(Generated { dataset: ds, phase })
}

/// Generates a dataset and writes it (with its sidecar and the phase labels) to `path`.
pub fn write(cfg: &TwinConfig, path: &Path) -> Result<Generated, Error> {
    let g = generate(cfg)?;
    let phase = Array { shape: vec![g.phase.len() as u64], data: ArrayData::I32(g.phase.clone()) };
    g.dataset.save(path, &[(PHASE_KEY, &phase)])?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> TwinConfig {
        TwinConfig { episodes: 3, samples_per_episode: 30, height: 32, width: 48, seed: 7, ..Default::default() }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = generate(&small()).unwrap();
        let b = generate(&small()).unwrap();
        let c = generate(&TwinConfig { seed: 8, ..small() }).unwrap();
        assert_eq!(a.dataset.fingerprint(), b.dataset.fingerprint());
        assert_ne!(a.dataset.fingerprint(), c.dataset.fingerprint());
    }

    #[test]
    fn written_file_follows_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arm.npz");
        write(&small(), &path).unwrap();
        let ds = Dataset::load(&path).unwrap();
        assert_eq!((ds.len(), ds.height, ds.width, ds.sensor_dim()), (90, 32, 48, 18));
        assert_eq!(ds.episode_ids(), vec![0, 1, 2]);
        assert_eq!(ds.columns[8].name, "j0_torque");
        assert!(ds.warnings.is_empty(), "{:?}", ds.warnings);
        assert_eq!(ds.extra_keys[0].key, PHASE_KEY);
    }

    #[test]
    fn frames_show_the_moving_arm() {
        let g = generate(&small()).unwrap();
        let ds = &g.dataset;
        // consecutive frames differ where the arm moved, and the image is not flat
        let moving = (1..30).filter(|&i| ds.frame(i) != ds.frame(i - 1)).count();
        assert!(moving > 15, "only {moving} of 29 frames changed");
        let f = ds.frame(0);
        let (lo, hi) = (f.iter().min().unwrap(), f.iter().max().unwrap());
        assert!(hi - lo > 100, "flat frame {lo}..{hi}");
    }

    #[test]
    fn sensors_agree_with_the_kinematics() {
        let g = generate(&small()).unwrap();
        let ds = &g.dataset;
        for i in [0, 17, 45, 89] {
            let row = &ds.sensor[i * 18..(i + 1) * 18];
            let q: [f64; 4] = std::array::from_fn(|j| f64::from(row[j]));
            let tool = forward(&q).tool();
            for k in 0..3 {
                assert!((tool[k] - f64::from(row[12 + k])).abs() < 0.02, "sample {i}");
            }
        }
    }

    #[test]
    fn the_arm_pushes_the_object() {
        let g = generate(&TwinConfig { episodes: 4, samples_per_episode: 100, ..small() }).unwrap();
        let contacts = g.phase.iter().filter(|&&p| p == 2).count();
        assert!(contacts > 5, "{contacts} contact samples");
        // the object's x/y (columns 15, 16) move by more than the measurement noise in contact
        let moved = (1..g.phase.len())
            .filter(|&i| g.phase[i] == 2 && g.dataset.episode[i] == g.dataset.episode[i - 1])
            .map(|i| (g.dataset.sensor[i * 18 + 15] - g.dataset.sensor[(i - 1) * 18 + 15]).abs())
            .fold(0.0f32, f32::max);
        assert!(moved > 0.01, "largest object step in contact {moved} m");
    }

    #[test]
    fn bad_image_size_is_refused() {
        let e = generate(&TwinConfig { height: 40, ..small() }).unwrap_err().to_string();
        assert!(e.contains("40x48") && e.contains("16"), "{e}");
    }
}
