//! Prometheus metrics of the service: requests and rejects, latency, batch sizes, routes, and
//! faults by modality and rule.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder};

use crate::pipeline::{Answer, Route};

/// The service's metrics in their own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: Histogram,
    batch: Histogram,
    samples: IntCounterVec,
    faults: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh counters, registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid metric");
            registry.register(Box::new(h.clone())).expect("registered once");
            h
        };
        Self {
            requests: counter("mmguard_requests_total", "Inference requests by HTTP status", &["status"]),
            latency: histogram(
                "mmguard_request_latency_seconds",
                "Time from a request's arrival to its answer",
                vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
            ),
            batch: histogram(
                "mmguard_batch_size",
                "Samples per model call",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            ),
            samples: counter("mmguard_samples_total", "Samples by route (rule, bypass, corrected)", &["route"]),
            faults: counter("mmguard_faults_total", "Flagged modalities by what flagged them", &["modality", "by"]),
            registry,
        }
    }

    /// Counts a request answered with `status` after `seconds`.
    pub fn request(&self, status: u16, seconds: f64) {
        self.requests.with_label_values(&[&status.to_string()]).inc();
        if status < 300 {
            self.latency.observe(seconds);
        }
    }

    /// Counts the answers of one model call.
    pub fn answers(&self, answers: &[Answer]) {
        self.batch.observe(answers.len() as f64);
        for a in answers {
            let route = match a.route {
                Route::Rule => "rule",
                Route::Bypass => "bypass",
                Route::Corrected => "corrected",
            };
            self.samples.with_label_values(&[route]).inc();
            for v in &a.violations {
                let modality = if v.channel == "camera" { "camera" } else { "sensor" };
                let rule =
                    serde_json::to_value(v.rule).ok().and_then(|r| r.as_str().map(String::from)).unwrap_or_default();
                self.faults.with_label_values(&[modality, &rule]).inc();
            }
            if a.route == Route::Corrected {
                for (m, name) in ["camera", "sensor"].iter().enumerate() {
                    if a.flags[m] {
                        self.faults.with_label_values(&[name, "gate"]).inc();
                    }
                }
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("UTF-8")
    }
}
