//! A picture of the catalogue: every camera fault at several severities on one frame.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{CameraFault, Frame};

/// An RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixels, [height, width, 3].
    pub pixels: Vec<u8>,
}

/// One row per camera fault, one column per severity: the frame ([3, H, W] in [0, 1]) with the
/// fault applied, tiles separated by a 2-pixel white gap. `previous` feeds the frozen-frame fault.
pub fn camera_grid(frame: &[f32], previous: &[f32], height: usize, width: usize, severities: &[f32], seed: u64) -> Rgb {
    const GAP: usize = 2;
    let faults = CameraFault::ALL;
    let (gw, gh) = (severities.len() * (width + GAP) + GAP, faults.len() * (height + GAP) + GAP);
    let mut pixels = vec![255u8; gw * gh * 3];
    let plane = height * width;
    for (row, fault) in faults.iter().enumerate() {
        for (col, &s) in severities.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let input = Frame { pixels: frame, height, width, previous: Some(previous) };
            let out = fault.apply(input, s, &mut rng).values;
            let (top, left) = (GAP + row * (height + GAP), GAP + col * (width + GAP));
            for r in 0..height {
                for c in 0..width {
                    for ch in 0..3 {
                        let v = (out[ch * plane + r * width + c].clamp(0.0, 1.0) * 255.0).round() as u8;
                        pixels[((top + r) * gw + left + c) * 3 + ch] = v;
                    }
                }
            }
        }
    }
    Rgb { width: gw, height: gh, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_has_a_tile_per_fault_and_severity_and_severity_0_is_the_frame() {
        let (h, w) = (16, 16);
        let frame: Vec<f32> = (0..3 * h * w).map(|k| (k % 50) as f32 / 50.0).collect();
        let g = camera_grid(&frame, &frame, h, w, &[0.0, 1.0], 1);
        assert_eq!((g.width, g.height), (2 * 18 + 2, CameraFault::ALL.len() * 18 + 2));
        // the first tile of every row is the untouched frame
        for row in 0..CameraFault::ALL.len() {
            let top = 2 + row * 18;
            let px = |r: usize, c: usize, ch: usize| g.pixels[((top + r) * g.width + 2 + c) * 3 + ch];
            assert_eq!(px(3, 5, 1), (frame[256 + 3 * 16 + 5] * 255.0).round() as u8);
        }
    }
}
