//! Robult (Nguyen, Kamboj & Do, IJCAI 2025, arXiv 2509.03477) on mmguard's two modalities,
//! reconstructed in `docs/methods/robult.md`: per-modality adapters f^i on the frozen stage-1
//! encoders give h^i; a projector c shared by the modalities gives the task-relevant codes z^i
//! (unit length); unique heads g^i give u^i; the fused code S is the normalised projection of
//! the mean of the *present* z^i; the task heads read [S ; mean of the present u^i]. Training
//! adds to the supervised loss a supervised-contrastive term for labelled anchors, a soft
//! positive-unlabelled (PU) contrastive term for unlabelled anchors, and a latent
//! reconstruction r^i([z^i ; u^i]) ≈ h^i that keeps what is unique to each modality in u^i.
//! Inference takes any non-empty subset of modalities and imputes nothing.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use mmguard_model::compute;
use mmguard_model::{lrelu, unit_rows, HostBatch, Stage1, Stage1Config};

use crate::task::{presence, select, supervised_loss, BatchTargets, Labelled, Standardizer, TaskShape};
use crate::{batches, HeadSchedule, TaskHead};
use mmguard_train::Stream;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Weights of Robult's four losses (all 1 by default: the paper gives none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RobultWeights {
    /// Supervised task loss on labelled samples.
    pub supervised: f64,
    /// Supervised-contrastive loss of labelled anchors.
    pub labelled: f64,
    /// Soft-PU contrastive loss of unlabelled anchors.
    pub unlabelled: f64,
    /// Latent reconstruction of each modality's adapter output.
    pub reconstruction: f64,
}

impl Default for RobultWeights {
    fn default() -> Self {
        Self { supervised: 1.0, labelled: 1.0, unlabelled: 1.0, reconstruction: 1.0 }
    }
}

/// Sizes and loss settings of Robult.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RobultConfig {
    /// Width of each modality's adapter output h^i.
    pub hidden: usize,
    /// Width d of the shared codes z^i and the fused S.
    pub shared: usize,
    /// Width of the unique codes u^i.
    pub unique: usize,
    /// Contrastive temperature τ.
    pub temperature: f64,
    /// Confidence the classifier needs on an unlabelled anchor before other samples can be its
    /// soft positives (δ).
    pub confidence: f64,
    /// Loss weights.
    pub weights: RobultWeights,
    /// First epochs in which unlabelled anchors have only themselves as positives, until the
    /// classifier is worth trusting (the note's warm-up).
    pub warmup_epochs: usize,
    /// Probability of dropping each modality of a training window from the fusion (never both).
    /// Off by default: the paper trains on full-modal data (note, Q7).
    pub modality_dropout: f64,
    /// Learning rate of the stage-1 encoders when they are fine-tuned (the note's 10⁻⁴ for
    /// pretrained encoders; the heads keep the schedule's rate).
    pub encoder_learning_rate: f64,
}

impl Default for RobultConfig {
    fn default() -> Self {
        Self {
            hidden: 128,
            shared: 128,
            unique: 64,
            temperature: 0.1,
            confidence: 0.7,
            weights: RobultWeights::default(),
            warmup_epochs: 3,
            modality_dropout: 0.0,
            encoder_learning_rate: 1e-4,
        }
    }
}

impl RobultConfig {
    /// Builds the heads with fresh weights.
    pub fn init(&self, task: &TaskShape, device: &Device) -> Robult {
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        let (h, d, u) = (self.hidden, self.shared, self.unique);
        Robult {
            adapt_camera: linear(task.camera_latent, h),
            adapt_sensor: linear(task.sensor_latent, h),
            shared_hidden: linear(h, h),
            shared_out: linear(h, d),
            unique_camera: linear(h, u),
            unique_sensor: linear(h, u),
            rebuild_camera: linear(d + u, h),
            rebuild_sensor: linear(d + u, h),
            fuse: linear(d, d),
            classify: linear(d + u, task.classes),
            regress: linear(d + u, 1),
        }
    }
}

/// The Robult heads.
#[derive(Module, Debug)]
pub struct Robult {
    adapt_camera: Linear,
    adapt_sensor: Linear,
    shared_hidden: Linear,
    shared_out: Linear,
    unique_camera: Linear,
    unique_sensor: Linear,
    rebuild_camera: Linear,
    rebuild_sensor: Linear,
    fuse: Linear,
    classify: Linear,
    regress: Linear,
}

