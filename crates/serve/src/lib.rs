//! The online pipeline behind `mmguard serve`: rule checks ([`rules`]), MMSSL's per-modality
//! gate and corrector with an OPC UA status per channel ([`pipeline`]), micro-batching across
//! requests ([`batcher`]), the run in use and its reload ([`service`]), refusals in the
//! service's own terms ([`refusal`]), over HTTP ([`http`],
//! bodies in [`decode`], described by [`openapi`]) on a listener with timeouts and a connection
//! cap ([`server`]).

pub mod batcher;
pub mod config;
pub mod decode;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod refusal;
pub mod rules;
pub mod server;
pub mod service;

pub use batcher::BatchConfig;
pub use config::ServeConfig;
pub use decode::Limits;
pub use http::{app, Admin, AppState};
pub use metrics::Metrics;
pub use pipeline::{Answer, ChannelScores, Geometry, Pipeline, Route, Sample};
pub use refusal::{Kind, Refusal};
pub use rules::RuleConfig;
pub use server::{raise_descriptor_limit, serve, ConnectionLimits};
pub use service::Service;
