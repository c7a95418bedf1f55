//! The downstream task the robust heads learn: a class label per sample (the twin's `phase`, or
//! any integer key a user names) and one regression target, read on the stage-1 latents of a
//! trained MMSSL run. The encoders stay frozen (ModalImmune's §4.2 freezes pretrained encoders;
//! Robult plugs onto existing ones), so every window is encoded once and the heads train on the
//! stored latents: minutes become seconds.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use mmguard_data::{read_class_labels, Dataset, MinMax};
use mmguard_model::{HostBatch, Stage1, Stage1Config};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which targets the heads learn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// Archive key of the integer class labels.
    pub label_key: String,
    /// Sensor column whose next reading is the regression target; the first column when
    /// unset. Forecasting the next reading needs the dynamics the window shows, and with the
    /// sensor missing it has to come from the frame alone (the twin's joint angles are visible).
    pub regression_column: Option<String>,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self { label_key: "phase".into(), regression_column: None }
    }
}

/// Latents and targets of a set of windows.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSet {
    /// Camera latents, [N, camera_dim] row-major.
    pub camera: Vec<f32>,
    /// Sensor latents, [N, sensor_dim].
    pub sensor: Vec<f32>,
    /// Width of a camera latent.
    pub camera_dim: usize,
    /// Width of a sensor latent.
    pub sensor_dim: usize,
    /// Class per window.
    pub class: Vec<u32>,
    /// Regression target per window, scaled like the sensor input (training min/max → [0, 1]).
    pub value: Vec<f32>,
}

impl TaskSet {
    /// Windows in the set.
    pub fn len(&self) -> usize {
        self.class.len()
    }

    /// True for an empty set.
    pub fn is_empty(&self) -> bool {
        self.class.is_empty()
    }

    /// The rows `rows` as host vectors (camera, sensor), for a batch.
    pub fn rows(&self, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let take = |v: &[f32], d: usize| rows.iter().flat_map(|&r| v[r * d..(r + 1) * d].iter().copied()).collect();
        (take(&self.camera, self.camera_dim), take(&self.sensor, self.sensor_dim))
    }
}

/// A set and which of its windows keep their label.
#[derive(Debug, Clone, Copy)]
pub struct Labelled<'a> {
    /// The windows.
    pub set: &'a TaskSet,
    /// Labelled or not, per window.
    pub labelled: &'a [bool],
}

/// Per-feature mean and standard deviation of the training latents. The conv encoders' outputs
/// differ in scale by orders of magnitude between features (they were trained to reconstruct,
/// not to be read), and small heads learn far faster on standardised inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    camera: (Vec<f32>, Vec<f32>),
    sensor: (Vec<f32>, Vec<f32>),
}

fn moments(v: &[f32], d: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (v.len() / d).max(1) as f64;
    let mut mean = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for row in v.chunks_exact(d) {
        for (j, &x) in row.iter().enumerate() {
            mean[j] += f64::from(x) / n;
            sq[j] += f64::from(x) * f64::from(x) / n;
        }
    }
    let std = mean.iter().zip(&sq).map(|(m, s)| ((s - m * m).max(0.0).sqrt().max(1e-6)) as f32).collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

fn apply(v: &mut [f32], d: usize, (mean, std): &(Vec<f32>, Vec<f32>)) {
    for row in v.chunks_exact_mut(d) {
        for ((x, m), s) in row.iter_mut().zip(mean).zip(std) {
            *x = (*x - m) / s;
        }
    }
}

impl Standardizer {
    /// Fits on a (training) set.
    pub fn fit(set: &TaskSet) -> Self {
        Self { camera: moments(&set.camera, set.camera_dim), sensor: moments(&set.sensor, set.sensor_dim) }
    }

    /// The statistics as [1, d] tensors (camera mean, std; sensor mean, std), to standardise
    /// latents inside a graph (fine-tuned encoders).
    pub fn tensors(&self, device: &Device) -> [Tensor<2>; 4] {
        let t = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [1, v.len()]), device);
        [t(&self.camera.0), t(&self.camera.1), t(&self.sensor.0), t(&self.sensor.1)]
    }

    /// Standardises a set in place.
    pub fn apply(&self, set: &mut TaskSet) {
        apply(&mut set.camera, set.camera_dim, &self.camera);
        apply(&mut set.sensor, set.sensor_dim, &self.sensor);
    }
}

