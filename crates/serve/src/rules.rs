//! Rule checks that run before the learned gate (docs/design.md §1): cheap, model-free, and each names
//! its rule and channel. A NaN, a value far outside what training saw, a stuck channel, an
//! implausible jump, a frozen, black or white frame is flagged without asking the model.

use serde::{Deserialize, Serialize};

/// Thresholds of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// Out of range: beyond the training min/max by more than this share of the column's range.
    pub range_margin: f32,
    /// Stuck: the last this many readings of a column are identical (0: off). A constant column
    /// in training (range 0) is never stuck.
    pub stuck_readings: usize,
    /// Rate of change: one step moves a column by more than this share of its training range
    /// (1: a jump larger than anything between the training extremes).
    pub max_step_share: f32,
    /// Black / white frame: mean brightness below / above these levels (0–255) …
    pub dark_level: f32,
    /// … (white).
    pub bright_level: f32,
    /// … with a standard deviation below this (a flat frame).
    pub flat_std: f32,
    /// Frozen frame: identical to the previous frame of the same device.
    pub frozen_frame: bool,
    /// Devices whose last frame is kept for the frozen-frame rule; past it the device heard
    /// from longest ago is forgotten, so that clients inventing device ids cannot grow memory
    /// without bound.
    pub max_devices: usize,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            range_margin: 0.5,
            stuck_readings: 8,
            max_step_share: 1.0,
            dark_level: 8.0,
            bright_level: 247.0,
            flat_std: 4.0,
            frozen_frame: true,
            max_devices: 1024,
        }
    }
}

/// Which rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// NaN or infinite reading.
    NotFinite,
    /// Outside the training range by more than the margin.
    OutOfRange,
    /// No change over the last readings.
    Stuck,
    /// Implausible jump between two readings.
    RateOfChange,
    /// The same frame as the device's previous one.
    FrozenFrame,
    /// A flat dark frame.
    BlackFrame,
    /// A flat bright frame.
    WhiteFrame,
}

/// A rule that fired on a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// `camera` or the sensor column's name.
    pub channel: String,
    /// What was seen.
    pub detail: String,
}

/// What training saw of each sensor column.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranges {
    /// Column names.
    pub names: Vec<String>,
    /// Training minimum per column.
    pub min: Vec<f32>,
    /// Training maximum per column.
    pub max: Vec<f32>,
}

/// The sensor rules on a window [T, D] (row-major, physical units).
pub fn check_sensor(window: &[f32], ranges: &Ranges, cfg: &RuleConfig) -> Vec<Violation> {
    let d = ranges.names.len();
    let t = window.len() / d.max(1);
    let mut out = Vec::new();
    let mut flag =
        |rule, j: usize, detail: String| out.push(Violation { rule, channel: ranges.names[j].clone(), detail });
    for j in 0..d {
        let column: Vec<f32> = (0..t).map(|k| window[k * d + j]).collect();
        if let Some(k) = column.iter().position(|v| !v.is_finite()) {
            flag(Rule::NotFinite, j, format!("reading {k} is {}", column[k]));
            continue;
        }
        let range = ranges.max[j] - ranges.min[j];
        let (lo, hi) = (ranges.min[j] - cfg.range_margin * range, ranges.max[j] + cfg.range_margin * range);
        if let Some(&v) = column.iter().find(|&&v| v < lo || v > hi) {
            flag(Rule::OutOfRange, j, format!("{v} outside [{lo}, {hi}]"));
            continue;
        }
        let k = cfg.stuck_readings;
        if k > 1 && range > 0.0 && t >= k && column[t - k..].windows(2).all(|w| w[0] == w[1]) {
            flag(Rule::Stuck, j, format!("the last {k} readings are all {}", column[t - 1]));
            continue;
        }
        if range > 0.0 {
            if let Some(w) = column.windows(2).find(|w| (w[1] - w[0]).abs() > cfg.max_step_share * range) {
                flag(Rule::RateOfChange, j, format!("a step from {} to {} (training range {range})", w[0], w[1]));
            }
        }
    }
    out
}

/// The frame rules on a [3, H, W] uint8 frame; `previous` is the same device's last frame.
pub fn check_frame(frame: &[u8], previous: Option<&[u8]>, cfg: &RuleConfig) -> Vec<Violation> {
    let n = frame.len().max(1) as f64;
    let mean = frame.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
    let std = (frame.iter().map(|&p| (f64::from(p) - mean).powi(2)).sum::<f64>() / n).sqrt();
    let violation = |rule, detail: String| Violation { rule, channel: "camera".into(), detail };
    let mut out = Vec::new();
    if std < f64::from(cfg.flat_std) && mean < f64::from(cfg.dark_level) {
        out.push(violation(Rule::BlackFrame, format!("mean {mean:.1}, std {std:.1}")));
    } else if std < f64::from(cfg.flat_std) && mean > f64::from(cfg.bright_level) {
        out.push(violation(Rule::WhiteFrame, format!("mean {mean:.1}, std {std:.1}")));
    }
    if cfg.frozen_frame && previous == Some(frame) {
        out.push(violation(Rule::FrozenFrame, "identical to the device's previous frame".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> Ranges {
        Ranges { names: vec!["a".into(), "b".into()], min: vec![0.0, -1.0], max: vec![1.0, 1.0] }
    }

    fn rules(window: &[f32]) -> Vec<(Rule, String)> {
        check_sensor(window, &ranges(), &RuleConfig { stuck_readings: 3, ..RuleConfig::default() })
            .into_iter()
            .map(|v| (v.rule, v.channel))
            .collect()
    }

    #[test]
    fn each_sensor_rule_names_its_channel() {
        let healthy = [0.1, 0.0, 0.2, 0.1, 0.3, 0.2, 0.35, 0.3];
        assert!(rules(&healthy).is_empty());
        let mut w = healthy;
        w[5] = f32::NAN;
        assert_eq!(rules(&w), [(Rule::NotFinite, "b".into())]);
        w = healthy;
        w[2] = 1.6;
        assert_eq!(rules(&w), [(Rule::OutOfRange, "a".into())]);
        w = healthy;
        w[2] = 1.45;
        assert_eq!(rules(&w), [(Rule::RateOfChange, "a".into())], "in range with the margin, but a jump");
        w = [0.1, 0.0, 0.2, 0.5, 0.3, 0.5, 0.35, 0.5];
        assert_eq!(rules(&w), [(Rule::Stuck, "b".into())]);
    }

    #[test]
    fn flat_dark_bright_and_repeated_frames_are_flagged() {
        let cfg = RuleConfig::default();
        let textured: Vec<u8> = (0..300).map(|i| (i * 37 % 256) as u8).collect();
        assert!(check_frame(&textured, None, &cfg).is_empty());
        assert_eq!(check_frame(&[2; 300], None, &cfg)[0].rule, Rule::BlackFrame);
        assert_eq!(check_frame(&[252; 300], None, &cfg)[0].rule, Rule::WhiteFrame);
        assert_eq!(check_frame(&textured, Some(&textured), &cfg)[0].rule, Rule::FrozenFrame);
        let off = RuleConfig { frozen_frame: false, ..cfg };
        assert!(check_frame(&textured, Some(&textured), &off).is_empty());
    }
}