/// Everything a forward pass computes, per modality in the order camera, sensor.
#[derive(Debug, Clone)]
pub struct RobultOutput {
    /// Adapter outputs h^i, [B, hidden].
    pub h: [Tensor<2>; 2],
    /// Shared codes z^i, unit rows, [B, d].
    pub z: [Tensor<2>; 2],
    /// Unique codes u^i, [B, unique].
    pub u: [Tensor<2>; 2],
    /// Reconstructions of h^i from [z^i ; u^i].
    pub rebuilt: [Tensor<2>; 2],
    /// Fused code S of the present modalities, unit rows, [B, d].
    pub fused: Tensor<2>,
    /// Class logits, [B, classes].
    pub logits: Tensor<2>,
    /// Regression output, [B, 1].
    pub value: Tensor<2>,
}

impl Robult {
    /// # Shapes
    /// camera [B, camera_latent], sensor [B, sensor_latent], present [B, 2] (1 where the
    /// modality is there; every row needs at least one)
    pub fn forward(&self, camera: Tensor<2>, sensor: Tensor<2>, present: Tensor<2>) -> RobultOutput {
        let h = [lrelu(self.adapt_camera.forward(camera)), lrelu(self.adapt_sensor.forward(sensor))];
        let shared = |x: Tensor<2>| unit_rows(self.shared_out.forward(lrelu(self.shared_hidden.forward(x))));
        let z = [shared(h[0].clone()), shared(h[1].clone())];
        let u = [self.unique_camera.forward(h[0].clone()), self.unique_sensor.forward(h[1].clone())];
        let rebuilt = [
            self.rebuild_camera.forward(Tensor::cat(vec![z[0].clone(), u[0].clone()], 1)),
            self.rebuild_sensor.forward(Tensor::cat(vec![z[1].clone(), u[1].clone()], 1)),
        ];
        let (mc, ms) = (present.clone().narrow(1, 0, 1), present.narrow(1, 1, 1));
        let count = (mc.clone() + ms.clone()).clamp_min(1.0);
        let mean = |a: &Tensor<2>, b: &Tensor<2>| (a.clone() * mc.clone() + b.clone() * ms.clone()) / count.clone();
        let fused = unit_rows(self.fuse.forward(mean(&z[0], &z[1])));
        let joint = Tensor::cat(vec![fused.clone(), mean(&u[0], &u[1])], 1);
        RobultOutput {
            logits: self.classify.forward(joint.clone()),
            value: self.regress.forward(joint),
            h,
            z,
            u,
            rebuilt,
            fused,
        }
    }
}

impl TaskHead for Robult {
    fn predict(&self, camera: Tensor<2>, sensor: Tensor<2>, present: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let out = self.forward(camera, sensor, present);
        (out.logits, out.value)
    }
}

/// Robult's loss terms of one batch, as numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RobultLosses {
    /// Weighted sum.
    pub total: f64,
    /// Cross-entropy + L1 on labelled samples.
    pub supervised: f64,
    /// Supervised-contrastive term.
    pub labelled: f64,
    /// Soft-PU term.
    pub unlabelled: f64,
    /// Latent reconstruction.
    pub reconstruction: f64,
}

fn host(x: Tensor<2>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("float tensor")
}

