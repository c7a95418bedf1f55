//! Baselines of the MMSSL paper's Table 1, built from the same stage-1-sized convolutional
//! encoders and decoders as MMSSL so that the comparison is between methods, not model sizes.
//! Each maps a (possibly faulty) sample to a corrected one in one pass and gives a fault score
//! per modality; the definitions and their sources are in each module's documentation.

mod mmae;
mod mmcf;
mod mmfr;
mod mmgan;
mod mmugan;

pub use mmae::{Mmae, MmaeConfig};
pub use mmcf::{Mmcf, MmcfConfig};
pub use mmfr::FuzzyConfig;
pub use mmgan::{lsgan, AdversaryConfig, Discriminator};
pub use mmugan::{CameraUnet, Mmugan, SensorUnet};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use mmguard_model::{camera_to_host, sensor_to_host, HostBatch, Inference, Repair, Stage1Config};

/// A one-pass baseline: reconstructs a batch and exposes an inner code (what a regulariser or
/// a report may look at).
pub trait Reconstruct: Module {
    /// # Shapes
    /// camera [B, 3, H, W], sensor [B, D, T] → the same shapes, and a code [B, k]
    fn reconstruct(&self, s1: &Stage1Config, camera: Tensor<4>, sensor: Tensor<3>)
        -> (Tensor<4>, Tensor<3>, Tensor<2>);
}

/// A trained baseline with the geometry it was built for: what evaluation and serving use.
#[derive(Debug, Clone)]
pub struct Trained<M> {
    /// The network (on a plain device).
    pub model: M,
    /// Its encoders' and decoders' sizes.
    pub stage1: Stage1Config,
}

/// Mean squared difference per sample between two [B, n] host buffers.
fn residuals(a: &[f32], b: &[f32], per_sample: usize) -> Vec<f32> {
    a.chunks_exact(per_sample)
        .zip(b.chunks_exact(per_sample))
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>() / per_sample as f32)
        .collect()
}

/// No detector: every sample is corrected, and the fault score of a modality is its
/// reconstruction residual ‖x̃ − x̂‖² (mean per element).
impl<M: Reconstruct> Repair for Trained<M> {
    fn repair(&self, batch: &HostBatch, device: &Device) -> Inference {
        let s1 = &self.stage1;
        let (camera, sensor, _) =
            self.model.reconstruct(s1, batch.camera_tensor(s1, device), batch.sensor_tensor(s1, device));
        let (camera, sensor) = (camera_to_host(camera), sensor_to_host(sensor));
        let rc = residuals(&batch.camera, &camera, 3 * s1.height * s1.width);
        let rs = residuals(&batch.sensor, &sensor, s1.window * s1.sensor_dim);
        let scores: Vec<[f32; 2]> = rc.into_iter().zip(rs).map(|(c, s)| [c, s]).collect();
        Inference {
            margins: scores.clone(),
            scores,
            flags: vec![[true, true]; batch.len],
            channel_scores: Vec::new(),
            substituted_columns: vec![true; batch.len * s1.sensor_dim],
            camera,
            sensor,
        }
    }
}
