//! Fault library: what happens to camera frames and sensor windows when a sensor breaks.
//!
//! Every fault is a pure function `(input, severity, rng) → Faulted { values, mask }` on the
//! [0, 1] scale of the data contract: severity 0 is the identity, severity 1 is the strongest
//! version, the same rng state gives the same output, and the mask marks exactly the elements
//! whose value changed. The two *test faults* of the evaluation protocol are
//! [`CameraFault::Noise`] and [`SensorFault::Gain`] at severity 1. [`Compound`] applies several
//! at once (both modalities included); [`temporal`] spreads a fault over an episode with an
//! onset, a duration and a pattern (permanent, intermittent, growing).
//!
//! [`inject`] writes a faulty copy of a dataset with the per-sample fault level as ground truth.
//!
//! This crate does not depend on the deep-learning stack.

mod camera;
mod compound;
pub mod inject;
pub mod preview;
mod sensor;
pub mod temporal;

pub use camera::{CameraFault, Frame};
pub use compound::{Compound, COMMON_CAUSE};
pub use sensor::{SensorFault, Window};
pub use temporal::{Pattern, Schedule};

/// The output of a fault and the elements it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Faulted {
    /// The faulty values, same layout as the input.
    pub values: Vec<f32>,
    /// `true` where `values` differs from the input.
    pub mask: Vec<bool>,
}

impl Faulted {
    /// The unchanged input with an empty mask.
    pub fn identity(input: &[f32]) -> Self {
        Self { values: input.to_vec(), mask: vec![false; input.len()] }
    }

    /// Builds the result of a fault that may only have touched the elements in `region`:
    /// the mask is the part of the region whose value really changed (a pixel clipped back to
    /// its own value, or a stuck value equal to the reading, is not marked).
    fn within(input: &[f32], values: Vec<f32>, region: &[bool]) -> Self {
        let mask = input.iter().zip(&values).zip(region).map(|((a, b), &r)| r && a.to_bits() != b.to_bits()).collect();
        Self { values, mask }
    }

    /// Number of changed elements.
    pub fn changed(&self) -> usize {
        self.mask.iter().filter(|&&m| m).count()
    }
}

/// Which modality a fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Camera frames.
    Camera,
    /// Sensor windows.
    Sensor,
}

/// Any fault of the catalogue, with the modality it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// A camera fault.
    Camera(CameraFault),
    /// A sensor fault.
    Sensor(SensorFault),
}

impl Fault {
    /// Every fault: the camera ones, then the sensor ones.
    pub fn all() -> Vec<Fault> {
        CameraFault::ALL.map(Fault::Camera).into_iter().chain(SensorFault::ALL.map(Fault::Sensor)).collect()
    }

    /// The modality the fault acts on.
    pub fn modality(self) -> Modality {
        match self {
            Fault::Camera(_) => Modality::Camera,
            Fault::Sensor(_) => Modality::Sensor,
        }
    }

    /// `camera/<name>` or `sensor/<name>`.
    pub fn name(self) -> String {
        match self {
            Fault::Camera(f) => format!("camera/{}", f.name()),
            Fault::Sensor(f) => format!("sensor/{}", f.name()),
        }
    }

    /// Parses `camera/<name>` or `sensor/<name>`.
    pub fn from_name(name: &str) -> Result<Self, UnknownFault> {
        match name.split_once('/') {
            Some(("camera", f)) => CameraFault::from_name(f).map(Fault::Camera),
            Some(("sensor", f)) => SensorFault::from_name(f).map(Fault::Sensor),
            _ => Err(UnknownFault {
                modality: "camera/ or sensor/",
                name: name.into(),
                known: Fault::all().iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// Error for a fault name that the library does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown {modality} fault '{name}'; known: {known}")]
pub struct UnknownFault {
    /// `camera` or `sensor`.
    pub modality: &'static str,
    /// The name asked for.
    pub name: String,
    /// The names the library knows.
    pub known: String,
}

fn clip01(v: f32) -> f32 {
    v.clamp(0.0, 1.0)
}
