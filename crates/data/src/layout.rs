//! Frame layouts: the contract's channel-first frames [3, H, W] and the interleaved pixels of
//! image files and codecs (RGB, RGBA), converted in one place.

/// A channel-first frame [3, H, W] as interleaved RGB into `rgb` (same length).
pub fn interleave_into(frame: &[u8], rgb: &mut [u8]) {
    let plane = frame.len() / 3;
    for (p, px) in rgb.chunks_exact_mut(3).take(plane).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            *v = frame[c * plane + p];
        }
    }
}

/// Interleaved pixels of `channels` values each (RGB, or RGBA whose alpha is dropped) into the
/// channel-first frame [3, H, W] `frame` (H·W = `frame.len() / 3` pixels).
pub fn channel_first_into(pixels: &[u8], channels: usize, frame: &mut [u8]) {
    let plane = frame.len() / 3;
    for (p, px) in pixels.chunks_exact(channels).take(plane).enumerate() {
        for c in 0..3 {
            frame[c * plane + p] = px[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_to_interleaved_pixels_and_back() {
        // two pixels: (1, 2, 3) and (4, 5, 6)
        let frame = [1, 4, 2, 5, 3, 6];
        let mut rgb = [0; 6];
        interleave_into(&frame, &mut rgb);
        assert_eq!(rgb, [1, 2, 3, 4, 5, 6]);
        let mut back = [0; 6];
        channel_first_into(&rgb, 3, &mut back);
        assert_eq!(back, frame);
        let rgba = [1, 2, 3, 255, 4, 5, 6, 255];
        channel_first_into(&rgba, 4, &mut back);
        assert_eq!(back, frame);
    }
}
