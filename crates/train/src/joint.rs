//! The "single stage" ablation of MMSSL: the autoencoder and the compute block trained together
//! from the start on faulty data, with the stage-1 reconstruction loss on the clean copy added
//! to the stage-2 objective. The latent targets are the current encoder's clean latents, held
//! constant within a step (detached) so that the encoder cannot meet them by moving them.

use mmguard_model::compute;
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use mmguard_model::{host_batch, ComputeBlock, HostBatch, ModelConfig, Stage1};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::Stage2Config;
use crate::error::Result;
use crate::log::stage_bar;
use crate::losses::mse;
use crate::stage1::adam;
use crate::stage2::{stage2_terms, update_block, Stage2Losses, Targets};
use crate::stages::{previous_frames, Context, EarlyStop};

/// A clean batch, its faulty copy and the injected-fault labels [B, 2].
struct Triple {
    clean: HostBatch,
    faulty: HostBatch,
    labels: Vec<f32>,
}

/// Reconstruction of the clean copy plus the stage-2 objective on the faulty one, both through
/// the current encoders. Returns the loss, the stage-2 terms and the reconstruction MSE.
fn joint_loss(
    block: &ComputeBlock,
    stage1: &Stage1,
    cfg: &ModelConfig,
    s2: &Stage2Config,
    t: &Triple,
    device: &Device,
) -> (Tensor<1>, Stage2Losses, f64) {
    let s1 = &cfg.stage1;
    let (cam, sen) = (t.clean.camera_tensor(s1, device), t.clean.sensor_tensor(s1, device));
    let z_clean = stage1.encode(cam.clone(), sen.clone());
    let (lc, ls) = (s1.camera_latent(), s1.sensor_latent());
    let recon = mse(stage1.decode_camera(z_clean.clone().narrow(1, 0, lc), s1), cam)
        + mse(stage1.decode_sensor(z_clean.clone().narrow(1, lc, ls), s1), sen);
    let z_faulty = stage1.encode(t.faulty.camera_tensor(s1, device), t.faulty.sensor_tensor(s1, device));
    // no evidence: a single-stage run has no autoencoder trained on clean data to measure it by
    let targets = Targets { clean: &t.clean, labels: &t.labels, channel_labels: &[] };
    let (terms, parts) =
        stage2_terms(block, stage1, cfg, s2, (z_faulty, None, None), z_clean.detach(), targets, device);
    let recon_value = f64::from(recon.clone().into_scalar::<f32>());
    (recon + terms, parts, recon_value)
}

impl Context<'_> {
    /// Trains both parts together for the epochs of both stages; early stopping (stage 2's
    /// patience) on the joint loss over a fixed faulty copy of the validation batches.
    pub(crate) fn train_joint(
        &mut self,
        stage1: Stage1,
        block: ComputeBlock,
    ) -> Result<(Stage1, ComputeBlock, usize, f64)> {
        let Self { data, cfg, prep, model_cfg, ad, val_batches, .. } = *self;
        let s2 = &cfg.stage2;
        let s1 = &model_cfg.stage1;
        let plain = compute::device();
        let triple = |ends: &[usize], clean: HostBatch, rng: &mut ChaCha8Rng| {
            let (faulty, kinds) = s2.faults.inject_batch(&clean, &previous_frames(data, ends, &s2.faults), s1, rng);
            Triple { clean, faulty, labels: kinds.iter().flat_map(|k| k.labels()).collect() }
        };
        let mut vrng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(2));
        let val: Vec<Triple> = val_batches.iter().map(|(ends, b)| triple(ends, b.clone(), &mut vrng)).collect();

        let epochs = cfg.stage1.epochs + s2.schedule.epochs;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(3));
        let mut optim = adam();
        let mut state = Some((stage1, block));
        let per_epoch = prep.train.count().div_ceil(cfg.batch_size) as u64;
        let bar = stage_bar(cfg.progress, per_epoch * epochs as u64, "single stage");
        let mut stop = EarlyStop::new(&s2.schedule);
        let mut run = 0;
        for epoch in 1..=epochs {
            let start = Instant::now();
            let mut order = prep.train.ends.clone();
            order.shuffle(&mut rng);
            let (mut acc, mut n) = (Stage2Losses::default(), 0usize);
            for chunk in order.chunks(cfg.batch_size).filter(|c| c.len() >= 2) {
                let t = triple(chunk, host_batch(data, chunk, cfg.window, &prep.norm), &mut rng);
                let (stage1, block) = state.take().expect("present between steps");
                let (loss, parts, r) = joint_loss(&block, &stage1, model_cfg, s2, &t, ad);
                let mut grads = loss.backward();
                let lr = stop.learning_rate(s2.schedule.learning_rate);
                let (block, _) = update_block(&mut optim, s2, lr, block, &mut grads);
                let g1 = GradientsParams::from_module(&mut grads, &stage1);
                let stage1 = optim.step(stop.learning_rate(cfg.stage1.learning_rate), stage1, g1);
                state = Some((stage1, block));
                acc.accumulate(&parts, r, chunk.len() as f64);
                n += chunk.len();
                bar.inc(1);
                bar.set_message(format!("epoch {epoch} loss {:.4}", acc.total / n as f64));
            }
            let (stage1, block) = state.as_ref().expect("present between steps");
            let (s1v, bv) = (stage1.valid(), block.valid());
            let (mut vsum, mut vn) = (0.0, 0usize);
            for t in &val {
                let (_, parts, r) = joint_loss(&bv, &s1v, model_cfg, s2, t, &plain);
                vsum += (parts.total + r) * t.clean.len as f64;
                vn += t.clean.len;
            }
            let val_loss = vsum / vn.max(1) as f64;
            let seconds = start.elapsed().as_secs_f64();
            self.log.write(&acc.record("joint", epoch, n, val_loss, seconds))?;
            run = epoch;
            if stop.update(val_loss, state.as_ref().expect("present between steps")) {
                break;
            }
        }
        bar.finish();
        let (stage1, block) = stop.kept.expect("at least one epoch");
        Ok((stage1, block, run, stop.best))
    }
}
