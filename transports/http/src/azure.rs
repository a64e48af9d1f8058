//! The Azure ML inference server contract (`GET /`, readiness, `POST /score`) and the image
//! scoring routes; the protocol itself is `destino_serving::score`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use destino_serving::inference::on_model;
use destino_serving::score::{answer, image_inputs, score_body};
use destino_serving::{ApiError, RequestRecord, ServedModel};
use serde::Deserialize;
use serde_json::Value;

use crate::body::RawBody;
use crate::error::HttpError;
use crate::router::InferenceResult;
use crate::state::AppState;
use crate::v2::ModelPath;

/// Azure ML liveness: the process is up.
pub async fn healthy() -> &'static str {
    "Healthy"
}

/// Readiness: 200 once the models are loaded and warmed, 503 (with the reason) before, while
/// a model has no engine running, and while draining.
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.service.readiness() {
        Ok(()) => (StatusCode::OK, "Ready").into_response(),
        Err(reason) => HttpError(ApiError::unavailable("not_ready", reason, 5)).into_response(),
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
    let model = match score_model(&state, query.model.as_deref()) {
        Ok(model) => model,
        Err(e) => return HttpError(e).into_response(),
    };
    let mut record = RequestRecord::start(&state.service, &model.name);
    record.served(&model);
    let result = predict(&state, &model, query.top_k, request).await;
    record.finish(&result);
    respond(result)
}

/// `POST /models/{model}[/versions/{version}]/predict`: an encoded image (raw body or
/// multipart, several files make a batch) in, classes out.
pub async fn predict_route(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    Query(query): Query<ScoreQuery>,
    request: Request,
) -> Response {
    let version = path.version.as_deref();
    let result = on_model(&state.service, &path.model, version, async |model| {
        predict(&state, &model, query.top_k, request).await
    })
    .await;
    respond(result)
}

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(value) => (Extension(InferenceResult), Json(value)).into_response(),
        Err(e) => HttpError(e).into_response(),
    }
}

fn score_model(state: &AppState, requested: Option<&str>) -> Result<Arc<ServedModel>, ApiError> {
    let service = &state.service;
    if let Some(name) = requested.or(service.options.score_model.as_deref()) {
        return Ok(service.registry.get(name, None)?);
    }
    service.registry.only_served().map_err(|count| match count {
        0 => ApiError::unavailable("not_ready", "no model is loaded", 5),
        _ => ApiError::invalid(
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
    let service = &state.service;
    let decoding = Instant::now();
    let inputs = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| HttpError::rejection(e.status(), e.body_text()).0)?;
        image_inputs(service, model, multipart_files(multipart).await?).await?
    } else {
        let RawBody(body) = RawBody::from_request(request, state)
            .await
            .map_err(|e| e.0)?;
        return score_body(service, model, top_k, body).await;
    };
    answer(service, model, top_k, inputs, decoding).await
}

async fn multipart_files(mut multipart: Multipart) -> Result<Vec<Bytes>, ApiError> {
    let mut files = Vec::new();
    let rejected = |e: axum::extract::multipart::MultipartError| {
        HttpError::rejection(e.status(), e.body_text()).0
    };
    while let Some(field) = multipart.next_field().await.map_err(rejected)? {
        let bytes = field.bytes().await.map_err(rejected)?;
        if !bytes.is_empty() {
            files.push(bytes);
        }
    }
    Ok(files)
}
