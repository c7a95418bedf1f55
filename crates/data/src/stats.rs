//! A summary of a dataset for `mmguard inspect`.

use serde::Serialize;

use crate::dataset::{Column, Dataset, SensorLayout};
use crate::npz::ArrayInfo;

/// Statistics of one sensor column over all readings.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnStats {
    /// Column name and unit.
    #[serde(flatten)]
    pub column: Column,
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Mean.
    pub mean: f64,
    /// Standard deviation (population).
    pub std: f64,
}

/// What a dataset file holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The file.
    pub path: String,
    /// Samples N.
    pub samples: usize,
    /// Frame height and width.
    pub image: [usize; 2],
    /// Sensor layout.
    pub sensor_layout: SensorLayout,
    /// Episodes (segments of 100 when the file has no `episode` key).
    pub episodes: usize,
    /// Whether episode ids came from the file.
    pub episode_key: bool,
    /// Shortest and longest episode, in samples.
    pub episode_len: [usize; 2],
    /// Whether the file has a time key.
    pub time_key: bool,
    /// Mean of each camera channel (R, G, B) on the [0, 1] scale.
    pub camera_mean: [f64; 3],
    /// Per-column statistics.
    pub columns: Vec<ColumnStats>,
    /// Keys outside the contract.
    pub extra_keys: Vec<ArrayInfo>,
    /// Warnings raised while loading.
    pub warnings: Vec<String>,
    /// [`Dataset::fingerprint_hex`]: the same contents give the same string.
    pub fingerprint: String,
}

impl Dataset {
    /// Computes the summary.
    pub fn summary(&self) -> Summary {
        let d = self.sensor_dim();
        let rows = self.sensor.len() / d;
        let columns = self
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let vals = self.sensor.iter().skip(j).step_by(d);
                let (mut min, mut max, mut sum, mut sq) = (f32::INFINITY, f32::NEG_INFINITY, 0f64, 0f64);
                for &v in vals {
                    min = min.min(v);
                    max = max.max(v);
                    sum += f64::from(v);
                    sq += f64::from(v) * f64::from(v);
                }
                let mean = sum / rows as f64;
                ColumnStats { column: c.clone(), min, max, mean, std: (sq / rows as f64 - mean * mean).max(0.0).sqrt() }
            })
            .collect();
        let ids = self.episode_ids();
        let lens: Vec<usize> = ids.iter().map(|&e| self.episode.iter().filter(|&&x| x == e).count()).collect();
        let plane = self.height * self.width;
        let mut camera_mean = [0f64; 3];
        for i in 0..self.len() {
            for (c, m) in camera_mean.iter_mut().enumerate() {
                let px = &self.frame(i)[c * plane..(c + 1) * plane];
                *m += px.iter().map(|&p| f64::from(p)).sum::<f64>();
            }
        }
        for m in &mut camera_mean {
            *m /= (self.len() * plane) as f64 * 255.0;
        }
        Summary {
            path: self.path.display().to_string(),
            samples: self.len(),
            image: [self.height, self.width],
            sensor_layout: self.layout,
            episodes: ids.len(),
            episode_key: self.has_episode_key,
            episode_len: [lens.iter().copied().min().unwrap_or(0), lens.iter().copied().max().unwrap_or(0)],
            time_key: self.time.is_some(),
            camera_mean,
            columns,
            extra_keys: self.extra_keys.clone(),
            warnings: self.warnings.clone(),
            fingerprint: self.fingerprint_hex(),
        }
    }

    /// [`Dataset::fingerprint`] as the 16-digit hex string stored in run directories.
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint())
    }

    /// A 64-bit FNV-1a fingerprint of the contents (frames, readings, episodes), so that a run
    /// can recognise the file it was trained on.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(&self.camera);
        for v in &self.sensor {
            eat(&v.to_le_bytes());
        }
        for e in &self.episode {
            eat(&e.to_le_bytes());
        }
        h
    }
}