/// The targets of a dataset, checked once.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// Class per sample.
    pub class: Vec<u32>,
    /// Number of classes.
    pub classes: usize,
    /// Class names.
    pub names: Vec<String>,
    /// Index of the regression column.
    pub column: usize,
    /// Its name.
    pub column_name: String,
}

impl Targets {
    /// Reads the labels and finds the regression column of `data`.
    pub fn read(data: &Dataset, cfg: &TaskConfig) -> Result<Self> {
        let labels = read_class_labels(data, &cfg.label_key)?;
        if labels.classes < 2 {
            return Err(Error::Task(format!(
                "{}: key '{}' holds a single class; a classification target needs at least two",
                data.path.display(),
                cfg.label_key
            )));
        }
        let column = match &cfg.regression_column {
            None => 0,
            Some(name) => data.columns.iter().position(|c| &c.name == name).ok_or_else(|| {
                let have: Vec<&str> = data.columns.iter().map(|c| c.name.as_str()).collect();
                Error::Task(format!(
                    "{}: no sensor column '{name}' (columns: {})",
                    data.path.display(),
                    have.join(", ")
                ))
            })?,
        };
        Ok(Self {
            class: labels.values,
            classes: labels.classes,
            names: labels.names,
            column,
            column_name: data.columns[column].name.clone(),
        })
    }

    /// Class and regression target of the windows ending at `ends`.
    pub fn of_windows(&self, data: &Dataset, ends: &[usize], norm: &MinMax) -> (Vec<u32>, Vec<f32>) {
        (ends.iter().map(|&i| self.class[i]).collect(), ends.iter().map(|&i| self.value(data, i, norm)).collect())
    }

    /// The regression target of the window ending at `end`: the column's next reading in the
    /// same episode, scaled by `norm` (at an episode's last sample its own reading).
    pub fn value(&self, data: &Dataset, end: usize, norm: &MinMax) -> f32 {
        let next = if end + 1 < data.len() && data.episode[end + 1] == data.episode[end] { end + 1 } else { end };
        // the last reading of the sample's window: the reading itself in either sensor layout
        let window = data.sensor_window(next, 1);
        let reading = &window[window.len() - data.sensor_dim()..];
        let mut scaled = vec![0.0; reading.len()];
        norm.scale_into(reading, &mut scaled);
        scaled[self.column]
    }
}

/// The camera and sensor latents of `batch` from the frozen encoders, 256 windows at a time.
pub fn encode(stage1: &Stage1, s1: &Stage1Config, batch: &HostBatch, device: &Device) -> (Vec<f32>, Vec<f32>) {
    const CHUNK: usize = 256;
    let (frame, win) = (3 * s1.height * s1.width, s1.window * s1.sensor_dim);
    let (mut camera, mut sensor) = (Vec::new(), Vec::new());
    for start in (0..batch.len).step_by(CHUNK) {
        let n = CHUNK.min(batch.len - start);
        let part = HostBatch {
            len: n,
            camera: batch.camera[start * frame..(start + n) * frame].to_vec(),
            sensor: batch.sensor[start * win..(start + n) * win].to_vec(),
        };
        let host = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().expect("float tensor");
        camera.extend(host(stage1.encode_camera(part.camera_tensor(s1, device))));
        sensor.extend(host(stage1.encode_sensor(part.sensor_tensor(s1, device))));
    }
    (camera, sensor)
}

/// What the heads are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskShape {
    /// Width of the camera part of the stage-1 latent.
    pub camera_latent: usize,
    /// Width of the sensor part.
    pub sensor_latent: usize,
    /// Number of classes of the classification target.
    pub classes: usize,
}

/// The presence mask [B, 2] of a batch in which `keep` = (camera, sensor) are present.
pub fn presence(b: usize, keep: [bool; 2], device: &Device) -> Tensor<2> {
    let row = keep.map(|k| f32::from(u8::from(k)));
    Tensor::from_data(TensorData::new(row.repeat(b), [b, 2]), device)
}

