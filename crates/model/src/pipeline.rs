//! The MMSSL model (stage 1 + compute block) and the gated inference pipeline.

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::autoencoder::{Stage1, Stage1Config};
use crate::block::{BlockConfig, ComputeBlock, OutputInput};
use crate::clean_prior::CleanPrior;
use crate::evidence::Evidence;
use crate::input_repair::InputRepair;

/// Everything needed to rebuild the networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Stage-1 autoencoder.
    pub stage1: Stage1Config,
    /// Stage-2 compute block.
    pub block: BlockConfig,
    /// What of a flagged modality's input is kept beside the correction; `None` (every run
    /// written before it) hands on the decoded correction as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<InputRepair>,
    /// The clean sensor windows' Gaussian ([`crate::clean_prior`]): the learned repair fits its
    /// gain, offset and affine candidates under it, and the gate's novelty threshold reads its
    /// distance. Beside the repair rather than in it, so that the gate keeps it whether the
    /// learned repair is kept, dropped by its own check, or switched off in an ablation.
    /// `None`: runs before it, or `repair_mix.prior: null` in training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_prior: Option<CleanPrior>,
}

impl ModelConfig {
    /// The reference architecture for a given input geometry.
    pub fn new(height: usize, width: usize, sensor_dim: usize, window: usize) -> Self {
        let stage1 = Stage1Config::new(height, width, sensor_dim, window);
        let block = BlockConfig { camera_latent: stage1.camera_latent(), ..BlockConfig::new(stage1.joint_latent()) };
        Self { stage1, block, repair: None, clean_prior: None }
    }

    /// Builds the model with fresh weights.
    pub fn init(&self, device: &Device) -> Mmssl {
        let mut block = self.block.init(device);
        block.output = self.block.output_path.then(|| self.stage1.init(device));
        Mmssl { stage1: self.stage1.init(device), block }
    }
}

/// The two trained parts.
#[derive(Module, Debug)]
pub struct Mmssl {
    /// Stage-1 autoencoder.
    pub stage1: Stage1,
    /// Stage-2 compute block.
    pub block: ComputeBlock,
}

/// A batch on the host, on the [0, 1] scale: frames [B, 3, H, W] and windows [B, T, D].
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Samples B.
    pub len: usize,
    /// Frames, [B, 3, H, W].
    pub camera: Vec<f32>,
    /// Windows, [B, T, D] (time-major, as in the data contract).
    pub sensor: Vec<f32>,
}

impl HostBatch {
    /// The batches one after the other.
    pub fn concat(parts: &[&HostBatch]) -> HostBatch {
        HostBatch {
            len: parts.iter().map(|p| p.len).sum(),
            camera: parts.iter().flat_map(|p| p.camera.iter().copied()).collect(),
            sensor: parts.iter().flat_map(|p| p.sensor.iter().copied()).collect(),
        }
    }

    /// Rows `rows` of the batch, in that order.
    pub fn select(&self, rows: &[usize]) -> HostBatch {
        let (frame, win) = (self.camera.len() / self.len.max(1), self.sensor.len() / self.len.max(1));
        let gather = |v: &[f32], n: usize| rows.iter().flat_map(|&b| v[b * n..(b + 1) * n].iter().copied()).collect();
        HostBatch { len: rows.len(), camera: gather(&self.camera, frame), sensor: gather(&self.sensor, win) }
    }

    /// Camera tensor [B, 3, H, W].
    pub fn camera_tensor(&self, cfg: &Stage1Config, device: &Device) -> Tensor<4> {
        let data = TensorData::new(self.camera.clone(), [self.len, 3, cfg.height, cfg.width]);
        Tensor::from_data(data, device)
    }

    /// Sensor tensor in the encoder's channel-first layout [B, D, T].
    pub fn sensor_tensor(&self, cfg: &Stage1Config, device: &Device) -> Tensor<3> {
        let (t, d) = (cfg.window, cfg.sensor_dim);
        let mut dt = vec![0.0; self.sensor.len()];
        for b in 0..self.len {
            let src = &self.sensor[b * t * d..(b + 1) * t * d];
            let dst = &mut dt[b * t * d..(b + 1) * t * d];
            for r in 0..t {
                for c in 0..d {
                    dst[c * t + r] = src[r * d + c];
                }
            }
        }
        Tensor::from_data(TensorData::new(dt, [self.len, d, t]), device)
    }
}

