//! Camera faults on a [3, H, W] frame scaled to [0, 1].

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::{clip01, Faulted, UnknownFault};

/// A frame to corrupt, with the previous frame of the same stream when there is one.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Pixels, [3, H, W] in [0, 1].
    pub pixels: &'a [f32],
    /// Height H.
    pub height: usize,
    /// Width W.
    pub width: usize,
    /// An earlier frame of the same stream, used by [`CameraFault::Frozen`].
    pub previous: Option<&'a [f32]>,
}

/// Camera fault kinds. Each documents its physical meaning and what severity s ∈ [0, 1] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraFault {
    /// Test fault (evaluation protocol): sensor read-out noise. Additive N(0, (0.5·s)²) on a
    /// random 50 % of the pixels (all three channels of a chosen pixel), clipped to [0, 1].
    Noise,
    /// Defocus or vibration: Gaussian blur with σ = s·W/16 pixels.
    Blur,
    /// A body in front of the lens: a dark block covering s·60 % of each side at a random place.
    Occlusion,
    /// Exposure / lighting change: every pixel shifted by ±0.6·s (random sign), clipped.
    Brightness,
    /// The stream repeats an old frame (driver hang): the previous frame replaces the current
    /// one for any s > 0; without a previous frame nothing changes.
    Frozen,
    /// Lens cap or lost illumination: pixels scaled by 1 − s (black at s = 1).
    Black,
    /// Dead and hot pixels / bit errors: 10·s % of the pixels stuck at 0 or 1 (all channels).
    SaltPepper,
    /// Camera or cell vibration during exposure: box blur of 1 + s·W/8 pixels along a random
    /// axis (rows or columns).
    MotionBlur,
    /// Flat lighting or a fogged lens: contrast around the frame mean scaled by 1 − 0.8·s.
    Contrast,
    /// White-balance error: each channel shifted by up to ±0.3·s.
    ColourShift,
    /// Over-exposure: pixels pushed toward white, x + s·(1 − x) (saturated at s = 1).
    White,
    /// Lens flare / glare from a light source: a bright radial blob of radius (0.1 + 0.3·s)·W
    /// and peak s at a random place.
    Glare,
    /// Compression artefacts: 8×8 blocks blended toward their mean by s.
    Blocks,
    /// Dust and dirt on the lens: 3 + 25·s soft dark spots of radius up to (1 + 2·s)·W/64,
    /// darkening by up to 60·s %.
    Dust,
    /// Water drops on the lens: 1 + 4·s round drops of radius (0.05 + 0.1·s)·W that refract
    /// (magnify the scene behind them ×1.7) and brighten slightly.
    Drops,
    /// Scratches on the lens cover: 1 + 5·s bright straight lines, 1 pixel wide.
    Scratches,
    /// Smoke or haze: a fractal (two-octave value-noise) veil blended toward light grey with
    /// strength up to 0.8·s.
    Haze,
    /// Dropped frame / lost packets (GigE Vision over a busy network): the frame arrives
    /// incomplete; a band of ⌈s·H⌉ rows from a random line on is missing and reads 0 (the whole
    /// frame at s = 1).
    Dropped,
}

impl CameraFault {
    /// Every camera fault, in a fixed order.
    pub const ALL: [CameraFault; 18] = [
        Self::Noise,
        Self::Blur,
        Self::Occlusion,
        Self::Brightness,
        Self::Frozen,
        Self::Black,
        Self::SaltPepper,
        Self::MotionBlur,
        Self::Contrast,
        Self::ColourShift,
        Self::White,
        Self::Glare,
        Self::Blocks,
        Self::Dust,
        Self::Drops,
        Self::Scratches,
        Self::Haze,
        Self::Dropped,
    ];

