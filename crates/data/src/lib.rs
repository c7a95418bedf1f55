//! The mmguard data contract.
//!
//! A dataset is one `.npz` file (compressed or not):
//!
//! | key | dtype | shape | meaning |
//! |---|---|---|---|
//! | `camera` | uint8 | [N, 3, H, W] | RGB frames, channel-first, row 0 = top; H, W multiples of 16 |
//! | `sensor` | float32 | [N, D] or [N, T, D] | one reading per frame, or ready-made windows |
//! | `episode` | int32 | [N] (optional) | episode id; samples contiguous and time-ordered per episode |
//! | `t` | float32 | [N] (optional) | time in the episode, seconds |
//!
//! A JSON sidecar with the same stem (`data.npz` → `data.json`) names the sensor columns:
//! `{"sensor_columns": [{"name": "j1_angle", "unit": "rad"}, …]}`. Other keys are allowed and
//! listed. NumPy writes a compatible file with
//! `np.savez_compressed("data.npz", camera=cam.astype(np.uint8), sensor=s.astype(np.float32),
//! episode=ep.astype(np.int32))`.
//!
//! With [N, D] sensors, sample i pairs frame i with the window of the T readings that end at i
//! inside its episode. Splits are by episode. Images are scaled to [0, 1]; sensor columns are
//! min-max scaled with training statistics ([`MinMax`]).
//!
//! This crate does not depend on the deep-learning stack.

mod dataset;
mod error;
mod geometry;
mod labels;
pub mod layout;
mod normalize;
pub mod npz;
mod regular;
mod split;
mod stats;
mod window;

pub use dataset::{
    sidecar_path, Column, Dataset, SensorLayout, Sidecar, CAMERA, EPISODE, IMAGE_MULTIPLE, SEGMENT_LEN, SENSOR, TIME,
};
pub use error::{Error, Result};
pub use geometry::Geometry;
pub use labels::{read_class_labels, ClassLabels};
pub use normalize::MinMax;
pub use regular::ensure_regular_file;
pub use split::{Split, SplitConfig};
pub use stats::{ColumnStats, Summary};
pub use window::Windows;

#[cfg(test)]
pub(crate) mod testing {
    use crate::{Column, Dataset, SensorLayout};

    /// A dataset with 16×16 frames and `d` columns; reading k of column j is `10·k + j`.
    pub fn tiny_dataset(episode: &[i32], d: usize) -> Dataset {
        let n = episode.len();
        Dataset {
            path: "tiny.npz".into(),
            camera: (0..n * 3 * 256).map(|i| (i % 251) as u8).collect(),
            height: 16,
            width: 16,
            sensor: (0..n * d).map(|k| (10 * (k / d) + k % d) as f32).collect(),
            layout: SensorLayout::Readings,
            episode: episode.to_vec(),
            has_episode_key: true,
            time: None,
            columns: (0..d).map(|j| Column { name: format!("c{j}"), unit: String::new() }).collect(),
            metadata: Default::default(),
            extra_keys: vec![],
            warnings: vec![],
        }
    }
}
