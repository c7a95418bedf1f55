//! Prometheus metrics of the service: requests and rejects, latency, batch sizes, queue depth,
//! routes and the bypass ratio, faults by modality and rule, resident memory.

use crate::refusal::Kind;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

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
    rejects: IntCounterVec,
    queue: IntGauge,
    bypass_ratio: Gauge,
    memory: IntGauge,
    heap: IntGauge,
    connections: IntGauge,
    body_bytes: IntGauge,
    refused: IntCounter,
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
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("registered once");
            g
        };
        let bypass_ratio = Gauge::new("mmguard_bypass_ratio", "Share of answered samples that bypassed correction")
            .expect("valid metric");
        registry.register(Box::new(bypass_ratio.clone())).expect("registered once");
        Self {
            rejects: counter("mmguard_rejects_total", "Refused requests by the field at fault", &["field"]),
            queue: gauge("mmguard_queue_depth", "Samples waiting for a model worker"),
            memory: gauge("mmguard_resident_memory_bytes", "Resident set size of the server process"),
            heap: gauge(
                "mmguard_heap_in_use_bytes",
                "Bytes the allocator has handed out and not taken back (glibc; 0 elsewhere)",
            ),
            connections: gauge("mmguard_open_connections", "TCP connections open now"),
            body_bytes: gauge(
                "mmguard_body_bytes_held",
                "Bytes of request bodies reserved now (the memory budget in use)",
            ),
            refused: {
                let c = IntCounter::new(
                    "mmguard_connections_refused_total",
                    "Connections answered 503 and closed because the cap was reached",
                )
                .expect("valid metric");
                registry.register(Box::new(c.clone())).expect("registered once");
                c
            },
            bypass_ratio,
            requests: counter(
                "mmguard_requests_total",
                "Inference requests by outcome: answered, or the kind of refusal (transport-neutral)",
                &["outcome"],
            ),
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

    /// Counts a request answered (`None`) or refused after `seconds`; the latency histogram
    /// holds the answered ones.
    pub fn request(&self, refused: Option<Kind>, seconds: f64) {
        self.requests.with_label_values(&[refused.map_or("answered", Kind::name)]).inc();
        if refused.is_none() {
            self.latency.observe(seconds);
        }
    }

    /// Counts a refused request by the field its error names (`body`, `camera`, `queue`, …);
    /// indices are dropped so that the label set stays small.
    pub fn reject(&self, field: &str) {
        let last = field.rsplit('.').next().unwrap_or(field);
        let name: String = last.chars().take_while(|c| *c != '[').collect();
        self.rejects.with_label_values(&[&name]).inc();
    }

    /// Counts a connection taken into service.
    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    /// Counts a connection that ended.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// Adds `bytes` (negative: gives back) to the request-body bytes held.
    pub fn body_bytes(&self, bytes: i64) {
        self.body_bytes.add(bytes);
    }

    /// Counts a connection refused at the cap.
    pub fn connection_refused(&self) {
        self.refused.inc();
    }

    /// Samples now waiting for a worker.
    pub fn queue_depth(&self, samples: usize) {
        self.queue.set(samples as i64);
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
        let count = |route| self.samples.with_label_values(&[route]).get();
        let total = count("rule") + count("bypass") + count("corrected");
        if total > 0 {
            self.bypass_ratio.set(count("bypass") as f64 / total as f64);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        if let Some(bytes) = resident_bytes() {
            self.memory.set(bytes as i64);
        }
        if let Some(bytes) = heap_in_use_bytes() {
            self.heap.set(bytes as i64);
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding");
        String::from_utf8(out).expect("UTF-8")
    }
}

/// What the program holds on the heap (glibc's `mallinfo2`: small blocks in use plus mapped
/// big ones). Beside the resident set it tells a leak (both grow) from memory the allocator
/// keeps cached in its arenas (only the resident set grows).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn heap_in_use_bytes() -> Option<u64> {
    // SAFETY: mallinfo2 only reads the allocator's counters and returns them by value.
    let info = unsafe { libc::mallinfo2() };
    Some((info.uordblks + info.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use_bytes() -> Option<u64> {
    None
}

/// Hands the heap's free pages back to the system (glibc's `malloc_trim`; nothing elsewhere).
/// The binary raises glibc's trim threshold so that training keeps its big buffers (see
/// `tune_allocator` in the CLI), which also means a server never gives back what a burst of
/// requests made it cache: measured over a 10-minute soak, the heap in use stayed at 27–35 MB
/// while the resident set climbed 36 → 55 MB. The server calls this every few seconds.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_cached_memory() {
    // SAFETY: malloc_trim only returns free memory of glibc's arenas to the system; it is
    // thread-safe and touches no block in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands the heap's free pages back to the system (only glibc can be asked).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_cached_memory() {}

/// Resident set size from `/proc/self/statm` (Linux; elsewhere the gauge stays 0).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
