//! Loss functions of both stages.

use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::Tensor;
use mmguard_model::unit_rows;

/// Mean squared error over all elements.
pub fn mse<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<1> {
    (a - b).square().mean()
}

/// Binary cross-entropy on logits, numerically stable: relu(x) − x·y + log(1 + e^−|x|).
pub fn bce_with_logits(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let stable = (logits.clone().abs().neg().exp()).log1p();
    (relu(logits.clone()) - logits * targets + stable).mean()
}

/// InfoNCE with cosine similarity: row i of `anchors` should match row i of `positives`
/// against every other row of the batch.
pub fn info_nce(anchors: Tensor<2>, positives: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [b, _] = anchors.dims();
    let device = anchors.device();
    let sim = unit_rows(anchors).matmul(unit_rows(positives).transpose()).div_scalar(temperature);
    let logp = log_softmax(sim, 1);
    let eye = Tensor::<2>::eye(b, &device);
    (logp * eye).sum().div_scalar(b as f64).neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t(v: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    #[test]
    fn bce_matches_the_textbook_formula() {
        let logits = t(vec![2.0, -1.0, 0.0, 30.0], [2, 2]);
        let y = t(vec![1.0, 0.0, 1.0, 0.0], [2, 2]);
        let got = bce_with_logits(logits, y).into_scalar::<f32>();
        let s = |x: f32| 1.0 / (1.0 + (-x).exp());
        let want = (-(s(2.0)).ln() - (1.0 - s(-1.0)).ln() - s(0.0).ln() + 30.0) / 4.0;
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn info_nce_is_low_for_matching_rows_and_high_for_swapped() {
        let a = t(vec![1.0, 0.0, 0.0, 1.0], [2, 2]);
        let matched = info_nce(a.clone(), a.clone(), 0.1).into_scalar::<f32>();
        let swapped = info_nce(a, t(vec![0.0, 1.0, 1.0, 0.0], [2, 2]), 0.1).into_scalar::<f32>();
        assert!(matched < 1e-3, "{matched}");
        assert!((swapped - 10.0).abs() < 1e-2, "{swapped}");
    }
}
