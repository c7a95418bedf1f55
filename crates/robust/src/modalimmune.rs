//! ModalImmune (Fu et al., arXiv 2602.16197) on mmguard's two modalities, as specified in
//! `docs/methods/modalimmune.md` (b.1–b.6): trainable projectors P_m on the frozen stage-1
//! latents give embeddings e_m; a fusion MLP reads [e_camera·s_camera, e_sensor·s_sensor, s]
//! (s = which modalities are present, so "absent" differs from "zero signal") and feeds the task
//! heads and a decoder per modality that rebuilds e_m from the fused state.
//!
//! Training collapses a modality c on purpose: c is left out of a second fused pass, and its
//! embedding is pulled toward a Gaussian target of its own scale and toward a low stable rank
//! (the spectrum-adaptive regulariser, b.2). The information-gain controller picks c (b.3); the
//! regulariser's gradient on P_c is masked when the branch's curvature says the destructive
//! update is unsafe (b.4); its strength λ and spectral weight κ follow a certified
//! Neumann-truncated hyper-gradient of a robust validation loss (b.5). Every part can be
//! switched off for the ablations.
//!
//! burn has no double backward, so Hessian–vector products are central differences of
//! gradients (`linalg::hvp_by_differences`), restricted to P_c's weights θ_c — the branch the
//! regulariser acts on directly; the head is held fixed while they are taken.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use mmguard_model::compute;
use mmguard_model::lrelu;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::controller::{Arm, Controller, ControllerConfig};
use crate::linalg::{
    covariance_top, dot, extreme_eigenvalues, hvp_by_differences, neumann_solve, Certificate, NeumannConfig, Spectrum,
};
use crate::task::{presence, supervised_loss, BatchTargets, Labelled, TaskSet, TaskShape};
use crate::{batches, HeadSchedule, TaskHead};
use mmguard_train::Stream;

/// The spectrum-adaptive collapse regulariser R_col(c) = λ·a_c·(R_gauss + κ·R_spec).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollapseConfig {
    /// Off: the chosen modality is only left out of the second fused pass (modality dropout).
    pub enabled: bool,
    /// Initial strength λ (adapted by the meta step when that is on).
    pub strength: f64,
    /// Initial weight κ of the stable-rank term.
    pub spectral: f64,
    /// Keep the Gaussian-target term R_gauss.
    pub gaussian: bool,
    /// ε on the covariance diagonal.
    pub eps: f64,
    /// Power iterations for the top covariance direction per step (warm-started).
    pub iterations: usize,
}

impl Default for CollapseConfig {
    fn default() -> Self {
        Self { enabled: true, strength: 0.1, spectral: 1.0, gaussian: true, eps: 1e-4, iterations: 5 }
    }
}

/// How the regulariser's gradient on the collapsed branch is masked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Masking {
    /// Hessian test (b.4 A): drop the regulariser's gradient on θ_c while the branch has
    /// negative curvature λ_min < −τ or is sharper than 2/lr.
    #[default]
    Hessian,
    /// Fisher diagonal (b.4 B): drop it on the elements whose task-gradient EMA lies above a
    /// quantile (the task is sensitive there).
    Fisher,
    /// The paper's rule (§3.8 as read in the note): freeze the branch while the smallest
    /// eigenvalue of its empirical Fisher (1/B) Σ g_i g_iᵀ of per-sample gradients is below −τ.
    /// A Fisher matrix is positive semi-definite, so the test cannot fire; kept as an option to
    /// show it (the log records λ_min ≥ 0 at every check).
    Paper,
    /// No masking.
    Off,
}

/// Curvature-aware gradient masking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaskingConfig {
    /// Which test.
    pub kind: Masking,
    /// Steps between Hessian checks.
    pub every: usize,
    /// Power iterations per extreme eigenvalue.
    pub iterations: usize,
    /// τ as a share of |λ_max|.
    pub tau_share: f64,
    /// Fisher mode: elements above this quantile of the EMA are protected.
    pub quantile: f64,
    /// Fisher mode: EMA factor of the squared task gradients.
    pub decay: f64,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self { kind: Masking::Hessian, every: 20, iterations: 10, tau_share: 1e-3, quantile: 0.9, decay: 0.99 }
    }
}