/// Copies a [B, 3, H, W] tensor to the host.
pub fn camera_to_host(x: Tensor<4>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("float tensor")
}

/// Copies a [B, D, T] sensor tensor to the host in the time-major layout [B, T, D].
pub fn sensor_to_host(x: Tensor<3>) -> Vec<f32> {
    x.swap_dims(1, 2).into_data().try_into_vec::<f32>().expect("float tensor")
}

/// What the production pipeline returns for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// Fault score per sample and modality, σ(D(E(z̃))/τ) with the block's score temperature τ
    /// (1 for runs without one), [B] × (camera, sensor).
    pub scores: Vec<[f32; 2]>,
    /// Whether the gate flagged each modality.
    pub flags: Vec<[bool; 2]>,
    /// The detection statistic per sample and modality that ranking metrics (AUROC, AUPR)
    /// rank: for a gated method the gate's margin ([`Thresholds::margins`], ≥ 0 where
    /// flagged), so that they measure the detector that runs, novelty included; for a method
    /// without a gate its score. [B] × (camera, sensor).
    pub margins: Vec<[f32; 2]>,
    /// Fault probability per channel — the sensor columns, then the image regions — [B, C],
    /// row-major; empty for a model without per-channel scores (C = 0).
    pub channel_scores: Vec<f32>,
    /// Whether each sensor column of the output is a substitute, [B, D].
    pub substituted_columns: Vec<bool>,
    /// Output frames: the input where the camera was not flagged, the corrected frame where it
    /// was; [B, 3, H, W].
    pub camera: Vec<f32>,
    /// Output windows, same rule, [B, T, D].
    pub sensor: Vec<f32>,
}

/// A correction method: turns a (possibly faulty) batch into the batch handed downstream, with
/// a fault score per modality (higher = more likely faulty). MMSSL and every baseline implement
/// it, so one evaluation protocol scores them all.
pub trait Repair {
    /// The output for `batch`.
    fn repair(&self, batch: &HostBatch, device: &Device) -> Inference;
}

/// The gate's thresholds on the fault probability, one per modality: each modality is
/// calibrated for its own share of the target false-alarm rate, so that neither takes the
/// whole budget and the sum stays within the target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Threshold of the camera's fault probability.
    pub camera: f32,
    /// Threshold of the sensor's fault probability.
    pub sensor: f32,
    /// In a flagged modality, substitute only the channels (sensor columns, image regions)
    /// whose fault probability reaches this, and keep the others as they came — a stuck column
    /// or a scratched corner does not cost the rest of the window or frame the corrector's
    /// error. When no channel reaches it, or for `None` or a model without channel scores, the
    /// whole modality is substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<f32>,
    /// The sensor is also flagged where its window's distance under the learned repair's clean
    /// prior reaches this ([`crate::clean_prior`]); `None` (runs before it, a model without
    /// the prior) flags by the scores alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub novelty: Option<f32>,
    /// Logit units of the sensor's score that one unit of ln(distance) is worth in the sensor's
    /// margin ([`Thresholds::margins`]): the ratio of their spreads on clean validation
    /// windows, so that below their thresholds the two compare; `None` (runs before it) adds
    /// the novelty to the margin only where it flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub novelty_scale: Option<f32>,
    /// The sensor is also flagged where the largest of its columns' distances given the other
    /// columns ([`CleanPrior::column_distance`]) reaches this; `None` (runs before it, a gate
    /// calibrated with `novelty: window`) reads the window's distance alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_novelty: Option<f32>,
    /// `novelty_scale` for the column distance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_novelty_scale: Option<f32>,
}

/// A sensor window's distances under the clean prior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distances {
    /// The whole window's ([`CleanPrior::distance`]).
    pub window: f64,
    /// The largest column's given the others ([`CleanPrior::column_distance`]); 0 where the
    /// gate does not read it.
    pub column: f64,
}

