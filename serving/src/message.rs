//! Scoring one self-describing message outside HTTP, for message transports (MQTT): the
//! payload says what it is, the answer is what the HTTP routes would answer.
//!
//! - A JSON object with `inputs`: a KServe V2 inference request; the answer is the V2 response.
//! - Another JSON object: an Azure ML `/score` body (`{"data": ...}` or one array per input;
//!   strings for a text model).
//! - Anything else: an encoded image for the model's image input (its classes), or for a text
//!   model without one, UTF-8 text.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::error::ApiError;
use crate::inference::RequestRecord;
use crate::score::{score_body, starts_json_object};
use crate::served::ServedModel;
use crate::service::Service;
use crate::v2::infer_encoded;
use crate::v2::response::EncodedResponse;

/// Scores `payload` with `model` and counts it in the metrics like an HTTP request.
pub async fn score_message(
    service: &Service,
    model: &Arc<ServedModel>,
    payload: Bytes,
    top_k: Option<usize>,
) -> Result<EncodedResponse, ApiError> {
    let mut record = RequestRecord::start(service, &model.name);
    record.served(model);
    let result = score(service, model, payload, top_k).await;
    record.finish(&result);
    result
}

async fn score(
    service: &Service,
    model: &Arc<ServedModel>,
    payload: Bytes,
    top_k: Option<usize>,
) -> Result<EncodedResponse, ApiError> {
    if is_v2_request(&payload) {
        return infer_encoded(service, model, payload, None).await;
    }
    let value = score_body(service, model, top_k, payload).await?;
    Ok(EncodedResponse {
        body: serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?,
        header_length: None,
    })
}

/// A JSON object with a top-level `inputs` array. Only the top level is parsed (nested values
/// are skipped unparsed), so this costs little next to the real decode.
fn is_v2_request(payload: &[u8]) -> bool {
    if !starts_json_object(payload) {
        return false;
    }
    /// A V2 input is an object (not a string: `{"inputs": ["text"]}` is a text body).
    #[derive(serde::Deserialize)]
    struct Input {}
    #[derive(serde::Deserialize)]
    struct Probe {
        inputs: Option<Vec<Input>>,
    }
    serde_json::from_slice::<Probe>(payload).is_ok_and(|p| p.inputs.is_some())
}

/// The JSON error body a message transport answers: what the client may read, the error's
/// kind and the reason counted in metrics. Internal details go to the log, not the body.
pub fn error_json(error: &ApiError, id: Option<&str>) -> Value {
    if error.kind == crate::error::ErrorKind::Internal {
        tracing::error!(id, "{}", error.message);
    }
    let mut body = serde_json::json!({
        "error": error.public_message(),
        "status": error.kind.status_code(),
        "kind": error.kind.as_str(),
        "reason": error.reason,
    });
    if let Some(id) = id {
        body["id"] = Value::from(id);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_requests_are_told_apart_from_score_bodies_and_images() {
        assert!(is_v2_request(br#" {"id": "1", "inputs": []}"#));
        assert!(!is_v2_request(br#"{"data": [[1, 2]]}"#));
        assert!(!is_v2_request(br#"{"inputs": ["some text"]}"#));
        assert!(!is_v2_request(br#"{"inputs": "#));
        assert!(!is_v2_request(b"\xff\xd8\xff\xe0 jpeg"));
    }
}
