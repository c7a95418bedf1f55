//! Layer-specific Lipschitz modulation of the stage-2 gradients, between backward and step.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use mmguard_model::ComputeBlock;

use crate::config::{GammaMode, Modulation};

/// The gradients of the four parts of the compute block, taken out of one backward pass.
#[derive(Debug)]
pub struct PartGrads {
    /// E.
    pub encoder: GradientsParams,
    /// D.
    pub detector: GradientsParams,
    /// C.
    pub corrector: GradientsParams,
    /// G.
    pub decoder: GradientsParams,
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.total += f64::from(g.square().sum().into_scalar::<f32>());
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register::<D>(param.id, g.mul_scalar(self.factor));
        }
    }
}

fn squared_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = SquaredNorm { grads, total: 0.0 };
    module.visit(&mut v);
    v.total
}

fn scale<M: Module>(module: &M, grads: &mut GradientsParams, factor: f64) {
    if factor != 1.0 {
        module.visit(&mut Scale { grads, factor });
    }
}

/// Gradient norms before and after modulation, for the training log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModulationStats {
    /// Global norm before modulation.
    pub norm_before: f64,
    /// Global norm after modulation.
    pub norm_after: f64,
    /// Whether the corrector's gradient was clipped.
    pub clipped: bool,
}

impl Modulation {
    /// Modulates the gradients in place:
    /// 1. (gradient mode) scale E and D by γ;
    /// 2. clip C's gradient norm at c;
    /// 3. renormalise all four parts to the unmodulated global norm.
    pub fn apply(&self, block: &ComputeBlock, g: &mut PartGrads) -> ModulationStats {
        let norms = |g: &PartGrads| {
            [
                squared_norm(&block.encoder, &g.encoder),
                squared_norm(&block.detector, &g.detector),
                squared_norm(&block.corrector, &g.corrector),
                squared_norm(&block.decoder, &g.decoder),
            ]
        };
        let before = norms(g);
        let n0 = before.iter().sum::<f64>().sqrt();
        if self.gamma_mode == GammaMode::Gradient {
            scale(&block.encoder, &mut g.encoder, self.gamma);
            scale(&block.detector, &mut g.detector, self.gamma);
        }
        let mut clipped = false;
        if let Some(c) = self.corrector_clip {
            let nc = before[2].sqrt();
            if nc > c {
                scale(&block.corrector, &mut g.corrector, c / nc);
                clipped = true;
            }
        }
        let mut after = norms(g).iter().sum::<f64>().sqrt();
        if self.renormalize && after > 0.0 {
            let f = n0 / after;
            scale(&block.encoder, &mut g.encoder, f);
            scale(&block.detector, &mut g.detector, f);
            scale(&block.corrector, &mut g.corrector, f);
            scale(&block.decoder, &mut g.decoder, f);
            after = norms(g).iter().sum::<f64>().sqrt();
        }
        ModulationStats { norm_before: n0, norm_after: after, clipped }
    }

    /// Learning-rate multiplier of E and D.
    pub fn detection_lr_factor(&self) -> f64 {
        match self.gamma_mode {
            GammaMode::LearningRate => self.gamma,
            GammaMode::Gradient => 1.0,
        }
    }
}
