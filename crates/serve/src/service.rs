//! The service behind every way in (HTTP now, MQTT later): the run in use, swapped atomically by
//! a reload, and the batcher in front of the model workers.

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::batcher::{BatchConfig, BatchError, Batcher};
use crate::metrics::Metrics;
use crate::pipeline::{Answer, Pipeline, Sample};
use crate::rules::RuleConfig;

/// The run in use and the queue in front of it.
#[derive(Debug)]
pub struct Service {
    current: RwLock<Arc<Pipeline>>,
    rules: RuleConfig,
    batcher: Batcher,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
}

impl Service {
    /// Serves `pipeline`; later reloads check with `rules`.
    pub fn new(pipeline: Pipeline, rules: RuleConfig, batching: BatchConfig) -> Self {
        let metrics = Metrics::new();
        Self {
            current: RwLock::new(Arc::new(pipeline)),
            rules,
            batcher: Batcher::start(batching, metrics.clone()),
            metrics,
        }
    }

    /// The run in use now; a request keeps the one it started with.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Answers `samples` on `pipeline`, batched with other requests.
    pub async fn infer(&self, pipeline: Arc<Pipeline>, samples: Vec<Sample>) -> Result<Vec<Answer>, BatchError> {
        self.batcher.infer(pipeline, samples).await
    }

    /// Loads the run in `dir` and puts it in place of the current one (blocking: call it off
    /// the async threads). Requests already holding the old run finish on it. Gives the old and
    /// the new version; on failure the old run stays.
    pub fn reload(&self, dir: &Path) -> Result<(String, String), mmguard_model::Error> {
        let new = Arc::new(Pipeline::load(dir, self.rules)?);
        let version = new.version().to_string();
        let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(|e| e.into_inner()), new);
        Ok((old.version().to_string(), version))
    }
}
