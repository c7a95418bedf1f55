//! Stage 1: the convolutional autoencoder on clean data.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use mmguard_model::{HostBatch, Stage1, Stage1Config};

use crate::losses::mse;

/// One optimiser step at a time on the autoencoder, on an autodiff device.
pub struct Stage1Trainer {
    model: Option<Stage1>,
    cfg: Stage1Config,
    optim: ModuleOptimizer,
    lr: f64,
    device: Device,
}

impl std::fmt::Debug for Stage1Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage1Trainer").field("cfg", &self.cfg).field("lr", &self.lr).finish()
    }
}

/// Adam with PyTorch's ε (burn's default 1e-5 damps small gradients).
pub(crate) fn adam() -> ModuleOptimizer {
    AdamConfig::new().with_epsilon(1e-8).init()
}

impl Stage1Trainer {
    /// Wraps a freshly initialised autoencoder; `device` must be an autodiff device.
    pub fn new(model: Stage1, cfg: Stage1Config, lr: f64, device: Device) -> Self {
        Self { model: Some(model), cfg, optim: adam(), lr, device }
    }

    /// The autoencoder in its current state.
    pub fn model(&self) -> &Stage1 {
        self.model.as_ref().expect("present between steps")
    }

    /// Gives the trained autoencoder back.
    pub fn into_model(self) -> Stage1 {
        self.model.expect("present between steps")
    }

    /// The learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One step on a clean batch; returns the loss (camera MSE + sensor MSE).
    pub fn step(&mut self, batch: &HostBatch) -> f32 {
        let cam = batch.camera_tensor(&self.cfg, &self.device);
        let sen = batch.sensor_tensor(&self.cfg, &self.device);
        let model = self.model.take().expect("present between steps");
        let rec_cam = model.decode_camera(model.encode_camera(cam.clone()), &self.cfg);
        let rec_sen = model.decode_sensor(model.encode_sensor(sen.clone()), &self.cfg);
        let loss = mse(rec_cam, cam) + mse(rec_sen, sen);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.model = Some(self.optim.step(self.lr, model, grads));
        value
    }
}

/// Reconstruction MSE (camera, sensor) of a clean batch, without autodiff.
pub fn reconstruction_error(model: &Stage1, cfg: &Stage1Config, batch: &HostBatch, device: &Device) -> (f64, f64) {
    let cam = batch.camera_tensor(cfg, device);
    let sen = batch.sensor_tensor(cfg, device);
    let rc = mse(model.decode_camera(model.encode_camera(cam.clone()), cfg), cam).into_scalar::<f32>();
    let rs = mse(model.decode_sensor(model.encode_sensor(sen.clone()), cfg), sen).into_scalar::<f32>();
    (f64::from(rc), f64::from(rs))
}