/// The certified hyper-gradient step on (log λ, log κ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaConfig {
    /// Off: λ and κ keep their initial values.
    pub enabled: bool,
    /// Steps between meta steps.
    pub every: usize,
    /// Meta learning rate η on the log-scale parameters.
    pub step: f64,
    /// The Neumann series and its certificate.
    pub neumann: NeumannConfig,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self { enabled: true, every: 100, step: 1e-2, neumann: NeumannConfig::default() }
    }
}

/// Sizes and training switches of ModalImmune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModalImmuneConfig {
    /// Width of the embeddings e_m.
    pub embed: usize,
    /// Width of the fused state.
    pub hidden: usize,
    /// Weight of the reconstruction of the present embeddings from the fused state.
    pub reconstruction: f64,
    /// The collapse regulariser.
    pub collapse: CollapseConfig,
    /// Which modality to collapse (`none_share` 1 and the regulariser off give the plain
    /// supervised head).
    pub controller: ControllerConfig,
    /// Steps between the controller's leave-one-out scores on a validation batch.
    pub control_every: usize,
    /// Gradient masking.
    pub masking: MaskingConfig,
    /// Meta-parameter adaptation.
    pub meta: MetaConfig,
    /// Finite-difference step (along a unit direction in θ_c) of the Hessian–vector products.
    pub hvp_step: f64,
}

impl Default for ModalImmuneConfig {
    fn default() -> Self {
        Self {
            embed: 64,
            hidden: 128,
            reconstruction: 1.0,
            collapse: CollapseConfig::default(),
            controller: ControllerConfig::default(),
            control_every: 50,
            masking: MaskingConfig::default(),
            meta: MetaConfig::default(),
            hvp_step: 1e-2,
        }
    }
}

impl ModalImmuneConfig {
    /// Builds the network with fresh weights.
    pub fn init(&self, task: &TaskShape, device: &Device) -> ModalImmune {
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        let (e, h) = (self.embed, self.hidden);
        ModalImmune {
            project_camera: linear(task.camera_latent, e),
            project_sensor: linear(task.sensor_latent, e),
            fuse_in: linear(2 * e + 2, h),
            fuse_hidden: linear(h, h),
            classify: linear(h, task.classes),
            regress: linear(h, 1),
            rebuild_camera: linear(h, e),
            rebuild_sensor: linear(h, e),
        }
    }
}

/// The ModalImmune network.
#[derive(Module, Debug)]
pub struct ModalImmune {
    project_camera: Linear,
    project_sensor: Linear,
    fuse_in: Linear,
    fuse_hidden: Linear,
    classify: Linear,
    regress: Linear,
    rebuild_camera: Linear,
    rebuild_sensor: Linear,
}

/// What a pass computes.
#[derive(Debug, Clone)]
pub struct ImmuneOutput {
    /// Embeddings e_m of both modalities (present or not), [B, embed].
    pub embed: [Tensor<2>; 2],
    /// Class logits, [B, classes].
    pub logits: Tensor<2>,
    /// Regression output, [B, 1].
    pub value: Tensor<2>,
    /// Embeddings rebuilt from the fused state, [B, embed].
    pub rebuilt: [Tensor<2>; 2],
}

impl ModalImmune {
    fn projector(&self, m: usize) -> &Linear {
        if m == 0 {
            &self.project_camera
        } else {
            &self.project_sensor
        }
    }

    /// The fusion and heads on given embeddings; `present` [B, 2] zeroes the absent ones.
    pub fn head(&self, embed: [Tensor<2>; 2], present: Tensor<2>) -> ImmuneOutput {
        let (mc, ms) = (present.clone().narrow(1, 0, 1), present.clone().narrow(1, 1, 1));
        let x = Tensor::cat(vec![embed[0].clone() * mc, embed[1].clone() * ms, present], 1);
        let h = lrelu(self.fuse_hidden.forward(lrelu(self.fuse_in.forward(x))));
        ImmuneOutput {
            logits: self.classify.forward(h.clone()),
            value: self.regress.forward(h.clone()),
            rebuilt: [self.rebuild_camera.forward(h.clone()), self.rebuild_sensor.forward(h)],
            embed,
        }
    }

    /// # Shapes
    /// camera [B, camera_latent], sensor [B, sensor_latent], present [B, 2]
    pub fn forward(&self, camera: Tensor<2>, sensor: Tensor<2>, present: Tensor<2>) -> ImmuneOutput {
        self.head([self.project_camera.forward(camera), self.project_sensor.forward(sensor)], present)
    }
}

impl TaskHead for ModalImmune {
    fn predict(&self, camera: Tensor<2>, sensor: Tensor<2>, present: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let out = self.forward(camera, sensor, present);
        (out.logits, out.value)
    }
}