impl Thresholds {
    /// The same threshold for both modalities; a flagged modality is substituted whole.
    pub fn uniform(threshold: f32) -> Self {
        Self {
            camera: threshold,
            sensor: threshold,
            channel: None,
            novelty: None,
            novelty_scale: None,
            column_novelty: None,
            column_novelty_scale: None,
        }
    }

    /// The same modality thresholds, with `channel` substitution.
    pub fn with_channel(self, channel: Option<f32>) -> Self {
        Self { channel, ..self }
    }

    /// Both modality score thresholds set to `threshold`, the channel and novelty thresholds
    /// kept: an operator's override moves the score gate, not the run's other thresholds.
    pub fn with_scores(self, threshold: f32) -> Self {
        Self { camera: threshold, sensor: threshold, ..self }
    }

    /// (camera, sensor).
    pub fn as_array(self) -> [f32; 2] {
        [self.camera, self.sensor]
    }

    /// Which modalities the scores flag (a score flags when it reaches its threshold), with
    /// the sensor window's distances under the clean prior where the model has one.
    pub fn flags(self, scores: [f32; 2], distances: Option<Distances>) -> [bool; 2] {
        let novel = self.novelties(distances).any(|(t, d, _)| d >= t);
        [scores[0] >= self.camera, scores[1] >= self.sensor || novel]
    }

    /// (threshold, distance, scale) of each novelty the gate reads.
    fn novelties(self, distances: Option<Distances>) -> impl Iterator<Item = (f64, f64, Option<f32>)> {
        let window = self.novelty.zip(distances).map(|(t, d)| (f64::from(t), d.window, self.novelty_scale));
        let column =
            self.column_novelty.zip(distances).map(|(t, d)| (f64::from(t), d.column, self.column_novelty_scale));
        window.into_iter().chain(column)
    }

    /// How far each modality is past its gate: the score's logit minus its threshold's; for the
    /// sensor, the largest of that and ln(distance / threshold) × scale of each novelty.
    /// Positive where [`Thresholds::flags`] flags (up to the clamp of probabilities to
    /// [10⁻⁷, 1 − 10⁻⁷]), so that a ranking of margins is a ranking by the gate that runs: the
    /// sensor's score saturates, and a ranking by it alone leaves out the evidence that flags
    /// the weak faults. Why the scale: below their thresholds the statistics only compare
    /// in units of their clean spreads — unscaled, clean windows' novelty outranked faults only
    /// the score saw (sensor saturation at severity 0.5 on the arm demo run: AUROC 0.997 by the
    /// score, 0.935 by the unscaled maximum). Without a scale a novelty counts only where it
    /// flags (its margin at least 0, plus the log-ratio).
    pub fn margins(self, scores: [f32; 2], distances: Option<Distances>) -> [f32; 2] {
        let camera = logit(scores[0]) - logit(self.camera);
        let score = logit(scores[1]) - logit(self.sensor);
        let sensor = self.novelties(distances).fold(score, |m, (t, d, scale)| match scale {
            Some(k) => m.max(f64::from(k) * (d.max(f64::MIN_POSITIVE) / t).ln()),
            None if d >= t => m.max(score.max(0.0) + (d / t).ln()),
            None => m,
        });
        [camera as f32, sensor as f32]
    }
}

/// Probabilities are kept this far from 0 and 1 on the logit scale.
const LOGIT_CLAMP: f64 = 1e-7;

/// ln(p / (1 − p)), p kept within [`LOGIT_CLAMP`] of 0 and 1: the scale on which the gate's
/// margins and its calibration compare probabilities (σ rounds to 1.0 in f32 long before the
/// evidence stops growing).
pub fn logit(p: f32) -> f64 {
    let p = f64::from(p).clamp(LOGIT_CLAMP, 1.0 - LOGIT_CLAMP);
    (p / (1.0 - p)).ln()
}

/// `camera 0.8107 sensor 0.9978`, with `novelty 27.25` and `column novelty 570.1` where the
/// gate has them.
impl std::fmt::Display for Thresholds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "camera {:.4} sensor {:.4}", self.camera, self.sensor)?;
        if let Some(n) = self.novelty {
            write!(f, " novelty {n:.2}")?;
        }
        if let Some(n) = self.column_novelty {
            write!(f, " column novelty {n:.2}")?;
        }
        Ok(())
    }
}

