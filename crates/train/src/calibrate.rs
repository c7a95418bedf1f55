//! Gate calibration on clean validation data.

/// The smallest threshold at which at most `rate` of the clean `scores` would be flagged
/// (a score flags when it is ≥ the threshold). With n scores, ⌊rate·n⌋ of them may reach it.
pub fn threshold_for_false_alarm_rate(scores: &[f32], rate: f64) -> f32 {
    if scores.is_empty() {
        return 0.5;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = ((rate * scores.len() as f64).floor() as usize).min(scores.len() - 1);
    // just above the (allowed+1)-th largest score, so that exactly `allowed` scores are above
    next_up(sorted[allowed])
}

fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let bits = x.to_bits();
    f32::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_flags_at_most_the_target_share() {
        let scores: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let t = threshold_for_false_alarm_rate(&scores, 0.01);
        let flagged = scores.iter().filter(|&&s| s >= t).count();
        assert_eq!(flagged, 10);
        let t0 = threshold_for_false_alarm_rate(&scores, 0.0);
        assert_eq!(scores.iter().filter(|&&s| s >= t0).count(), 0);
    }
}
