//! Task metrics of a head on a set of latents: accuracy, macro-F1 and the regression MAE.

use burn::tensor::{Tensor, TensorData};
use mmguard_model::compute;
use serde::{Deserialize, Serialize};

use crate::task::{presence, TaskSet};
use crate::TaskHead;

/// Task scores on a set of windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    /// Share of windows classified right.
    pub accuracy: f64,
    /// Mean F1 over the classes that occur in the truth or the predictions.
    pub macro_f1: f64,
    /// Mean absolute error of the regression target, in the column's physical unit.
    pub mae: f64,
}

/// Scores `head` on `set` with the modalities in `keep` present: per-window presence when
/// `per_window` is given (one [camera, sensor] pair per window), else `keep` for all. `range`
/// turns the scaled regression error back into the column's unit.
pub fn score(
    head: &dyn TaskHead,
    set: &TaskSet,
    keep: [bool; 2],
    per_window: Option<&[[bool; 2]]>,
    classes: usize,
    range: f32,
) -> TaskScore {
    const CHUNK: usize = 512;
    let device = compute::device();
    let (mut predicted, mut abs_err) = (Vec::with_capacity(set.len()), 0.0f64);
    for start in (0..set.len()).step_by(CHUNK) {
        let rows: Vec<usize> = (start..(start + CHUNK).min(set.len())).collect();
        let b = rows.len();
        let (cam, sen) = set.rows(&rows);
        let present = match per_window {
            None => presence(b, keep, &device),
            Some(p) => {
                let v: Vec<f32> = rows.iter().flat_map(|&r| p[r].map(|k| f32::from(u8::from(k)))).collect();
                Tensor::from_data(TensorData::new(v, [b, 2]), &device)
            }
        };
        let (logits, value) = head.predict(
            Tensor::from_data(TensorData::new(cam, [b, set.camera_dim]), &device),
            Tensor::from_data(TensorData::new(sen, [b, set.sensor_dim]), &device),
            present,
        );
        let classes_of: Vec<i64> =
            logits.argmax(1).into_data().convert::<i64>().try_to_vec::<i64>().expect("int tensor");
        predicted.extend(classes_of.into_iter().map(|c| c as u32));
        let value: Vec<f32> = value.into_data().try_into_vec().expect("float tensor");
        abs_err += rows.iter().zip(&value).map(|(&r, &v)| f64::from((v - set.value[r]).abs())).sum::<f64>();
    }
    let n = set.len().max(1) as f64;
    TaskScore {
        accuracy: predicted.iter().zip(&set.class).filter(|(p, t)| p == t).count() as f64 / n,
        macro_f1: macro_f1(&set.class, &predicted, classes),
        mae: abs_err / n * f64::from(range),
    }
}

/// Macro-F1 over the classes present in `truth` or `predicted`.
pub fn macro_f1(truth: &[u32], predicted: &[u32], classes: usize) -> f64 {
    let mut f1s = Vec::new();
    for c in 0..classes as u32 {
        let tp = truth.iter().zip(predicted).filter(|&(&t, &p)| t == c && p == c).count() as f64;
        let in_truth = truth.iter().filter(|&&t| t == c).count() as f64;
        let in_pred = predicted.iter().filter(|&&p| p == c).count() as f64;
        if in_truth + in_pred == 0.0 {
            continue;
        }
        f1s.push(2.0 * tp / (in_truth + in_pred));
    }
    if f1s.is_empty() {
        0.0
    } else {
        f1s.iter().sum::<f64>() / f1s.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_weighs_classes_equally() {
        // class 0: tp 8 of 8 true, 9 predicted → 16/17; class 1: tp 1 of 2 true, 1 predicted → 2/3
        let truth = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
        let pred = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let want = (16.0 / 17.0 + 2.0 / 3.0) / 2.0;
        assert!((macro_f1(&truth, &pred, 3) - want).abs() < 1e-12);
        assert_eq!(macro_f1(&truth, &truth, 2), 1.0);
    }
}
