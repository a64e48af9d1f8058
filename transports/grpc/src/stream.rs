//! `ModelStreamInfer`: requests in, one response per request out, in the order they came.
//! Up to `IN_FLIGHT` requests of a stream run at once; an error answers its own request
//! (`error_message`, with the request's id) and the stream goes on. When the client goes
//! away, the requests still running are dropped, so the engine skips those still queued.

use std::pin::Pin;

use destino_serving::{ApiError, Service};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::infer::infer;
use crate::proto::{ModelInferRequest, ModelInferResponse, ModelStreamInferResponse};
use crate::status::status;

/// Requests of one stream running at once.
const IN_FLIGHT: usize = 16;

pub type ResponseStream =
    Pin<Box<dyn Stream<Item = Result<ModelStreamInferResponse, Status>> + Send + 'static>>;

/// Answers `requests` in order on the returned stream.
pub fn answer(
    service: Service,
    mut requests: Streaming<ModelInferRequest>,
    request_id: String,
) -> ResponseStream {
    let (running, mut in_order) = mpsc::channel::<JoinHandle<ModelStreamInferResponse>>(IN_FLIGHT);
    let (out, responses) = mpsc::channel(IN_FLIGHT);
    let stream_id = request_id.clone();
    tokio::spawn(async move {
        loop {
            let message = match requests.message().await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(request_id, "stream ended: {e}");
                    break;
                }
            };
            let service = service.clone();
            let request_id = request_id.clone();
            let task = tokio::spawn(async move { one(&service, message, &request_id).await });
            if running.send(task).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = in_order.recv() => next,
                () = out.closed() => None,
            };
            let Some(mut task) = next else { break };
            let answer = tokio::select! {
                joined = &mut task => joined.unwrap_or_else(|e| {
                    // As any internal error: the details to the log, the request id to the client.
                    let error = ApiError::internal(format!("a stream request's task failed: {e}"));
                    ModelStreamInferResponse {
                        error_message: status(error, &stream_id).message().to_string(),
                        infer_response: None,
                    }
                }),
                () = out.closed() => {
                    task.abort();
                    break;
                }
            };
            if out.send(Ok(answer)).await.is_err() {
                break;
            }
        }
        // The client left (or the stream ended): stop whatever still runs for it.
        in_order.close();
        while let Ok(task) = in_order.try_recv() {
            task.abort();
        }
    });
    Box::pin(ReceiverStream::new(responses))
}

async fn one(
    service: &Service,
    message: ModelInferRequest,
    request_id: &str,
) -> ModelStreamInferResponse {
    let echo = ModelInferResponse {
        model_name: message.model_name.clone(),
        model_version: message.model_version.clone(),
        id: message.id.clone(),
        ..Default::default()
    };
    match infer(service, message, None).await {
        Ok(response) => ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(response),
        },
        Err(e) => ModelStreamInferResponse {
            error_message: status(e, request_id).message().to_string(),
            infer_response: Some(echo),
        },
    }
}
