//! Baselines of the MMSSL paper's Table 1, built from the same stage-1-sized convolutional
//! encoders and decoders as MMSSL so that the comparison is between methods, not model sizes.
//! Each maps a (possibly faulty) sample to a corrected one in one pass and gives a fault score
//! per modality; the definitions and their sources are in each module's documentation.

mod mmae;
mod mmfr;

pub use mmae::{Mmae, MmaeConfig, TrainedMmae};
pub use mmfr::FuzzyConfig;
