//! One `ModelInferRequest` through the serving crate's V2 protocol: the unary call and each
//! message of a stream take this path, with the same queues, limits and accounting as HTTP.

use std::time::Duration;

use destino_serving::inference::on_model;
use destino_serving::v2::{encode_outputs, infer_request};
use destino_serving::{ApiError, Service};
use prost::Message;

use crate::proto::{ModelInferRequest, ModelInferResponse};
use crate::tensors;

/// Runs `message` on the model it names; `deadline`, the client's, shortens the server's
/// request timeout.
pub async fn infer(
    service: &Service,
    message: ModelInferRequest,
    deadline: Option<Duration>,
) -> Result<ModelInferResponse, ApiError> {
    let name = message.model_name.clone();
    let version = (!message.model_version.is_empty()).then(|| message.model_version.clone());
    let size = message.encoded_len();
    on_model(service, &name, version.as_deref(), async |model| {
        let request = move || tensors::request(message);
        let (id, outputs) = infer_request(service, &model, size, request, deadline).await?;
        let (name, version) = (model.name.clone(), model.version);
        encode_outputs(&model, outputs, move |outputs| {
            tensors::response(&name, version, id, outputs)
        })
        .await
    })
    .await
}
