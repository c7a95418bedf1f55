//! Fitting the learned sensor repair ([`mmguard_model::SensorMix`]) after stage 2.
//!
//! The rest of the model is frozen: the windows it learns from ([`FitOn`]: by default half of
//! the validation episodes, which stage 2 never trained on) get sensor faults drawn from stage
//! 2's mix (alone or with a camera fault, in stage 2's proportions), the model decodes its
//! correction once per faulty copy, and the head learns per column which mix of the candidates
//! comes closest to the clean column. Faulty copies of the other windows decide when to stop,
//! and whether the head is kept at all: only where it beats the rule.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use mmguard_data::{Dataset, MinMax};
use mmguard_model::clean_prior;
use mmguard_model::sensor_mix::{MixInput, CANDIDATES};
use mmguard_model::{compute, host_batch, lrelu, Candidate, CleanPrior, InputRepair, Mmssl, ModelConfig, SensorMix};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{StageSchedule, TrainConfig, TrainingFaults};
use crate::error::Result;
use crate::fit::{fit, Plan, Step, StepReport, Stream};
use crate::log::CsvLog;
use crate::losses::mse;
use crate::pipeline::Prepared;
use crate::stage1::adam;
use crate::stages::previous_frames;

/// How the learned sensor repair is fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepairMixConfig {
    /// Hidden width of the head.
    pub hidden: usize,
    /// Faulty copies of every training window (each with its own faults), decoded once.
    pub copies: usize,
    /// Columns per step.
    pub batch_columns: usize,
    /// Epochs, learning rate and early stopping over the faulty copies' columns.
    pub schedule: StageSchedule,
    /// Which windows the head learns from.
    pub fit_on: FitOn,
    /// The clean-window model the gain, offset and affine candidates are fitted with and the
    /// gate's novelty threshold reads ([`CleanPrior`], kept in the run whether the head is kept
    /// or not); `None` fits the maps column by column against the correction and gates by the
    /// scores alone.
    pub prior: Option<PriorConfig>,
}

/// How the clean-window prior is fitted (on the clean training windows).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriorConfig {
    /// Added to the covariance's diagonal, relative to its mean.
    pub ridge: f64,
    /// Pull of the decoded correction, relative to its clean error.
    pub weight: f32,
}

/// Measured on the arm demo run, sensor gain at severity 1, absolute ridge 10⁻⁷ … 10⁻⁵ and pull
/// 0.03 … 0.3: the joint gain map's error 0.38–0.51 ×10⁻², best near 10⁻⁶ (about 10⁻⁴ of the
/// mean variance there) and 0.1; a weaker ridge trusts directions that 2,210 windows barely pin.
impl Default for PriorConfig {
    fn default() -> Self {
        Self { ridge: 1e-4, weight: 0.1 }
    }
}

/// Which windows the head learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitOn {
    /// Half of the validation episodes, stopped on the other half: windows stage 2 never
    /// trained on, where the correction errs as it will on new episodes.
    Validation,
    /// The training windows, stopped on the validation windows.
    Training,
}

impl Default for RepairMixConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            copies: 16,
            batch_columns: 512,
            schedule: StageSchedule { epochs: 40, learning_rate: 3e-3, patience: 6, halve_after: Some(2) },
            fit_on: FitOn::Validation,
            prior: Some(PriorConfig::default()),
        }
    }
}

/// Faulty copies of the validation windows the head is stopped on.
const VALIDATION_COPIES: usize = 3;

/// The head as a burn module, for training.
#[derive(Module, Debug)]
struct Head {
    l1: Linear,
    l2: Linear,
}

impl Head {
    fn new(features: usize, hidden: usize, device: &Device) -> Self {
        Self {
            l1: LinearConfig::new(features, hidden).init(device),
            // a fresh head weighs every candidate alike
            l2: LinearConfig::new(hidden, CANDIDATES).with_initializer(Initializer::Zeros).init(device),
        }
    }

    /// features [N, F], candidates [N, K, T] → the mixed columns [N, T]
    fn forward(&self, features: Tensor<2>, candidates: Tensor<3>) -> Tensor<2> {
        let w = softmax(self.l2.forward(lrelu(self.l1.forward(features))), 1);
        let [n, k] = w.dims();
        (w.reshape([n, k, 1]) * candidates).sum_dim(1).squeeze_dim(1)
    }

    fn host(&self, hidden: usize) -> SensorMix {
        let v = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().expect("float tensor");
        let b = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().expect("float tensor");
        SensorMix {
            hidden,
            w1: v(self.l1.weight.val()),
            b1: b(self.l1.bias.as_ref().expect("bias").val()),
            w2: v(self.l2.weight.val()),
            b2: b(self.l2.bias.as_ref().expect("bias").val()),
        }
    }
}

/// Columns of faulty copies: the head's inputs and the clean columns, row-major.
#[derive(Debug, Default)]
struct Columns {
    features: Vec<f32>,
    candidates: Vec<f32>,
    clean: Vec<f32>,
    n: usize,
}