/// MMSSL's production path with its gate thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Gated<'a> {
    /// The trained model.
    pub model: &'a Mmssl,
    /// Its sizes.
    pub cfg: &'a ModelConfig,
    /// Gate thresholds on the fault probabilities.
    pub thresholds: Thresholds,
}

impl Repair for Gated<'_> {
    fn repair(&self, batch: &HostBatch, device: &Device) -> Inference {
        self.model.infer(self.cfg, batch, self.thresholds, device)
    }
}

/// Everything the evaluation looks at: the production output plus the references.
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    /// The gated output.
    pub inference: Inference,
    /// The corrected frames for every sample, gate ignored, [B, 3, H, W].
    pub corrected_camera: Vec<f32>,
    /// The corrected windows for every sample, gate ignored, [B, T, D].
    pub corrected_sensor: Vec<f32>,
    /// The stage-1 autoencoder's reconstruction of the input, [B, 3, H, W].
    pub autoencoder_camera: Vec<f32>,
    /// The stage-1 autoencoder's reconstruction of the input, [B, T, D].
    pub autoencoder_sensor: Vec<f32>,
}

fn rows_of(flags: &[[bool; 2]], m: usize) -> Vec<usize> {
    (0..flags.len()).filter(|&b| flags[b][m]).collect()
}

/// Row indices as an integer tensor, for `select` along the batch dimension.
pub fn index_tensor(rows: &[usize], device: &Device) -> Tensor<1, burn::tensor::Int> {
    let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::from_data(TensorData::new(v, [rows.len()]), device)
}

impl Stage1 {
    /// The autoencoder's reconstruction of a batch from its joint latent `z` [B, L], on the
    /// host: frames [B, 3, H, W], windows [B, T, D].
    pub fn reconstruct(&self, s1: &Stage1Config, z: Tensor<2>) -> (Vec<f32>, Vec<f32>) {
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let camera = camera_to_host(self.decode_camera(z.clone().narrow(1, 0, lc), s1));
        (camera, sensor_to_host(self.decode_sensor(z.narrow(1, lc, ls), s1)))
    }
}

/// Standardised evidence [B, F] as a tensor, for the block's detector.
pub fn evidence_tensor(evidence: &Evidence, raw: &[f32], device: &Device) -> Tensor<2> {
    let f = evidence.width();
    Tensor::from_data(TensorData::new(evidence.standardise(raw), [raw.len() / f, f]), device)
}

/// Scores of a block's output: per modality [B] × 2 and per channel [B, C] flat.
fn probabilities(logits: Tensor<2>, channel_logits: Option<Tensor<2>>, temperature: f32) -> (Vec<[f32; 2]>, Vec<f32>) {
    let score = |x: Tensor<2>| {
        let x = if temperature == 1.0 { x } else { x.div_scalar(temperature) };
        sigmoid(x).into_data().try_into_vec::<f32>().expect("float tensor")
    };
    let probs = score(logits);
    let scores = probs.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
    (scores, channel_logits.map_or_else(Vec::new, score))
}

/// Row `b`'s sensor-column scores out of `channel_scores` [B, C] (the columns come first); a
/// model without channel scores gives every column 1, the certainty of its flagged modality.
fn column_scores(channel_scores: &[f32], len: usize, dim: usize, b: usize) -> Vec<f32> {
    let channels = channel_scores.len() / len.max(1);
    if channels >= dim {
        channel_scores[b * channels..b * channels + dim].to_vec()
    } else {
        vec![1.0; dim]
    }
}

/// A modality of the output.
#[derive(Debug, Clone, Copy)]
enum Part {
    Camera,
    Sensor,
}

/// What detection found for a batch: the input latent, its reconstruction when the evidence
/// needed it, the corrected latent, the scores and the gate's flags.
struct Detection {
    z: Tensor<2>,
    reconstruction: Option<(Vec<f32>, Vec<f32>)>,
    latent: Tensor<2>,
    scores: Vec<[f32; 2]>,
    channel_scores: Vec<f32>,
    flags: Vec<[bool; 2]>,
    margins: Vec<[f32; 2]>,
}