/// The host-side state of R_spec and R_gauss for one batch, under stop-gradient: the top
/// covariance direction v, the adaptive weight a = r/d, the embedding scale and the noise ξ.
#[derive(Debug, Clone)]
struct CollapseState {
    direction: Vec<f32>,
    adapt: f64,
    target: Vec<f32>,
}

/// R_gauss and R_spec of an embedding batch e [B, d] for a fixed state.
fn collapse_terms(e: Tensor<2>, state: &CollapseState, eps: f64, device: &Device) -> (Tensor<1>, Tensor<1>) {
    let [b, d] = e.dims();
    let denom = b.saturating_sub(1).max(1) as f64;
    let centred = e.clone() - e.clone().mean_dim(0);
    let trace = centred.clone().square().sum().div_scalar(denom).add_scalar(eps * d as f64);
    let v = Tensor::<2>::from_data(TensorData::new(state.direction.clone(), [d, 1]), device);
    let top = centred.matmul(v).square().sum().div_scalar(denom).add_scalar(eps);
    let spectral = (trace / top).div_scalar(d as f64);
    let target = Tensor::<2>::from_data(TensorData::new(state.target.clone(), [b, d]), device);
    ((e - target).square().mean(), spectral)
}

/// One meta step's record: the certificate, or why there was none.
#[derive(Debug, Clone, Serialize)]
pub struct MetaRecord {
    /// Training step.
    pub step: u64,
    /// The collapsed modality the hyper-gradient was taken for.
    pub modality: Arm,
    /// Extreme eigenvalues of the branch Hessian.
    pub spectrum: [f64; 2],
    /// The certificate (terms, damping, α, bound), when the solve was certified.
    pub certificate: Option<Certificate>,
    /// Why the step was skipped.
    pub skipped: Option<String>,
    /// Hyper-gradient on (log λ, log κ) (zero when skipped).
    pub hypergradient: [f64; 2],
    /// λ and κ after the step.
    pub strength: f64,
    /// κ after the step.
    pub spectral: f64,
}

/// One Hessian check of the collapsed branch.
#[derive(Debug, Clone, Serialize)]
pub struct CurvatureRecord {
    /// Training step.
    pub step: u64,
    /// The branch.
    pub modality: Arm,
    /// λ_min, λ_max of the branch Hessian.
    pub spectrum: [f64; 2],
    /// Whether the regulariser's gradient is masked until the next check.
    pub masked: bool,
}

/// The controller's state after a leave-one-out scoring.
#[derive(Debug, Clone, Serialize)]
pub struct ControlRecord {
    /// Training step.
    pub step: u64,
    /// Validation task loss with both modalities.
    pub loss_all: f64,
    /// Without camera, without sensor.
    pub loss_without: [f64; 2],
    /// EMA gains after the update.
    pub gain: [f64; 2],
    /// Arms chosen since the previous record: none, camera, sensor.
    pub chosen: [u64; 3],
}

/// Per-epoch summary.
#[derive(Debug, Clone, Serialize)]
pub struct ImmuneEpoch {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training objective.
    pub loss: f64,
    /// Mean collapse regulariser over steps that applied it.
    pub collapse: f64,
    /// Stable rank of the validation embeddings, camera and sensor.
    pub stable_rank: [f64; 2],
}

/// Everything ModalImmune's training decided, for the run's log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImmuneLog {
    /// Per epoch.
    pub epochs: Vec<ImmuneEpoch>,
    /// Every controller update.
    pub control: Vec<ControlRecord>,
    /// Every Hessian check.
    pub curvature: Vec<CurvatureRecord>,
    /// Every meta step, certified or skipped.
    pub meta: Vec<MetaRecord>,
    /// Meta steps that could not be certified.
    pub meta_skipped: usize,
    /// Steps whose regulariser gradient was masked (fully in Hessian mode, partly in Fisher mode).
    pub masked_steps: usize,
}

/// A batch on the autodiff device.
struct Batch {
    latent: [Tensor<2>; 2],
    targets: BatchTargets,
}

fn batch(set: &TaskSet, rows: &[usize], labelled: &[bool], device: &Device) -> Batch {
    let (cam, sen) = set.rows(rows);
    let b = rows.len();
    Batch {
        latent: [
            Tensor::from_data(TensorData::new(cam, [b, set.camera_dim]), device),
            Tensor::from_data(TensorData::new(sen, [b, set.sensor_dim]), device),
        ],
        targets: BatchTargets::of(set, rows, labelled),
    }
}

