//! The online pipeline behind `mmguard serve`: rule checks, MMSSL's per-modality gate and
//! corrector, an OPC UA status per channel ([`pipeline`]), over HTTP ([`http`]).

pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod rules;

pub use http::{app, AppState, Limits};
pub use metrics::Metrics;
pub use pipeline::{Answer, Pipeline, Route, Sample};
pub use rules::RuleConfig;
