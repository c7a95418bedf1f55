//! Digital twins of robot cells that write datasets in the mmguard data contract.
//!
//! Two scenes ([`SceneKind`]):
//! * `arm` ([`push_cell`]): a four-joint arm (base yaw, shoulder, elbow, wrist) moves along
//!   smooth random trajectories above a table and pushes a red cube around; 18 sensors.
//! * `dual-weld` ([`weld_cell`]): two arms weld a seam on a shared workpiece, one with the
//!   torch, one guiding a clamp just ahead of it; per-arm joint data and the welding process
//!   signals (current, voltage, wire feed, arc on/off); the arc glows in the image.
//!
//! Each sample pairs a rendered camera frame with one reading of the sensors at 20 Hz, and a
//! task phase label (`phase`, names in the sidecar's metadata). The seed fixes everything.
//!
//! This crate does not depend on the deep-learning stack.

pub mod arm;
pub mod push_cell;
pub mod render;
pub mod trajectory;
pub mod weld_cell;

use std::path::Path;

use mmguard_data::npz::{Array, ArrayData};
use mmguard_data::{Column, Dataset, SensorLayout, IMAGE_MULTIPLE};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Key of the task phase labels written next to the contract's keys.
pub const PHASE_KEY: &str = "phase";

/// Which cell to simulate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SceneKind {
    /// One arm pushing an object.
    #[default]
    Arm,
    /// Two arms welding a shared workpiece.
    DualWeld,
}

impl SceneKind {
    /// Every scene.
    pub const ALL: [SceneKind; 2] = [Self::Arm, Self::DualWeld];

    /// Parses a scene name (`arm`, `dual-weld`).
    pub fn from_name(name: &str) -> Result<Self, Error> {
        Self::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            Error::Config(format!("unknown scene '{name}'; known: {}", Self::ALL.map(Self::name).join(", ")))
        })
    }

    /// The name on the command line and in the sidecar.
    pub fn name(self) -> &'static str {
        match self {
            Self::Arm => "arm",
            Self::DualWeld => "dual-weld",
        }
    }

    /// Phase names, by label.
    pub fn phases(self) -> &'static [&'static str] {
        match self {
            Self::Arm => &push_cell::PHASES,
            Self::DualWeld => &weld_cell::PHASES,
        }
    }

    fn columns(self) -> Vec<(String, &'static str, f64)> {
        match self {
            Self::Arm => push_cell::columns(),
            Self::DualWeld => weld_cell::columns(),
        }
    }

    fn simulate(self, cfg: &TwinConfig, seed: u64) -> Episode {
        match self {
            Self::Arm => push_cell::simulate(cfg, seed),
            Self::DualWeld => weld_cell::simulate(cfg, seed),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinConfig {
    /// The cell.
    #[serde(default)]
    pub scene: SceneKind,
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
        Self {
            scene: SceneKind::Arm,
            episodes: 40,
            samples_per_episode: 100,
            rate_hz: 20.0,
            height: 64,
            width: 64,
            seed: 0,
        }
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

/// One simulated episode: frames [n, 3, H, W], readings [n, D], time and phase per sample.
struct Episode {
    camera: Vec<u8>,
    sensor: Vec<f32>,
    time: Vec<f32>,
    phase: Vec<i32>,
}

impl Episode {
    /// Room for `n` samples of `cfg`'s frame size and `columns` sensors (frames zeroed, to be
    /// rendered in place).
    fn with_capacity(cfg: &TwinConfig, n: usize, columns: usize) -> Self {
        Self {
            camera: vec![0; n * 3 * cfg.height * cfg.width],
            sensor: Vec::with_capacity(n * columns),
            time: Vec::with_capacity(n),
            phase: Vec::with_capacity(n),
        }
    }
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
            .map(|part| s.spawn(move || part.iter().map(|&sd| cfg.scene.simulate(cfg, sd)).collect::<Vec<_>>()))
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
        columns: cfg.scene.columns().into_iter().map(|(name, unit, _)| Column { name, unit: unit.into() }).collect(),
        metadata: serde_json::Map::new(),
        extra_keys: Vec::new(),
        warnings: Vec::new(),
    };
    ds.metadata.insert("generator".into(), "mmguard-twin".into());
    ds.metadata.insert("scene".into(), cfg.scene.name().into());
    ds.metadata.insert("phases".into(), cfg.scene.phases().into());
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
            let tool = arm::forward(&q).tool();
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
    fn both_scenes_write_their_columns_and_phase_names() {
        let dir = tempfile::tempdir().unwrap();
        for (scene, columns, last) in [(SceneKind::Arm, 18, "object_z"), (SceneKind::DualWeld, 20, "arc_on")] {
            let path = dir.path().join(format!("{}.npz", scene.name()));
            write(&TwinConfig { scene, ..small() }, &path).unwrap();
            let ds = Dataset::load(&path).unwrap();
            assert_eq!(ds.sensor_dim(), columns);
            assert_eq!(ds.columns[columns - 1].name, last);
            assert_eq!(ds.metadata["scene"], scene.name());
            assert_eq!(ds.metadata["phases"], serde_json::json!(scene.phases()));
        }
        assert!(SceneKind::from_name("weld").unwrap_err().to_string().contains("arm, dual-weld"));
    }

    #[test]
    fn bad_image_size_is_refused() {
        let e = generate(&TwinConfig { height: 40, ..small() }).unwrap_err().to_string();
        assert!(e.contains("40x48") && e.contains("16"), "{e}");
    }
}