impl Columns {
    fn push(&mut self, mix: MixInput, clean: &[f32], d: usize) {
        let t = clean.len() / d;
        self.features.extend(mix.features);
        self.candidates.extend(mix.candidates);
        for j in 0..d {
            self.clean.extend((0..t).map(|i| clean[i * d + j]));
        }
        self.n += d;
    }

    fn tensors(&self, rows: &[usize], device: &Device) -> (Tensor<2>, Tensor<3>, Tensor<2>) {
        let (f, t) = (self.features.len() / self.n, self.clean.len() / self.n);
        let gather = |v: &[f32], w: usize| -> Vec<f32> {
            rows.iter().flat_map(|&r| v[r * w..(r + 1) * w].iter().copied()).collect()
        };
        let n = rows.len();
        (
            Tensor::from_data(TensorData::new(gather(&self.features, f), [n, f]), device),
            Tensor::from_data(TensorData::new(gather(&self.candidates, CANDIDATES * t), [n, CANDIDATES, t]), device),
            Tensor::from_data(TensorData::new(gather(&self.clean, t), [n, t]), device),
        )
    }

    /// Mean squared error of candidate `k` against the clean columns.
    fn candidate_error(&self, k: Candidate) -> f64 {
        let t = self.clean.len() / self.n.max(1);
        let k = k as usize;
        let mut sum = 0.0f64;
        for r in 0..self.n {
            let cand = &self.candidates[(r * CANDIDATES + k) * t..(r * CANDIDATES + k + 1) * t];
            sum +=
                cand.iter().zip(&self.clean[r * t..(r + 1) * t]).map(|(&a, &b)| f64::from(a - b).powi(2)).sum::<f64>();
        }
        sum / (self.n * t).max(1) as f64
    }
}

/// Stage 2's mix made sensor-faulty: every sample gets a sensor fault, a share of them a camera
/// fault too, in stage 2's proportion of common-cause samples.
fn sensor_faults(faults: &TrainingFaults) -> TrainingFaults {
    let sensor_share = 1.0 - faults.clean_share - faults.camera_share;
    let both = if sensor_share > 0.0 { faults.both_share / sensor_share } else { 0.0 };
    TrainingFaults { clean_share: 0.0, camera_share: 0.0, both_share: both, ..faults.clone() }
}

/// The columns of `copies` sensor-faulty copies of the windows ending at `ends`, as the frozen
/// model decodes them.
#[allow(clippy::too_many_arguments)]
fn columns(
    model: &Mmssl,
    model_cfg: &ModelConfig,
    repair: &InputRepair,
    prior: Option<&CleanPrior>,
    data: &Dataset,
    ends: &[usize],
    cfg: &TrainConfig,
    norm: &MinMax,
    copies: usize,
    rng: &mut ChaCha8Rng,
) -> Columns {
    let (device, s1) = (compute::device(), &model_cfg.stage1);
    let faults = sensor_faults(&cfg.stage2.faults);
    let (d, win) = (s1.sensor_dim, s1.window * s1.sensor_dim);
    let mut out = Columns::default();
    for _ in 0..copies {
        for chunk in ends.chunks(cfg.batch_size) {
            let clean = host_batch(data, chunk, cfg.window, norm);
            let (faulty, _) = faults.inject_batch(&clean, &previous_frames(data, chunk, &faults), s1, rng);
            let (decoded, scores) = model.sensor_correction(model_cfg, &faulty, &device);
            for b in 0..faulty.len {
                let (x, c) = (&faulty.sensor[b * win..(b + 1) * win], &clean.sensor[b * win..(b + 1) * win]);
                // a fault that left the window as it was is nothing to repair
                if x.iter().zip(c).all(|(p, q)| p.to_bits() == q.to_bits()) {
                    continue;
                }
                let mix =
                    SensorMix::prepare(repair, prior, x, &decoded[b * win..(b + 1) * win], &scores[b * d..(b + 1) * d]);
                out.push(mix, c, d);
            }
        }
    }
    out
}

/// The head as a [`Step`] over the training columns.
struct MixStep {
    head: Head,
    optim: ModuleOptimizer,
    lr: f64,
    base_lr: f64,
    train: Columns,
    val: Columns,
    device: Device,
}

impl Step for MixStep {
    type Model = Head;

    fn train(&mut self, batch: &[usize], _: &mut ChaCha8Rng) -> Option<StepReport> {
        let (features, candidates, clean) = self.train.tensors(batch, &self.device);
        let loss = mse(self.head.forward(features, candidates), clean);
        let value = f64::from(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.head);
        self.head = self.optim.step(self.lr, self.head.clone(), grads);
        Some(StepReport { loss: value, output: value, ..Default::default() })
    }

    fn validate(&self) -> f64 {
        let plain = compute::device();
        let head = self.head.valid();
        let rows: Vec<usize> = (0..self.val.n).collect();
        let (mut sum, mut n) = (0.0, 0usize);
        for chunk in rows.chunks(4096) {
            let (features, candidates, clean) = self.val.tensors(chunk, &plain);
            sum += f64::from(mse(head.forward(features, candidates), clean).into_scalar::<f32>()) * chunk.len() as f64;
            n += chunk.len();
        }
        sum / n.max(1) as f64
    }

