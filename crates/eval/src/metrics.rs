//! Detection metrics on scores and binary labels.

use serde::Serialize;

/// Area under the ROC curve (probability that a random positive outscores a random negative,
/// ties counting half). `None` without both classes or with a NaN score.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    if scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // average ranks over ties (Mann–Whitney U)
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += avg_rank * idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos * neg) as f64)
}

/// Area under the precision-recall curve as average precision (step-wise, ties grouped);
/// `None` without positives or with a NaN score.
pub fn aupr(scores: &[f32], labels: &[bool]) -> Option<f64> {
    if scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            if labels[k] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let recall = tp as f64 / pos as f64;
        ap += (recall - prev_recall) * tp as f64 / (tp + fp) as f64;
        prev_recall = recall;
        i = j + 1;
    }
    Some(ap)
}

/// Detection quality of one score against labels at a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    /// Area under the ROC curve.
    pub auroc: Option<f64>,
    /// Average precision.
    pub aupr: Option<f64>,
    /// F1 of the gate's flags.
    pub f1: f64,
    /// Precision of the flags.
    pub precision: f64,
    /// Recall of the flags.
    pub recall: f64,
    /// Share of negatives flagged.
    pub false_positive_rate: f64,
}

impl Detection {
    /// The ranking metrics (AUROC, AUPR) of `scores` (the evaluation passes the gate's
    /// margins), the rest of the flags the gate raised.
    pub fn with_flags(scores: &[f32], labels: &[bool], flagged: &[bool]) -> Self {
        let (mut tp, mut fp, mut fnn, mut tn) = (0usize, 0usize, 0usize, 0usize);
        for (&f, &l) in flagged.iter().zip(labels) {
            match (f, l) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fnn += 1,
                (false, false) => tn += 1,
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fnn);
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        Self {
            auroc: auroc(scores, labels),
            aupr: aupr(scores, labels),
            f1,
            precision,
            recall,
            false_positive_rate: ratio(fp, fp + tn),
        }
    }
}

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
}

impl Stat {
    /// Of a set of values (seeds).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var =
            if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        Self { mean, std: var.sqrt() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_of_hand_computed_cases() {
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]), Some(0.0));
        // one swapped pair of four: 3/4
        assert_eq!(auroc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]), Some(0.75));
        assert_eq!(auroc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[0.5, 0.5], &[true, true]), None);
        assert_eq!(auroc(&[0.1, f32::NAN], &[false, true]), None);
    }

    #[test]
    fn aupr_and_f1_of_a_hand_computed_case() {
        // ranking: 0.9 (+), 0.8 (−), 0.7 (+): AP = 1·½ + ⅔·½
        let ap = aupr(&[0.9, 0.8, 0.7], &[true, false, true]).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        let scores = [0.9, 0.8, 0.7, 0.1];
        let flagged = scores.map(|s| s >= 0.75);
        let d = Detection::with_flags(&scores, &[true, false, true, false], &flagged);
        assert_eq!((d.precision, d.recall), (0.5, 0.5));
        assert!((d.f1 - 0.5).abs() < 1e-12);
        assert_eq!(d.false_positive_rate, 0.5);
    }
}