fn without(arm: Arm) -> Option<usize> {
    match arm {
        Arm::None => None,
        Arm::Camera => Some(0),
        Arm::Sensor => Some(1),
    }
}

fn host(x: Tensor<2>) -> Vec<f32> {
    x.into_data().try_into_vec::<f32>().expect("float tensor")
}

fn scalar(x: Tensor<1>) -> f64 {
    f64::from(x.into_scalar::<f32>())
}

/// L_task(all) + L_task(without c) + w_rec · Σ_present ‖R_m(fused) − sg(e_m)‖² on given
/// embeddings.
fn task_objective(model: &ModalImmune, embed: [Tensor<2>; 2], b: &Batch, c: Option<usize>, w_rec: f64) -> Tensor<1> {
    let device = embed[0].device();
    let n = b.targets.labelled.len();
    let all = model.head(embed.clone(), presence(n, [true, true], &device));
    let mut loss = supervised_loss(&all.logits, &all.value, &b.targets, &device);
    let rebuilt_from = match c {
        None => all,
        Some(c) => {
            let keep = [c != 0, c != 1];
            let masked = model.head(embed, presence(n, keep, &device));
            loss = loss + supervised_loss(&masked.logits, &masked.value, &b.targets, &device);
            masked
        }
    };
    let rec = (0..2)
        .filter(|&m| Some(m) != c)
        .map(|m| (rebuilt_from.rebuilt[m].clone() - rebuilt_from.embed[m].clone().detach()).square().mean())
        .reduce(|a, x| a + x)
        .expect("one modality is present");
    loss + rec.mul_scalar(w_rec)
}

/// The robust validation loss: the task loss averaged over both modalities, camera only and
/// sensor only.
fn outer_objective(model: &ModalImmune, embed: [Tensor<2>; 2], b: &Batch) -> Tensor<1> {
    let device = embed[0].device();
    let n = b.targets.labelled.len();
    [[true, true], [false, true], [true, false]]
        .into_iter()
        .map(|keep| {
            let out = model.head(embed.clone(), presence(n, keep, &device));
            supervised_loss(&out.logits, &out.value, &b.targets, &device)
        })
        .reduce(|a, x| a + x)
        .expect("three masks")
        .div_scalar(3.0)
}

/// A fixed start vector of the power iterations on a branch's curvature (no zero entries, not
/// aligned with any axis), so both checks start alike and runs repeat.
fn probe_start(n: usize) -> Vec<f64> {
    (0..n).map(|i| if i % 3 == 0 { 1.0 } else { -0.5 }).collect()
}

/// The trainer: network, optimiser, controller and the regulariser's meta-parameters.
struct Trainer<'a> {
    model: Option<ModalImmune>,
    optim: ModuleOptimizer,
    cfg: &'a ModalImmuneConfig,
    lr: f64,
    device: Device,
    controller: Controller,
    log_strength: f64,
    log_spectral: f64,
    directions: [Vec<f64>; 2],
    masked: [bool; 2],
    fisher: [Option<(Tensor<2>, Tensor<1>)>; 2],
    last_modality: Option<usize>,
    chosen: [u64; 3],
    rng: ChaCha8Rng,
    step: u64,
    log: ImmuneLog,
}