    fn model(&self) -> &Head {
        &self.head
    }

    fn scale_learning_rate(&mut self, factor: f64) {
        self.lr = self.base_lr * factor;
    }
}

/// What fitting the head measured on the validation columns (MSE on the [0, 1] scale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RepairMixReport {
    /// The rule alone.
    pub rule: f64,
    /// The decoded correction alone.
    pub decoded: f64,
    /// Every candidate alone, in [`Candidate::ALL`]'s order.
    pub candidates: [f64; CANDIDATES],
    /// The fitted head.
    pub mix: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Whether the head was kept (it beat the rule).
    pub kept: bool,
}

/// Fits the clean-window prior on the clean training windows' sensor part: `None` where the
/// window is larger than [`clean_prior::MAX_SIZE`] or the covariance is not positive definite
/// (logged: the run then repairs column by column and gates by the scores alone).
pub fn fit_clean_prior(
    data: &Dataset,
    ends: &[usize],
    window: usize,
    norm: &MinMax,
    prior: &PriorConfig,
) -> Option<CleanPrior> {
    let size = window * data.sensor_dim();
    let mut sensor = vec![0.0f32; ends.len() * size];
    for (w, &end) in sensor.chunks_exact_mut(size).zip(ends) {
        norm.scale_into(data.sensor_window(end, window), w);
    }
    let fitted = CleanPrior::fit(&sensor, size, prior.ridge, prior.weight);
    if fitted.is_none() {
        tracing::warn!(
            size,
            windows = ends.len(),
            max = clean_prior::MAX_SIZE,
            "no clean prior: the window is too large or its covariance is not positive definite"
        );
    }
    fitted
}

/// Fits the head of `repair` on the frozen `model` (its candidates under the model's clean
/// prior, if any) and returns the repair with it where it beats the rule on the validation
/// windows, with what was measured.
pub fn fit_repair_mix(
    model: &Mmssl,
    model_cfg: &ModelConfig,
    data: &Dataset,
    prep: &Prepared,
    cfg: &TrainConfig,
    mix_cfg: &RepairMixConfig,
    log: &mut CsvLog,
) -> Result<(InputRepair, RepairMixReport)> {
    let repair = model_cfg.repair.clone().expect("the mix repairs with the rule's tolerances");
    let (fit_ends, stop_ends) = match mix_cfg.fit_on {
        FitOn::Training => (prep.train.ends.clone(), prep.val.ends.clone()),
        FitOn::Validation => {
            // alternate episodes, so that both halves hold every kind of episode the split has
            let episodes = &prep.split.val;
            let first = |e: i32| episodes.iter().position(|&x| x == e).is_some_and(|k| k % 2 == 0);
            let (fit, stop): (Vec<usize>, Vec<usize>) =
                prep.val.ends.iter().partition(|&&end| first(data.episode[end]));
            // one validation episode: its other faulty copies decide when to stop
            if stop.is_empty() {
                (fit.clone(), fit)
            } else {
                (fit, stop)
            }
        }
    };
    let mut rng = Stream::RepairMix.rng(cfg.seed);
    let (n, p) = (mix_cfg.copies, model_cfg.clean_prior.as_ref());
    let train = columns(model, model_cfg, &repair, p, data, &fit_ends, cfg, &prep.norm, n, &mut rng);
    let mut vrng = Stream::RepairMixValidation.rng(cfg.seed);
    let n = VALIDATION_COPIES;
    let val = columns(model, model_cfg, &repair, p, data, &stop_ends, cfg, &prep.norm, n, &mut vrng);
    let candidates = Candidate::ALL.map(|k| val.candidate_error(k));
    let (rule, decoded) = (candidates[Candidate::Rule as usize], candidates[Candidate::Decoded as usize]);
    let device = compute::training_device();
    let features = SensorMix::features(model_cfg.stage1.sensor_dim);
    let head =
        crate::pipeline::seeded(&device, Stream::RepairMix.seed(cfg.seed), |d| Head::new(features, mix_cfg.hidden, d));
    let lr = mix_cfg.schedule.learning_rate;
    let windows = train.n;
    let mut step = MixStep { head, optim: adam(), lr, base_lr: lr, train, val, device };
    let plan = Plan {
        name: "repair_mix",
        windows,
        batch_size: mix_cfg.batch_columns,
        schedule: &mix_cfg.schedule,
        progress: cfg.progress,
    };
    let fitted = fit(&mut step, &plan, &mut rng, log)?;
    let kept = fitted.best < rule;
    let report = RepairMixReport { rule, decoded, candidates, mix: fitted.best, epochs: fitted.epochs, kept };
    let mix = kept.then(|| fitted.model.valid().host(mix_cfg.hidden));
    Ok((InputRepair { mix, ..repair }, report))
}
