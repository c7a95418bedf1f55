//! Stage 2: the dense compute block on the joint latent: encoder E, detector D, corrector C
//! (a contraction) and decoder G.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::autoencoder::Stage1;
use crate::evidence::{Evidence, CAMERA_FEATURES, SENSOR_FEATURES};
use crate::keypoints::Keypoints;
use crate::layers::{lrelu, LEAKY_SLOPE};
use crate::spectral::{spectral_norm, SnLinear};

/// Sizes and constants of the compute block. Defaults follow the reference architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockConfig {
    /// Width of the joint latent z (camera + sensor maps).
    pub latent: usize,
    /// Width of the hidden code h.
    pub hidden: usize,
    /// Width of the detector's hidden layer.
    pub detector_hidden: usize,
    /// Contraction factor ρ < 1 of the corrector: Lip(C) ≤ ρ.
    pub rho: f64,
    /// Share α of the identity path in the corrector's residual mix.
    pub alpha: f64,
    /// How G's output becomes the corrected latent.
    pub decoder: LatentDecoder,
    /// Evidence the detector reads beside E's code, and its per-channel scores; `None` is the
    /// paper's detector on E's code alone with one score per modality (and every run written
    /// before the evidence existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The clean latent's mean and spread per element: the block works on the standardised
    /// latent, bounded to ±[`LATENT_BOUND`], and its latent loss is in units of the clean
    /// spread; `None` (every run written before) works on the raw latent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_scale: Option<LatentScale>,
    /// Scores are σ(logit/τ): a monotone fault score in (0, 1) whose resolution does not run
    /// out near 1. A detector trained on the whole catalogue is confident, and the calibrated
    /// thresholds of the arm demo run sat at logits above 16.6, where σ rounds to 1.0 in f32
    /// and the gate could no longer be set between them; τ = 4 leaves room to logit 66. `None`
    /// (every run written before) is τ = 1, the plain probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_temperature: Option<f32>,
    /// The correction has an output path of its own: a copy of the stage-1 autoencoder,
    /// started from it and trained in stage 2 on faulty input, encodes what E → C → G corrects
    /// and decodes the corrected latent; detection keeps reading the frozen stage-1 encoders.
    /// The frozen encoders were fitted to clean data only and lose what a faulty input needs
    /// for its repair (a per-column gain: measured on the arm twin, the corrected sensor
    /// window's error was ten times the autoencoder's clean error, and an affine map per
    /// column could not remove it — a wrong level or scale per column). `false` (every run
    /// written before) decodes with stage 1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_path: bool,
    /// The correction reads a code of its own, E_c(z̃) → C → G, from an encoder shaped as E;
    /// E keeps serving the detector alone. A shared E is pulled two ways: the detector's loss
    /// and γ (a doubled learning rate under Adam) on one side, the output error on the other,
    /// and with an output path its two inputs (frozen and learning encoders) drift apart.
    /// `false` (every run written before) is the paper's shared E.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub correction_encoder: bool,
    /// The output path's standardised latent is bounded smoothly to ±this, B·tanh(z/B);
    /// `null` leaves it unbounded: its encoders learn on faulty input and can keep a gained
    /// window's latent in range themselves, where a bound squashes the scale it must undo.
    /// Every run written before has the bound [`LATENT_BOUND`].
    #[serde(default = "default_output_bound")]
    pub output_bound: Option<f32>,
    /// Width of the camera part of the latent (the sensor part follows it): what
    /// [`LatentDecoder::Split`] splits at. 0 in runs written before it, which cannot split.
    #[serde(default)]
    pub camera_latent: usize,
    /// Spatial keypoints of the input frame ([`crate::keypoints`]) read out into the sensor part
    /// of the corrected latent: this many keypoint maps; 0 (every run written before) reads
    /// the frame only through the latent. Needs the split decoder and the output path (the
    /// correction is the only user of the frame here).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keypoints: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_output_bound() -> Option<f32> {
    Some(LATENT_BOUND)
}

