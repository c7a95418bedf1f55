//! MMSSL training: stage 1 (convolutional autoencoder on clean data), stage 2 (compute block on
//! faulty data with layer-specific Lipschitz modulation), gate calibration, and the run directory.
//!
//! ```text
//! Dataset ─► split by episode ─► MinMax on train ─► stage 1 ─► freeze ─► stage 2 ─► calibrate ─► runs/<name>/
//! ```

mod baseline;
mod calibrate;
mod config;
mod error;
mod fit;
mod inject;
mod joint;
mod log;
mod losses;
mod modulation;
mod pipeline;
mod repair_mix;
pub mod speed;
mod stage1;
mod stage2;
mod stages;

pub use baseline::{train_mmae, train_mmcf, train_mmfr, train_mmgan, train_mmugan, BaselineReport};
pub use calibrate::{calibrate, threshold_for_false_alarm_rate, Calibration, EpisodeScores};
pub use config::{
    Architecture, EarlyStopOn, GammaMode, LossWeights, Modulation, Stage2Config, StageSchedule, TrainConfig,
    TrainingFaults,
};
pub use error::{Error, Result};
pub use fit::{fit, Fitted, Plan, Step, StepReport, Stream};
pub use inject::Injected;
pub use log::{CsvLog, EpochRecord};
pub use losses::{bce_with_logits, info_nce, mse};
pub use modulation::{ModulationStats, PartGrads};
pub use pipeline::{
    calibrate_gate, init_model, model_config, prepare, seeded, train, GateOptions, Prepared, TrainReport,
};
pub use repair_mix::{fit_repair_mix, PriorConfig, RepairMixConfig, RepairMixReport};
pub use stage1::{reconstruction_error, Stage1Trainer};
pub use stage2::{
    make_batch, stage2_loss, stage2_terms, CleanCodes, LatentEncoder, Stage2Batch, Stage2Losses, Stage2Trainer, Targets,
};
