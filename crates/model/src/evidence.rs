//! Evidence for the detector beside the latent: per sensor column and per image region, how far
//! the input departs from what clean data looks like.
//!
//! The stage-1 latent is the detector's core, but measured on the arm demo run (README, severity
//! sweep) a detector reading only the latent was near-blind to sensor noise, spikes, steps,
//! stuck values and drift and to local camera damage: the encoders compress those away. Each
//! of these faults has a signature that a few numbers per channel expose:
//!
//! * the stage-1 autoencoder's **residual** (it was trained on clean data only, so whatever it
//!   cannot reproduce is unlike clean data — the generic evidence for fault kinds never seen);
//! * the window's **temporal structure**: roughness (noise, spikes), the largest jump (steps,
//!   spikes), the share of readings equal to the one before (stuck, dead), the distance outside
//!   the training range (gain, offset, drift), the level;
//! * per image region: residual, mean colour, edge energy and the share of clipped pixels
//!   (drops, scratches, dust, glare, colour shift).
//!
//! Features are computed on the host from the input and its reconstruction, standardised with
//! the mean and spread of clean training windows ([`Evidence::fit`]) and bounded, so that no
//! input, however wild, feeds the detector values beyond ±[`BOUND`].
//!
//! This module does not use burn: the same numbers are computed for training, evaluation and
//! serving from host buffers.

use serde::{Deserialize, Serialize};

use crate::autoencoder::Stage1Config;

/// Features per sensor column.
pub const SENSOR_FEATURES: usize = 6;
/// Features per image region.
pub const CAMERA_FEATURES: usize = 6;
/// Standardised features are clamped to ±BOUND: a gain of 6 or a NaN cannot blow up the
/// detector's input.
pub const BOUND: f32 = 8.0;
/// Smallest spread used when standardising: a feature that never varies on clean data (a
/// constant column) still gets a finite scale.
const MIN_STD: f32 = 0.05;
const EPS: f32 = 1e-5;

/// The evidence the detector reads, with the clean statistics that standardise it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Image regions per side: the frame is cut into grid × grid regions, each with its own
    /// score.
    pub grid: usize,
    /// Sensor columns D.
    pub sensor_dim: usize,
    /// Mean of each raw feature over clean training windows.
    pub mean: Vec<f32>,
    /// Spread of each raw feature over clean training windows.
    pub std: Vec<f32>,
}

impl Evidence {
    /// Unfitted evidence (mean 0, spread 1) for this geometry; [`Evidence::fit`] replaces it.
    pub fn new(geometry: &Stage1Config, grid: usize) -> Self {
        let f = Self::width_for(geometry.sensor_dim, grid);
        Self { grid, sensor_dim: geometry.sensor_dim, mean: vec![0.0; f], std: vec![1.0; f] }
    }

    fn width_for(sensor_dim: usize, grid: usize) -> usize {
        sensor_dim * SENSOR_FEATURES + grid * grid * CAMERA_FEATURES
    }

    /// Features per sample F.
    pub fn width(&self) -> usize {
        Self::width_for(self.sensor_dim, self.grid)
    }

    /// Channels with a score of their own: the sensor columns, then the image regions
    /// (row-major from the top left).
    pub fn channels(&self) -> usize {
        self.sensor_dim + self.grid * self.grid
    }

    /// Raw (unstandardised) features, [B, F]: per sensor column, then per image region.
    /// `input` and its stage-1 reconstruction are on the [0, 1] scale, frames [B, 3, H, W],
    /// windows [B, T, D].
    pub fn raw(
        &self,
        geometry: &Stage1Config,
        camera: &[f32],
        sensor: &[f32],
        recon_camera: &[f32],
        recon_sensor: &[f32],
    ) -> Vec<f32> {
        let s = self.sensor_part(geometry, sensor, recon_sensor);
        let c = self.camera_part(geometry, camera, recon_camera);
        self.join(&s, &c)
    }

    /// Features per sample of the sensor part.
    pub fn sensor_width(&self) -> usize {
        self.sensor_dim * SENSOR_FEATURES
    }

    /// Features per sample of the camera part.
    pub fn camera_width(&self) -> usize {
        self.grid * self.grid * CAMERA_FEATURES
    }

    /// The sensor part of [`Evidence::raw`], [B, D × SENSOR_FEATURES].
    pub fn sensor_part(&self, geometry: &Stage1Config, sensor: &[f32], recon_sensor: &[f32]) -> Vec<f32> {
        let (t, d) = (geometry.window, geometry.sensor_dim);
        let win = t * d;
        let mut out = Vec::with_capacity(sensor.len() / win * self.sensor_width());
        for (x, r) in sensor.chunks_exact(win).zip(recon_sensor.chunks_exact(win)) {
            for j in 0..d {
                out.extend(column_features(x, r, t, d, j));
            }
        }
        out
    }