/// A standardised latent element is clamped to ±this: a gain of 6 on a wide-range column
/// moves the latent far outside anything clean data gives, and the compute block must not see,
/// keep or be trained on values without bound (measured on a file from outside the project:
/// stage 2 diverged with the raw latent).
pub const LATENT_BOUND: f32 = 8.0;

/// Mean and spread of each element of the clean joint latent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentScale {
    /// Mean per element, [latent].
    pub mean: Vec<f32>,
    /// Standard deviation per element (at least [`LatentScale::MIN_STD`]), [latent].
    pub std: Vec<f32>,
}

impl LatentScale {
    /// Smallest spread used, and at least a tenth of the median spread: an element that hardly
    /// varies on clean data is not amplified a thousandfold.
    pub const MIN_STD: f32 = 1e-3;

    /// Fits the scale on clean latents [N, latent].
    pub fn fit(latents: &[f32], latent: usize) -> Self {
        let n = (latents.len() / latent).max(1) as f64;
        let mut mean = vec![0.0f64; latent];
        for row in latents.chunks_exact(latent) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v) / n;
            }
        }
        let mut var = vec![0.0f64; latent];
        for row in latents.chunks_exact(latent) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2) / n;
            }
        }
        let mut spreads: Vec<f32> = var.iter().map(|&v| v.sqrt() as f32).collect();
        let mut sorted = spreads.clone();
        sorted.sort_by(f32::total_cmp);
        let floor = (0.1 * sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)).max(Self::MIN_STD);
        spreads.iter_mut().for_each(|s| *s = s.max(floor));
        Self { mean: mean.iter().map(|&m| m as f32).collect(), std: spreads }
    }
}

/// How the decoder G turns the corrected code into the corrected latent ẑ.
///
/// docs/design.md §4 measured that decoding the latent directly lost sensor fidelity and suggested a
/// correction Δz on the faulty latent. Measured here: Δz suits the camera noise (a local
/// perturbation of z̃) and a direct prediction suits the sensor gain fault (z̃ far from z); the
/// highway mix learns which to use per latent element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatentDecoder {
    /// ẑ = G(c).
    Direct,
    /// ẑ = z̃ + G(c).
    Residual,
    /// G(c) = (p, a), ẑ = σ(a)·z̃ + (1 − σ(a))·p: a learned gate per element between keeping
    /// the faulty latent and replacing it.
    Highway,
    /// Highway on the camera part of the latent, direct on the sensor part
    /// ([`BlockConfig::camera_latent`] says where it begins). Only the flagged modality is ever
    /// substituted, so a direct sensor part never has to reproduce a healthy window; and a
    /// sensor fault such as a gain changes every value of the window, where a kept share of the
    /// faulty latent leaks into the output. A camera fault is mostly local, and keeping the
    /// untouched part of the frame's latent pays. Measured on the arm demo run (stage 2 only,
    /// same stage 1): direct decoding lowered the sensor error and raised the camera one
    /// against the highway; this keeps the better of both.
    Split,
}

impl LatentDecoder {
    /// Width of G's output for a latent of `latent` values whose camera part is `camera` wide.
    pub fn outputs(self, latent: usize, camera: usize) -> usize {
        match self {
            Self::Highway => 2 * latent,
            Self::Split => latent + camera,
            Self::Direct | Self::Residual => latent,
        }
    }
}

impl BlockConfig {
    /// The reference block for a joint latent of `latent` values.
    pub fn new(latent: usize) -> Self {
        Self {
            latent,
            hidden: 256,
            detector_hidden: 64,
            rho: 0.95,
            alpha: 0.5,
            decoder: LatentDecoder::Highway,
            evidence: None,
            latent_scale: None,
            score_temperature: None,
            output_path: false,
            correction_encoder: false,
            output_bound: default_output_bound(),
            camera_latent: 0,
            keypoints: 0,
        }
    }

