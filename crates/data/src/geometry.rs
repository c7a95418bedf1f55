//! The shape of one model sample, shared by the server that checks requests against it and the
//! clients that build them.

use serde::{Deserialize, Serialize};

/// One sample: a frame [3, height, width] and a window of `window` readings of every column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// Frame height, pixels.
    pub height: usize,
    /// Frame width, pixels.
    pub width: usize,
    /// Readings per window.
    pub window: usize,
    /// Sensor column names, in order.
    pub columns: Vec<String>,
}

impl Geometry {
    /// Values in one frame.
    pub fn frame_len(&self) -> usize {
        3 * self.height * self.width
    }

    /// Values in one window.
    pub fn window_len(&self) -> usize {
        self.window * self.columns.len()
    }
}
