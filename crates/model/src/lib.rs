//! The MMSSL networks on burn, the gated inference pipeline, and run directories.
//!
//! * Stage 1 ([`Stage1`]): a convolutional autoencoder per modality, joint latent z =
//!   [camera map, sensor map].
//! * Stage 2 ([`ComputeBlock`]): dense encoder E, detector D (one fault logit per modality),
//!   corrector C (spectrally normalised, a contraction) and decoder G back to the latent.
//! * [`Mmssl::infer`]: encode → detect → gate per modality → decode and substitute only the
//!   flagged modality, keeping what of its input agrees with the correction
//!   ([`InputRepair`]); [`Mmssl::run`] adds the references the evaluation compares against.
//!
//! The code takes a [`burn::tensor::Device`] and makes no backend assumption; a plain (non
//! autodiff) device gives the inference path without gradient bookkeeping. [`compute`] is the
//! one place that picks the device the other crates run on.

mod autoencoder;
mod block;
pub mod clean_prior;
pub mod compute;
mod error;
pub mod evidence;
pub mod fast_conv;
pub mod input_repair;
pub mod keypoints;
mod layers;
mod pipeline;
mod run;
pub mod sensor_mix;
mod spectral;

pub use autoencoder::{
    CameraDecoder, CameraEncoder, DenseEncoder, DenseEncoders, EncoderKind, SensorDecoder, SensorEncoder, Stage1,
    Stage1Config,
};
pub use block::{
    BlockConfig, BlockOutput, ChannelHead, ChannelHeads, ComputeBlock, Corrector, Detector, Encoder, LatentDecoder,
    LatentScale, OutputInput, LATENT_BOUND,
};
pub use clean_prior::{CleanPrior, Novelty};
pub use error::{Error, Result};
pub use evidence::Evidence;
pub use input_repair::{InputRepair, SpreadSums};
pub use keypoints::Keypoints;
pub use layers::{conv, lrelu, unit_rows, Act, LEAKY_SLOPE};
pub use pipeline::{
    camera_to_host, evidence_tensor, index_tensor, logit, sensor_to_host, Distances, Flops, Gated, HostBatch,
    Inference, Mmssl, ModelConfig, PipelineOutput, Repair, Thresholds,
};
pub use run::{
    host_batch, write_json, Calibration, Gate, Provenance, Run, RunConfig, Versions, CONFIG_FILE, FORMAT_VERSION,
    LOG_FILE, METRICS_FILE, WEIGHTS_FILE,
};
pub use sensor_mix::{Candidate, MixInput, SensorMix};
pub use spectral::{spectral_norm, SnLinear};
