//! Triton's model repository extension: index, load (an atomic hot swap) and unload; and
//! destino's update (a new version from an update document). Scans, loads and updates run
//! on the blocking pool.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use destino_serving::blocking::off_executor;
use destino_serving::registry::refuse_load_parameters;
use destino_serving::update::UpdateDocument;
use destino_serving::{ApiError, ErrorKind, ModelState};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::body::RawBody;
use crate::error::HttpError;
use crate::state::AppState;

/// The body of an index request: `{"ready": true}` lists only the models that serve.
#[derive(Debug, Default, Deserialize)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

/// The body of a load request; any parameter is refused.
#[derive(Debug, Default, Deserialize)]
struct LoadRequest {
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// An optional JSON body: empty is the default, anything else must parse.
fn optional_body<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| HttpError(ApiError::invalid(format!("malformed request body: {e}"))))
}

pub async fn index(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, HttpError> {
    let request: IndexRequest = optional_body(&body)?;
    let registry = state.service.registry.clone();
    let rows = off_executor("reading the repository", move || registry.index()).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .filter(|row| !request.ready || row.state == ModelState::Ready)
        .map(|row| {
            let mut entry = json!({ "name": row.name, "state": row.state.as_str() });
            if let Some(version) = row.version {
                entry["version"] = json!(version.to_string());
            }
            if !row.reason.is_empty() {
                entry["reason"] = json!(row.reason);
            }
            entry
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// Loads the newest version of a model; the serving version keeps serving until it is ready.
pub async fn load(
    State(state): State<AppState>,
    Path(model): Path<String>,
    RawBody(body): RawBody,
) -> Result<Json<Value>, HttpError> {
    let request: LoadRequest = optional_body(&body)?;
    refuse_load_parameters(request.parameters.keys())?;
    let registry = state.service.registry.clone();
    let served = off_executor("loading the model", move || registry.load(&model)).await??;
    Ok(Json(
        json!({ "name": served.name, "version": served.version.to_string() }),
    ))
}

pub async fn unload(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, HttpError> {
    state.service.registry.unload(&model)?;
    Ok(Json(json!({})))
}

/// Installs the version an update document names; answers once it serves (200) or the update
/// failed (its kind's status), with the final status and, on failure, `error`.
pub async fn update(
    State(state): State<AppState>,
    Path(model): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, HttpError> {
    let updates = http_updates(&state)?;
    let document = UpdateDocument::parse(&body)?;
    if document.model != model {
        return Err(HttpError(ApiError::invalid(format!(
            "the document updates `{}`, the URL names `{model}`",
            document.model
        ))));
    }
    let status = off_executor("updating the model", move || {
        updates.apply(document, &|_| {})
    })
    .await?;
    let mut body = status.to_json();
    match (status.kind, status.reason) {
        (Some(kind), Some(reason)) => {
            body["error"] = Value::from(reason.as_str());
            Ok(HttpError::new(kind, "update", reason).respond(body))
        }
        _ => Ok(Json(body).into_response()),
    }
}

/// The last status of the model's updates since start: the one in progress, or how the
/// last one ended (404 when there was none).
pub async fn update_status(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, HttpError> {
    let status = http_updates(&state)?.last(&model).ok_or_else(|| {
        HttpError(ApiError::not_found(format!(
            "no update of model `{model}` since this server started"
        )))
    })?;
    Ok(Json(status.to_json()))
}

/// The updater, when updates over HTTP are on.
fn http_updates(
    state: &AppState,
) -> Result<std::sync::Arc<dyn destino_serving::update::ModelUpdates>, HttpError> {
    match &state.service.updates {
        Some(updates) if state.options.updates => Ok(updates.clone()),
        _ => Err(HttpError(ApiError::new(
            ErrorKind::FailedPrecondition,
            "updates_off",
            "model updates over HTTP are off (--http-updates false)",
        ))),
    }
}