impl Mmssl {
    /// Encodes a batch, gathers the evidence, runs the compute block, and gates.
    fn detect(&self, cfg: &ModelConfig, batch: &HostBatch, thresholds: Thresholds, device: &Device) -> Detection {
        let s1 = &cfg.stage1;
        let z = self.stage1.encode(batch.camera_tensor(s1, device), batch.sensor_tensor(s1, device));
        let reconstruction = cfg.block.evidence.as_ref().map(|_| self.stage1.reconstruct(s1, z.clone()));
        let evidence = cfg.block.evidence.as_ref().zip(reconstruction.as_ref()).map(|(e, (camera, sensor))| {
            let raw = e.raw(s1, &batch.camera, &batch.sensor, camera, sensor);
            evidence_tensor(e, &raw, device)
        });
        let out = self.block.forward(z.clone(), evidence);
        let (scores, channel_scores) =
            probabilities(out.logits, out.channel_logits, cfg.block.score_temperature.unwrap_or(1.0));
        let prior = cfg.clean_prior.as_ref();
        let win = cfg.stage1.window * cfg.stage1.sensor_dim;
        let (flags, margins) = scores
            .iter()
            .enumerate()
            .map(|(b, &s)| {
                let distances = thresholds.novelty.and(prior).map(|p| {
                    let w = &batch.sensor[b * win..(b + 1) * win];
                    let column = thresholds.column_novelty.map_or(0.0, |_| p.column_distance(w, s1.sensor_dim));
                    Distances { window: p.distance(w), column }
                });
                (thresholds.flags(s, distances), thresholds.margins(s, distances))
            })
            .unzip();
        Detection { z, reconstruction, latent: out.latent, scores, channel_scores, flags, margins }
    }

    /// The production path: detect, then decode and substitute only the modalities whose fault
    /// probability reaches `threshold`. A healthy modality passes through unchanged (no
    /// autoencoder artefacts on data that was fine) and a clean sample is never decoded.
    pub fn infer(&self, cfg: &ModelConfig, batch: &HostBatch, thresholds: Thresholds, device: &Device) -> Inference {
        let detection = self.detect(cfg, batch, thresholds, device);
        self.substitute_flagged(cfg, batch, detection, thresholds, device)
    }

    /// The corrected latent of rows `rows` of `batch`: the block's output on the detection
    /// latent, `latent` [B, L], or, with an output path, the correction of the output path's
    /// latent of those rows (encoded here, so that a sample nothing flagged is encoded once).
    fn corrected_latent(
        &self,
        cfg: &ModelConfig,
        batch: &HostBatch,
        latent: Tensor<2>,
        rows: &[usize],
        device: &Device,
    ) -> Tensor<2> {
        match &self.block.output {
            None => latent.select(0, index_tensor(rows, device)),
            Some(output) => {
                let (s1, sub) = (&cfg.stage1, batch.select(rows));
                let frame = sub.camera_tensor(s1, device);
                let latent = output.encode(frame.clone(), sub.sensor_tensor(s1, device));
                self.block.correct(OutputInput { latent, frame })
            }
        }
    }

    /// One modality of the corrected rows `rows` of `batch` decoded from the corrected latent
    /// [B, L], before any input repair: frames [rows, 3, H, W] or windows [rows, T, D].
    fn decoded(
        &self,
        cfg: &ModelConfig,
        batch: &HostBatch,
        latent: Tensor<2>,
        rows: &[usize],
        part: Part,
        device: &Device,
    ) -> Vec<f32> {
        let s1 = &cfg.stage1;
        let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
        let z = self.corrected_latent(cfg, batch, latent, rows, device);
        let decoder = self.block.output_decoder(&self.stage1);
        match part {
            Part::Camera => camera_to_host(decoder.decode_camera(z.narrow(1, 0, lc), s1)),
            Part::Sensor => sensor_to_host(decoder.decode_sensor(z.narrow(1, lc, ls), s1)),
        }
    }

