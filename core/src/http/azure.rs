//! The Azure ML inference server contract (`GET /`, readiness, `POST /score`) and the image
//! scoring routes: encoded images or plain nested JSON in, classes or arrays out.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::body::RawBody;
use crate::http::error::ApiError;
use crate::http::images::{image_input, images_to_tensor, outputs_json};
use crate::http::inference::{infer, record};
use crate::http::state::AppState;
use crate::http::v2::decode::to_tensor;
use crate::http::v2::request::{InputData, RequestInput};
use crate::http::v2::routes::ModelPath;
use crate::metadata::{ModelMetadata, Tensors};
use crate::serving::ServedModel;

/// Azure ML liveness: the process is up.
pub async fn healthy() -> &'static str {
    "Healthy"
}

/// Readiness: 200 once the models are loaded and warmed, 503 before and while draining.
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "Ready").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "models are not loaded yet",
        )
        .into_response()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ScoreQuery {
    /// The model to score with, when several are served.
    pub model: Option<String>,
    /// Classes per image to answer.
    pub top_k: Option<usize>,
}

/// `POST /score`: `{"data": ...}` for single-input models, `{"<input>": ...}` otherwise, or
/// an encoded image (raw body or multipart) for models with an image input.
pub async fn score(
    State(state): State<AppState>,
    Query(query): Query<ScoreQuery>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let model = match score_model(&state, query.model.as_deref()) {
        Ok(model) => model,
        Err(e) => return e.into_response(),
    };
    let result = predict(&state, &model, query.top_k, request).await;
    record(
        &state,
        &model.name,
        &model.version.to_string(),
        started,
        &result,
    );
    result.map(Json).into_response()
}

/// `POST /models/{model}[/versions/{version}]/predict`: an encoded image (raw body or
/// multipart, several files make a batch) in, classes out.
pub async fn predict_route(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    Query(query): Query<ScoreQuery>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (version, result) = match state.registry.get(&path.model, path.version.as_deref()) {
        Ok(model) => (
            model.version.to_string(),
            predict(&state, &model, query.top_k, request).await,
        ),
        Err(e) => (path.version.clone().unwrap_or_default(), Err(e.into())),
    };
    record(&state, &path.model, &version, started, &result);
    result.map(Json).into_response()
}

fn score_model(state: &AppState, requested: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
    if let Some(name) = requested.or(state.options.score_model.as_deref()) {
        return Ok(state.registry.get(name, None)?);
    }
    state.registry.only_served().map_err(|count| match count {
        0 => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "no model is loaded",
        ),
        _ => ApiError::bad_request(
            "several models are served: name one with ?model=NAME (or start with --score-model)",
        ),
    })
}

async fn predict(
    state: &AppState,
    model: &Arc<ServedModel>,
    top_k: Option<usize>,
    request: Request,
) -> Result<Value, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    // JSON is recognised by its first byte, not the Content-Type: `curl -d` labels JSON as a
    // form and `--data-binary @cat.jpg` labels an image the same way.
    let inputs = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
        image_inputs(state, model, multipart_files(multipart).await?).await?
    } else {
        let RawBody(body) = RawBody::from_request(request, state).await?;
        body_inputs(state, model, body).await?
    };
    answer(state, model, top_k, inputs).await
}

/// `/score` and `/predict` for a body that is not multipart: a JSON object
/// (`{"data": ...}` or one array per input) or one encoded image.
pub async fn score_body(
    state: &AppState,
    model: &Arc<ServedModel>,
    top_k: Option<usize>,
    body: Bytes,
) -> Result<Value, ApiError> {
    let inputs = body_inputs(state, model, body).await?;
    answer(state, model, top_k, inputs).await
}

async fn body_inputs(
    state: &AppState,
    model: &Arc<ServedModel>,
    body: Bytes,
) -> Result<Tensors, ApiError> {
    if starts_json_object(&body) {
        json_inputs(&model.metadata, &body)
    } else {
        image_inputs(state, model, vec![body]).await
    }
}

/// Whether `body` is (meant as) a JSON object: its first non-blank byte is `{`.
pub fn starts_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

async fn answer(
    state: &AppState,
    model: &Arc<ServedModel>,
    top_k: Option<usize>,
    inputs: Tensors,
) -> Result<Value, ApiError> {
    let reply = infer(state, model, inputs).await?;
    let top_k = top_k.or(state.options.default_top_k);
    Ok(json!({
        "model_name": model.name,
        "model_version": model.version.to_string(),
        "outputs": outputs_json(model, &reply.outputs, top_k)?,
    }))
}

async fn image_inputs(
    state: &AppState,
    model: &Arc<ServedModel>,
    images: Vec<Bytes>,
) -> Result<Tensors, ApiError> {
    let (input, _) = image_input(model).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            format!(
                "model `{}` takes a JSON object ({{\"data\": ...}} or one array per input); its model.toml declares no image input",
                model.name
            ),
        )
    })?;
    let tensor = images_to_tensor(model, input, images, state.options.max_image_pixels).await?;
    Ok(Tensors::from([(input.to_string(), tensor)]))
}

async fn multipart_files(mut multipart: Multipart) -> Result<Vec<Bytes>, ApiError> {
    let mut files = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?
    {
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
        if !bytes.is_empty() {
            files.push(bytes);
        }
    }
    Ok(files)
}

/// Inputs from `{"data": nested}` or `{"<input>": nested, ...}`; dtypes come from the model,
/// shapes from the nesting (a missing leading batch axis of 1 is added).
pub fn json_inputs(metadata: &ModelMetadata, body: &[u8]) -> Result<Tensors, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::bad_request(
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
            ApiError::bad_request(format!(
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
            return Err(ApiError::bad_request(format!(
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
