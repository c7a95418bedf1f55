//! Several faults at once, on one modality or both: the common-cause failures that redundancy
//! between modalities does not cover (a power dip darkens the camera and zeroes the sensors;
//! a welding arc blinds the camera and puts electromagnetic noise on the wires).

use rand::Rng;

use crate::{Fault, Faulted, Frame, Modality, UnknownFault, Window};

/// Faults applied together, in order, each to its own modality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Compound {
    /// The parts, in the order they are applied.
    pub faults: Vec<Fault>,
}

/// Common-cause combinations a plant sees, by name.
pub const COMMON_CAUSE: [&str; 6] = [
    // power dip: both modalities lose their signal
    "camera/black+sensor/missing",
    // welding arc: glare in the image, electromagnetic noise on the wires
    "camera/glare+sensor/noise",
    // smoke in the cell and a drifting, dirty probe
    "camera/haze+sensor/drift",
    // vibration: a shaking camera and spiky readings
    "camera/motion_blur+sensor/spikes",
    // two camera faults at once: a dirty lens in bad light
    "camera/dust+camera/brightness",
    // two sensor faults at once: a worn amplifier
    "sensor/gain+sensor/noise",
];

impl Compound {
    /// A single fault.
    pub fn single(fault: Fault) -> Self {
        Self { faults: vec![fault] }
    }

    /// The parts' names joined by `+`.
    pub fn name(&self) -> String {
        self.faults.iter().map(|f| f.name()).collect::<Vec<_>>().join("+")
    }

    /// Parses `camera/<name>+sensor/<name>+…` (one part is a plain fault).
    pub fn from_name(name: &str) -> Result<Self, UnknownFault> {
        let faults = name.split('+').map(|p| Fault::from_name(p.trim())).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { faults })
    }

    /// The modalities the compound touches, camera first.
    pub fn modalities(&self) -> Vec<Modality> {
        [Modality::Camera, Modality::Sensor]
            .into_iter()
            .filter(|m| self.faults.iter().any(|f| f.modality() == *m))
            .collect()
    }

    /// Applies every part at `severity` to one sample: the frame ([3, H, W]) and the window
    /// ([T, D]). Returns (camera, sensor); each mask marks what changed against the input.
    pub fn apply(&self, frame: Frame<'_>, window: Window<'_>, severity: f32, rng: &mut impl Rng) -> (Faulted, Faulted) {
        let mut camera = frame.pixels.to_vec();
        let mut sensor = window.values.to_vec();
        for fault in &self.faults {
            match fault {
                Fault::Camera(f) => camera = f.apply(Frame { pixels: &camera, ..frame }, severity, rng).values,
                Fault::Sensor(f) => sensor = f.apply(Window { values: &sensor, ..window }, severity, rng).values,
            }
        }
        let all = |n: usize| vec![true; n];
        (
            Faulted::within(frame.pixels, camera, &all(frame.pixels.len())),
            Faulted::within(window.values, sensor, &all(window.values.len())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CameraFault, SensorFault};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn names_round_trip_and_the_common_causes_parse() {
        let c = Compound::from_name("camera/glare+sensor/noise").unwrap();
        assert_eq!(c.faults, [Fault::Camera(CameraFault::Glare), Fault::Sensor(SensorFault::Noise)]);
        assert_eq!(c.name(), "camera/glare+sensor/noise");
        assert_eq!(c.modalities(), [Modality::Camera, Modality::Sensor]);
        for name in COMMON_CAUSE {
            assert_eq!(Compound::from_name(name).unwrap().name(), name);
        }
        assert!(Compound::from_name("camera/glare+sensor/smoke").unwrap_err().to_string().contains("smoke"));
    }

    #[test]
    fn a_both_modality_fault_changes_both_and_a_camera_pair_only_the_camera() {
        let frame: Vec<f32> = (0..3 * 16 * 16).map(|k| (k % 97) as f32 / 97.0).collect();
        let window: Vec<f32> = (0..16 * 4).map(|k| (k % 13) as f32 / 13.0).collect();
        let f = Frame { pixels: &frame, height: 16, width: 16, previous: None };
        let w = Window { values: &window, len: 16, columns: 4 };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (c, s) = Compound::from_name("camera/black+sensor/missing").unwrap().apply(f, w, 1.0, &mut rng);
        assert!(c.values.iter().all(|&v| v == 0.0) && s.values.iter().all(|&v| v == 0.0));
        assert_eq!(c.mask.iter().filter(|&&m| m).count(), frame.iter().filter(|&&v| v != 0.0).count());
        let (c, s) = Compound::from_name("camera/dust+camera/brightness").unwrap().apply(f, w, 1.0, &mut rng);
        assert!(c.changed() > 0 && s.changed() == 0);
        let (c0, s0) = Compound::from_name("camera/glare+sensor/noise").unwrap().apply(f, w, 0.0, &mut rng);
        assert_eq!((c0.changed(), s0.changed()), (0, 0));
    }
}