    /// [`Mmssl::decoded`], then repaired from the input where the model has an
    /// [`InputRepair`] (a sensor window with its columns' scores, `channel_scores` [B, C] as in
    /// [`Inference`]).
    #[allow(clippy::too_many_arguments)]
    fn corrected(
        &self,
        cfg: &ModelConfig,
        batch: &HostBatch,
        latent: Tensor<2>,
        rows: &[usize],
        part: Part,
        channel_scores: &[f32],
        device: &Device,
    ) -> Vec<f32> {
        let s1 = &cfg.stage1;
        let mut decoded = self.decoded(cfg, batch, latent, rows, part, device);
        let Some(repair) = &cfg.repair else { return decoded };
        let (input, n) = match part {
            Part::Camera => (&batch.camera, 3 * s1.height * s1.width),
            Part::Sensor => (&batch.sensor, s1.window * s1.sensor_dim),
        };
        let dim = s1.sensor_dim;
        for (k, &b) in rows.iter().enumerate() {
            let (x, out) = (&input[b * n..(b + 1) * n], &mut decoded[k * n..(k + 1) * n]);
            match part {
                Part::Camera => repair.frame(x, out),
                Part::Sensor => {
                    repair.sensor(cfg.clean_prior.as_ref(), x, out, &column_scores(channel_scores, batch.len, dim, b))
                }
            }
        }
        decoded
    }

    /// What a [`crate::SensorMix`] is fitted on: every row's decoded sensor correction before
    /// any input repair [B, T, D] and its columns' fault scores [B, D].
    pub fn sensor_correction(&self, cfg: &ModelConfig, batch: &HostBatch, device: &Device) -> (Vec<f32>, Vec<f32>) {
        let d = self.detect(cfg, batch, Thresholds::uniform(2.0), device);
        let all: Vec<usize> = (0..batch.len).collect();
        let dim = cfg.stage1.sensor_dim;
        let scores = all.iter().flat_map(|&b| column_scores(&d.channel_scores, batch.len, dim, b)).collect();
        (self.decoded(cfg, batch, d.latent, &all, Part::Sensor, device), scores)
    }

    fn substitute_flagged(
        &self,
        cfg: &ModelConfig,
        batch: &HostBatch,
        d: Detection,
        thresholds: Thresholds,
        device: &Device,
    ) -> Inference {
        let Detection { latent, scores, channel_scores, flags, margins, .. } = d;
        let s1 = &cfg.stage1;
        let (h, w, t, dim) = (s1.height, s1.width, s1.window, s1.sensor_dim);
        let mut camera = batch.camera.clone();
        let mut sensor = batch.sensor.clone();
        let mut substituted_columns = vec![false; batch.len * dim];
        // which channels of a flagged row to substitute: those whose score reaches the channel
        // threshold, or all of them when none does (or there is no channel score)
        let grid = cfg.block.evidence.as_ref().map_or(0, |e| e.grid);
        let channels = dim + grid * grid;
        let chosen = |b: usize, range: std::ops::Range<usize>| -> Vec<bool> {
            let picked: Vec<bool> = match (thresholds.channel, channel_scores.is_empty()) {
                (Some(c), false) => range.map(|k| channel_scores[b * channels + k] >= c).collect(),
                _ => vec![true; range.len()],
            };
            if picked.iter().any(|&p| p) {
                picked
            } else {
                vec![true; picked.len()]
            }
        };
        let cam_rows = rows_of(&flags, 0);
        if !cam_rows.is_empty() {
            let decoded = self.corrected(cfg, batch, latent.clone(), &cam_rows, Part::Camera, &channel_scores, device);
            let frame = 3 * h * w;
            for (k, &b) in cam_rows.iter().enumerate() {
                let regions = if grid > 0 { chosen(b, dim..channels) } else { vec![true] };
                let g = grid.max(1);
                let (rh, rw) = (h / g, w / g);
                let (dst, src) = (&mut camera[b * frame..(b + 1) * frame], &decoded[k * frame..(k + 1) * frame]);
                if regions.iter().all(|&r| r) {
                    dst.copy_from_slice(src);
                    continue;
                }
                // a region's part of an image row is one run of rw pixels
                for (row, (dst, src)) in dst.chunks_exact_mut(w).zip(src.chunks_exact(w)).enumerate() {
                    let y = row % h;
                    for (x, _) in regions[(y / rh) * g..(y / rh + 1) * g].iter().enumerate().filter(|(_, &r)| r) {
                        dst[x * rw..(x + 1) * rw].copy_from_slice(&src[x * rw..(x + 1) * rw]);
                    }
                }
            }
        }
        let sen_rows = rows_of(&flags, 1);
        if !sen_rows.is_empty() {
            let decoded = self.corrected(cfg, batch, latent, &sen_rows, Part::Sensor, &channel_scores, device);
            let win = t * dim;
            for (k, &b) in sen_rows.iter().enumerate() {
                let columns = chosen(b, 0..dim);
                for r in 0..t {
                    for (j, &take) in columns.iter().enumerate() {
                        if take {
                            sensor[b * win + r * dim + j] = decoded[k * win + r * dim + j];
                        }
                    }
                }
                substituted_columns[b * dim..(b + 1) * dim].copy_from_slice(&columns);
            }
        }
        Inference { scores, flags, margins, channel_scores, substituted_columns, camera, sensor }
    }