/// The targets of a batch: which samples are labelled, their class and regression target.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTargets {
    /// Labelled or not, [B].
    pub labelled: Vec<bool>,
    /// Class per sample (ignored where unlabelled), [B].
    pub class: Vec<u32>,
    /// Regression target per sample (ignored where unlabelled), [B].
    pub value: Vec<f32>,
}

impl BatchTargets {
    /// The targets of rows `rows` of `set`, labelled where `labelled[row]`.
    pub fn of(set: &TaskSet, rows: &[usize], labelled: &[bool]) -> Self {
        Self {
            labelled: rows.iter().map(|&r| labelled[r]).collect(),
            class: rows.iter().map(|&r| set.class[r]).collect(),
            value: rows.iter().map(|&r| set.value[r]).collect(),
        }
    }
}

/// The supervised task loss of both heads: cross-entropy of the class logits [B, classes] plus
/// the L1 error of the regression output [B, 1], averaged over the labelled rows (zero without
/// any).
pub fn supervised_loss(logits: &Tensor<2>, value: &Tensor<2>, targets: &BatchTargets, device: &Device) -> Tensor<1> {
    let [b, classes] = logits.dims();
    let labelled: Vec<usize> = (0..b).filter(|&j| targets.labelled[j]).collect();
    if labelled.is_empty() {
        return Tensor::zeros([1], device);
    }
    let tensor = |v: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, shape), device);
    let mut onehot = vec![0.0f32; b * classes];
    for &j in &labelled {
        onehot[j * classes + targets.class[j] as usize] = 1.0;
    }
    let n = labelled.len() as f64;
    let ce = (log_softmax(logits.clone(), 1) * tensor(onehot, [b, classes])).sum().div_scalar(n).neg();
    let mask = tensor(targets.labelled.iter().map(|&l| f32::from(u8::from(l))).collect(), [b, 1]);
    let l1 = ((value.clone() - tensor(targets.value.clone(), [b, 1])).abs() * mask).sum().div_scalar(n);
    ce + l1
}

/// The samples `rows` of a host batch.
pub fn select(batch: &HostBatch, rows: &[usize]) -> HostBatch {
    let (frame, win) = (batch.camera.len() / batch.len.max(1), batch.sensor.len() / batch.len.max(1));
    HostBatch {
        len: rows.len(),
        camera: rows.iter().flat_map(|&r| batch.camera[r * frame..(r + 1) * frame].iter().copied()).collect(),
        sensor: rows.iter().flat_map(|&r| batch.sensor[r * win..(r + 1) * win].iter().copied()).collect(),
    }
}

/// Which windows keep their label: a share `fraction` of each class drawn with `rng` (at least
/// one window per class that has any), so 1 % of labels still covers every class.
pub fn labelled_mask(class: &[u32], classes: usize, fraction: f64, mut rng: ChaCha8Rng) -> Vec<bool> {
    let mut keep = vec![false; class.len()];
    for c in 0..classes as u32 {
        let mut rows: Vec<usize> = (0..class.len()).filter(|&i| class[i] == c).collect();
        if rows.is_empty() {
            continue;
        }
        rows.shuffle(&mut rng);
        let n = ((rows.len() as f64 * fraction).round() as usize).clamp(1, rows.len());
        for &r in &rows[..n] {
            keep[r] = true;
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn label_fractions_cover_every_class_and_nest_by_seed() {
        let class: Vec<u32> = (0..1000)
            .map(|i| {
                if i < 900 {
                    0
                } else if i < 995 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let one = labelled_mask(&class, 3, 0.01, ChaCha8Rng::seed_from_u64(7));
        let count = |m: &[bool], c: u32| (0..class.len()).filter(|&i| m[i] && class[i] == c).count();
        assert_eq!((count(&one, 0), count(&one, 1), count(&one, 2)), (9, 1, 1));
        let all = labelled_mask(&class, 3, 1.0, ChaCha8Rng::seed_from_u64(7));
        assert!(all.iter().all(|&k| k));
        assert_eq!(one, labelled_mask(&class, 3, 0.01, ChaCha8Rng::seed_from_u64(7)), "same seed, same labels");
        assert_ne!(one, labelled_mask(&class, 3, 0.01, ChaCha8Rng::seed_from_u64(8)));
    }
}
