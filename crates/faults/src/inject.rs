//! A faulty copy of a dataset: a fault (or several) scheduled over every episode, with the
//! per-sample fault level of each modality as ground truth. What a stream looks like when a
//! sensor breaks during operation.

use mmguard_data::{Dataset, MinMax, SensorLayout};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::temporal::{camera_stream, sensor_stream};
use crate::{Compound, Fault, Pattern, Schedule, SensorFault};

/// Keys of the ground-truth levels written next to the contract's keys.
pub const LEVEL_KEYS: [&str; 2] = ["fault_camera", "fault_sensor"];

/// How the fault develops, with episode-relative lengths.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Shape {
    /// Full severity while active.
    Permanent,
    /// On for `duty` of every `period` readings.
    Intermittent {
        /// Cycle length, readings.
        period: usize,
        /// Share of the cycle the fault is on.
        duty: f32,
    },
    /// Rises linearly to full severity over the active stretch.
    Growing,
}

/// What to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    /// The faults, by name (`camera/blur`, `camera/glare+sensor/noise`).
    pub faults: String,
    /// Full severity in [0, 1].
    pub severity: f32,
    /// Onset as a share of each episode's length, in [0, 1).
    pub onset: f32,
    /// Duration as a share of each episode's length; `None` lasts to the end.
    pub duration: Option<f32>,
    /// Behaviour while active.
    pub shape: Shape,
    /// Seed of the faults' randomness.
    pub seed: u64,
}

