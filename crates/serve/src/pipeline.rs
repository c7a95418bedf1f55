//! One batch of samples through the production path: rule checks, then MMSSL's gated model on
//! the samples the rules let through, and a status per channel. Pure and synchronous, shared by
//! every way in (HTTP now, MQTT later).
//!
//! A sample a rule flags is not given to the model (a NaN would poison the joint latent): the
//! flagged channels are Bad_SensorFailure, the rest of the sample passes through unchanged, and
//! the path is `rule`. Otherwise the gate decides: nothing flagged → `bypass`, the input is the
//! output and every status is Good; a flagged modality → `corrected`, it is replaced by the
//! corrector's output and its channels are Uncertain_SubstituteValue.

use mmguard_model::compute;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};

pub use mmguard_data::Geometry;
use mmguard_model::{HostBatch, Run, Thresholds, CONFIG_FILE, WEIGHTS_FILE};
use serde::Serialize;

use crate::rules::{check_frame, check_sensor, Ranges, RuleConfig, Violation};

/// OPC UA status Good.
pub const GOOD: u32 = 0x0000_0000;
/// OPC UA status Uncertain_SubstituteValue: the corrector's output stands in for the input.
pub const UNCERTAIN_SUBSTITUTE: u32 = 0x4091_0000;
/// OPC UA status Bad_SensorFailure: a rule fired that the corrector cannot repair.
pub const BAD_SENSOR_FAILURE: u32 = 0x808C_0000;

/// One sample as it arrives: a frame and a sensor window in physical units.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Frame [3, H, W], uint8.
    pub camera: Vec<u8>,
    /// Window [T, D], row-major, physical units.
    pub sensor: Vec<f32>,
    /// Device id (frozen-frame rule: compared with this device's previous frame).
    pub device: Option<String>,
    /// Time stamp, passed back.
    pub timestamp: Option<f64>,
}

/// Which way a sample went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// A rule fired; the model was not asked.
    Rule,
    /// The gate flagged nothing; the input passes through.
    Bypass,
    /// The gate flagged a modality; it was replaced by the correction.
    Corrected,
}

/// The answer for one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// Fault probability per modality (camera, sensor); absent on the rule path.
    pub scores: Option<[f32; 2]>,
    /// Fault probability per channel, for a run whose detector scores channels; absent on the
    /// rule path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_scores: Option<ChannelScores>,
    /// Whether each modality was flagged (by a rule or the gate).
    pub flags: [bool; 2],
    /// The way the sample went.
    pub route: Route,
    /// Rules that fired.
    pub violations: Vec<Violation>,
    /// OPC UA status of the camera.
    pub camera_status: u32,
    /// OPC UA status per sensor column.
    pub sensor_status: Vec<u32>,
    /// The output frame [3, H, W] as uint8 when it was substituted (otherwise the input is the
    /// output and is not sent back).
    pub camera: Option<Vec<u8>>,
    /// The output window [T, D] in physical units.
    pub sensor: Vec<f32>,
    /// Time stamp of the request.
    pub timestamp: Option<f64>,
}

/// Which channels the detector suspects: one probability per sensor column and per image
/// region (grid × grid, row-major from the top left).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelScores {
    /// Per sensor column, in the run's column order.
    pub sensor: Vec<f32>,
    /// Per image region.
    pub camera_regions: Vec<f32>,
}

/// A loaded run ready to answer.
#[derive(Debug)]
pub struct Pipeline {
    run: Run,
    geometry: Geometry,
    ranges: Ranges,
    rules: RuleConfig,
    /// The gate in use: set at run time as a whole, so that a batch never sees half of a change.
    thresholds: RwLock<Thresholds>,
    version: String,
    frames: Mutex<LastFrames>,
}

/// The last frame of each device, at most `cap` devices, the one heard from longest ago
/// forgotten first.
#[derive(Debug, Default)]
struct LastFrames {
    frames: HashMap<String, Vec<u8>>,
    order: VecDeque<String>,
}

impl LastFrames {
    /// Stores `frame` as the device's last and gives back the one before.
    fn replace(&mut self, device: &str, frame: &[u8], cap: usize) -> Option<Vec<u8>> {
        if let Some(at) = self.order.iter().position(|d| d == device) {
            self.order.remove(at);
        }
        self.order.push_back(device.to_string());
        let previous = self.frames.insert(device.to_string(), frame.to_vec());
        while self.order.len() > cap.max(1) {
            if let Some(oldest) = self.order.pop_front() {
                self.frames.remove(&oldest);
            }
        }
        previous
    }
}