    /// The camera part of [`Evidence::raw`], [B, grid² × CAMERA_FEATURES].
    pub fn camera_part(&self, geometry: &Stage1Config, camera: &[f32], recon_camera: &[f32]) -> Vec<f32> {
        let (h, w) = (geometry.height, geometry.width);
        let frame = 3 * h * w;
        let mut out = Vec::with_capacity(camera.len() / frame * self.camera_width());
        for (x, r) in camera.chunks_exact(frame).zip(recon_camera.chunks_exact(frame)) {
            for gy in 0..self.grid {
                for gx in 0..self.grid {
                    out.extend(region_features(x, r, h, w, self.grid, gy, gx));
                }
            }
        }
        out
    }

    /// Both parts side by side per sample, [B, F].
    pub fn join(&self, sensor_part: &[f32], camera_part: &[f32]) -> Vec<f32> {
        let (ws, wc) = (self.sensor_width(), self.camera_width());
        sensor_part
            .chunks_exact(ws)
            .zip(camera_part.chunks_exact(wc))
            .flat_map(|(s, c)| s.iter().chain(c).copied())
            .collect()
    }

    /// Fits the clean statistics on raw features [N, F] of clean windows.
    pub fn fit(&mut self, raw: &[f32]) {
        let f = self.width();
        let n = raw.len() / f;
        for k in 0..f {
            let col = || raw.iter().skip(k).step_by(f).copied().filter(|v| v.is_finite());
            let count = col().count().max(1) as f64;
            let mean = col().map(f64::from).sum::<f64>() / count;
            let var = col().map(|v| (f64::from(v) - mean).powi(2)).sum::<f64>() / count;
            self.mean[k] = mean as f32;
            self.std[k] = (var.sqrt() as f32).max(MIN_STD);
        }
        debug_assert!(n > 0 || raw.is_empty());
    }

    /// Standardised and bounded features, [B, F]; a non-finite feature (NaN input) reads as
    /// the bound.
    pub fn standardise(&self, raw: &[f32]) -> Vec<f32> {
        let f = self.width();
        raw.iter()
            .enumerate()
            .map(|(k, &v)| {
                let z = (v - self.mean[k % f]) / self.std[k % f];
                if z.is_finite() {
                    z.clamp(-BOUND, BOUND)
                } else {
                    BOUND
                }
            })
            .collect()
    }

    /// Per-channel fault labels from the change a fault made, [B, channels]: a sensor column is
    /// faulty when any of its readings changed, an image region when its pixels changed by
    /// more than [`REGION_CHANGE`] on average.
    pub fn channel_labels(
        &self,
        geometry: &Stage1Config,
        clean: (&[f32], &[f32]),
        faulty: (&[f32], &[f32]),
    ) -> Vec<f32> {
        let (h, w, t, d) = (geometry.height, geometry.width, geometry.window, geometry.sensor_dim);
        let (frame, win) = (3 * h * w, t * d);
        let b = clean.1.len() / win;
        let g = self.grid;
        let (rh, rw) = (h / g, w / g);
        let mut out = Vec::with_capacity(b * self.channels());
        for i in 0..b {
            let (xs, fs) = (&clean.1[i * win..(i + 1) * win], &faulty.1[i * win..(i + 1) * win]);
            for j in 0..d {
                let changed = (0..t).any(|r| xs[r * d + j].to_bits() != fs[r * d + j].to_bits());
                out.push(f32::from(u8::from(changed)));
            }
            let (xc, fc) = (&clean.0[i * frame..(i + 1) * frame], &faulty.0[i * frame..(i + 1) * frame]);
            for gy in 0..g {
                for gx in 0..g {
                    let mut sum = 0.0f32;
                    for c in 0..3 {
                        for y in gy * rh..(gy + 1) * rh {
                            let row = c * h * w + y * w;
                            for x in gx * rw..(gx + 1) * rw {
                                sum += (xc[row + x] - fc[row + x]).abs();
                            }
                        }
                    }
                    out.push(f32::from(u8::from(sum / (3 * rh * rw) as f32 > REGION_CHANGE)));
                }
            }
        }
        out
    }
}

/// Mean absolute change (on the [0, 1] scale) above which an image region counts as faulty:
/// about one grey level in 255.
pub const REGION_CHANGE: f32 = 0.004;

fn ln(v: f32) -> f32 {
    (v + EPS).ln()
}

