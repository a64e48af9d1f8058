//! The Azure ML `/score` protocol and image scoring, without the transport: a JSON object
//! (`{"data": ...}` for single-input models, one array per input otherwise; dtypes from the
//! model, shapes from the nesting), encoded images, or text for text models in; classes or
//! nested arrays out.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use destino_core::metadata::{ModelMetadata, Tensors};
use serde_json::{Value, json};

use crate::batch::batch_rows;
use crate::blocking::cpu_heavy;
use crate::error::{ApiError, ErrorKind};
use crate::images::{image_input, images_to_tensor, outputs_json};
use crate::inference::infer;
use crate::served::ServedModel;
use crate::service::Service;
use crate::text::{TextRequest, embed, embeddings_tensors, strings_body};
use crate::v2::decode::to_tensor;
use crate::v2::depth::check_depth;
use crate::v2::request::{InputData, RequestInput};

/// `/score` and `/predict` for a body that is not multipart: a JSON object
/// (`{"data": ...}` or one array per input) or one encoded image.
pub async fn score_body(
    service: &Service,
    model: &Arc<ServedModel>,
    top_k: Option<usize>,
    body: Bytes,
) -> Result<Value, ApiError> {
    let decoding = Instant::now();
    if let Some(texts) = text_body(model, &body).await? {
        return text_answer(service, model, top_k, texts).await;
    }
    let inputs = body_inputs(service, model, body).await?;
    answer(service, model, top_k, inputs, decoding).await
}

/// The output tensors `score_body` answers for `body` (a text model's embeddings for text).
pub async fn body_outputs(
    service: &Service,
    model: &Arc<ServedModel>,
    body: Bytes,
) -> Result<Tensors, ApiError> {
    let decoding = Instant::now();
    if let Some(texts) = text_body(model, &body).await? {
        let embeddings = embed(service, model, TextRequest::strings(texts), None).await?;
        return embeddings_tensors(model, embeddings);
    }
    let inputs = body_inputs(service, model, body).await?;
    model
        .stats
        .compute_input(batch_rows(&inputs).unwrap_or(1), decoding.elapsed());
    Ok(infer(service, model, inputs, None).await?.outputs)
}

/// The strings of a body to a text model: JSON strings (`strings_body`), or a raw UTF-8
/// body when the model takes no image. `None` for anything else.
async fn text_body(
    model: &Arc<ServedModel>,
    body: &Bytes,
) -> Result<Option<Vec<String>>, ApiError> {
    if model.text.is_none() {
        return Ok(None);
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) {
        let (owned, body) = (model.clone(), body.clone());
        return cpu_heavy(body.len(), "decoding the body", move || {
            let value: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::invalid(format!("malformed JSON: {e}")))?;
            Ok(strings_body(&owned, &value))
        })
        .await;
    }
    if image_input(model).is_some() {
        return Ok(None);
    }
    match std::str::from_utf8(body) {
        Ok(text) => Ok(Some(vec![text.to_string()])),
        Err(e) => Err(ApiError::invalid(format!("the text is not UTF-8: {e}"))),
    }
}

/// Embeds `texts` and answers as `answer` does: classes where `model.toml` describes the
/// output, nested arrays otherwise.
async fn text_answer(
    service: &Service,
    model: &Arc<ServedModel>,
    top_k: Option<usize>,
    texts: Vec<String>,
) -> Result<Value, ApiError> {
    let embeddings = embed(service, model, TextRequest::strings(texts), None).await?;
    let tensors = embeddings_tensors(model, embeddings)?;
    let top_k = top_k.or(service.options.default_top_k);
    Ok(json!({
        "model_name": model.name,
        "model_version": model.version.to_string(),
        "outputs": outputs_json(model, &tensors, top_k)?,
    }))
}

/// The tensors a body that is not multipart carries: a JSON object, or one encoded image.
pub async fn body_inputs(
    service: &Service,
    model: &Arc<ServedModel>,
    body: Bytes,
) -> Result<Tensors, ApiError> {
    if starts_json_object(&body) {
        let owned = model.clone();
        cpu_heavy(body.len(), "decoding the body", move || {
            json_inputs(&owned.metadata, &body)
        })
        .await
    } else {
        image_inputs(service, model, vec![body]).await
    }
}