    /// Builds the block with fresh weights.
    pub fn init(&self, device: &Device) -> ComputeBlock {
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let encoder = || Encoder { l1: lin(self.latent, self.hidden), l2: lin(self.hidden, self.hidden) };
        let mut block = ComputeBlock {
            encoder: encoder(),
            detector: {
                let features = self.evidence.as_ref().map_or(0, Evidence::width);
                let heads = self.evidence.as_ref().map(|e| {
                    let head = |inputs: usize| ChannelHead {
                        l1: lin(inputs + CHANNEL_CONTEXT, CHANNEL_HIDDEN),
                        l2: lin(CHANNEL_HIDDEN, 1),
                    };
                    ChannelHeads {
                        context: lin(self.hidden, CHANNEL_CONTEXT),
                        sensor: head(SENSOR_FEATURES),
                        camera: head(CAMERA_FEATURES),
                        sensor_dim: e.sensor_dim,
                        regions: e.grid * e.grid,
                    }
                });
                Detector {
                    l1: lin(self.hidden + features, self.detector_hidden),
                    l2: lin(self.detector_hidden, 2),
                    channels: heads,
                }
            },
            corrector: Corrector {
                l1: SnLinear::new(self.hidden, self.hidden, device),
                l2: SnLinear::new(self.hidden, self.hidden, device),
                rho: self.rho,
                alpha: self.alpha,
            }
            .power_iteration(INIT_POWER_ITERATIONS),
            decoder: lin(self.hidden, self.decoder.outputs(self.latent, self.camera_latent)),
            correction: None,
            output: None,
            keypoints: None,
            mode: self.decoder,
            camera_latent: self.camera_latent,
            scale: self.latent_scale.clone(),
            output_bound: self.output_bound,
        };
        // drawn last: the other parts start as they would without it
        block.correction = self.correction_encoder.then(encoder);
        block.keypoints =
            (self.keypoints > 0).then(|| Keypoints::new(self.keypoints, self.latent - self.camera_latent, device));
        block
    }
}

/// Power-iteration steps on a fresh corrector: with random vectors σ(W) is underestimated and
/// C is no contraction (a run is refused at load when its certified bound is 1 or more);
/// training then refreshes them after every step.
const INIT_POWER_ITERATIONS: usize = 50;

/// E: joint latent → hidden code.
#[derive(Module, Debug)]
pub struct Encoder {
    l1: Linear,
    l2: Linear,
}

impl Encoder {
    /// [B, latent] → [B, hidden]
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        self.l2.forward(lrelu(self.l1.forward(z)))
    }
}

/// D: hidden code (and the evidence, when the block has it) → one fault logit per modality
/// (camera, sensor), and with evidence one per channel.
#[derive(Module, Debug)]
pub struct Detector {
    l1: Linear,
    l2: Linear,
    channels: Option<ChannelHeads>,
}

/// Width of the summary of E's code that every channel head reads.
const CHANNEL_CONTEXT: usize = 16;
/// Hidden width of a channel head.
const CHANNEL_HIDDEN: usize = 32;

/// The per-channel scores: one small network shared by all sensor columns and one shared by all
/// image regions, each reading its channel's own evidence and a summary of E's code (what the
/// rest of the sample says). Shared weights make a column's score depend on that column's
/// evidence, so the score points at the faulty channel, and every channel trains every head.
#[derive(Module, Debug)]
pub struct ChannelHeads {
    context: Linear,
    sensor: ChannelHead,
    camera: ChannelHead,
    sensor_dim: usize,
    regions: usize,
}

/// Features of one channel + context → its fault logit.
#[derive(Module, Debug)]
pub struct ChannelHead {
    l1: Linear,
    l2: Linear,
}

impl ChannelHead {
    /// [B, N, features] and the context [B, K] → [B, N]
    fn forward(&self, features: Tensor<3>, context: Tensor<2>) -> Tensor<2> {
        let [b, n, _] = features.dims();
        let k = context.dims()[1];
        let context = context.reshape([b, 1, k]).expand([b, n, k]);
        let x = Tensor::cat(vec![features, context], 2);
        self.l2.forward(lrelu(self.l1.forward(x))).reshape([b, n])
    }
}