/// residual, roughness, largest jump, share of repeated readings, distance outside [0, 1], level
fn column_features(x: &[f32], r: &[f32], t: usize, d: usize, j: usize) -> [f32; SENSOR_FEATURES] {
    let v = |k: usize| x[k * d + j];
    let residual = (0..t).map(|k| (v(k) - r[k * d + j]).powi(2)).sum::<f32>() / t as f32;
    let rough = if t > 2 {
        (2..t).map(|k| (v(k) - 2.0 * v(k - 1) + v(k - 2)).abs()).sum::<f32>() / (t - 2) as f32
    } else {
        0.0
    };
    let jump = (1..t).map(|k| (v(k) - v(k - 1)).abs()).fold(0.0f32, f32::max);
    let repeated = (1..t).filter(|&k| v(k).to_bits() == v(k - 1).to_bits()).count() as f32 / (t - 1).max(1) as f32;
    let outside = (0..t).map(|k| (v(k) - 1.0).max(-v(k)).max(0.0)).fold(0.0f32, f32::max);
    let level = (0..t).map(v).sum::<f32>() / t as f32;
    // the training range is fitted on the training windows, where nothing lies outside it: a
    // floor of 0.01 keeps a new episode's harmless excursion of 10⁻⁶ from reading as extreme
    [ln(residual), ln(rough), ln(jump), repeated, (outside + 0.01).ln(), level]
}

/// residual, mean red, green, blue, edge energy, share of clipped values
fn region_features(x: &[f32], r: &[f32], h: usize, w: usize, g: usize, gy: usize, gx: usize) -> [f32; CAMERA_FEATURES] {
    let (rh, rw) = (h / g, w / g);
    let n = (rh * rw) as f32;
    let (mut residual, mut edges, mut clipped) = (0.0f32, 0.0f32, 0usize);
    let mut means = [0.0f32; 3];
    for (c, mean) in means.iter_mut().enumerate() {
        let plane = c * h * w;
        for y in gy * rh..(gy + 1) * rh {
            for xx in gx * rw..(gx + 1) * rw {
                let k = plane + y * w + xx;
                let v = x[k];
                residual += (v - r[k]).powi(2);
                *mean += v;
                if xx + 1 < w {
                    edges += (x[k + 1] - v).abs();
                }
                if y + 1 < h {
                    edges += (x[k + w] - v).abs();
                }
                clipped += usize::from(v <= 0.0 || v >= 1.0);
            }
        }
        *mean /= n;
    }
    let all = 3.0 * n;
    [ln(residual / all), means[0], means[1], means[2], ln(edges / all), clipped as f32 / all]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Stage1Config {
        Stage1Config::new(16, 16, 3, 8)
    }

    #[test]
    fn a_stuck_column_shows_in_its_own_features_only() {
        let g = geometry();
        let ev = Evidence::new(&g, 2);
        let mut sensor: Vec<f32> = (0..8 * 3).map(|k| 0.5 + 0.05 * ((k as f32) * 0.7).sin()).collect();
        let camera = vec![0.5; 3 * 16 * 16];
        let clean = ev.raw(&g, &camera, &sensor, &camera, &sensor);
        for r in 1..8 {
            sensor[r * 3 + 1] = sensor[1];
        }
        let stuck = ev.raw(&g, &camera, &sensor, &camera, &sensor);
        let repeated = |f: &[f32], j: usize| f[j * SENSOR_FEATURES + 3];
        assert_eq!(repeated(&stuck, 1), 1.0);
        assert_eq!(repeated(&clean, 1), 0.0);
        assert_eq!(repeated(&stuck, 0), repeated(&clean, 0));
        assert_eq!(repeated(&stuck, 2), repeated(&clean, 2));
    }

    #[test]
    fn standardised_features_are_bounded_and_finite() {
        let g = geometry();
        let mut ev = Evidence::new(&g, 2);
        let sensor: Vec<f32> = (0..2 * 8 * 3).map(|k| (k as f32 * 0.37).sin() * 0.5 + 0.5).collect();
        let camera: Vec<f32> = (0..2 * 3 * 16 * 16).map(|k| (k % 7) as f32 / 7.0).collect();
        ev.fit(&ev.raw(&g, &camera, &sensor, &camera, &sensor));
        let mut wild = sensor.clone();
        wild[3] = f32::NAN;
        wild[5] = 1e9;
        let z = ev.standardise(&ev.raw(&g, &camera, &wild, &camera, &sensor));
        assert!(z.iter().all(|v| v.is_finite() && v.abs() <= BOUND));
        assert!(z.contains(&BOUND));
    }

    #[test]
    fn channel_labels_point_at_the_changed_column_and_region() {
        let g = geometry();
        let ev = Evidence::new(&g, 2);
        let sensor = vec![0.5; 8 * 3];
        let camera = vec![0.5; 3 * 16 * 16];
        let mut fs = sensor.clone();
        fs[4 * 3 + 2] = 0.9;
        let mut fc = camera.clone();
        // bottom-right region (rows 8..16, columns 8..16), green plane
        for y in 8..16 {
            for x in 8..16 {
                fc[16 * 16 + y * 16 + x] = 1.0;
            }
        }
        let labels = ev.channel_labels(&g, (&camera, &sensor), (&fc, &fs));
        assert_eq!(labels, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    }
}
