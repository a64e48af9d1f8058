//! Triton's model repository extension: index, load (an atomic hot swap) and unload. Scans
//! and loads run on the blocking pool.

use axum::Json;
use axum::extract::{Path, State};
use destino_serving::blocking::off_executor;
use serde_json::{Value, json};

use crate::error::HttpError;
use crate::state::AppState;

pub async fn index(State(state): State<AppState>) -> Result<Json<Value>, HttpError> {
    let registry = state.service.registry.clone();
    let rows = off_executor("reading the repository", move || registry.index()).await?;
    let rows: Vec<Value> = rows
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
    Ok(Json(Value::Array(rows)))
}

/// Loads the newest version of a model; the serving version keeps serving until it is ready.
pub async fn load(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, HttpError> {
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