impl ChannelHeads {
    /// E's code [B, hidden] and the evidence [B, F] → channel logits [B, D + regions]
    fn forward(&self, h: Tensor<2>, evidence: Tensor<2>) -> Tensor<2> {
        let b = h.dims()[0];
        let (d, r) = (self.sensor_dim, self.regions);
        let context = lrelu(self.context.forward(h));
        let sensor = evidence.clone().narrow(1, 0, d * SENSOR_FEATURES).reshape([b, d, SENSOR_FEATURES]);
        let camera = evidence.narrow(1, d * SENSOR_FEATURES, r * CAMERA_FEATURES).reshape([b, r, CAMERA_FEATURES]);
        Tensor::cat(vec![self.sensor.forward(sensor, context.clone()), self.camera.forward(camera, context)], 1)
    }
}

impl Detector {
    /// [B, hidden] (+ evidence [B, F]) → modality logits [B, 2] and, with evidence, channel
    /// logits [B, channels]
    pub fn forward(&self, h: Tensor<2>, evidence: Option<Tensor<2>>) -> (Tensor<2>, Option<Tensor<2>>) {
        let channels = match (&self.channels, &evidence) {
            (Some(heads), Some(e)) => Some(heads.forward(h.clone(), e.clone())),
            _ => None,
        };
        let x = match evidence {
            Some(e) => Tensor::cat(vec![h, e], 1),
            None => h,
        };
        (self.l2.forward(lrelu(self.l1.forward(x))), channels)
    }
}

/// C(h) = ρ·(α·h + (1 − α)·(W₂/σ₂)·lrelu((W₁/σ₁)·h + b₁) + b₂).
///
/// With both weights spectrally normalised and LeakyReLU 1-Lipschitz,
/// Lip(C) ≤ ρ·(α + (1 − α)·‖W₂/σ₂‖·‖W₁/σ₁‖) ≈ ρ < 1: a contraction by construction.
#[derive(Module, Debug)]
pub struct Corrector {
    /// First spectrally normalised layer.
    pub l1: SnLinear,
    /// Second spectrally normalised layer.
    pub l2: SnLinear,
    rho: f64,
    alpha: f64,
}

impl Corrector {
    /// [B, hidden] → [B, hidden]
    pub fn forward(&self, h: Tensor<2>) -> Tensor<2> {
        let inner = self.l2.forward(lrelu(self.l1.forward(h.clone())));
        (h.mul_scalar(self.alpha) + inner.mul_scalar(1.0 - self.alpha)).mul_scalar(self.rho)
    }

    /// Refreshes both power-iteration vectors (one step each after every optimiser step keeps
    /// the estimate of σ tracking the weights).
    pub fn power_iteration(self, n: usize) -> Self {
        Self { l1: self.l1.power_iteration(n), l2: self.l2.power_iteration(n), ..self }
    }

    /// A certified upper bound of Lip(C): the exact spectral norms of the normalised weights
    /// (host power iteration to convergence) put into the formula above.
    pub fn lipschitz_bound(&self) -> f64 {
        let norm = |l: &SnLinear| {
            let w = l.normalized_weight().detach();
            let [rows, cols] = w.dims();
            let data = w.into_data().try_into_vec::<f32>().expect("f32 weights");
            spectral_norm(&data, rows, cols, 500)
        };
        self.rho * (self.alpha + (1.0 - self.alpha) * norm(&self.l1) * norm(&self.l2))
    }
}

// The bound needs a 1-Lipschitz activation.
const _: () = assert!(LEAKY_SLOPE <= 1.0);

