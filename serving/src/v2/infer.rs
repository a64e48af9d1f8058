//! The KServe V2 inference protocol without the transport: a request body (JSON, or
//! Triton's binary form) in, the encoded response out, with the classification extension.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use destino_core::metadata::{Dim, TensorInfo};
use destino_core::{DType, TensorData, Tensors};

use crate::batch::batch_rows;
use crate::blocking::cpu_heavy;
use crate::error::ApiError;
use crate::images::{classification_tensor, images_to_tensor};
use crate::inference::infer as run_inference;
use crate::served::ServedModel;
use crate::service::Service;
use crate::text::{TextRequest, embed, embeddings_tensors, strings_input, text_model};
use crate::v2::decode::{split_bytes_elements, to_tensor};
use crate::v2::request::{InferRequest, InputData, RequestInput, parse};
use crate::v2::response::{EncodedResponse, ResponseOutput, encode};

/// A V2 inference request body (JSON, or JSON then binary tensors when `header_length` is
/// given) in, the encoded V2 response out: the protocol without the transport.
pub async fn infer_encoded(
    service: &Service,
    model: &Arc<ServedModel>,
    body: Bytes,
    header_length: Option<usize>,
) -> Result<EncodedResponse, ApiError> {
    let size = body.len();
    let raw_input = (header_length == Some(0)).then(|| model.metadata.inputs.clone());
    let request = move || match raw_input {
        Some(inputs) => raw_request(&inputs, body),
        None => parse(body, header_length),
    };
    let (id, outputs) = infer_request(service, model, size, request, None).await?;
    let (name, version) = (model.name.clone(), model.version);
    encode_outputs(model, outputs, move |outputs| {
        encode(&name, version, id.as_deref(), outputs)
    })
    .await
}

/// Encodes a response's `outputs` with `encode` (any protocol's), off the executor when they
/// are large, and counts the time in the model's output statistics.
pub async fn encode_outputs<T, F>(
    model: &ServedModel,
    outputs: Vec<ResponseOutput>,
    encode: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&[ResponseOutput]) -> T + Send + 'static,
{
    let elements = outputs.iter().map(|o| o.tensor.data().len()).sum::<usize>();
    let started = Instant::now();
    let stats = model.stats.clone();
    cpu_heavy(elements, "encoding the response", move || {
        let encoded = encode(&outputs);
        stats.compute_output(rows_of(&outputs), started.elapsed());
        Ok(encoded)
    })
    .await
}

/// A V2 request in (made by `request`: parsed from a body, or built from protobuf), its
/// id and selected outputs out; `size` (bytes) decides whether decoding leaves the executor,
/// and `timeout` shortens the server's request timeout (a client's deadline).
pub async fn infer_request<F>(
    service: &Service,
    model: &Arc<ServedModel>,
    size: usize,
    request: F,
    timeout: Option<Duration>,
) -> Result<(Option<String>, Vec<ResponseOutput>), ApiError>
where
    F: FnOnce() -> Result<InferRequest, ApiError> + Send + 'static,
{
    let started = Instant::now();
    let owned = model.clone();
    let (request, mut inputs, images) = cpu_heavy(size, "decoding the request", move || {
        decode(&owned, request()?)
    })
    .await?;
    if let Some(texts) = strings_input(model, &inputs) {
        return infer_text(service, model, request, texts, timeout).await;
    }
    let max_pixels = service.options.max_image_pixels;
    for (name, encoded) in images {
        let tensor = images_to_tensor(model, &name, encoded, max_pixels).await?;
        inputs.insert(name, tensor);
    }
    let rows = batch_rows(&inputs).unwrap_or(1);
    model.stats.compute_input(rows, started.elapsed());
    let reply = run_inference(service, model, inputs, timeout).await?;
    let batched = model.max_batch_size().is_some();
    let outputs = select_outputs(model, &request, reply.outputs, batched)?;
    Ok((request.id, outputs))
}

