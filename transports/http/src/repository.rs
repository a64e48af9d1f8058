//! Triton's model repository extension: index, load (an atomic hot swap) and unload. Scans
//! and loads run on the blocking pool.

use axum::Json;
use axum::extract::{Path, State};
use destino_serving::blocking::off_executor;
use destino_serving::registry::refuse_load_parameters;
use destino_serving::{ApiError, ModelState};
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