/// Soft positive weights of the unlabelled anchors, [B, B] row-major (row j = anchor, column
/// k = candidate sample; both modalities of k share the weight). Row j is zero for labelled j.
///
/// For an unlabelled anchor j with pseudo-class ŷ = argmax p_j: its own sample weighs 1; if
/// p_j(ŷ) ≥ `confidence`, a labelled sample k weighs 1[y_k = ŷ] and an unlabelled one
/// p_k(ŷ) · prox_ŷ(k), where prox_y(k) is the mean RBF similarity exp(−‖z̄_k − z̄_l‖²/2σ²) of
/// its mean code z̄_k to the labelled samples l of class y (σ² by the median heuristic). The
/// RBF factor vetoes candidates the classifier likes that lie far from every labelled example.
pub fn soft_positive_weights(
    probs: &[f32],
    classes: usize,
    codes: &[f32],
    d: usize,
    targets: &BatchTargets,
    confidence: f64,
) -> Vec<f32> {
    let b = targets.labelled.len();
    let dist2 = |k: usize, l: usize| -> f32 {
        codes[k * d..(k + 1) * d].iter().zip(&codes[l * d..(l + 1) * d]).map(|(x, y)| (x - y) * (x - y)).sum()
    };
    let mut pairs: Vec<f32> = (0..b).flat_map(|k| (k + 1..b).map(move |l| (k, l))).map(|(k, l)| dist2(k, l)).collect();
    pairs.sort_by(f32::total_cmp);
    let sigma2 = pairs.get(pairs.len() / 2).copied().filter(|&m| m > 0.0).unwrap_or(1.0);
    let prox = |k: usize, y: u32| -> f32 {
        let ls: Vec<usize> = (0..b).filter(|&l| targets.labelled[l] && targets.class[l] == y).collect();
        if ls.is_empty() {
            return 0.0;
        }
        ls.iter().map(|&l| (-dist2(k, l) / (2.0 * sigma2)).exp()).sum::<f32>() / ls.len() as f32
    };
    let mut w = vec![0.0f32; b * b];
    for j in (0..b).filter(|&j| !targets.labelled[j]) {
        w[j * b + j] = 1.0;
        let p = &probs[j * classes..(j + 1) * classes];
        let (yhat, conf) = p.iter().enumerate().fold((0, f32::MIN), |m, (c, &v)| if v > m.1 { (c, v) } else { m });
        if f64::from(conf) < confidence {
            continue;
        }
        for k in (0..b).filter(|&k| k != j) {
            w[j * b + k] = if targets.labelled[k] {
                f32::from(u8::from(targets.class[k] == yhat as u32))
            } else {
                probs[k * classes + yhat] * prox(k, yhat as u32)
            };
        }
    }
    w
}

/// Robult's objective on one batch.
pub fn robult_loss(
    out: &RobultOutput,
    targets: &BatchTargets,
    cfg: &RobultConfig,
    device: &Device,
) -> (Tensor<1>, RobultLosses) {
    let b = targets.labelled.len();
    let [_, classes] = out.logits.dims();
    let tensor = |v: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, shape), device);
    let zero = || Tensor::<1>::zeros([1], device);
    let labelled: Vec<usize> = (0..b).filter(|&j| targets.labelled[j]).collect();

    let supervised = supervised_loss(&out.logits, &out.value, targets, device);

    // candidates: both modalities' codes of every sample, [2B, d]; column i·B + k
    let candidates = Tensor::cat(vec![out.z[0].clone(), out.z[1].clone()], 0);
    let logp = log_softmax(out.fused.clone().matmul(candidates.transpose()).div_scalar(cfg.temperature), 1);
    let weighted = |w: Vec<f32>, anchors: usize| -> Tensor<1> {
        // w [B, B] per sample → [B, 2B] per candidate; each anchor row normalised by its mass
        let mut full = vec![0.0f32; b * 2 * b];
        for j in 0..b {
            let mass: f32 = 2.0 * w[j * b..(j + 1) * b].iter().sum::<f32>();
            if mass > 0.0 {
                for k in 0..b {
                    full[j * 2 * b + k] = w[j * b + k] / mass;
                    full[j * 2 * b + b + k] = w[j * b + k] / mass;
                }
            }
        }
        (logp.clone() * tensor(full, [b, 2 * b])).sum().div_scalar(anchors.max(1) as f64).neg()
    };
    let mut positives = vec![0.0f32; b * b];
    for &j in &labelled {
        for k in 0..b {
            positives[j * b + k] =
                f32::from(u8::from(k == j || (targets.labelled[k] && targets.class[k] == targets.class[j])));
        }
    }
    let labelled_term = if labelled.is_empty() { zero() } else { weighted(positives, labelled.len()) };

    let unlabelled = b - labelled.len();
    let unlabelled_term = if unlabelled == 0 {
        zero()
    } else {
        let probs = host(softmax(out.logits.clone().detach(), 1));
        let [_, d] = out.z[0].dims();
        let codes = host(((out.z[0].clone() + out.z[1].clone()).div_scalar(2.0)).detach());
        weighted(soft_positive_weights(&probs, classes, &codes, d, targets, cfg.confidence), unlabelled)
    };

    let reconstruction = (out.rebuilt[0].clone() - out.h[0].clone().detach()).square().mean()
        + (out.rebuilt[1].clone() - out.h[1].clone().detach()).square().mean();

    let w = &cfg.weights;
    let total = supervised.clone().mul_scalar(w.supervised)
        + labelled_term.clone().mul_scalar(w.labelled)
        + unlabelled_term.clone().mul_scalar(w.unlabelled)
        + reconstruction.clone().mul_scalar(w.reconstruction);
    let num = |t: Tensor<1>| f64::from(t.into_scalar::<f32>());
    let parts = RobultLosses {
        total: num(total.clone()),
        supervised: num(supervised),
        labelled: num(labelled_term),
        unlabelled: num(unlabelled_term),
        reconstruction: num(reconstruction),
    };
    (total, parts)
}