    /// The fault's name as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Noise => "noise",
            Self::Blur => "blur",
            Self::Occlusion => "occlusion",
            Self::Brightness => "brightness",
            Self::Frozen => "frozen",
            Self::Black => "black",
            Self::SaltPepper => "salt_pepper",
            Self::MotionBlur => "motion_blur",
            Self::Contrast => "contrast",
            Self::ColourShift => "colour_shift",
            Self::White => "white",
            Self::Glare => "glare",
            Self::Blocks => "blocks",
            Self::Dust => "dust",
            Self::Drops => "drops",
            Self::Scratches => "scratches",
            Self::Haze => "haze",
            Self::Dropped => "dropped",
        }
    }

    /// Looks a fault up by name.
    pub fn from_name(name: &str) -> Result<Self, UnknownFault> {
        Self::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| UnknownFault {
            modality: "camera",
            name: name.into(),
            known: Self::ALL.map(Self::name).join(", "),
        })
    }

    /// Applies the fault at severity `s` (clamped to [0, 1]).
    pub fn apply(self, frame: Frame<'_>, s: f32, rng: &mut impl Rng) -> Faulted {
        let s = s.clamp(0.0, 1.0);
        let x = frame.pixels;
        if s == 0.0 {
            return Faulted::identity(x);
        }
        let plane = frame.height * frame.width;
        debug_assert_eq!(x.len(), 3 * plane);
        let mut out = x.to_vec();
        let mut region = vec![false; x.len()];
        match self {
            Self::Noise => {
                let normal = Normal::new(0.0f32, 0.5 * s).expect("finite sigma");
                for p in 0..plane {
                    if rng.random_bool(0.5) {
                        for c in 0..3 {
                            let k = c * plane + p;
                            out[k] = clip01(x[k] + normal.sample(rng));
                            region[k] = true;
                        }
                    }
                }
            }
            Self::Blur => {
                let sigma = s * frame.width as f32 / 16.0;
                out = gaussian_blur(x, frame.height, frame.width, sigma);
                region.fill(true);
            }
            Self::Dropped => {
                let rows = ((s * frame.height as f32).ceil() as usize).clamp(1, frame.height);
                let top = rng.random_range(0..=frame.height - rows);
                for c in 0..3 {
                    let band = c * plane + top * frame.width..c * plane + (top + rows) * frame.width;
                    out[band.clone()].fill(0.0);
                    region[band].fill(true);
                }
            }
            Self::Occlusion => {
                let bh = ((0.6 * s * frame.height as f32).round() as usize).max(1);
                let bw = ((0.6 * s * frame.width as f32).round() as usize).max(1);
                let top = rng.random_range(0..=frame.height - bh);
                let left = rng.random_range(0..=frame.width - bw);
                let shade: f32 = rng.random_range(0.05..0.2);
                for c in 0..3 {
                    for r in top..top + bh {
                        for col in left..left + bw {
                            let k = c * plane + r * frame.width + col;
                            out[k] = shade;
                            region[k] = true;
                        }
                    }
                }
            }
            Self::Brightness => {
                let shift = if rng.random_bool(0.5) { 0.6 * s } else { -0.6 * s };
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = clip01(v + shift);
                }
                region.fill(true);
            }
            Self::Frozen => {
                if let Some(prev) = frame.previous {
                    out.copy_from_slice(prev);
                    region.fill(true);
                }
            }
            Self::Black => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v * (1.0 - s);
                }
                region.fill(true);
            }
            Self::SaltPepper => {
                for p in 0..plane {
                    if rng.random_bool(f64::from(0.1 * s)) {
                        let v = if rng.random_bool(0.5) { 1.0 } else { 0.0 };
                        for c in 0..3 {
                            out[c * plane + p] = v;
                            region[c * plane + p] = true;
                        }
                    }
                }
            }
            Self::MotionBlur => {
                let len = 1 + (s * frame.width as f32 / 8.0).round() as usize;
                let kernel = vec![1.0 / (2 * len + 1) as f32; 2 * len + 1];
                let along_rows = rng.random_bool(0.5);
                for c in 0..3 {
                    let span = c * plane..(c + 1) * plane;
                    blur_pass(&x[span.clone()], &mut out[span], frame.height, frame.width, &kernel, along_rows);
                }
                region.fill(true);
            }
            Self::Contrast => {
                let mean = x.iter().sum::<f32>() / x.len() as f32;
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = clip01(mean + (v - mean) * (1.0 - 0.8 * s));
                }
                region.fill(true);
            }
            Self::ColourShift => {
                for c in 0..3 {
                    let shift = rng.random_range(-0.3..=0.3) * s;
                    for k in c * plane..(c + 1) * plane {
                        out[k] = clip01(x[k] + shift);
                    }
                }
                region.fill(true);
            }
            Self::White => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v + s * (1.0 - v);
                }
                region.fill(true);
            }
            Self::Glare => {
                let radius = (0.1 + 0.3 * s) * frame.width as f32;
                let (cy, cx) = (rng.random_range(0.0..frame.height as f32), rng.random_range(0.0..frame.width as f32));
                for r in 0..frame.height {
                    for col in 0..frame.width {
                        let d2 = (r as f32 - cy).powi(2) + (col as f32 - cx).powi(2);
                        let glow = s * (-d2 / (radius * radius)).exp();
                        for c in 0..3 {
                            let k = c * plane + r * frame.width + col;
                            out[k] = x[k] + glow * (1.0 - x[k]);
                        }
                    }
                }
                region.fill(true);
            }
            Self::Blocks => {
                for c in 0..3 {
                    for by in (0..frame.height).step_by(8) {
                        for bx in (0..frame.width).step_by(8) {
                            let cells: Vec<usize> = (by..(by + 8).min(frame.height))
                                .flat_map(|r| {
                                    (bx..(bx + 8).min(frame.width)).map(move |col| c * plane + r * frame.width + col)
                                })
                                .collect();
                            let mean = cells.iter().map(|&k| x[k]).sum::<f32>() / cells.len() as f32;
                            for k in cells {
                                out[k] = x[k] + s * (mean - x[k]);
                            }
                        }
                    }
                }
                region.fill(true);
            }
            Self::Dust => {
                let (h, w) = (frame.height as f32, frame.width as f32);
                for _ in 0..3 + (25.0 * s).round() as usize {
                    let (cy, cx) = (rng.random_range(0.0..h), rng.random_range(0.0..w));
                    let radius = rng.random_range(1.0..=1.0 + 2.0 * s) * w / 64.0 + 0.5;
                    let dark = rng.random_range(0.3..=0.6) * s;
                    for r in 0..frame.height {
                        for col in 0..frame.width {
                            let d2 = (r as f32 - cy).powi(2) + (col as f32 - cx).powi(2);
                            if d2 <= 4.0 * radius * radius {
                                let f = 1.0 - dark * (-d2 / (radius * radius)).exp();
                                for c in 0..3 {
                                    let k = c * plane + r * frame.width + col;
                                    out[k] *= f;
                                    region[k] = true;
                                }
                            }
                        }
                    }
                }
            }
            Self::Drops => {
                let (h, w) = (frame.height as f32, frame.width as f32);
                for _ in 0..1 + (4.0 * s).round() as usize {
                    let (cy, cx) = (rng.random_range(0.0..h), rng.random_range(0.0..w));
                    let radius = (0.05 + 0.1 * s) * w;
                    for r in 0..frame.height {
                        for col in 0..frame.width {
                            let (dy, dx) = (r as f32 - cy, col as f32 - cx);
                            if dy * dy + dx * dx <= radius * radius {
                                let sy = (cy + dy * 0.6).round().clamp(0.0, h - 1.0) as usize;
                                let sx = (cx + dx * 0.6).round().clamp(0.0, w - 1.0) as usize;
                                for c in 0..3 {
                                    let k = c * plane + r * frame.width + col;
                                    out[k] = clip01(x[c * plane + sy * frame.width + sx] * 1.1 + 0.03);
                                    region[k] = true;
                                }
                            }
                        }
                    }
                }
            }
            Self::Scratches => {
                let (h, w) = (frame.height as f32, frame.width as f32);
                for _ in 0..1 + (5.0 * s).round() as usize {
                    let (y0, x0) = (rng.random_range(0.0..h), rng.random_range(0.0..w));
                    let angle = rng.random_range(0.0..std::f32::consts::PI);
                    let len = rng.random_range(0.3..0.9) * w;
                    for step in 0..len.ceil() as usize {
                        let (r, col) = (y0 + angle.sin() * step as f32, x0 + angle.cos() * step as f32);
                        if (0.0..h).contains(&r) && (0.0..w).contains(&col) {
                            let p = r as usize * frame.width + col as usize;
                            for c in 0..3 {
                                out[c * plane + p] = 0.92;
                                region[c * plane + p] = true;
                            }
                        }
                    }
                }
            }
            Self::Haze => {
                let veil = value_noise(frame.height, frame.width, rng);
                for r in 0..frame.height {
                    for col in 0..frame.width {
                        let a = 0.8 * s * veil[r * frame.width + col];
                        for c in 0..3 {
                            let k = c * plane + r * frame.width + col;
                            out[k] = x[k] * (1.0 - a) + 0.85 * a;
                        }
                    }
                }
                region.fill(true);
            }
        }
        Faulted::within(x, out, &region)
    }
}

