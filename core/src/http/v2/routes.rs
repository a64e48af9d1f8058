//! KServe V2 (Open Inference Protocol) REST handlers, with Triton's binary tensor and
//! classification extensions.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dtype::DType;
use crate::http::body::RawBody;
use crate::http::error::ApiError;
use crate::http::images::{classification_tensor, images_to_tensor};
use crate::http::inference::{infer as run_inference, record};
use crate::http::state::AppState;
use crate::http::v2::datatype::to_v2;
use crate::http::v2::decode::{split_bytes_elements, to_tensor};
use crate::http::v2::request::{InferRequest, InputData, RequestInput, parse};
use crate::http::v2::response::{EncodedResponse, ResponseOutput, encode};
use crate::metadata::{Dim, TensorInfo, Tensors};
use crate::serving::ServedModel;

pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// Bodies above this size are parsed on the blocking pool.
const INLINE_PARSE_BYTES: usize = 256 << 10;

/// `{model}` with an optional `{version}` from the route.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    pub model: String,
    pub version: Option<String>,
}

pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

pub async fn ready(State(state): State<AppState>) -> Response {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready }))).into_response()
}

pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "destino",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data", "classification", "model_repository"],
    }))
}

fn shape_json(info: &TensorInfo) -> Vec<i64> {
    info.shape.as_ref().map_or_else(Vec::new, |dims| {
        dims.iter()
            .map(|d| match d {
                Dim::Fixed(n) => i64::try_from(*n).unwrap_or(-1),
                _ => -1,
            })
            .collect()
    })
}

fn tensors_json(infos: &[TensorInfo]) -> Vec<Value> {
    infos
        .iter()
        .map(|i| json!({ "name": i.name, "datatype": to_v2(i.dtype), "shape": shape_json(i) }))
        .collect()
}

pub async fn model_metadata(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let model = state.registry.get(&path.model, path.version.as_deref())?;
    Ok(Json(json!({
        "name": model.name,
        "versions": [model.version.to_string()],
        "platform": "onnx_onnxv1",
        "inputs": tensors_json(&model.metadata.inputs),
        "outputs": tensors_json(&model.metadata.outputs),
        "parameters": {
            "engine": model.engine,
            "execution_provider": model.device.to_string(),
            "max_batch_size": model.max_batch_size().unwrap_or(0),
        },
    })))
}

pub async fn model_ready(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    match state.registry.get(&path.model, path.version.as_deref()) {
        Ok(model) => Ok(Json(json!({ "name": model.name, "ready": true })).into_response()),
        Err(crate::serving::RegistryError::NotReady { name, .. }) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "name": name, "ready": false })),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

pub async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    let started = Instant::now();
    let (version, result) = match state.registry.get(&path.model, path.version.as_deref()) {
        Ok(model) => (
            model.version.to_string(),
            infer_inner(&state, model, &headers, body).await,
        ),
        Err(e) => (path.version.clone().unwrap_or_default(), Err(e.into())),
    };
    record(&state, &path.model, &version, started, &result);
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn infer_inner(
    state: &AppState,
    model: Arc<ServedModel>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let header_length = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Inference-Header-Content-Length is not a number")
                })?,
        ),
    };
    let encoded = infer_encoded(state, &model, body, header_length).await?;
    let mut response = encoded.body.into_response();
    let content_type = match encoded.header_length {
        Some(length) => {
            response
                .headers_mut()
                .insert(HEADER_LENGTH, HeaderValue::from(length));
            "application/octet-stream"
        }
        None => "application/json",
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// A V2 inference request body (JSON, or JSON then binary tensors when `header_length` is
/// given) in, the encoded V2 response out: the protocol without the transport.
pub async fn infer_encoded(
    state: &AppState,
    model: &Arc<ServedModel>,
    body: Bytes,
    header_length: Option<usize>,
) -> Result<EncodedResponse, ApiError> {
    let mut request = if body.len() > INLINE_PARSE_BYTES {
        tokio::task::spawn_blocking(move || parse(body, header_length))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??
    } else {
        parse(body, header_length)?
    };
    check_requested_outputs(model, &request)?;
    let inputs = input_tensors(state, model, std::mem::take(&mut request.inputs)).await?;
    let reply = run_inference(state, model, inputs).await?;
    let outputs = select_outputs(model, &request, reply.outputs)?;
    Ok(encode(
        &model.name,
        model.version,
        request.id.as_deref(),
        &outputs,
    ))
}

fn check_requested_outputs(model: &ServedModel, request: &InferRequest) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    for output in &request.outputs {
        if model.metadata.output(&output.name).is_none() {
            let known: Vec<&str> = model
                .metadata
                .outputs
                .iter()
                .map(|o| o.name.as_str())
                .collect();
            return Err(ApiError::bad_request(format!(
                "unknown output `{}`; the model's outputs are: {}",
                output.name,
                known.join(", ")
            )));
        }
        if !seen.insert(&output.name) {
            return Err(ApiError::bad_request(format!(
                "output `{}` is requested twice",
                output.name
            )));
        }
    }
    Ok(())
}