    /// The production output plus, for evaluation, the ungated correction and the stage-1
    /// autoencoder's reconstruction of the input.
    pub fn run(&self, cfg: &ModelConfig, batch: &HostBatch, thresholds: Thresholds, device: &Device) -> PipelineOutput {
        let s1 = &cfg.stage1;
        let mut d = self.detect(cfg, batch, thresholds, device);
        let (autoencoder_camera, autoencoder_sensor) =
            d.reconstruction.take().unwrap_or_else(|| self.stage1.reconstruct(s1, d.z.clone()));
        let all: Vec<usize> = (0..batch.len).collect();
        let scores = &d.channel_scores;
        let corrected_camera = self.corrected(cfg, batch, d.latent.clone(), &all, Part::Camera, scores, device);
        let corrected_sensor = self.corrected(cfg, batch, d.latent.clone(), &all, Part::Sensor, scores, device);
        let inference = self.substitute_flagged(cfg, batch, d, thresholds, device);
        PipelineOutput { inference, corrected_camera, corrected_sensor, autoencoder_camera, autoencoder_sensor }
    }
}

/// Forward floating-point operations per sample (a multiply-add counts 2), by part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flops {
    /// Camera and sensor encoders.
    pub encoders: u64,
    /// Compute block E, D, C, G.
    pub block: u64,
    /// Camera and sensor decoders (one pass).
    pub decoders: u64,
}

impl Flops {
    /// Encoders + block + decoders: a sample whose two modalities are both corrected.
    pub fn pipeline(&self) -> u64 {
        self.encoders + self.block + self.decoders
    }
}

impl ModelConfig {
    /// Counts the forward FLOPs of one sample from the layer shapes.
    pub fn forward_flops(&self) -> Flops {
        let s = &self.stage1;
        let c = s.camera_channels;
        let sc = s.sensor_channels;
        // conv: every output element needs c_in·k² multiply-adds; a transposed conv spends the
        // same per input element.
        let conv2d = |cin: usize, cout: usize, h_out: usize, w_out: usize| 2 * cin * cout * 16 * h_out * w_out;
        let (h, w) = (s.height, s.width);
        let cam_chain = [(3, c[0], 2), (c[0], c[1], 4), (c[1], c[2], 8), (c[2], c[3], 16)];
        let cam: usize = cam_chain.iter().map(|&(i, o, f)| conv2d(i, o, h / f, w / f)).sum();
        let t = s.window;
        let sen = 2 * s.sensor_dim * sc[0] * 3 * t + 2 * sc[0] * sc[1] * 4 * (t / 2) + 2 * sc[1] * sc[2] * 4 * (t / 4);
        let b = &self.block;
        let lin = |i: usize, o: usize| 2 * i * o;
        let block = lin(b.latent, b.hidden)
            + lin(b.hidden, b.hidden)
            + lin(b.hidden, b.detector_hidden)
            + lin(b.detector_hidden, 2)
            + 2 * lin(b.hidden, b.hidden)
            + lin(b.hidden, b.decoder.outputs(b.latent, b.camera_latent));
        Flops { encoders: (cam + sen) as u64, block: block as u64, decoders: (cam + sen) as u64 }
    }
}
