//! Windows of T sensor readings, each paired with the frame at its last reading.

use crate::dataset::{Dataset, SensorLayout};
use crate::error::{Error, Result};

/// The samples of a dataset that have a full window, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// Readings per window (T).
    pub len: usize,
    /// For each window, the index of its frame, which is also its last reading.
    pub ends: Vec<usize>,
}

impl Windows {
    /// Number of windows.
    pub fn count(&self) -> usize {
        self.ends.len()
    }
}

impl Dataset {
    /// The windows of `len` readings inside the given episodes.
    ///
    /// With [N, D] sensors the first `len - 1` samples of each episode have no full window and
    /// are skipped: windows never cross an episode boundary and are never padded. With
    /// [N, T, D] sensors every sample is a window and `len` must equal T.
    pub fn windows(&self, len: usize, episodes: &[i32]) -> Result<Windows> {
        if len == 0 {
            return Err(Error::Invalid("window length must be at least 1".into()));
        }
        if let SensorLayout::Windows { len: t } = self.layout {
            if t != len {
                return Err(Error::Invalid(format!(
                    "{}: sensor holds ready-made windows of {t} readings, but a window of {len} was asked for",
                    self.path.display()
                )));
            }
        }
        let keep: std::collections::HashSet<i32> = episodes.iter().copied().collect();
        let mut ends = Vec::new();
        let mut run_start = 0;
        for i in 0..self.len() {
            if i > 0 && self.episode[i] != self.episode[i - 1] {
                run_start = i;
            }
            let full = match self.layout {
                SensorLayout::Readings => i + 1 - run_start >= len,
                SensorLayout::Windows { .. } => true,
            };
            if full && keep.contains(&self.episode[i]) {
                ends.push(i);
            }
        }
        Ok(Windows { len, ends })
    }

    /// The raw window ending at sample `end`, [T, D] in time order.
    pub fn sensor_window(&self, end: usize, len: usize) -> &[f32] {
        let d = self.sensor_dim();
        match self.layout {
            SensorLayout::Readings => &self.sensor[(end + 1 - len) * d..(end + 1) * d],
            SensorLayout::Windows { len: t } => &self.sensor[end * t * d..(end + 1) * t * d],
        }
    }

    /// The frame `back` samples before `i` (at most back to sample 0), scaled to [0, 1], if it
    /// is in the same episode: the stale frame a frozen stream would repeat.
    pub fn earlier_frame(&self, i: usize, back: usize) -> Option<Vec<f32>> {
        let j = i.saturating_sub(back);
        (self.episode[j] == self.episode[i]).then(|| {
            let mut f = vec![0.0; self.frame_len()];
            self.scaled_frame_into(j, &mut f);
            f
        })
    }

    /// Frame `i` scaled to [0, 1], written into `out` ([3, H, W]).
    pub fn scaled_frame_into(&self, i: usize, out: &mut [f32]) {
        for (o, &p) in out.iter_mut().zip(self.frame(i)) {
            *o = f32::from(p) / 255.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::tiny_dataset;

    #[test]
    fn windows_stay_inside_episodes() {
        // two episodes of 5 samples each
        let ds = tiny_dataset(&[0, 0, 0, 0, 0, 1, 1, 1, 1, 1], 2);
        let w = ds.windows(3, &[0, 1]).unwrap();
        assert_eq!(w.ends, vec![2, 3, 4, 7, 8, 9]);
        let only_second = ds.windows(3, &[1]).unwrap();
        assert_eq!(only_second.ends, vec![7, 8, 9]);
        // the window ending at 7 holds readings 5, 6, 7
        assert_eq!(ds.sensor_window(7, 3), &ds.sensor[10..16]);
    }

    #[test]
    fn window_longer_than_every_episode_gives_no_window() {
        let ds = tiny_dataset(&[0, 0, 1, 1], 1);
        assert_eq!(ds.windows(3, &[0, 1]).unwrap().count(), 0);
    }
}