/// One inference before the run serves: a mid-grey frame and a window at mid-range, both
/// modalities corrected (thresholds 0), must give finite scores and outputs. A run whose
/// arithmetic breaks (a latent scale or weights that overflow) is refused here, before
/// `/readyz` says ready or a reload answers 200, instead of answering nonsense.
fn warm_up(run: &Run, dir: &Path) -> Result<(), mmguard_model::Error> {
    let s1 = &run.config.model.stage1;
    let batch =
        HostBatch { len: 1, camera: vec![0.5; 3 * s1.height * s1.width], sensor: vec![0.5; s1.window * s1.sensor_dim] };
    let out = run.model.infer(&run.config.model, &batch, Thresholds::uniform(0.0), &compute::device());
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    let scores: Vec<f32> = out.scores.iter().flatten().copied().collect();
    let problem = [
        ("fault scores are", finite(&scores) && finite(&out.channel_scores)),
        ("corrected frame is", finite(&out.camera)),
        ("corrected window is", finite(&out.sensor)),
    ]
    .into_iter()
    .find(|(_, ok)| !ok);
    match problem {
        None => Ok(()),
        Some((what, _)) => Err(mmguard_model::Error::InvalidRun {
            path: dir.into(),
            field: "warm-up inference".into(),
            reason: format!("a mid-range sample's {what} not finite"),
        }),
    }
}

/// Frame from the model's [0, 1] scale to uint8.
pub fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

impl Pipeline {
    /// Loads the run in `dir`.
    pub fn load(dir: &Path, rules: RuleConfig) -> Result<Self, mmguard_model::Error> {
        let run = Run::load(dir, &compute::device())?;
        // FNV-1a of the configuration and the weights: changes with every retrained,
        // recalibrated or re-weighted run
        let hash = [CONFIG_FILE, WEIGHTS_FILE]
            .iter()
            .flat_map(|f| std::fs::read(dir.join(f)).unwrap_or_default())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let name = dir.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
        let version = format!("{name}@{:012x}", hash & 0xffff_ffff_ffff);
        let ranges = Ranges {
            names: run.config.columns.iter().map(|c| c.name.clone()).collect(),
            min: run.config.normalization.min.clone(),
            max: run.config.normalization.max.clone(),
        };
        let s1 = &run.config.model.stage1;
        let geometry =
            Geometry { height: s1.height, width: s1.width, window: s1.window, columns: ranges.names.clone() };
        let thresholds = RwLock::new(run.config.gate.thresholds());
        let frames = Mutex::new(LastFrames::default());
        warm_up(&run, dir)?;
        Ok(Self { run, geometry, ranges, rules, thresholds, version, frames })
    }

    /// The run's identity: directory name and a hash of its configuration and weights.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What one sample must look like for this run.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Sensor column names.
    pub fn columns(&self) -> &[String] {
        &self.ranges.names
    }

