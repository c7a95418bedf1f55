//! Input-space repair: what of a flagged modality's input can be kept.
//!
//! The corrector rebuilds a flagged modality from the latent, and everything it outputs carries
//! the stage-1 decoder's error, even where the fault left the input intact. Most faults leave
//! structure that the input still holds:
//!
//! * **camera** — a fault touches some pixels (noise on part of the frame, dust, a scratch, an
//!   occluded block); where the input agrees with the reconstruction to within what the
//!   decoder's error on clean frames explains, the input pixel is kept, elsewhere the
//!   reconstruction is used;
//! * **sensor** — a gain or offset keeps a column's shape: the affine map `a·x + b` of the faulty
//!   column that best matches the reconstruction undoes it, keeping the column's real detail
//!   where the reconstruction has only its decoder's approximation. The map is used where it
//!   matches the reconstruction to within the decoder's clean error; a reading that still
//!   disagrees (a spike) and a column that no such map explains (noise, stuck, a step) take the
//!   reconstruction.
//!
//! "The decoder's clean error" is the root mean square of the stage-1 reconstruction error on
//! clean training windows, per colour channel and per sensor column, times a tolerance. It is
//! fitted before stage 2, so with an output path it measures stage 1's decoder, not the output
//! path's decoding of the correction that is repaired (a known approximation; refitting it
//! after stage 2 is open work).

use serde::{Deserialize, Serialize};

use crate::clean_prior::CleanPrior;
use crate::sensor_mix::SensorMix;

/// Spreads below this are raised to it: a column the decoder reproduces exactly would
/// otherwise keep nothing.
const MIN_SPREAD: f32 = 1e-3;

/// Fitted tolerances of the input-space repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRepair {
    /// A pixel, or a reading of a column's affine map, is kept when it is within `tolerance` ×
    /// the spread of the reconstruction.
    pub tolerance: f32,
    /// Root mean square of the stage-1 reconstruction error on clean training frames, per
    /// colour channel, [3].
    pub camera_spread: Vec<f32>,
    /// The same per sensor column (on the [0, 1] scale), [D].
    pub sensor_spread: Vec<f32>,
    /// A learned choice per sensor column between the correction, this rule's output and
    /// maps of the faulty column ([`SensorMix`]); `None` (runs before it, or where it did not
    /// beat the rule on validation) applies the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<SensorMix>,
}

/// Sums of squared reconstruction errors on clean data, batch by batch, for
/// [`InputRepair`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadSums {
    camera: [f64; 3],
    camera_n: f64,
    sensor: Vec<f64>,
    sensor_n: f64,
}

impl SpreadSums {
    /// Empty sums for windows of `sensor_dim` columns.
    pub fn new(sensor_dim: usize) -> Self {
        Self { camera: [0.0; 3], camera_n: 0.0, sensor: vec![0.0; sensor_dim], sensor_n: 0.0 }
    }

    /// Adds clean frames [B, 3, H, W] and windows [B, T, D] with their reconstructions.
    pub fn add(&mut self, camera: (&[f32], &[f32]), sensor: (&[f32], &[f32]), pixels: usize) {
        for (k, (x, r)) in camera.0.iter().zip(camera.1).enumerate() {
            self.camera[(k / pixels) % 3] += f64::from(x - r).powi(2);
        }
        self.camera_n += (camera.0.len() / 3) as f64;
        let d = self.sensor.len();
        for (k, (x, r)) in sensor.0.iter().zip(sensor.1).enumerate() {
            self.sensor[k % d] += f64::from(x - r).powi(2);
        }
        self.sensor_n += (sensor.0.len() / d.max(1)) as f64;
    }

    /// The repair with `tolerance`.
    pub fn finish(&self, tolerance: f32) -> InputRepair {
        let rms = |s: f64, n: f64| ((s / n.max(1.0)).sqrt() as f32).max(MIN_SPREAD);
        InputRepair {
            tolerance,
            camera_spread: self.camera.iter().map(|&s| rms(s, self.camera_n)).collect(),
            sensor_spread: self.sensor.iter().map(|&s| rms(s, self.sensor_n)).collect(),
            mix: None,
        }
    }
}

impl InputRepair {
    /// Repairs one decoded frame [3, H, W] in place from the input frame: input pixels that
    /// agree with it are kept.
    pub fn frame(&self, input: &[f32], decoded: &mut [f32]) {
        let pixels = input.len() / 3;
        for (k, (r, &x)) in decoded.iter_mut().zip(input).enumerate() {
            // a NaN input fails the comparison and keeps the reconstruction
            if (x - *r).abs() <= self.tolerance * self.camera_spread[k / pixels] {
                *r = x;
            }
        }
    }

    /// Repairs one decoded window [T, D] (time-major) in place from the input window with the
    /// columns' fault scores [D]: through the learned [`SensorMix`] where the repair has one,
    /// else by the rule ([`InputRepair::window`]); `prior` is the run's clean-window prior the
    /// learned repair's maps are fitted under.
    pub fn sensor(&self, prior: Option<&CleanPrior>, input: &[f32], decoded: &mut [f32], scores: &[f32]) {
        match &self.mix {
            Some(mix) => mix.window(self, prior, input, decoded, scores),
            None => self.window(input, decoded),
        }
    }