/// The compute block.
#[derive(Module, Debug)]
pub struct ComputeBlock {
    /// E.
    pub encoder: Encoder,
    /// D.
    pub detector: Detector,
    /// C.
    pub corrector: Corrector,
    /// G.
    pub decoder: Linear,
    /// E_c, the correction's own encoder ([`BlockConfig::correction_encoder`]).
    pub correction: Option<Encoder>,
    /// The output path ([`BlockConfig::output_path`]), set from the trained stage 1.
    pub output: Option<Stage1>,
    /// The frame's keypoints for the sensor correction ([`BlockConfig::keypoints`]).
    pub keypoints: Option<Keypoints>,
    /// How G's output becomes the corrected latent.
    #[module(skip)]
    pub mode: LatentDecoder,
    /// [`BlockConfig::camera_latent`].
    #[module(skip)]
    pub camera_latent: usize,
    /// The clean latent's scale, when the block works on the standardised latent.
    #[module(skip)]
    pub scale: Option<LatentScale>,
    /// [`BlockConfig::output_bound`].
    #[module(skip)]
    pub output_bound: Option<f32>,
}

/// What the correction reads on the output path: its latent of the input [B, L] and the input
/// frames [B, 3, H, W].
#[derive(Debug, Clone)]
pub struct OutputInput {
    /// The output path's latent.
    pub latent: Tensor<2>,
    /// The frames it encoded.
    pub frame: Tensor<4>,
}

/// What the block computes for a batch of (possibly faulty) joint latents.
#[derive(Debug, Clone)]
pub struct BlockOutput {
    /// Hidden code h = E(z̃), [B, hidden].
    pub hidden: Tensor<2>,
    /// Corrected code C(h), [B, hidden].
    pub corrected: Tensor<2>,
    /// Fault logits per modality, [B, 2] (camera, sensor).
    pub logits: Tensor<2>,
    /// Fault logits per channel (sensor columns, then image regions), [B, channels], when the
    /// block reads evidence.
    pub channel_logits: Option<Tensor<2>>,
    /// Corrected joint latent ẑ, [B, latent].
    pub latent: Tensor<2>,
    /// ẑ in the block's own units (standardised when the block has a latent scale), [B, latent]:
    /// what the latent loss compares with [`ComputeBlock::standardise`] of the clean latent.
    pub latent_units: Tensor<2>,
}

impl ComputeBlock {
    /// # Shapes
    /// z̃ [B, latent], evidence [B, F] (standardised; `None` for a block without) → [`BlockOutput`]
    pub fn forward(&self, z: Tensor<2>, evidence: Option<Tensor<2>>) -> BlockOutput {
        self.forward_with(z, evidence, None)
    }

    /// [`ComputeBlock::forward`] with the correction reading `output`, the output path's latent
    /// of the same input (and its frames, for the keypoints), when given; detection reads `z`.
    pub fn forward_with(&self, z: Tensor<2>, evidence: Option<Tensor<2>>, output: Option<OutputInput>) -> BlockOutput {
        let z = self.standardise(z);
        let hidden = self.encoder.forward(z.clone());
        let (logits, channel_logits) = self.detector.forward(hidden.clone(), evidence);
        let (corrected, latent) = match (output, &self.correction) {
            (None, None) => self.correct_units(z, hidden.clone(), None),
            (None, Some(ec)) => {
                let h = ec.forward(z.clone());
                self.correct_units(z, h, None)
            }
            (Some(OutputInput { latent, frame }), _) => {
                let zo = self.standardise_smooth(latent);
                let h = self.correction_code(zo.clone());
                self.correct_units(zo, h, Some(frame))
            }
        };
        BlockOutput {
            hidden,
            corrected,
            logits,
            channel_logits,
            latent: self.unstandardise(latent.clone()),
            latent_units: latent,
        }
    }

    /// The corrected latent of the output path's latent of an input alone, without detection.
    pub fn correct(&self, input: OutputInput) -> Tensor<2> {
        let z = self.standardise_smooth(input.latent);
        let h = self.correction_code(z.clone());
        self.unstandardise(self.correct_units(z, h, Some(input.frame)).1)
    }