/// Errors of an injection.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// A fault name the library does not know.
    #[error(transparent)]
    Unknown(#[from] crate::UnknownFault),
    /// The dataset's episodes cannot be read as streams.
    #[error(transparent)]
    Data(#[from] mmguard_data::Error),
    /// An option out of range, or data the injection cannot take.
    #[error("{0}")]
    Invalid(String),
}

/// The faulty dataset and, per modality, the fault level of every sample (0 = healthy).
#[derive(Debug, Clone)]
pub struct InjectedData {
    /// Same layout, episodes and columns as the input.
    pub dataset: Dataset,
    /// Camera level, then sensor level, one per sample.
    pub levels: [Vec<f32>; 2],
}

impl Injection {
    fn schedule(&self, len: usize) -> Schedule {
        let onset = (self.onset * len as f32).floor() as usize;
        let duration = self.duration.map(|d| ((d * len as f32).round() as usize).max(1));
        let active = duration.unwrap_or(len.saturating_sub(onset)).max(1);
        let pattern = match self.shape {
            Shape::Permanent => Pattern::Permanent,
            Shape::Intermittent { period, duty } => Pattern::Intermittent { period, duty },
            Shape::Growing => Pattern::Growing { ramp: active },
        };
        Schedule { onset, duration, pattern }
    }

    fn check(&self) -> Result<Compound, InjectError> {
        let faults = Compound::from_name(&self.faults)?;
        if faults.faults.contains(&Fault::Sensor(SensorFault::NanDropout)) {
            return Err(InjectError::Invalid(
                "sensor/nan_dropout writes NaN readings, which the data contract refuses; inject it in memory instead"
                    .into(),
            ));
        }
        let share = |v: f32| (0.0..=1.0).contains(&v);
        if !share(self.severity)
            || !(0.0..1.0).contains(&self.onset)
            || self.duration.is_some_and(|d| !(d > 0.0 && d <= 1.0))
        {
            return Err(InjectError::Invalid(format!(
                "severity {} must be in [0, 1], onset {} in [0, 1), duration {:?} in (0, 1]",
                self.severity, self.onset, self.duration
            )));
        }
        if let Shape::Intermittent { period, duty } = self.shape {
            if period == 0 || !(duty > 0.0 && duty <= 1.0) {
                return Err(InjectError::Invalid(format!(
                    "intermittent: period {period} must be ≥ 1, duty {duty} in (0, 1]"
                )));
            }
        }
        Ok(faults)
    }
}

/// Applies the injection to every episode of `data`. Sensor faults act on the file's own
/// [0, 1] scale (per-column min-max over the file); readings and pixels the fault did not
/// change keep their exact values.
pub fn inject(data: &Dataset, injection: &Injection) -> Result<InjectedData, InjectError> {
    let faults = injection.check()?;
    if let SensorLayout::Windows { len } = data.layout {
        return Err(InjectError::Invalid(format!(
            "{}: sensor holds windows [N, {len}, D]; faults over time need one reading per sample [N, D]",
            data.path.display()
        )));
    }
    let d = data.sensor_dim();
    // windows of one reading over every episode: the scaling fitted on every reading of the file
    let scale = MinMax::fit(data, &data.windows(1, &data.episode_ids())?);
    let mut out = data.clone();
    let mut levels = [vec![0.0; data.len()], vec![0.0; data.len()]];
    let touches = faults.modalities();
    let mut rng = ChaCha8Rng::seed_from_u64(injection.seed);
    let frame_len = data.frame_len();
    let mut start = 0;
    while start < data.len() {
        let end = (start..data.len()).find(|&i| data.episode[i] != data.episode[start]).unwrap_or(data.len());
        let schedule = injection.schedule(end - start);
        for (m, modality) in [crate::Modality::Camera, crate::Modality::Sensor].into_iter().enumerate() {
            if touches.contains(&modality) {
                for t in 0..end - start {
                    levels[m][start + t] = schedule.level(t);
                }
            }
        }
        let mut frames: Vec<f32> =
            data.camera[start * frame_len..end * frame_len].iter().map(|&p| f32::from(p) / 255.0).collect();
        let mut readings = vec![0.0; (end - start) * d];
        scale.scale_into(&data.sensor[start * d..end * d], &mut readings);
        let mut changed = vec![false; readings.len()];
        for fault in &faults.faults {
            match fault {
                Fault::Camera(f) => {
                    frames =
                        camera_stream(*f, injection.severity, &schedule, &frames, data.height, data.width, &mut rng)
                            .values;
                }
                Fault::Sensor(f) => {
                    let r = sensor_stream(*f, injection.severity, &schedule, &readings, d, &mut rng);
                    for (c, m) in changed.iter_mut().zip(&r.mask) {
                        *c |= m;
                    }
                    readings = r.values;
                }
            }
        }
        for (o, v) in out.camera[start * frame_len..end * frame_len].iter_mut().zip(&frames) {
            *o = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
        scale.unscale(&mut readings);
        for ((o, v), &c) in out.sensor[start * d..end * d].iter_mut().zip(&readings).zip(&changed) {
            if c {
                *o = *v;
            }
        }
        start = end;
    }
    out.metadata.insert("injected".into(), serde_json::to_value(injection).expect("injection serialises"));
    Ok(InjectedData { dataset: out, levels })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmguard_data::Column;

    fn data() -> Dataset {
        let (n, d) = (40, 2);
        Dataset {
            path: "mem.npz".into(),
            camera: (0..n * 3 * 16 * 16).map(|k| (k % 200) as u8 + 20).collect(),
            height: 16,
            width: 16,
            sensor: (0..n * d).map(|k| 10.0 + (k as f32 * 0.3).sin()).collect(),
            layout: SensorLayout::Readings,
            episode: (0..n).map(|i| i / 20).collect(),
            has_episode_key: true,
            time: None,
            columns: vec![Column { name: "a".into(), unit: "".into() }, Column { name: "b".into(), unit: "".into() }],
            metadata: Default::default(),
            extra_keys: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn injection(faults: &str) -> Injection {
        Injection { faults: faults.into(), severity: 1.0, onset: 0.5, duration: None, shape: Shape::Permanent, seed: 1 }
    }

    #[test]
    fn each_episode_turns_faulty_at_its_onset_and_the_levels_say_so() {
        let ds = data();
        let got = inject(&ds, &injection("camera/black+sensor/offset")).unwrap();
        for i in 0..40 {
            let faulty = i % 20 >= 10;
            assert_eq!(got.levels[0][i], if faulty { 1.0 } else { 0.0 }, "sample {i}");
            assert_eq!(got.levels[1][i], got.levels[0][i]);
            let frame = &got.dataset.camera[i * 768..(i + 1) * 768];
            assert_eq!(frame.iter().all(|&p| p == 0), faulty, "sample {i}");
            let row = &got.dataset.sensor[i * 2..i * 2 + 2];
            assert_eq!(row != &ds.sensor[i * 2..i * 2 + 2], faulty, "sample {i}");
        }
        let only_camera = inject(&ds, &injection("camera/blur")).unwrap();
        assert!(only_camera.levels[1].iter().all(|&l| l == 0.0));
        assert_eq!(only_camera.dataset.sensor, ds.sensor);
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let ds = data();
        let e = inject(&ds, &injection("sensor/nan_dropout")).unwrap_err().to_string();
        assert!(e.contains("NaN"), "{e}");
        let e = inject(&ds, &Injection { onset: 1.0, ..injection("camera/blur") }).unwrap_err().to_string();
        assert!(e.contains("onset 1"), "{e}");
        let e = inject(&ds, &injection("camera/smudge")).unwrap_err().to_string();
        assert!(e.contains("smudge"), "{e}");
    }
}
