//! On-the-fly fault injection for stage 2.

use mmguard_faults::{CameraFault, Frame, SensorFault, Window};
use mmguard_model::{HostBatch, Stage1Config};
use rand::Rng;

use crate::config::TrainingFaults;

/// What was done to one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Left clean.
    Clean,
    /// Camera corrupted.
    Camera,
    /// Sensor corrupted.
    Sensor,
    /// Both corrupted at once (a common-cause failure: power dip, welding arc, smoke).
    Both,
}

impl Injected {
    /// Detection labels (camera, sensor).
    pub fn labels(self) -> [f32; 2] {
        match self {
            Self::Clean => [0.0, 0.0],
            Self::Camera => [1.0, 0.0],
            Self::Sensor => [0.0, 1.0],
            Self::Both => [1.0, 1.0],
        }
    }
}

fn pick<T: Copy>(items: &[(T, f64)], rng: &mut impl Rng) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0.0..total);
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

impl TrainingFaults {
    /// Draws what happens to one sample and corrupts its frame ([3, H, W]) or window ([T, D])
    /// in place; `previous` is an earlier frame of the same episode, for faults that need one.
    pub fn inject<R: Rng>(
        &self,
        frame: &mut [f32],
        previous: Option<&[f32]>,
        window: &mut [f32],
        geometry: &Stage1Config,
        rng: &mut R,
    ) -> Injected {
        let (height, width) = (geometry.height, geometry.width);
        let (len, columns) = (geometry.window, geometry.sensor_dim);
        let u: f64 = rng.random();
        let kind = if u < self.clean_share {
            Injected::Clean
        } else if u < self.clean_share + self.camera_share {
            Injected::Camera
        } else if u < self.clean_share + self.camera_share + self.both_share {
            Injected::Both
        } else {
            Injected::Sensor
        };
        let severity = rng.random_range(self.severity[0]..=self.severity[1]);
        let camera_fault = |frame: &mut [f32], rng: &mut R| {
            let fault = pick(&self.camera, rng);
            let f = fault.apply(Frame { pixels: frame, height, width, previous }, severity, rng);
            frame.copy_from_slice(&f.values);
        };
        let sensor_fault = |window: &mut [f32], severity: f32, rng: &mut R| {
            let fault = pick(&self.sensor, rng);
            let f = fault.apply(Window { values: window, len, columns }, severity, rng);
            window.copy_from_slice(&f.values);
        };
        match kind {
            Injected::Clean if self.clean_jitter > 0.0 => {
                // healthy data varies too: a small brightness shift and sensor noise, labelled clean
                let j = rng.random_range(0.0..=self.clean_jitter);
                let f = CameraFault::Brightness.apply(Frame { pixels: frame, height, width, previous }, j / 0.6, rng);
                frame.copy_from_slice(&f.values);
                let w = SensorFault::Noise.apply(Window { values: window, len, columns }, j / 0.6, rng);
                window.copy_from_slice(&w.values);
            }
            Injected::Clean => {}
            Injected::Camera => camera_fault(frame, rng),
            Injected::Sensor => sensor_fault(window, severity, rng),
            Injected::Both => {
                // each modality with a severity of its own: a common cause rarely hits both alike
                camera_fault(frame, rng);
                let other = rng.random_range(self.severity[0]..=self.severity[1]);
                sensor_fault(window, other, rng);
            }
        }
        kind
    }
}

impl TrainingFaults {
    /// A faulty copy of a clean batch, drawn sample by sample as [`TrainingFaults::inject`]
    /// does; `previous[i]` is an earlier frame of sample i's episode. Returns the copy and what
    /// was done to each sample.
    pub fn inject_batch(
        &self,
        clean: &HostBatch,
        previous: &[Option<Vec<f32>>],
        geometry: &Stage1Config,
        rng: &mut impl Rng,
    ) -> (HostBatch, Vec<Injected>) {
        let frame = 3 * geometry.height * geometry.width;
        let win = geometry.window * geometry.sensor_dim;
        let mut faulty = clean.clone();
        let mut kinds = Vec::with_capacity(clean.len);
        let frames = faulty.camera.chunks_exact_mut(frame);
        let windows = faulty.sensor.chunks_exact_mut(win);
        for ((cam, sen), prev) in frames.zip(windows).zip(previous) {
            kinds.push(self.inject(cam, prev.as_deref(), sen, geometry, rng));
        }
        (faulty, kinds)
    }
}
