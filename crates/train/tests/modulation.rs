//! Layer-specific Lipschitz modulation acts on the trained weights, the corrector stays a
//! contraction through training, and seeded initialisation is repeatable.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use mmguard_model::{BlockConfig, HostBatch, Mmssl, ModelConfig};
use mmguard_train::{init_model, make_batch, GammaMode, LatentEncoder, Modulation, Stage2Config, Stage2Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn tiny() -> ModelConfig {
    let mut cfg = ModelConfig::new(16, 16, 4, 8);
    cfg.stage1.camera_channels = [4, 8, 8, 4];
    cfg.stage1.sensor_channels = [8, 8, 4];
    cfg.block = BlockConfig { hidden: 32, detector_hidden: 8, ..BlockConfig::new(cfg.stage1.joint_latent()) };
    cfg
}

struct Collect(Vec<f32>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        self.0.extend(p.val().into_data().try_into_vec::<f32>().unwrap());
    }
}

fn weights<M: Module>(m: &M) -> Vec<f32> {
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// Trains the block for a few steps with the given modulation, from the same weights and batches.
fn train_block(modulation: Modulation) -> (Mmssl, Vec<mmguard_train::ModulationStats>) {
    let cfg = tiny();
    let plain = Device::flex();
    let ad = plain.clone().autodiff();
    let Mmssl { stage1, block } = init_model(&cfg, &ad, 11);
    let s2 = Stage2Config { modulation, ..Stage2Config::default() };
    let frozen = stage1.valid();
    let enc = LatentEncoder { stage1: &frozen, cfg: &cfg, device: &plain };
    let mut trainer = Stage2Trainer::new(block, stage1.clone(), cfg.clone(), s2.clone(), ad);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut stats = Vec::new();
    for _ in 0..4 {
        let clean = HostBatch {
            len: 16,
            camera: (0..16 * 3 * 256).map(|_| rng.random()).collect(),
            sensor: (0..16 * 8 * 4).map(|_| rng.random()).collect(),
        };
        let z = enc.clean(&clean);
        let batch = make_batch(&enc, clean, z, &vec![None; 16], &s2, &mut rng);
        stats.push(trainer.step(&batch).1);
    }
    (Mmssl { stage1, block: trainer.into_block() }, stats)
}

#[test]
fn modulation_changes_the_trained_weights() {
    let (on, _) = train_block(Modulation::default());
    let (off, _) = train_block(Modulation::off());
    let (again, _) = train_block(Modulation::default());
    let (w_on, w_off) = (weights(&on.block.encoder), weights(&off.block.encoder));
    assert_eq!(w_on, weights(&again.block.encoder), "same modulation, same seed: same weights");
    let diff: f32 = w_on.iter().zip(&w_off).map(|(a, b)| (a - b).abs()).sum();
    assert!(diff > 1e-3, "γ = 2 on the detection path left the encoder unchanged (|Δ| = {diff})");
    // the stage-1 weights are frozen in stage 2
    assert_eq!(weights(&on.stage1), weights(&off.stage1));
}

#[test]
fn renormalisation_keeps_the_global_norm_and_clipping_fires() {
    let m =
        Modulation { gamma_mode: GammaMode::Gradient, gamma: 3.0, corrector_clip: Some(1e-6), ..Modulation::default() };
    let (_, stats) = train_block(m);
    for s in &stats {
        assert!(s.clipped);
        assert!((s.norm_after - s.norm_before).abs() <= 1e-6 * s.norm_before.max(1.0), "{s:?}");
    }
}

#[test]
fn corrector_stays_a_contraction_after_training() {
    let (model, _) = train_block(Modulation::default());
    let bound = model.block.corrector.lipschitz_bound();
    assert!(bound < 1.0, "certified Lip(C) bound {bound}");
}

#[test]
fn seeded_initialisation_is_repeatable() {
    let device = Device::flex();
    let a = weights(&init_model(&tiny(), &device, 1));
    let b = weights(&init_model(&tiny(), &device, 1));
    let c = weights(&init_model(&tiny(), &device, 2));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn faulty_part_only_scores_nothing_on_clean_samples() {
    let cfg = tiny();
    let device = Device::flex();
    let Mmssl { stage1, block } = init_model(&cfg, &device, 3);
    let enc = LatentEncoder { stage1: &stage1, cfg: &cfg, device: &device };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let clean = HostBatch {
        len: 8,
        camera: (0..8 * 3 * 256).map(|_| rng.random()).collect(),
        sensor: (0..8 * 8 * 4).map(|_| rng.random()).collect(),
    };
    let z = enc.clean(&clean);
    let mut s2 = Stage2Config::default();
    s2.faults.clean_share = 1.0;
    s2.faults.camera_share = 0.0;
    s2.faults.both_share = 0.0;
    s2.faults.clean_jitter = 0.0;
    s2.faulty_part_only = false;
    let batch = make_batch(&enc, clean, z, &vec![None; 8], &s2, &mut rng);
    let full = mmguard_train::stage2_loss(&block, &stage1, &cfg, &s2, &batch, &device).1;
    s2.faulty_part_only = true;
    let masked = mmguard_train::stage2_loss(&block, &stage1, &cfg, &s2, &batch, &device).1;
    assert!(full.latent > 0.0 && full.output > 0.0, "{full:?}");
    assert_eq!((masked.latent, masked.output), (0.0, 0.0));
    assert_eq!(masked.detection, full.detection);
}