/// Tensors for every input; BYTES given for an image input are decoded as images.
async fn input_tensors(
    state: &AppState,
    model: &Arc<ServedModel>,
    inputs: Vec<RequestInput>,
) -> Result<Tensors, ApiError> {
    let mut tensors = Tensors::new();
    for input in inputs {
        let is_image = input.datatype == DType::String
            && model
                .manifest
                .inputs
                .get(&input.name)
                .is_some_and(|s| s.image.is_some());
        let name = input.name.clone();
        let tensor = if is_image {
            let images = encoded_images(input)?;
            images_to_tensor(model, &name, images, state.options.max_image_pixels).await?
        } else {
            to_tensor(input)?
        };
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// The encoded images of a BYTES image input: binary elements, or JSON strings holding
/// base64 (or the raw bytes of the string).
fn encoded_images(input: RequestInput) -> Result<Vec<Bytes>, ApiError> {
    use base64::Engine as _;
    match &input.data {
        InputData::Binary(bytes) => Ok(split_bytes_elements(&input.name, bytes)?
            .into_iter()
            .map(|e| bytes.slice_ref(e))
            .collect()),
        InputData::Json(_) | InputData::Decoded(_) => {
            let tensor = to_tensor(input)?;
            let crate::tensor::TensorData::String(items) = tensor.data() else {
                return Err(ApiError::bad_request("image input must be BYTES"));
            };
            Ok(items
                .iter()
                .map(|s| {
                    base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .map(Bytes::from)
                        .unwrap_or_else(|_| Bytes::from(s.clone().into_bytes()))
                })
                .collect())
        }
    }
}

/// The requested outputs (all when none are named), each as binary or JSON, with the
/// classification extension applied.
fn select_outputs(
    model: &ServedModel,
    request: &InferRequest,
    mut outputs: Tensors,
) -> Result<Vec<ResponseOutput>, ApiError> {
    if request.outputs.is_empty() {
        return Ok(model
            .metadata
            .outputs
            .iter()
            .filter_map(|info| {
                let tensor = outputs.remove(&info.name)?;
                Some(ResponseOutput {
                    name: info.name.clone(),
                    tensor,
                    binary: request.binary_outputs,
                })
            })
            .collect());
    }
    request
        .outputs
        .iter()
        .map(|wanted| {
            let tensor = outputs.remove(&wanted.name).ok_or_else(|| {
                ApiError::internal(format!("the engine produced no output `{}`", wanted.name))
            })?;
            let tensor = match wanted.classification {
                Some(k) => classification_tensor(model, &wanted.name, &tensor, k)?,
                None => tensor,
            };
            Ok(ResponseOutput {
                name: wanted.name.clone(),
                tensor,
                binary: wanted.binary.unwrap_or(request.binary_outputs),
            })
        })
        .collect()
}
