//! The path every protocol shares once it has tensors: validate, queue, wait; and the one
//! place a request's outcome is counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use destino_core::Tensors;

use crate::batch::Padding;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::scheduler::Reply;
use crate::served::ServedModel;
use crate::service::Service;

/// Validates `inputs` against the model, then runs them through its queue. A request with
/// more rows than the model's batch limit is not refused: it runs alone.
/// `timeout`, when given, shortens the server's request timeout (a client's own deadline).
pub async fn infer(
    service: &Service,
    model: &Arc<ServedModel>,
    inputs: Tensors,
    timeout: Option<Duration>,
) -> Result<Reply, ApiError> {
    infer_padded(service, model, inputs, timeout, None).await
}

/// As `infer`, for inputs that may be padded (`padding`) to share a run with requests of
/// other lengths (a text model's tokens).
pub async fn infer_padded(
    service: &Service,
    model: &Arc<ServedModel>,
    inputs: Tensors,
    timeout: Option<Duration>,
    padding: Option<Arc<Padding>>,
) -> Result<Reply, ApiError> {
    model.metadata.validate_inputs(&inputs)?;
    let limit = match (service.options.request_timeout, timeout) {
        (Some(server), Some(client)) => Some(server.min(client)),
        (server, client) => server.or(client),
    };
    let reply = model.scheduler.infer_padded(inputs, limit, padding).await?;
    Ok(reply)
}

/// Runs `work` on model `name` (the version the request names, or the serving one),
/// counting the request's one outcome whatever happens.
pub async fn on_model<T, F, Fut>(
    service: &Service,
    name: &str,
    version: Option<&str>,
    work: F,
) -> Result<T, ApiError>
where
    F: FnOnce(Arc<ServedModel>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut record = RequestRecord::start(service, name);
    record.version(version.unwrap_or_default());
    let result = match service.registry.get(name, version) {
        Ok(model) => {
            record.served(&model);
            work(model).await
        }
        Err(e) => Err(e.into()),
    };
    record.finish(&result);
    result
}

/// One inference request's entry in the metrics: exactly one outcome, whatever happens:
/// success, the failure's reason, or `cancelled` when the request is dropped unanswered
/// (its client left).
#[derive(Debug)]
pub struct RequestRecord<'a> {
    metrics: &'a Metrics,
    model: &'a str,
    /// The version the request names, until the serving one is known.
    named_version: &'a str,
    /// The serving version (its statistics and metrics), once it is known.
    served: Option<Arc<ServedModel>>,
    started: Instant,
    finished: bool,
}

impl<'a> RequestRecord<'a> {
    pub fn start(service: &'a Service, model: &'a str) -> RequestRecord<'a> {
        RequestRecord {
            metrics: service.metrics(),
            model,
            named_version: "",
            served: None,
            started: Instant::now(),
            finished: false,
        }
    }

    /// The version the request names, before it is known to serve.
    pub fn version(&mut self, version: &'a str) {
        self.named_version = version;
    }

    /// The version that serves the request.
    pub fn served(&mut self, model: &Arc<ServedModel>) {
        self.served = Some(model.clone());
    }

    pub fn finish<T>(mut self, result: &Result<T, ApiError>) {
        let failure = result.as_ref().err().map(|e| e.reason);
        self.record(failure);
    }

    fn record(&mut self, failure: Option<&str>) {
        self.finished = true;
        let elapsed = self.started.elapsed();
        let Some(model) = &self.served else {
            let version = self.named_version;
            return self
                .metrics
                .record_request(self.model, version, failure, elapsed);
        };
        model.stats.request(failure.is_none(), elapsed);
        match failure {
            None => model.request_metrics.success(elapsed),
            Some(_) => {
                let version = model.version.to_string();
                self.metrics
                    .record_request(self.model, &version, failure, elapsed);
            }
        }
    }
}

impl Drop for RequestRecord<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Some("cancelled"));
        }
    }
}
