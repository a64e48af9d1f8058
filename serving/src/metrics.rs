//! Prometheus metrics: every name and label is written here once; the rest of destino
//! records through the methods below.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Every metric the server exports; cheap to clone (one shared set).
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Collectors>);

#[derive(Debug)]
struct Collectors {
    registry: Registry,
    /// Inference requests by model, version, outcome (`success`/`failure`) and failure reason.
    requests: IntCounterVec,
    queue_seconds: HistogramVec,
    compute_seconds: HistogramVec,
    request_seconds: HistogramVec,
    /// Requests per engine run.
    batch_size: HistogramVec,
    queue_depth: IntGaugeVec,
    /// Engine instances running a batch now.
    busy_instances: IntGaugeVec,
    /// 1 for each loaded model version, labelled with its engine and execution provider.
    model_info: IntGaugeVec,
    /// Computing nodes left on the CPU of a model version placed on an accelerator.
    nodes_on_cpu: IntGaugeVec,
    /// 1 when the model serves, 0 when it is loading or unavailable.
    model_ready: IntGaugeVec,
    /// HTTP responses by matched route and status code.
    http_responses: IntCounterVec,
    /// Model updates by model and final state (`ready`, `failed`, `rolled_back`).
    updates: IntCounterVec,
}

/// One engine run under way; ends when dropped (even by a panic).
#[must_use]
#[derive(Debug)]
pub struct BusyInstance(IntGauge);

impl Drop for BusyInstance {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One model version's successful requests, counted as `record_request` counts them, without
/// looking the labels up for every request.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    successes: IntCounter,
    seconds: Histogram,
}

impl RequestMetrics {
    pub fn success(&self, total: Duration) {
        self.successes.inc();
        self.seconds.observe(total.as_secs_f64());
    }
}

/// One model's queue and engine metrics, recorded by its scheduler for every request and run
/// without looking the label up each time.
#[derive(Debug, Clone)]
pub struct ModelMetrics {
    queue_depth: IntGauge,
    busy_instances: IntGauge,
    queue_seconds: Histogram,
    compute_seconds: Histogram,
    batch_size: Histogram,
}

impl ModelMetrics {
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Counts an engine instance as busy until the returned guard is dropped.
    pub fn instance_busy(&self) -> BusyInstance {
        self.busy_instances.inc();
        BusyInstance(self.busy_instances.clone())
    }

    pub fn observe_queued(&self, waited: Duration) {
        self.queue_seconds.observe(waited.as_secs_f64());
    }

    pub fn observe_computed(&self, took: Duration) {
        self.compute_seconds.observe(took.as_secs_f64());
    }

    /// Requests merged into one engine run.
    pub fn observe_batch(&self, requests: usize) {
        self.batch_size.observe(requests as f64);
    }
}