/// Mean losses of one training epoch.
#[derive(Debug, Clone, Serialize)]
pub struct RobultEpoch {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean of each term over the epoch's batches.
    pub losses: RobultLosses,
}

/// Fine-tuning the stage-1 encoders with the heads: the training windows as scaled host
/// batches (row k = window k of the training set), the run's autoencoder on the autodiff
/// device, and the standardisation of the frozen latents, kept fixed.
pub struct FineTune<'a> {
    /// Training windows.
    pub batch: &'a HostBatch,
    /// The encoders to tune (the decoders get no gradient).
    pub stage1: Stage1,
    /// Their sizes.
    pub s1: &'a Stage1Config,
    /// Latent standardisation.
    pub standard: &'a Standardizer,
}

/// Trains Robult's heads on the training latents, or with `fine` on the training windows through
/// encoders tuned along; returns the heads for inference, the tuned encoders (for inference)
/// and the per-epoch losses.
pub fn train_robult(
    train: Labelled<'_>,
    fine: Option<FineTune<'_>>,
    shape: &TaskShape,
    cfg: &RobultConfig,
    schedule: &HeadSchedule,
    seed: u64,
) -> (Robult, Option<Stage1>, Vec<RobultEpoch>) {
    let device = compute::training_device();
    let mut model = mmguard_train::seeded(&device, seed, |d| cfg.init(shape, d));
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut encoder_optim = AdamConfig::new().with_epsilon(1e-8).init();
    let (mut encoder, tune) = match fine {
        Some(FineTune { batch, stage1, s1, standard }) => (Some(stage1), Some((batch, s1, standard.tensors(&device)))),
        None => (None, None),
    };
    let mut rng = Stream::Robult.rng(seed);
    let mut log = Vec::new();
    for epoch in 1..=schedule.epochs {
        let step_cfg = RobultConfig {
            confidence: if epoch <= cfg.warmup_epochs { f64::INFINITY } else { cfg.confidence },
            ..cfg.clone()
        };
        let mut sum = RobultLosses::default();
        let all = batches(train.labelled, schedule, &mut rng);
        for rows in &all {
            let b = rows.len();
            let present = if cfg.modality_dropout > 0.0 {
                let keep: Vec<f32> = (0..b)
                    .flat_map(|_| match (rng.random::<f64>() < cfg.modality_dropout, rng.random::<bool>()) {
                        (false, _) => [1.0, 1.0],
                        (true, true) => [0.0, 1.0],
                        (true, false) => [1.0, 0.0],
                    })
                    .collect();
                Tensor::from_data(TensorData::new(keep, [b, 2]), &device)
            } else {
                presence(b, [true, true], &device)
            };
            let (camera, sensor) = match (&encoder, &tune) {
                (Some(enc), Some((batch, s1, [cm, cs, sm, ss]))) => {
                    let windows = select(batch, rows);
                    let cam = enc.encode_camera(windows.camera_tensor(s1, &device));
                    let sen = enc.encode_sensor(windows.sensor_tensor(s1, &device));
                    ((cam - cm.clone()) / cs.clone(), (sen - sm.clone()) / ss.clone())
                }
                _ => {
                    let (cam, sen) = train.set.rows(rows);
                    (
                        Tensor::from_data(TensorData::new(cam, [b, train.set.camera_dim]), &device),
                        Tensor::from_data(TensorData::new(sen, [b, train.set.sensor_dim]), &device),
                    )
                }
            };
            let out = model.forward(camera, sensor, present);
            let (loss, parts) =
                robult_loss(&out, &BatchTargets::of(train.set, rows, train.labelled), &step_cfg, &device);
            let mut grads = loss.backward();
            let heads = GradientsParams::from_module(&mut grads, &model);
            model = optim.step(schedule.learning_rate, model, heads);
            if let Some(enc) = encoder.take() {
                let g = GradientsParams::from_module(&mut grads, &enc);
                encoder = Some(encoder_optim.step(cfg.encoder_learning_rate, enc, g));
            }
            sum.total += parts.total;
            sum.supervised += parts.supervised;
            sum.labelled += parts.labelled;
            sum.unlabelled += parts.unlabelled;
            sum.reconstruction += parts.reconstruction;
        }
        let n = all.len().max(1) as f64;
        let losses = RobultLosses {
            total: sum.total / n,
            supervised: sum.supervised / n,
            labelled: sum.labelled / n,
            unlabelled: sum.unlabelled / n,
            reconstruction: sum.reconstruction / n,
        };
        log.push(RobultEpoch { epoch, losses });
    }
    (model.valid(), encoder.map(|e| e.valid()), log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), &compute::device())
    }

    fn heads() -> (Robult, RobultConfig) {
        let cfg = RobultConfig { hidden: 8, shared: 4, unique: 3, ..RobultConfig::default() };
        let task = TaskShape { camera_latent: 6, sensor_latent: 5, classes: 3 };
        (cfg.init(&task, &compute::device()), cfg)
    }

    #[test]
    fn a_missing_modality_does_not_reach_the_prediction() {
        let (model, _) = heads();
        let sensor = t((0..10).map(|v| v as f32 / 10.0).collect(), [2, 5]);
        let only_sensor = t(vec![0.0, 1.0, 0.0, 1.0], [2, 2]);
        let run = |camera: Vec<f32>| host(model.forward(t(camera, [2, 6]), sensor.clone(), only_sensor.clone()).logits);
        assert_eq!(run(vec![0.0; 12]), run((0..12).map(|v| v as f32).collect()));
        let both = t(vec![1.0; 4], [2, 2]);
        let with_camera = host(model.forward(t(vec![3.0; 12], [2, 6]), sensor.clone(), both).logits);
        assert_ne!(with_camera, run(vec![3.0; 12]), "the camera counts when present");
    }

    #[test]
    fn soft_positives_follow_confidence_and_proximity_to_labelled_samples() {
        // samples 0, 1 labelled class 0 near the origin; 2 unlabelled anchor, confident class 0;
        // 3 unlabelled near the labelled ones; 4 unlabelled far away; both 3 and 4 look class 0
        let codes = [0.0, 0.0, 0.1, 0.0, 0.05, 0.05, 0.0, 0.1, 3.0, 3.0];
        let probs = [0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.8, 0.2, 0.8, 0.2];
        let targets = BatchTargets {
            labelled: vec![true, true, false, false, false],
            class: vec![0, 0, 0, 0, 0],
            value: vec![0.0; 5],
        };
        let w = soft_positive_weights(&probs, 2, &codes, 2, &targets, 0.7);
        let row = &w[2 * 5..3 * 5];
        assert_eq!((row[0], row[1], row[2]), (1.0, 1.0, 1.0), "labelled same class and itself");
        assert!(row[3] > 0.5 && row[4] < 0.01 * row[3], "{row:?}");
        assert!(w[..2 * 5].iter().all(|&v| v == 0.0), "labelled anchors have no soft row");
        let unsure = soft_positive_weights(&probs, 2, &codes, 2, &targets, 0.95);
        assert_eq!(&unsure[2 * 5..3 * 5], &[0.0, 0.0, 1.0, 0.0, 0.0], "below the confidence only itself");
    }

    #[test]
    fn the_supervised_term_is_cross_entropy_plus_l1_on_labelled_rows() {
        let (model, cfg) = heads();
        let out = model.forward(
            t((0..12).map(|v| v as f32 / 12.0).collect(), [2, 6]),
            t((0..10).map(|v| v as f32 / 10.0).collect(), [2, 5]),
            t(vec![1.0; 4], [2, 2]),
        );
        let targets = BatchTargets { labelled: vec![true, false], class: vec![2, 0], value: vec![0.5, 9.0] };
        let (_, parts) = robult_loss(&out, &targets, &cfg, &compute::device());
        let logits = host(out.logits.clone());
        let row = &logits[0..3];
        let lse = row.iter().map(|v| v.exp()).sum::<f32>().ln();
        let want = f64::from(lse - row[2] + (host(out.value.clone())[0] - 0.5).abs());
        assert!((parts.supervised - want).abs() < 1e-5, "{} vs {want}", parts.supervised);
        assert!(parts.labelled > 0.0 && parts.unlabelled > 0.0 && parts.reconstruction > 0.0, "{parts:?}");
    }
}
