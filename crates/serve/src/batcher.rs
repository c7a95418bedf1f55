//! Dynamic micro-batching across requests, as Triton's dynamic batcher does: requests go into
//! one queue; a worker takes the oldest and everything queued behind it, up to `max_batch`
//! samples (waiting at most `max_wait_us` for more), and runs them as one model call.
//!
//! Default `max_wait_us = 0`: batches form from what queued while the worker was busy, so a lone
//! request never waits. On the CPU backend the model's cost is nearly linear in the batch (arm
//! demo, 64×64: 1.4 ms for one sample, 0.9 ms per sample at 8 and 16), so waiting to fill a
//! batch buys little throughput and costs latency; `mmguard loadtest` measures both settings.
//!
//! A batch holds samples of one pipeline only: after a reload, requests that picked the old run
//! finish on it. The queue is bounded (`max_queue` samples); beyond it requests are refused
//! (503) instead of growing memory and latency without bound.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::pipeline::{Answer, Pipeline, Sample};

/// How requests are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Most samples in one model call.
    pub max_batch: usize,
    /// Longest a batch waits for more requests after its first, microseconds (0: run what is
    /// queued at once).
    pub max_wait_us: u64,
    /// Threads running model calls; default one per core: at these sizes a model call barely
    /// spreads over burn-flex's threads (one sample: 1.5 ms on two threads, 1.7 ms on one), and
    /// two workers on two cores took the p99 at 500 requests/s from 13 to 6 ms
    /// (`mmguard loadtest`, README).
    pub workers: usize,
    /// Most samples waiting; a request that would exceed it is refused.
    pub max_queue: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self { max_batch: 64, max_wait_us: 0, workers: cores, max_queue: 1024 }
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The queue holds `max_queue` samples already.
    #[error("the queue is full ({0} samples waiting)")]
    QueueFull(usize),
    /// The model call failed (a panic, caught; the worker goes on).
    #[error("the model call failed")]
    Failed,
}

struct Job {
    pipeline: Arc<Pipeline>,
    samples: Vec<Sample>,
    reply: tokio::sync::oneshot::Sender<Vec<Answer>>,
}

/// The queue in front of the model workers. Workers stop when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: crossbeam_channel::Sender<Job>,
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    metrics: Metrics,
}

impl Batcher {
    /// Starts the workers.
    pub fn start(cfg: BatchConfig, metrics: Metrics) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        for k in 0..cfg.workers.max(1) {
            let (rx, queued, metrics) = (rx.clone(), queued.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("mmguard-model-{k}"))
                .spawn(move || work(&rx, &queued, &metrics, cfg))
                .expect("spawning a model worker");
        }
        Self { tx, queued, max_queue: cfg.max_queue, metrics }
    }

    /// Answers `samples` on `pipeline`, batched with whatever else is queued.
    pub async fn infer(&self, pipeline: Arc<Pipeline>, samples: Vec<Sample>) -> Result<Vec<Answer>, BatchError> {
        let n = samples.len();
        let before = self.queued.fetch_add(n, Ordering::SeqCst);
        if before + n > self.max_queue {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(BatchError::QueueFull(before));
        }
        self.metrics.queue_depth(before + n);
        let (reply, answer) = tokio::sync::oneshot::channel();
        // the workers live as long as a sender does, and this handle is one
        self.tx.send(Job { pipeline, samples, reply }).map_err(|_| BatchError::Failed)?;
        answer.await.map_err(|_| BatchError::Failed)
    }
}

fn work(rx: &crossbeam_channel::Receiver<Job>, queued: &AtomicUsize, metrics: &Metrics, cfg: BatchConfig) {
    let wait = Duration::from_micros(cfg.max_wait_us);
    let mut held: Option<Job> = None;
    loop {
        let Some(first) = held.take().or_else(|| rx.recv().ok()) else { return };
        let deadline = Instant::now() + wait;
        let mut size = first.samples.len();
        let mut jobs = vec![first];
        while size < cfg.max_batch {
            let next = if wait.is_zero() { rx.try_recv().ok() } else { rx.recv_deadline(deadline).ok() };
            let Some(job) = next else { break };
            if !Arc::ptr_eq(&job.pipeline, &jobs[0].pipeline) || size + job.samples.len() > cfg.max_batch {
                held = Some(job);
                break;
            }
            size += job.samples.len();
            jobs.push(job);
        }
        let depth = queued.fetch_sub(size, Ordering::SeqCst) - size;
        metrics.queue_depth(depth);
        let pipeline = jobs[0].pipeline.clone();
        let mut samples = Vec::with_capacity(size);
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            replies.push((job.samples.len(), job.reply));
            samples.extend(job.samples);
        }
        // a panic in one call must not take the worker (and every later request) down with it
        let Ok(answers) = std::panic::catch_unwind(AssertUnwindSafe(|| pipeline.infer(&samples))) else {
            tracing::error!(samples = size, "model call panicked; its requests get 500");
            continue;
        };
        metrics.answers(&answers);
        let mut rest = answers.into_iter();
        for (n, reply) in replies {
            // a client that went away drops its receiver; nothing to do
            let _ = reply.send(rest.by_ref().take(n).collect());
        }
    }
}
