//! MMFR — multimodal fusion with fuzzy regularisation (Altinses & Schwung, IECON 2023; code:
//! github.com/Diyarino/deep-multimodal-fusion-with-fuzzy-regularization, `fuzzy_loss.py`).
//!
//! The network is the MMAE; training adds a loss that pulls the bottleneck activations of the
//! samples whose camera is corrupted toward one Gaussian "bump" of neurons and those whose
//! sensor is corrupted toward another, so the code carries which modality is unreliable and the
//! decoders can learn to discount it. As in the authors' code: for modality k with fuzzy set
//! μ_k over the n neurons (grid t_i = i·scale, centre (k + ½)·n·scale/K, width n·width·scale,
//! K = 2), the corrupted samples' activations A_k get the target
//! T_k = softmax over the samples(A_k) ⊙ (μ_k + 1), and the loss is MSE(A_k, T_k)/K, not
//! detached. The total loss is reconstruction + β·fuzzy (β = 0.1: the weight is not in the
//! code; `docs/methods/baselines.md`).

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// The fuzzy regulariser's constants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FuzzyConfig {
    /// Width of each fuzzy set, as a share of the layer (the code's `width`).
    pub width: f64,
    /// Grid step (the code's `scale`).
    pub scale: f64,
    /// Weight β of the fuzzy loss.
    pub weight: f64,
}

impl Default for FuzzyConfig {
    fn default() -> Self {
        Self { width: 0.5, scale: 0.1, weight: 0.1 }
    }
}

impl FuzzyConfig {
    /// Membership of each of `n` neurons in fuzzy set `k` of `sets`.
    pub fn membership(&self, n: usize, k: usize, sets: usize) -> Vec<f32> {
        let centre = (k as f64 + 0.5) * n as f64 * self.scale / sets as f64;
        let width = n as f64 * self.width * self.scale;
        (0..n).map(|i| (-(i as f64 * self.scale - centre).powi(2) / (2.0 * width * width)).exp() as f32).collect()
    }

    /// The fuzzy loss of bottleneck activations `code` [B, n], given which samples have their
    /// camera corrupted and which their sensor. Zero when no sample is corrupted.
    pub fn loss(&self, code: Tensor<2>, corrupted: [&[usize]; 2], device: &Device) -> Option<Tensor<1>> {
        let [_, n] = code.dims();
        let mut total: Option<Tensor<1>> = None;
        for (k, rows) in corrupted.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            let idx = mmguard_model::index_tensor(rows, device);
            let a = code.clone().select(0, idx);
            let mu = Tensor::<2>::from_data(TensorData::new(self.membership(n, k, 2), [1, n]), device).add_scalar(1.0);
            let target = softmax(a.clone(), 0) * mu;
            let term = (a - target).square().mean().div_scalar(2.0);
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        total.map(|t| t.mul_scalar(self.weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_fuzzy_sets_peak_in_their_halves_of_the_layer() {
        let f = FuzzyConfig::default();
        let (cam, sen) = (f.membership(100, 0, 2), f.membership(100, 1, 2));
        let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!((argmax(&cam), argmax(&sen)), (25, 75));
        assert!((cam[25] - 1.0).abs() < 1e-3 && cam[75] < cam[25]);
    }

    #[test]
    fn no_corrupted_sample_no_loss_and_a_matching_pattern_costs_less() {
        let device = mmguard_model::compute::device();
        let f = FuzzyConfig::default();
        let code = Tensor::<2>::zeros([4, 100], &device);
        assert!(f.loss(code.clone(), [&[], &[]], &device).is_none());
        let base: f32 = f.loss(code, [&[0, 1], &[]], &device).unwrap().into_scalar();
        // activations shaped like the camera set's target cost less than zeros
        let mu: Vec<f32> = f.membership(100, 0, 2).iter().map(|m| (m + 1.0) / 2.0).collect();
        let shaped = Tensor::<2>::from_data(TensorData::new([mu.clone(), mu].concat(), [2, 100]), &device);
        let better: f32 = f.loss(shaped, [&[0, 1], &[]], &device).unwrap().into_scalar();
        assert!(better < base, "{better} vs {base}");
    }
}
