//! Per-column min-max scaling to [0, 1], fitted on the training split only.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::window::Windows;

/// Minimum and maximum of each sensor column over the training readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    /// Per-column minimum.
    pub min: Vec<f32>,
    /// Per-column maximum.
    pub max: Vec<f32>,
}

impl MinMax {
    /// Fits the scaling on every reading of the given windows.
    pub fn fit(data: &Dataset, windows: &Windows) -> Self {
        let d = data.sensor_dim();
        let mut min = vec![f32::INFINITY; d];
        let mut max = vec![f32::NEG_INFINITY; d];
        for &end in &windows.ends {
            for row in data.sensor_window(end, windows.len).chunks_exact(d) {
                for (j, &v) in row.iter().enumerate() {
                    min[j] = min[j].min(v);
                    max[j] = max[j].max(v);
                }
            }
        }
        Self { min, max }
    }

    /// The divisor of column `j`; a constant column keeps its offset and a range of 1 so that
    /// scaling stays finite.
    fn range(&self, j: usize) -> f32 {
        let r = self.max[j] - self.min[j];
        if r > 0.0 {
            r
        } else {
            1.0
        }
    }

    /// Scales a [T, D] window (or one [D] reading) into `out`.
    pub fn scale_into(&self, raw: &[f32], out: &mut [f32]) {
        let d = self.min.len();
        for (k, (o, &v)) in out.iter_mut().zip(raw).enumerate() {
            let j = k % d;
            *o = (v - self.min[j]) / self.range(j);
        }
    }

    /// Maps scaled values back to physical units, in place.
    pub fn unscale(&self, values: &mut [f32]) {
        let d = self.min.len();
        for (k, v) in values.iter_mut().enumerate() {
            let j = k % d;
            *v = *v * self.range(j) + self.min[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_dataset;

    #[test]
    fn scaling_maps_training_range_to_unit_interval_and_back() {
        let ds = tiny_dataset(&[0, 0, 0, 1, 1, 1], 2);
        let w = ds.windows(2, &[0]).unwrap();
        let mm = MinMax::fit(&ds, &w);
        // episode 0 holds rows 0..3 only: test episode 1 does not leak into the statistics
        assert_eq!(mm.min, vec![ds.sensor[0], ds.sensor[1]]);
        assert_eq!(mm.max, vec![ds.sensor[4], ds.sensor[5]]);
        let mut out = vec![0.0; 6];
        mm.scale_into(&ds.sensor[0..6], &mut out);
        assert_eq!((out[0], out[4], out[1], out[5]), (0.0, 1.0, 0.0, 1.0));
        mm.unscale(&mut out);
        for (a, b) in out.iter().zip(&ds.sensor[0..6]) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