/// A text model's request with its strings in one BYTES input: the embedding output (or a
/// classifier's scores) for each string.
async fn infer_text(
    service: &Service,
    model: &Arc<ServedModel>,
    request: InferRequest,
    texts: Vec<String>,
    timeout: Option<Duration>,
) -> Result<(Option<String>, Vec<ResponseOutput>), ApiError> {
    let output = text_model(model)?.output();
    if let Some(other) = request.outputs.iter().find(|o| o.name != output) {
        return Err(ApiError::invalid(format!(
            "a text request answers output `{output}` only, not `{}`",
            other.name
        )));
    }
    let embeddings = embed(service, model, TextRequest::strings(texts), timeout).await?;
    let outputs = embeddings_tensors(model, embeddings)?;
    let outputs = select_outputs(model, &request, outputs, true)?;
    Ok((request.id, outputs))
}

/// Triton's raw binary request (`Inference-Header-Content-Length: 0`): the whole body is the
/// data of the model's single input, its dtype the declared one, its shape the declared one
/// with the one free dim (if any) told from the byte size. Outputs come back as JSON.
fn raw_request(inputs: &[TensorInfo], body: Bytes) -> Result<InferRequest, ApiError> {
    let [input] = inputs else {
        return Err(ApiError::invalid(format!(
            "a raw binary request (Inference-Header-Content-Length: 0) needs a model with one input; this one has {}",
            inputs.len()
        )));
    };
    let name = &input.name;
    let dims = input.shape.as_deref().ok_or_else(|| {
        ApiError::invalid(format!(
            "input `{name}` declares no rank: send a JSON header with its shape"
        ))
    })?;
    let elements = match input.dtype.size_of() {
        Some(size) if body.len().is_multiple_of(size) => body.len() / size,
        Some(size) => {
            return Err(ApiError::invalid(format!(
                "input `{name}`: {} bytes are not a whole number of {size}-byte elements",
                body.len()
            )));
        }
        None => split_bytes_elements(name, &body)?.len(),
    };
    let fixed: usize = dims
        .iter()
        .filter_map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            _ => None,
        })
        .product();
    let free = dims.iter().filter(|d| !matches!(d, Dim::Fixed(_))).count();
    if free > 1 || (free == 1 && (fixed == 0 || !elements.is_multiple_of(fixed))) {
        return Err(ApiError::invalid(format!(
            "input `{name}` has shape {}: its shape cannot be told from {elements} elements; send a JSON header",
            input.shape_text()
        )));
    }
    let shape = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => *n,
            _ => elements / fixed,
        })
        .collect();
    Ok(InferRequest {
        id: None,
        inputs: vec![RequestInput {
            name: name.clone(),
            shape,
            datatype: input.dtype,
            data: InputData::Binary(body),
        }],
        outputs: Vec::new(),
        binary_outputs: false,
    })
}

/// The rows of a response (axis 0 of its first output), for the per-batch-size statistics.
fn rows_of(outputs: &[ResponseOutput]) -> usize {
    outputs
        .first()
        .and_then(|o| o.tensor.shape().first().copied())
        .unwrap_or(1)
}

/// A parsed request: its tensors, and the encoded images of image inputs (decoded apart,
/// on the blocking pool, with the model's preprocessing).
type Decoded = (InferRequest, Tensors, Vec<(String, Vec<Bytes>)>);

fn decode(model: &ServedModel, mut request: InferRequest) -> Result<Decoded, ApiError> {
    check_requested_outputs(model, &request)?;
    let mut tensors = Tensors::new();
    let mut images = Vec::new();
    for input in std::mem::take(&mut request.inputs) {
        let is_image = input.datatype == DType::String
            && model
                .manifest
                .inputs
                .get(&input.name)
                .is_some_and(|s| s.image.is_some());
        if is_image {
            images.push((input.name.clone(), encoded_images(input)?));
        } else {
            tensors.insert(input.name.clone(), to_tensor(input)?);
        }
    }
    Ok((request, tensors, images))
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
            return Err(ApiError::invalid(format!(
                "unknown output `{}`; the model's outputs are: {}",
                output.name,
                known.join(", ")
            )));
        }
        if !seen.insert(&output.name) {
            return Err(ApiError::invalid(format!(
                "output `{}` is requested twice",
                output.name
            )));
        }
    }
    Ok(())
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
            let TensorData::String(items) = tensor.data() else {
                return Err(ApiError::invalid("image input must be BYTES"));
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
/// classification extension applied (per row of axis 0 when `batched`).
fn select_outputs(
    model: &ServedModel,
    request: &InferRequest,
    mut outputs: Tensors,
    batched: bool,
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
                Some(k) => classification_tensor(model, &wanted.name, &tensor, k, batched)?,
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