impl Trainer<'_> {
    fn model(&self) -> &ModalImmune {
        self.model.as_ref().expect("present between steps")
    }

    /// Stop-gradient state of the regulariser on e_c (host copy of the batch's embeddings).
    fn collapse_state(&mut self, e: &[f32], rows: usize, c: usize) -> CollapseState {
        let d = self.cfg.embed;
        let eps = self.cfg.collapse.eps;
        let (trace, top) = covariance_top(e, rows, d, eps, &self.directions[c], self.cfg.collapse.iterations);
        self.directions[c] = top.vector.clone();
        let rank = if top.value > 0.0 { trace / top.value } else { 1.0 };
        let scale = (e.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / e.len().max(1) as f64).sqrt();
        let target = (0..e.len()).map(|_| (scale * self.rng.sample::<f64, _>(StandardNormal)) as f32).collect();
        CollapseState { direction: top.vector.iter().map(|&x| x as f32).collect(), adapt: rank / d as f64, target }
    }

    fn collapse_loss(&self, e: Tensor<2>, state: &CollapseState, strength: f64, spectral: f64) -> Tensor<1> {
        let (gauss, spec) = collapse_terms(e, state, self.cfg.collapse.eps, &self.device);
        let terms =
            if self.cfg.collapse.gaussian { gauss + spec.mul_scalar(spectral) } else { spec.mul_scalar(spectral) };
        terms.mul_scalar(strength * state.adapt)
    }

    /// θ_c: P_c's weight ([in, out], burn's layout) then bias, flattened.
    fn theta(&self, c: usize) -> Vec<f64> {
        let p = self.model().projector(c);
        let mut t: Vec<f64> = host(p.weight.val()).into_iter().map(f64::from).collect();
        if let Some(bias) = &p.bias {
            t.extend(bias.val().into_data().try_into_vec::<f32>().expect("float").into_iter().map(f64::from));
        }
        t
    }

    /// ∇_θc of `loss(e_c)` at θ_c = `theta`, where e_c = latent·W + b and everything else is
    /// held fixed.
    fn branch_gradient(
        &self,
        c: usize,
        theta: &[f64],
        latent: &Tensor<2>,
        loss: &dyn Fn(Tensor<2>) -> Tensor<1>,
    ) -> Vec<f64> {
        let [d_in, d_out] = self.model().projector(c).weight.val().dims();
        let as_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let w = Tensor::<2>::from_data(TensorData::new(as_f32(&theta[..d_in * d_out]), [d_in, d_out]), &self.device)
            .require_grad();
        let b = Tensor::<1>::from_data(TensorData::new(as_f32(&theta[d_in * d_out..]), [d_out]), &self.device)
            .require_grad();
        let grads = loss(linear(latent.clone(), w.clone(), Some(b.clone()))).backward();
        let flat = |g: Option<Vec<f32>>, n: usize| g.unwrap_or_else(|| vec![0.0; n]).into_iter().map(f64::from);
        let gw = w.grad(&grads).map(|g| g.into_data().try_into_vec::<f32>().expect("float"));
        let gb = b.grad(&grads).map(|g| g.into_data().try_into_vec::<f32>().expect("float"));
        flat(gw, d_in * d_out).chain(flat(gb, d_out)).collect()
    }

    /// ∇_θc L_in at θ for a fixed batch and regulariser state (what the HVPs differentiate).
    fn inner_gradient(&self, c: usize, theta: &[f64], b: &Batch, state: &CollapseState) -> Vec<f64> {
        let frozen = self.model().clone().no_grad();
        let other = frozen.projector(1 - c).forward(b.latent[1 - c].clone());
        let (strength, spectral) = (self.log_strength.exp(), self.log_spectral.exp());
        let loss = |e: Tensor<2>| {
            let mut embed = [other.clone(), other.clone()];
            embed[c] = e.clone();
            let task = task_objective(&frozen, embed, b, Some(c), self.cfg.reconstruction);
            if self.cfg.collapse.enabled {
                task + self.collapse_loss(e, state, strength, spectral)
            } else {
                task
            }
        };
        self.branch_gradient(c, theta, &b.latent[c], &loss)
    }

    /// Extreme eigenvalues of the branch Hessian ∇²_θc L_in.
    fn branch_spectrum(&self, c: usize, theta: &[f64], b: &Batch, state: &CollapseState) -> Spectrum {
        let mut grad = |t: &[f64]| self.inner_gradient(c, t, b, state);
        let mut hvp = |v: &[f64]| hvp_by_differences(&mut grad, theta, v, self.cfg.hvp_step);
        extreme_eigenvalues(&mut hvp, &probe_start(theta.len()), self.cfg.masking.iterations)
    }

    /// Extreme eigenvalues of the branch's empirical Fisher (1/B) Σ g_i g_iᵀ, from the
    /// per-sample gradients of L_in.
    fn fisher_spectrum(&self, c: usize, theta: &[f64], b: &Batch, state: &CollapseState) -> Spectrum {
        let n = b.targets.labelled.len();
        let e = self.cfg.embed;
        let per_sample: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                let one = Batch {
                    latent: [b.latent[0].clone().narrow(0, i, 1), b.latent[1].clone().narrow(0, i, 1)],
                    targets: BatchTargets {
                        labelled: vec![b.targets.labelled[i]],
                        class: vec![b.targets.class[i]],
                        value: vec![b.targets.value[i]],
                    },
                };
                let row = CollapseState { target: state.target[i * e..(i + 1) * e].to_vec(), ..state.clone() };
                self.inner_gradient(c, theta, &one, &row)
            })
            .collect();
        let mut fisher = |v: &[f64]| -> Vec<f64> {
            let mut out = vec![0.0; v.len()];
            for g in &per_sample {
                let w = dot(g, v) / n as f64;
                out.iter_mut().zip(g).for_each(|(o, x)| *o += w * x);
            }
            out
        };
        extreme_eigenvalues(&mut fisher, &probe_start(theta.len()), self.cfg.masking.iterations)
    }

    /// One optimisation step on a training batch.
    fn step(&mut self, b: &Batch) -> (f64, Option<f64>) {
        self.step += 1;
        let arm = self.controller.choose(&mut self.rng);
        self.chosen[match arm {
            Arm::None => 0,
            Arm::Camera => 1,
            Arm::Sensor => 2,
        }] += 1;
        let c = without(arm);
        if c.is_some() {
            self.last_modality = c;
        }
        let rows = b.targets.labelled.len();
        let hessian_due = matches!(self.cfg.masking.kind, Masking::Hessian | Masking::Paper)
            && self.step.is_multiple_of(self.cfg.masking.every as u64);
        if let (Some(c), true, true) = (c, self.cfg.collapse.enabled, hessian_due) {
            let e = host(self.model().projector(c).forward(b.latent[c].clone()).detach());
            let state = self.collapse_state(&e, rows, c);
            self.check_curvature(c, b, &state);
        }
        let model = self.model.take().expect("present between steps");
        let embed =
            [model.project_camera.forward(b.latent[0].clone()), model.project_sensor.forward(b.latent[1].clone())];
        let loss = task_objective(&model, embed, b, c, self.cfg.reconstruction);
        let mut value = scalar(loss.clone());
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        self.update_fisher(&model, &grads);
        let mut collapse = None;
        if let (Some(c), true) = (c, self.cfg.collapse.enabled) {
            let e = model.projector(c).forward(b.latent[c].clone());
            let state = self.collapse_state(&host(e.clone().detach()), rows, c);
            let r = self.collapse_loss(e, &state, self.log_strength.exp(), self.log_spectral.exp());
            let r_value = scalar(r.clone());
            value += r_value;
            collapse = Some(r_value);
            let mut col_grads = r.backward();
            let col = GradientsParams::from_module(&mut col_grads, model.projector(c));
            self.add_masked(&model, c, &mut grads, &col);
        }
        self.model = Some(self.optim.step(self.lr, model, grads));
        (value, collapse)
    }

    /// Fisher mode: EMA of the squared task gradients of both projectors.
    fn update_fisher(&mut self, model: &ModalImmune, grads: &GradientsParams) {
        if self.cfg.masking.kind != Masking::Fisher {
            return;
        }
        let k = self.cfg.masking.decay;
        for m in 0..2 {
            let p = model.projector(m);
            let (Some(gw), Some(gb)) =
                (grads.get::<2>(p.weight.id), p.bias.as_ref().and_then(|bias| grads.get::<1>(bias.id)))
            else {
                continue;
            };
            self.fisher[m] = Some(match self.fisher[m].take() {
                None => (gw.square(), gb.square()),
                Some((fw, fb)) => (
                    fw.mul_scalar(k) + gw.square().mul_scalar(1.0 - k),
                    fb.mul_scalar(k) + gb.square().mul_scalar(1.0 - k),
                ),
            });
        }
    }

    /// Adds the regulariser's gradient on P_c into `grads`, masked as configured.
    fn add_masked(&mut self, model: &ModalImmune, c: usize, grads: &mut GradientsParams, col: &GradientsParams) {
        let p = model.projector(c);
        let (mask_w, mask_b): (Option<Tensor<2>>, Option<Tensor<1>>) = match self.cfg.masking.kind {
            Masking::Off => (None, None),
            Masking::Hessian | Masking::Paper => {
                if self.masked[c] {
                    self.log.masked_steps += 1;
                    return;
                }
                (None, None)
            }
            Masking::Fisher => match &self.fisher[c] {
                None => (None, None),
                Some((fw, fb)) => {
                    let mut all: Vec<f32> = host(fw.clone());
                    all.extend(fb.clone().into_data().try_into_vec::<f32>().expect("float"));
                    all.sort_by(f32::total_cmp);
                    let q = all[((all.len() - 1) as f64 * self.cfg.masking.quantile) as usize];
                    self.log.masked_steps += 1;
                    (Some(fw.clone().lower_elem(q).float()), Some(fb.clone().lower_elem(q).float()))
                }
            },
        };
        if let Some(g) = col.get::<2>(p.weight.id) {
            let g = mask_w.map_or_else(|| g.clone(), |m| g.clone() * m);
            let sum = grads.remove::<2>(p.weight.id).map_or(g.clone(), |t| t + g);
            grads.register::<2>(p.weight.id, sum);
        }
        if let Some(bias) = &p.bias {
            if let Some(g) = col.get::<1>(bias.id) {
                let g = mask_b.map_or_else(|| g.clone(), |m| g.clone() * m);
                let sum = grads.remove::<1>(bias.id).map_or(g.clone(), |t| t + g);
                grads.register::<1>(bias.id, sum);
            }
        }
    }

    /// Hessian mode: refresh the mask of branch c from its extreme eigenvalues.
    fn check_curvature(&mut self, c: usize, b: &Batch, state: &CollapseState) {
        let theta = self.theta(c);
        let s = if self.cfg.masking.kind == Masking::Paper {
            self.fisher_spectrum(c, &theta, b, state)
        } else {
            self.branch_spectrum(c, &theta, b, state)
        };
        let tau = self.cfg.masking.tau_share * s.max.abs();
        self.masked[c] = match self.cfg.masking.kind {
            Masking::Paper => s.min < -tau,
            _ => s.min < -tau || s.max > 2.0 / self.lr,
        };
        self.log.curvature.push(CurvatureRecord {
            step: self.step,
            modality: Arm::MODALITIES[c],
            spectrum: [s.min, s.max],
            masked: self.masked[c],
        });
    }

    /// The controller's leave-one-out scores on a validation batch (on the plain device).
    fn control(&mut self, v: &Batch) {
        let plain = self.model().valid();
        let device = compute::device();
        let n = v.targets.labelled.len();
        let loss = |keep: [bool; 2]| {
            let out = plain.forward(v.latent[0].clone(), v.latent[1].clone(), presence(n, keep, &device));
            scalar(supervised_loss(&out.logits, &out.value, &v.targets, &device))
        };
        let (all, without) = (loss([true, true]), [loss([false, true]), loss([true, false])]);
        self.controller.observe(all, without);
        self.log.control.push(ControlRecord {
            step: self.step,
            loss_all: all,
            loss_without: without,
            gain: self.controller.gain,
            chosen: std::mem::take(&mut self.chosen),
        });
    }

    /// The certified hyper-gradient step on (log λ, log κ) for the last collapsed modality.
    fn meta_step(&mut self, b: &Batch, v: &Batch) {
        let Some(c) = self.last_modality else { return };
        let theta = self.theta(c);
        let e = self.model().projector(c).forward(b.latent[c].clone());
        let state = self.collapse_state(&host(e.detach()), b.targets.labelled.len(), c);
        let frozen = self.model().clone().no_grad();
        let other_val = frozen.projector(1 - c).forward(v.latent[1 - c].clone());
        let outer = |e: Tensor<2>| {
            let mut embed = [other_val.clone(), other_val.clone()];
            embed[c] = e;
            outer_objective(&frozen, embed, v)
        };
        let g_out = self.branch_gradient(c, &theta, &v.latent[c], &outer);
        let spectrum = self.branch_spectrum(c, &theta, b, &state);
        let mut grad = |t: &[f64]| self.inner_gradient(c, t, b, &state);
        let mut hvp = |x: &[f64]| hvp_by_differences(&mut grad, &theta, x, self.cfg.hvp_step);
        let solved = neumann_solve(&mut hvp, &g_out, spectrum, &self.cfg.meta.neumann);
        let (strength, spectral) = (self.log_strength.exp(), self.log_spectral.exp());
        let mut record = MetaRecord {
            step: self.step,
            modality: Arm::MODALITIES[c],
            spectrum: [spectrum.min, spectrum.max],
            certificate: None,
            skipped: None,
            hypergradient: [0.0; 2],
            strength,
            spectral,
        };
        match solved {
            Err(why) => {
                self.log.meta_skipped += 1;
                record.skipped = Some(why.to_string());
            }
            Ok((x, certificate)) => {
                // ∂/∂log λ of ∇θ L_in is ∇θ R_col; ∂/∂log κ is ∇θ of R_col's spectral part
                let col = |e: Tensor<2>| self.collapse_loss(e, &state, strength, spectral);
                let spec = |e: Tensor<2>| {
                    let (_, s) = collapse_terms(e, &state, self.cfg.collapse.eps, &self.device);
                    s.mul_scalar(strength * spectral * state.adapt)
                };
                let g_lambda = -dot(&self.branch_gradient(c, &theta, &b.latent[c], &col), &x);
                let g_kappa = -dot(&self.branch_gradient(c, &theta, &b.latent[c], &spec), &x);
                let eta = self.cfg.meta.step;
                self.log_strength = (self.log_strength - eta * g_lambda).clamp(1e-4f64.ln(), 10f64.ln());
                self.log_spectral = (self.log_spectral - eta * g_kappa).clamp(1e-4f64.ln(), 10f64.ln());
                record.certificate = Some(certificate);
                record.hypergradient = [g_lambda, g_kappa];
                record.strength = self.log_strength.exp();
                record.spectral = self.log_spectral.exp();
            }
        }
        self.log.meta.push(record);
    }

    /// Stable rank of the validation embeddings of both modalities.
    fn stable_ranks(&self, val: &TaskSet) -> [f64; 2] {
        let plain = self.model().valid();
        let device = compute::device();
        let n = val.len();
        let latent = |v: &[f32], d: usize| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [n, d]), &device);
        let e = [
            host(plain.project_camera.forward(latent(&val.camera, val.camera_dim))),
            host(plain.project_sensor.forward(latent(&val.sensor, val.sensor_dim))),
        ];
        e.map(|e| crate::linalg::stable_rank(&e, n, self.cfg.embed, self.cfg.collapse.eps, 50))
    }
}

