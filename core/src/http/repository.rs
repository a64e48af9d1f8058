//! Triton's model repository extension: index, load (an atomic hot swap) and unload.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::http::error::ApiError;
use crate::http::state::AppState;

pub async fn index(State(state): State<AppState>) -> Json<Value> {
    let rows: Vec<Value> = state
        .registry
        .index()
        .into_iter()
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
    Json(Value::Array(rows))
}

/// Loads the newest version of a model; the serving version keeps serving until it is ready.
pub async fn load(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let registry = state.registry.clone();
    let served = tokio::task::spawn_blocking(move || registry.load(&model))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(
        json!({ "name": served.name, "version": served.version.to_string() }),
    ))
}

pub async fn unload(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.registry.unload(&model)?;
    Ok(Json(json!({})))
}
