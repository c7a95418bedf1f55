//! Train / validation / test splits by episode, never by sample (no leakage across a split).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Fractions of episodes for training and validation; the rest is the test split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Share of episodes used for training.
    pub train: f64,
    /// Share of episodes used for validation (early stopping, gate calibration).
    pub val: f64,
    /// Seed of the episode shuffle.
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { train: 0.65, val: 0.10, seed: 0 }
    }
}

/// Episode ids of each split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training episodes.
    pub train: Vec<i32>,
    /// Validation episodes.
    pub val: Vec<i32>,
    /// Test episodes.
    pub test: Vec<i32>,
}

impl SplitConfig {
    /// Shuffles the episodes with the seed and cuts them by the fractions; every split gets at
    /// least one episode, so at least three are needed.
    pub fn split(&self, episodes: &[i32]) -> Result<Split> {
        let n = episodes.len();
        let fractions_ok = self.train > 0.0 && self.val > 0.0 && self.train + self.val < 1.0;
        if !fractions_ok {
            return Err(Error::Invalid(format!(
                "split fractions train {} and validation {} must be positive and leave a test share",
                self.train, self.val
            )));
        }
        if n < 3 {
            return Err(Error::Invalid(format!(
                "{n} episode(s): a split by episode needs at least 3 (train, validation, test)"
            )));
        }
        let mut ids = episodes.to_vec();
        ids.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed));
        let n_val = ((self.val * n as f64).round() as usize).clamp(1, n - 2);
        let n_test = (((1.0 - self.train - self.val) * n as f64).round() as usize).clamp(1, n - 1 - n_val);
        let n_train = n - n_val - n_test;
        let mut test = ids.split_off(n_train + n_val);
        let mut val = ids.split_off(n_train);
        let mut train = ids;
        train.sort_unstable();
        val.sort_unstable();
        test.sort_unstable();
        Ok(Split { train, val, test })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_split_of_forty_episodes_is_26_4_10_and_disjoint() {
        let ids: Vec<i32> = (0..40).collect();
        let s = SplitConfig::default().split(&ids).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (26, 4, 10));
        let mut all: Vec<i32> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, ids);
    }

    #[test]
    fn split_depends_on_seed_only() {
        let ids: Vec<i32> = (0..20).collect();
        let a = SplitConfig { seed: 3, ..Default::default() }.split(&ids).unwrap();
        let b = SplitConfig { seed: 3, ..Default::default() }.split(&ids).unwrap();
        let c = SplitConfig { seed: 4, ..Default::default() }.split(&ids).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn three_episodes_give_one_each_and_two_is_an_error() {
        let s = SplitConfig::default().split(&[5, 6, 7]).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (1, 1, 1));
        assert!(SplitConfig::default().split(&[1, 2]).is_err());
    }
}