/// Trains ModalImmune on the training latents, with validation batches for the controller and
/// the meta step; returns the network for inference and the log.
pub fn train_modalimmune(
    train: Labelled<'_>,
    val: Labelled<'_>,
    shape: &TaskShape,
    cfg: &ModalImmuneConfig,
    schedule: &HeadSchedule,
    seed: u64,
) -> (ModalImmune, ImmuneLog) {
    let device = compute::training_device();
    let model = mmguard_train::seeded(&device, seed, |d| cfg.init(shape, d));
    let mut t = Trainer {
        model: Some(model),
        optim: AdamConfig::new().with_epsilon(1e-8).init(),
        cfg,
        lr: schedule.learning_rate,
        device: device.clone(),
        controller: Controller::new(cfg.controller),
        log_strength: cfg.collapse.strength.ln(),
        log_spectral: cfg.collapse.spectral.max(1e-4).ln(),
        directions: [vec![1.0; cfg.embed], vec![1.0; cfg.embed]],
        masked: [false; 2],
        fisher: [None, None],
        last_modality: None,
        chosen: [0; 3],
        rng: Stream::ModalImmune.rng(seed),
        step: 0,
        log: ImmuneLog::default(),
    };
    let mut val_rows: Vec<usize> = (0..val.set.len()).collect();
    val_rows.shuffle(&mut t.rng);
    let mut val_cursor = 0;
    let mut next_val = |on: &Device| {
        let n = schedule.batch_size.min(val_rows.len());
        let rows: Vec<usize> = (0..n).map(|k| val_rows[(val_cursor + k) % val_rows.len()]).collect();
        val_cursor = (val_cursor + n) % val_rows.len();
        batch(val.set, &rows, val.labelled, on)
    };
    for epoch in 1..=schedule.epochs {
        let (mut sum, mut steps, mut col_sum, mut col_steps) = (0.0, 0usize, 0.0, 0usize);
        for rows in batches(train.labelled, schedule, &mut t.rng) {
            let b = batch(train.set, &rows, train.labelled, &device);
            let (loss, collapse) = t.step(&b);
            sum += loss;
            steps += 1;
            if let Some(r) = collapse {
                col_sum += r;
                col_steps += 1;
            }
            if t.step.is_multiple_of(cfg.control_every as u64) {
                t.control(&next_val(&compute::device()));
            }
            if cfg.meta.enabled && cfg.collapse.enabled && t.step.is_multiple_of(cfg.meta.every as u64) {
                t.meta_step(&b, &next_val(&device));
            }
        }
        let stable_rank = t.stable_ranks(val.set);
        t.log.epochs.push(ImmuneEpoch {
            epoch,
            loss: sum / steps.max(1) as f64,
            collapse: col_sum / col_steps.max(1) as f64,
            stable_rank,
        });
    }
    let model = t.model().valid();
    (model, t.log)
}
