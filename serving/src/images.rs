//! Encoded images in, classes out: decoding runs on the blocking pool, never on the async
//! executor; classification answers come from the model's `model.toml`.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use destino_core::dtype::DType;
use destino_core::manifest::{ImageSpec, OutputSpec};
use destino_core::metadata::Tensors;
use destino_core::postprocess::classify;
use destino_core::tensor::{Tensor, TensorData};

use crate::blocking::off_executor;
use crate::error::ApiError;
use crate::served::ServedModel;
use crate::v2::response::NestedData;

/// The model's image input (the first one its manifest declares), if any.
pub fn image_input(model: &ServedModel) -> Option<(&str, &ImageSpec)> {
    model
        .manifest
        .inputs
        .iter()
        .find_map(|(name, spec)| Some((name.as_str(), spec.image.as_ref()?)))
}

/// Decodes and preprocesses `images` into one batch for `input` of `model`.
pub async fn images_to_tensor(
    model: &Arc<ServedModel>,
    input: &str,
    images: Vec<Bytes>,
    max_pixels: u64,
) -> Result<Tensor, ApiError> {
    let spec = model
        .manifest
        .inputs
        .get(input)
        .and_then(|s| s.image.clone())
        .ok_or_else(|| ApiError::invalid(format!("input `{input}` is not an image input")))?;
    if images.is_empty() {
        return Err(ApiError::invalid("no image in the request"));
    }
    let dtype = model.metadata.input(input).map_or(DType::F32, |i| i.dtype);
    let decode = move || -> Result<Tensor, ApiError> {
        let tensors = images
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                spec.tensor_from_bytes(bytes, max_pixels).map_err(|e| {
                    let mut error = ApiError::from(e);
                    error.message = format!("image {i}: {}", error.message);
                    error
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = Tensor::concat_batch(&tensors).map_err(|_| {
            ApiError::invalid("the images preprocess to different sizes; send them one per request")
        })?;
        cast_float(batch, dtype).map_err(ApiError::from)
    };
    off_executor("image decoding", decode).await?
}

/// Image tensors are f32; models with f16 or f64 image inputs get theirs converted.
fn cast_float(tensor: Tensor, dtype: DType) -> destino_core::Result<Tensor> {
    let (shape, data) = tensor.into_parts();
    let data = match (data, dtype) {
        (TensorData::F32(v), DType::F16) => {
            TensorData::F16(v.into_iter().map(half::f16::from_f32).collect())
        }
        (TensorData::F32(v), DType::F64) => TensorData::F64(v.into_iter().map(f64::from).collect()),
        (data, _) => data,
    };
    Tensor::new(shape, data)
}

/// The manifest's postprocessing for `output`, with `top_k` overridden when given.
fn output_spec(model: &ServedModel, output: &str, top_k: Option<usize>) -> Option<OutputSpec> {
    let mut spec = model.manifest.outputs.get(output).cloned()?;
    if let Some(k) = top_k {
        spec.top_k = k;
    }
    Some(spec)
}

/// Outputs as JSON: classes (index, label, score) per row where the manifest describes the
/// output, nested arrays otherwise.
pub fn outputs_json(
    model: &ServedModel,
    outputs: &Tensors,
    top_k: Option<usize>,
) -> Result<Value, ApiError> {
    let mut map = Map::new();
    for (name, tensor) in outputs {
        let value = match output_spec(model, name, top_k) {
            Some(spec) => {
                let labels = model.labels.get(name).map(Vec::as_slice);
                let rows = classify(tensor, &spec, labels)?;
                json!(
                    rows.iter()
                        .map(|row| row
                            .iter()
                            .map(
                                |c| json!({ "index": c.index, "label": c.label, "score": c.score })
                            )
                            .collect::<Vec<_>>())
                        .collect::<Vec<_>>()
                )
            }
            None => serde_json::to_value(NestedData {
                shape: tensor.shape(),
                data: tensor.data(),
            })
            .map_err(|e| ApiError::internal(e.to_string()))?,
        };
        map.insert(name.clone(), value);
    }
    Ok(Value::Object(map))
}

/// Triton's classification extension: the top `k` classes of each row of `tensor` as BYTES
/// `"score:index:label"`, shape `[rows.., k]`. Scores follow the manifest's activation.
/// `batched`: axis 0 holds one row per input (a batching model, or a text request's strings).
pub fn classification_tensor(
    model: &ServedModel,
    output: &str,
    tensor: &Tensor,
    k: usize,
    batched: bool,
) -> Result<Tensor, ApiError> {
    let mut spec = output_spec(model, output, Some(k)).unwrap_or(OutputSpec {
        activation: Default::default(),
        labels: None,
        top_k: k,
    });
    spec.top_k = k;
    // As Triton ranks: each batch row's whole contents for a batching model, the whole
    // tensor for a model without batching.
    let total = tensor.data().len();
    let rows = match (batched, tensor.shape().first()) {
        (true, Some(&rows)) if rows > 0 => rows,
        _ => 1,
    };
    let (_, data) = tensor.clone().into_parts();
    let matrix = Tensor::new(vec![rows, total / rows.max(1)], data)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let labels = model.labels.get(output).map(Vec::as_slice);
    let ranked = classify(&matrix, &spec, labels)?;
    let k = ranked.first().map_or(0, Vec::len);
    let strings: Vec<String> = ranked
        .iter()
        .flatten()
        .map(|c| match &c.label {
            Some(label) => format!("{}:{}:{label}", c.score, c.index),
            None => format!("{}:{}", c.score, c.index),
        })
        .collect();
    let shape = match batched {
        true => vec![rows, k],
        false => vec![k],
    };
    Tensor::new(shape, strings).map_err(|e| ApiError::internal(e.to_string()))
}
