//! The path every protocol shares once it has tensors: validate, queue, wait, count.

use std::sync::Arc;
use std::time::Instant;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::metadata::Tensors;
use crate::serving::{Reply, ServedModel};

/// Validates `inputs` against the model, then runs them through its queue. A request with
/// more rows than the model's batch limit is not refused: it runs alone.
pub async fn infer(
    state: &AppState,
    model: &Arc<ServedModel>,
    inputs: Tensors,
) -> Result<Reply, ApiError> {
    model.metadata.validate_inputs(&inputs)?;
    let reply = model
        .scheduler
        .infer(inputs, state.options.request_timeout)
        .await?;
    Ok(reply)
}

/// Counts a finished inference request in the metrics, whatever its outcome.
pub fn record<T>(
    state: &AppState,
    model: &str,
    version: &str,
    started: Instant,
    result: &Result<T, ApiError>,
) {
    let failure = result.as_ref().err().map(|e| e.reason);
    state
        .registry
        .metrics()
        .record_request(model, version, failure, started.elapsed());
}