    /// The gate thresholds in use.
    pub fn thresholds(&self) -> Thresholds {
        *self.thresholds.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thresholds the run was calibrated with.
    pub fn calibrated_thresholds(&self) -> Thresholds {
        self.run.config.gate.thresholds()
    }

    /// Changes the gate at run time; requests already running keep the values they started
    /// with.
    pub fn set_thresholds(&self, thresholds: Thresholds) {
        *self.thresholds.write().unwrap_or_else(PoisonError::into_inner) = thresholds;
    }

    /// Answers a batch (shapes already checked against [`Pipeline::geometry`]); the model runs
    /// once, on all samples the rules let through.
    pub fn infer(&self, samples: &[Sample]) -> Vec<Answer> {
        let d = self.ranges.names.len();
        let mut answers: Vec<Answer> = samples
            .iter()
            .map(|s| {
                let previous = s.device.as_ref().and_then(|dev| {
                    let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
                    frames.replace(dev, &s.camera, self.rules.max_devices)
                });
                let mut violations = check_frame(&s.camera, previous.as_deref(), &self.rules);
                violations.extend(check_sensor(&s.sensor, &self.ranges, &self.rules));
                let camera_bad = violations.iter().any(|v| v.channel == "camera");
                let sensor_status: Vec<u32> = self
                    .ranges
                    .names
                    .iter()
                    .map(|n| if violations.iter().any(|v| &v.channel == n) { BAD_SENSOR_FAILURE } else { GOOD })
                    .collect();
                Answer {
                    scores: None,
                    channel_scores: None,
                    flags: [camera_bad, sensor_status.iter().any(|&s| s != GOOD)],
                    route: if violations.is_empty() { Route::Bypass } else { Route::Rule },
                    camera_status: if camera_bad { BAD_SENSOR_FAILURE } else { GOOD },
                    sensor_status,
                    violations,
                    camera: None,
                    sensor: s.sensor.clone(),
                    timestamp: s.timestamp,
                }
            })
            .collect();
        let model_rows: Vec<usize> = (0..samples.len()).filter(|&i| answers[i].route != Route::Rule).collect();
        if model_rows.is_empty() {
            return answers;
        }
        let batch = self.host_batch(samples, &model_rows);
        let out = self.run.model.infer(&self.run.config.model, &batch, self.thresholds(), &compute::device());
        let (frame, win) = (samples[0].camera.len(), samples[0].sensor.len());
        for (k, &i) in model_rows.iter().enumerate() {
            let a = &mut answers[i];
            a.scores = Some(out.scores[k]);
            let c = out.channel_scores.len() / model_rows.len();
            if c > d {
                let row = &out.channel_scores[k * c..(k + 1) * c];
                a.channel_scores = Some(ChannelScores { sensor: row[..d].to_vec(), camera_regions: row[d..].to_vec() });
            }
            a.flags = out.flags[k];
            if a.flags[0] {
                a.camera = Some(out.camera[k * frame..(k + 1) * frame].iter().map(|&v| to_u8(v)).collect());
                a.camera_status = UNCERTAIN_SUBSTITUTE;
            }
            if a.flags[1] {
                let mut sensor = out.sensor[k * win..(k + 1) * win].to_vec();
                self.run.config.normalization.unscale(&mut sensor);
                let substituted = &out.substituted_columns[k * d..(k + 1) * d];
                // a column kept as it came is the reading itself, not its scaled round trip
                for (v, (raw, j)) in sensor.iter_mut().zip(samples[i].sensor.iter().zip((0..d).cycle())) {
                    if !substituted[j] {
                        *v = *raw;
                    }
                }
                a.sensor = sensor;
                a.sensor_status = substituted.iter().map(|&s| if s { UNCERTAIN_SUBSTITUTE } else { GOOD }).collect();
            }
            if a.flags.iter().any(|&f| f) {
                a.route = Route::Corrected;
            }
        }
        answers
    }

    /// The model's input for samples `rows`: frames to [0, 1], windows scaled as in training.
    fn host_batch(&self, samples: &[Sample], rows: &[usize]) -> HostBatch {
        let norm = &self.run.config.normalization;
        let mut camera = Vec::with_capacity(rows.len() * samples[0].camera.len());
        let mut sensor = vec![0.0; rows.len() * samples[0].sensor.len()];
        let win = samples[0].sensor.len();
        for (k, &i) in rows.iter().enumerate() {
            camera.extend(samples[i].camera.iter().map(|&p| f32::from(p) / 255.0));
            norm.scale_into(&samples[i].sensor, &mut sensor[k * win..(k + 1) * win]);
        }
        HostBatch { len: rows.len(), camera, sensor }
    }
}

#[cfg(test)]
mod tests {
    use super::LastFrames;

    #[test]
    fn last_frames_keep_at_most_cap_devices_forgetting_the_quietest() {
        let mut last = LastFrames::default();
        assert_eq!(last.replace("a", &[1], 2), None);
        assert_eq!(last.replace("b", &[2], 2), None);
        assert_eq!(last.replace("a", &[3], 2), Some(vec![1]));
        assert_eq!(last.replace("c", &[4], 2), None, "b was heard from longest ago");
        assert_eq!(last.frames.len(), 2);
        assert_eq!(last.replace("b", &[5], 2), None, "b was forgotten");
        assert_eq!(last.replace("c", &[6], 2), Some(vec![4]));
    }
}