/// Smooth noise in [0, 1] over an [h, w] plane: random values on 4×4 and 8×8 grids, bilinearly
/// interpolated and mixed 2:1 (a two-octave fractal, the cheap cousin of Perlin noise).
fn value_noise(h: usize, w: usize, rng: &mut impl Rng) -> Vec<f32> {
    let mut field = vec![0.0; h * w];
    for (cells, weight) in [(4usize, 2.0 / 3.0), (8, 1.0 / 3.0)] {
        let grid: Vec<f32> = (0..(cells + 1) * (cells + 1)).map(|_| rng.random()).collect();
        for r in 0..h {
            let gy = r as f32 / h as f32 * cells as f32;
            let (y0, fy) = (gy.floor() as usize, gy.fract());
            for c in 0..w {
                let gx = c as f32 / w as f32 * cells as f32;
                let (x0, fx) = (gx.floor() as usize, gx.fract());
                let at = |y: usize, x: usize| grid[y * (cells + 1) + x];
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1) * fx;
                let bottom = at(y0 + 1, x0) * (1.0 - fx) + at(y0 + 1, x0 + 1) * fx;
                field[r * w + c] += weight * (top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    field
}

/// Separable Gaussian blur of each channel, edges clamped.
fn gaussian_blur(x: &[f32], h: usize, w: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius).map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp()).collect();
    let norm: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / norm).collect();
    let plane = h * w;
    let mut tmp = vec![0.0; x.len()];
    let mut out = vec![0.0; x.len()];
    for c in 0..3 {
        let span = c * plane..(c + 1) * plane;
        blur_pass(&x[span.clone()], &mut tmp[span.clone()], h, w, &kernel, true);
        blur_pass(&tmp[span.clone()], &mut out[span], h, w, &kernel, false);
    }
    out
}

/// One 1-D pass of a centred kernel over a [h, w] plane, along rows or along columns.
fn blur_pass(src: &[f32], dst: &mut [f32], h: usize, w: usize, kernel: &[f32], along_rows: bool) {
    let radius = (kernel.len() / 2) as isize;
    for r in 0..h {
        for col in 0..w {
            let mut acc = 0.0;
            for (k, &kv) in kernel.iter().enumerate() {
                let off = k as isize - radius;
                let (rr, cc) = if along_rows {
                    (r, (col as isize + off).clamp(0, w as isize - 1) as usize)
                } else {
                    ((r as isize + off).clamp(0, h as isize - 1) as usize, col)
                };
                acc += kv * src[rr * w + cc];
            }
            dst[r * w + col] = acc;
        }
    }
}