    /// The code C corrects: E_c's when the block has it, E's otherwise; `z` in block units.
    fn correction_code(&self, z: Tensor<2>) -> Tensor<2> {
        self.correction.as_ref().unwrap_or(&self.encoder).forward(z)
    }

    /// C's code and the corrected latent in the block's units, from the standardised latent,
    /// E's code of it and the input frames (read by the keypoints, when the block has them).
    fn correct_units(&self, z: Tensor<2>, hidden: Tensor<2>, frame: Option<Tensor<4>>) -> (Tensor<2>, Tensor<2>) {
        let corrected = self.corrector.forward(hidden);
        let g = self.decoder.forward(corrected.clone());
        let latent = match self.mode {
            LatentDecoder::Direct => g,
            LatentDecoder::Residual => z + g,
            LatentDecoder::Highway => {
                let l = z.dims()[1];
                let keep = sigmoid(g.clone().narrow(1, l, l));
                keep.clone() * z + (keep.neg() + 1.0) * g.narrow(1, 0, l)
            }
            LatentDecoder::Split => {
                let (l, c) = (z.dims()[1], self.camera_latent);
                let keep = sigmoid(g.clone().narrow(1, l, c));
                let camera = keep.clone() * z.narrow(1, 0, c) + (keep.neg() + 1.0) * g.clone().narrow(1, 0, c);
                let sensor = g.narrow(1, c, l - c);
                let sensor = match (&self.keypoints, frame) {
                    (Some(k), Some(frame)) => sensor + k.forward(frame),
                    _ => sensor,
                };
                Tensor::cat(vec![camera, sensor], 1)
            }
        };
        (corrected, latent)
    }

    /// The autoencoder that decodes the corrected latent: the output path, or `stage1`.
    pub fn output_decoder<'a>(&'a self, stage1: &'a Stage1) -> &'a Stage1 {
        self.output.as_ref().unwrap_or(stage1)
    }

    /// The code C reads for a latent (the contrastive loss's positives): E_c's when the block
    /// has it, E's otherwise.
    pub fn embed(&self, z: Tensor<2>) -> Tensor<2> {
        self.correction_code(self.standardise(z))
    }

    /// A raw latent [B, latent] in the block's units: standardised and bounded when the block
    /// has a scale, unchanged otherwise.
    pub fn standardise(&self, z: Tensor<2>) -> Tensor<2> {
        match &self.scale {
            Some(s) => {
                let (mean, inv) = self.scale_tensors(s, &z.device());
                ((z - mean) * inv).clamp(-LATENT_BOUND, LATENT_BOUND)
            }
            None => z,
        }
    }

    /// The output path's latent in block units: standardised and bounded smoothly,
    /// B·tanh(z/B) with B = [`BlockConfig::output_bound`] (the output path's encoders learn,
    /// and a hard clamp would give no gradient to exactly the latents a large fault pushes past
    /// the bound), or standardised only.
    fn standardise_smooth(&self, z: Tensor<2>) -> Tensor<2> {
        match &self.scale {
            Some(s) => {
                let (mean, inv) = self.scale_tensors(s, &z.device());
                let z = (z - mean) * inv;
                match self.output_bound {
                    Some(b) => burn::tensor::activation::tanh(z.div_scalar(b)).mul_scalar(b),
                    None => z,
                }
            }
            None => z,
        }
    }

    fn unstandardise(&self, z: Tensor<2>) -> Tensor<2> {
        match &self.scale {
            Some(s) => {
                let (mean, inv) = self.scale_tensors(s, &z.device());
                z / inv + mean
            }
            None => z,
        }
    }

    /// Mean and inverse spread as [1, latent] rows.
    fn scale_tensors(&self, s: &LatentScale, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let l = s.mean.len();
        let row = |v: Vec<f32>| Tensor::<2>::from_data(burn::tensor::TensorData::new(v, [1, l]), device);
        (row(s.mean.clone()), row(s.std.iter().map(|&v| 1.0 / v).collect()))
    }
}