/// Whether `body` is (meant as) a JSON object: its first non-blank byte is `{`.
pub fn starts_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Runs `inputs` (decoded since `decoding`) and answers classes or nested arrays per output.
pub async fn answer(
    service: &Service,
    model: &Arc<ServedModel>,
    top_k: Option<usize>,
    inputs: Tensors,
    decoding: Instant,
) -> Result<Value, ApiError> {
    let rows = batch_rows(&inputs).unwrap_or(1);
    model.stats.compute_input(rows, decoding.elapsed());
    let reply = infer(service, model, inputs, None).await?;
    let top_k = top_k.or(service.options.default_top_k);
    let encoding = Instant::now();
    let outputs = outputs_json(model, &reply.outputs, top_k)?;
    model.stats.compute_output(rows, encoding.elapsed());
    Ok(json!({
        "model_name": model.name,
        "model_version": model.version.to_string(),
        "outputs": outputs,
    }))
}

/// The tensor of the model's image input from encoded images (one batch).
pub async fn image_inputs(
    service: &Service,
    model: &Arc<ServedModel>,
    images: Vec<Bytes>,
) -> Result<Tensors, ApiError> {
    let (input, _) = image_input(model).ok_or_else(|| {
        ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "bad_request",
            format!(
                "model `{}` takes a JSON object ({{\"data\": ...}} or one array per input); its model.toml declares no image input",
                model.name
            ),
        )
    })?;
    let max_pixels = service.options.max_image_pixels;
    let tensor = images_to_tensor(model, input, images, max_pixels).await?;
    Ok(Tensors::from([(input.to_string(), tensor)]))
}

/// Inputs from `{"data": nested}` or `{"<input>": nested, ...}`; dtypes come from the model,
/// shapes from the nesting (a missing leading batch axis of 1 is added).
pub fn json_inputs(metadata: &ModelMetadata, body: &[u8]) -> Result<Tensors, ApiError> {
    check_depth(body)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("malformed JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid(
            "the body must be a JSON object: {\"data\": [...]} or {\"<input name>\": [...]}",
        ));
    };
    let single = match (fields.len(), metadata.inputs.as_slice()) {
        (1, [only]) if fields.contains_key("data") => Some(only.name.clone()),
        _ => None,
    };
    let mut tensors = Tensors::new();
    for (key, data) in fields {
        let name = single.clone().unwrap_or(key);
        let info = metadata.input(&name).ok_or_else(|| {
            let known: Vec<&str> = metadata.inputs.iter().map(|i| i.name.as_str()).collect();
            ApiError::invalid(format!(
                "unknown input `{name}`; the model's inputs are: {} (or send {{\"data\": ...}} to a single-input model)",
                known.join(", ")
            ))
        })?;
        let mut shape = nested_shape(&name, &data)?;
        if let Some(declared) = &info.shape
            && declared.len() == shape.len() + 1
        {
            shape.insert(0, 1);
        }
        let input = RequestInput {
            name: name.clone(),
            shape,
            datatype: info.dtype,
            data: InputData::Json(data),
        };
        tensors.insert(name, to_tensor(input)?);
    }
    Ok(tensors)
}

/// The shape of a rectangular nested array; ragged arrays are refused.
fn nested_shape(name: &str, value: &Value) -> Result<Vec<usize>, ApiError> {
    let Value::Array(items) = value else {
        return Ok(vec![]);
    };
    let Some(first) = items.first() else {
        return Ok(vec![0]);
    };
    let inner = nested_shape(name, first)?;
    for item in &items[1..] {
        if nested_shape(name, item)? != inner {
            return Err(ApiError::invalid(format!(
                "input `{name}`: nested arrays have different lengths"
            )));
        }
    }
    let mut shape = vec![items.len()];
    shape.extend(inner);
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_come_from_the_nesting() {
        assert_eq!(
            nested_shape("x", &json!([[1, 2], [3, 4], [5, 6]])).unwrap(),
            vec![3, 2]
        );
        assert_eq!(nested_shape("x", &json!(5)).unwrap(), Vec::<usize>::new());
        assert!(nested_shape("x", &json!([[1, 2], [3]])).is_err());
        assert!(nested_shape("x", &json!([[1, 2], 3])).is_err());
    }
}