fn histogram(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    HistogramVec::new(opts, labels).expect("valid histogram definition")
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter definition")
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge definition")
        };
        let model = &["model"];
        let metrics = Collectors {
            registry: Registry::new(),
            requests: counter(
                "destino_inference_requests_total",
                "Inference requests by model, version, outcome and failure reason",
                &["model", "version", "outcome", "reason"],
            ),
            queue_seconds: histogram(
                "destino_queue_duration_seconds",
                "Time a request waited in its model's queue",
                LATENCY_BUCKETS,
                model,
            ),
            compute_seconds: histogram(
                "destino_compute_duration_seconds",
                "Engine time of the batch a request ran in",
                LATENCY_BUCKETS,
                model,
            ),
            request_seconds: histogram(
                "destino_request_duration_seconds",
                "Total time of an inference request, decoding to encoding",
                LATENCY_BUCKETS,
                model,
            ),
            batch_size: histogram(
                "destino_batch_size",
                "Requests merged into one engine run",
                BATCH_BUCKETS,
                model,
            ),
            queue_depth: gauge("destino_queue_depth", "Requests waiting for a model", model),
            busy_instances: gauge(
                "destino_instances_busy",
                "Engine instances of a model running a batch now",
                model,
            ),
            model_info: gauge(
                "destino_model_info",
                "Loaded model versions, with engine and execution provider",
                &["model", "version", "engine", "device"],
            ),
            nodes_on_cpu: gauge(
                "destino_model_nodes_on_cpu",
                "Computing nodes of a model version left on the CPU beside its accelerator",
                &["model", "version"],
            ),
            model_ready: gauge(
                "destino_model_ready",
                "1 when the model serves requests",
                model,
            ),
            http_responses: counter(
                "destino_http_responses_total",
                "HTTP responses by route and status",
                &["route", "status"],
            ),
            updates: counter(
                "destino_model_updates_total",
                "Model updates by model and final state",
                &["model", "state"],
            ),
        };
        for collector in [
            Box::new(metrics.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.queue_seconds.clone()),
            Box::new(metrics.compute_seconds.clone()),
            Box::new(metrics.request_seconds.clone()),
            Box::new(metrics.batch_size.clone()),
            Box::new(metrics.queue_depth.clone()),
            Box::new(metrics.busy_instances.clone()),
            Box::new(metrics.model_info.clone()),
            Box::new(metrics.nodes_on_cpu.clone()),
            Box::new(metrics.model_ready.clone()),
            Box::new(metrics.http_responses.clone()),
            Box::new(metrics.updates.clone()),
        ] {
            metrics
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics(Arc::new(metrics))
    }

    /// Counts one inference request with its one outcome: success, or the failure reason.
    pub fn record_request(
        &self,
        model: &str,
        version: &str,
        failure: Option<&str>,
        total: Duration,
    ) {
        let (outcome, reason) = match failure {
            None => ("success", ""),
            Some(reason) => ("failure", reason),
        };
        self.0
            .requests
            .with_label_values(&[model, version, outcome, reason])
            .inc();
        if failure.is_none() {
            self.0
                .request_seconds
                .with_label_values(&[model])
                .observe(total.as_secs_f64());
        }
    }

    /// The success metrics of one model version, their labels resolved once.
    pub fn requests_of(&self, model: &str, version: u64) -> RequestMetrics {
        let labels = [model, &version.to_string(), "success", ""];
        RequestMetrics {
            successes: self.0.requests.with_label_values(&labels),
            seconds: self.0.request_seconds.with_label_values(&[model]),
        }
    }

    /// The queue and engine metrics of `model`, their label resolved once.
    pub fn model(&self, model: &str) -> ModelMetrics {
        let label = &[model];
        ModelMetrics {
            queue_depth: self.0.queue_depth.with_label_values(label),
            busy_instances: self.0.busy_instances.with_label_values(label),
            queue_seconds: self.0.queue_seconds.with_label_values(label),
            compute_seconds: self.0.compute_seconds.with_label_values(label),
            batch_size: self.0.batch_size.with_label_values(label),
        }
    }

    /// A model version now serves (`serving`) or no longer does, on `engine` and `device`,
    /// with `nodes_on_cpu` of its nodes left on the CPU when the device places them.
    pub fn set_model_info(
        &self,
        model: &str,
        version: u64,
        engine: &str,
        device: &str,
        nodes_on_cpu: Option<usize>,
        serving: bool,
    ) {
        let version = version.to_string();
        let labels = [model, &version, engine, device];
        if serving {
            self.0.model_info.with_label_values(&labels).set(1);
            if let Some(nodes) = nodes_on_cpu {
                let nodes = i64::try_from(nodes).unwrap_or(i64::MAX);
                self.0
                    .nodes_on_cpu
                    .with_label_values(&[model, &version])
                    .set(nodes);
            }
        } else {
            let _ = self.0.model_info.remove_label_values(&labels);
            let _ = self.0.nodes_on_cpu.remove_label_values(&[model, &version]);
        }
    }

    pub fn set_model_ready(&self, model: &str, ready: bool) {
        self.0
            .model_ready
            .with_label_values(&[model])
            .set(i64::from(ready));
    }

    /// One response of a transport's route (HTTP today), with its status code as text.
    pub fn count_response(&self, route: &str, status: &str) {
        self.0
            .http_responses
            .with_label_values(&[route, status])
            .inc();
    }

    /// One model update that ended in `state` (`ready`, `failed` or `rolled_back`).
    pub fn count_update(&self, model: &str, state: &str) {
        self.0.updates.with_label_values(&[model, state]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.0.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}