    /// Repairs one decoded window [T, D] (time-major) in place from the input window, column
    /// by column, by the rule.
    pub fn window(&self, input: &[f32], decoded: &mut [f32]) {
        let d = self.sensor_spread.len();
        let t = input.len() / d;
        let mut x = vec![0.0f32; t];
        let mut r = vec![0.0f32; t];
        for j in 0..d {
            for i in 0..t {
                x[i] = input[i * d + j];
                r[i] = decoded[i * d + j];
            }
            let tol = self.tolerance * self.sensor_spread[j];
            if let Some(y) = affine_match(&x, &r, tol) {
                for i in 0..t {
                    if (y[i] - r[i]).abs() <= tol {
                        decoded[i * d + j] = y[i];
                    }
                }
            }
        }
    }
}

/// The map `a·x + b` (a > 0) of the column `x` closest to `r` in least squares, if it comes
/// within `tol` of `r` in root mean square; `None` for a column it cannot explain (no
/// variation, a negative or undefined slope, non-finite readings, a poor match).
fn affine_match(x: &[f32], r: &[f32], tol: f32) -> Option<Vec<f32>> {
    let n = x.len() as f64;
    let mx = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let mr = r.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut vx, mut cxr) = (0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(r) {
        vx += (f64::from(a) - mx).powi(2);
        cxr += (f64::from(a) - mx) * (f64::from(b) - mr);
    }
    // a column without variation (stuck, dead, constant) carries no shape to keep
    if !(vx > 1e-12 && cxr > 0.0) {
        return None;
    }
    let a = cxr / vx;
    let b = mr - a * mx;
    let y: Vec<f32> = x.iter().map(|&v| (a * f64::from(v) + b) as f32).collect();
    let rms = (y.iter().zip(r).map(|(&p, &q)| f64::from(p - q).powi(2)).sum::<f64>() / n).sqrt();
    (rms <= f64::from(tol)).then_some(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repair(tolerance: f32, d: usize) -> InputRepair {
        InputRepair { tolerance, camera_spread: vec![0.02; 3], sensor_spread: vec![0.02; d], mix: None }
    }

    #[test]
    fn a_gain_or_offset_is_undone_from_the_window_itself() {
        let t = 16;
        let clean: Vec<f32> = (0..t).map(|i| 0.4 + 0.2 * (i as f32 * 0.5).sin()).collect();
        // the reconstruction: right on average, wrong in detail
        let recon: Vec<f32> = clean.iter().enumerate().map(|(i, &c)| c + 0.01 * ((i * 7) % 3) as f32 - 0.01).collect();
        for faulty in [clean.iter().map(|&c| 3.0 * c).collect::<Vec<_>>(), clean.iter().map(|&c| c + 0.3).collect()] {
            let mut out = recon.clone();
            repair(3.0, 1).window(&faulty, &mut out);
            let err = |v: &[f32]| v.iter().zip(&clean).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
            assert!(err(&out) < 0.2 * err(&recon), "{} vs {}", err(&out), err(&recon));
        }
    }

    #[test]
    fn noise_stuck_and_spikes_take_the_reconstruction() {
        let t = 16;
        let clean: Vec<f32> = (0..t).map(|i| 0.4 + 0.2 * (i as f32 * 0.5).sin()).collect();
        let noisy: Vec<f32> = clean.iter().enumerate().map(|(i, &c)| c + if i % 2 == 0 { 0.3 } else { -0.3 }).collect();
        let stuck = vec![0.5; t];
        let mut spiked = clean.clone();
        spiked[5] += 0.8;
        for (name, faulty) in [("noise", noisy), ("stuck", stuck), ("spike", spiked)] {
            let mut out = clean.clone();
            repair(3.0, 1).window(&faulty, &mut out);
            let worst = out.iter().zip(&clean).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst <= 0.06, "{name}: an output reading is {worst} from the clean one");
        }
    }

    #[test]
    fn untouched_pixels_are_kept_and_changed_ones_rebuilt() {
        let clean = vec![0.5f32; 3 * 4];
        let mut faulty = clean.clone();
        faulty[1] = 1.0;
        faulty[6] = f32::NAN;
        let mut out = vec![0.51f32; 12];
        repair(3.0, 1).frame(&faulty, &mut out);
        for (k, &v) in out.iter().enumerate() {
            let want = if k == 1 || k == 6 { 0.51 } else { 0.5 };
            assert_eq!(v, want, "pixel {k}");
        }
    }

    #[test]
    fn spreads_are_per_channel_and_column() {
        let mut sums = SpreadSums::new(2);
        // two pixels per channel, errors 0.1 in the red channel only; column 1 error 0.2
        let camera = vec![0.0f32; 6];
        let recon = vec![0.1, 0.1, 0.0, 0.0, 0.0, 0.0];
        sums.add((&camera, &recon), (&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.2, 0.0, 0.2]), 2);
        let r = sums.finish(2.0);
        assert!((r.camera_spread[0] - 0.1).abs() < 1e-6);
        assert_eq!(r.camera_spread[1], MIN_SPREAD);
        assert_eq!(r.sensor_spread[0], MIN_SPREAD);
        assert!((r.sensor_spread[1] - 0.2).abs() < 1e-6);
    }
}
