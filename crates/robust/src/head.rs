//! What every downstream head shares: the prediction interface, the training schedule and the
//! batching of partly labelled data.

use burn::tensor::Tensor;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A head that predicts the task from the latents of the present modalities.
pub trait TaskHead {
    /// Class logits [B, classes] and regression output [B, 1].
    ///
    /// # Shapes
    /// camera [B, camera_latent], sensor [B, sensor_latent], present [B, 2] (an absent
    /// modality's latent is ignored, whatever it holds)
    fn predict(&self, camera: Tensor<2>, sensor: Tensor<2>, present: Tensor<2>) -> (Tensor<2>, Tensor<2>);
}

/// How long and how fast a head trains. The encoders are frozen, so the heads are small MLPs on
/// stored latents; Adam at 10⁻³ (the Robult note's rate for heads on pretrained encoders).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadSchedule {
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per batch.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Labelled windows every batch has at least (drawn again from the labelled pool when the
    /// batch holds fewer), so that 1 % of labels still reaches every step.
    pub min_labelled: usize,
}

impl Default for HeadSchedule {
    fn default() -> Self {
        Self { epochs: 30, batch_size: 64, learning_rate: 1e-3, min_labelled: 8 }
    }
}

/// One epoch's batches over all training windows, shuffled; a batch with fewer than
/// `min_labelled` labelled windows gets labelled ones added (cycling through a shuffled pool).
pub fn batches(labelled: &[bool], schedule: &HeadSchedule, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..labelled.len()).collect();
    order.shuffle(rng);
    let mut pool: Vec<usize> = (0..labelled.len()).filter(|&i| labelled[i]).collect();
    pool.shuffle(rng);
    let mut cursor = 0;
    order
        .chunks(schedule.batch_size.max(1))
        .map(|chunk| {
            let mut rows = chunk.to_vec();
            let have = rows.iter().filter(|&&r| labelled[r]).count();
            let want = schedule.min_labelled.min(pool.len());
            for _ in have..want {
                rows.push(pool[cursor % pool.len()]);
                cursor += 1;
            }
            rows
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_batch_reaches_the_labelled_minimum_and_every_window_is_seen() {
        let labelled: Vec<bool> = (0..300).map(|i| i % 100 == 0).collect();
        let schedule = HeadSchedule { batch_size: 64, min_labelled: 2, ..HeadSchedule::default() };
        let b = batches(&labelled, &schedule, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(b.len(), 5);
        assert!(b.iter().all(|rows| rows.iter().filter(|&&r| labelled[r]).count() >= 2));
        let mut seen: Vec<usize> = b.concat();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 300);
    }
}
