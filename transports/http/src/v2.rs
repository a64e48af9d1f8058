//! KServe V2 (Open Inference Protocol) REST handlers, with Triton's binary tensor and
//! classification extensions; the protocol itself is `destino_serving::v2`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use destino_serving::config::ModelConfig;
use destino_serving::inference::on_model;
use destino_serving::v2::{HEADER_LENGTH, infer_encoded, metadata};
use destino_serving::{ApiError, RegistryError, ServedModel};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::HeadersAndBody;
use crate::error::HttpError;
use crate::router::InferenceResult;
use crate::state::AppState;

/// `{model}` with an optional `{version}` from the route.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    pub model: String,
    pub version: Option<String>,
}

impl ModelPath {
    /// The served model the route names.
    fn served(&self, state: &AppState) -> Result<Arc<ServedModel>, RegistryError> {
        state
            .service
            .registry
            .get(&self.model, self.version.as_deref())
    }
}

pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// 200 when ready; 503 with the reason otherwise.
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.service.readiness() {
        Ok(()) => Json(json!({ "ready": true })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reason": reason })),
        )
            .into_response(),
    }
}

pub async fn server_metadata() -> Json<Value> {
    Json(metadata::server_metadata())
}

pub async fn model_metadata(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, HttpError> {
    let model = path.served(&state)?;
    Ok(Json(metadata::model_metadata(&model)))
}

/// Triton's statistics of every served model version.
pub async fn all_statistics(State(state): State<AppState>) -> Json<Value> {
    let stats: Vec<Value> = state
        .service
        .registry
        .served()
        .iter()
        .map(|m| m.stats.snapshot().to_json(&m.name, m.version))
        .collect();
    Json(json!({ "model_stats": stats }))
}

pub async fn model_statistics(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, HttpError> {
    let model = path.served(&state)?;
    let stats = model.stats.snapshot().to_json(&model.name, model.version);
    Ok(Json(json!({ "model_stats": [stats] })))
}

pub async fn model_config(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, HttpError> {
    let model = path.served(&state)?;
    Ok(Json(ModelConfig::of(&model).to_json()))
}

pub async fn model_ready(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
) -> Result<Response, HttpError> {
    match path.served(&state) {
        Ok(model) => Ok(Json(json!({ "name": model.name, "ready": true })).into_response()),
        Err(RegistryError::NotReady { name, reason }) => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "name": name, "ready": false, "reason": reason })),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

pub async fn infer(
    State(state): State<AppState>,
    Path(path): Path<ModelPath>,
    HeadersAndBody(headers, body): HeadersAndBody,
) -> Response {
    let version = path.version.as_deref();
    let result = on_model(&state.service, &path.model, version, async |model| {
        infer_inner(&state, model, &headers, body).await
    })
    .await;
    result.unwrap_or_else(|e| HttpError(e).into_response())
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
                    ApiError::invalid("Inference-Header-Content-Length is not a number")
                })?,
        ),
    };
    let encoded = infer_encoded(&state.service, &model, body, header_length).await?;
    let mut response = encoded.body.into_response();
    response.extensions_mut().insert(InferenceResult);
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
