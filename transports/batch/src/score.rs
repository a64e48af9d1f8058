//! Scoring a part: its files are read and scored concurrently (the scheduler batches what is in
//! flight; decoding runs on the serving pool), and the rows come back in the part's order. A file
//! that cannot be read or scored is one row with an error, never a failed job.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use destino_core::npz::read_npz;
use destino_serving::score::{answer, score_body};
use destino_serving::{ApiError, ErrorKind, ServedModel, Service};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::input::{Source, Work};

/// One scored item: `{"key", "output", "error"}` (and `"id"` for a table with an id column),
/// one of `output` and `error` null.
pub type Row = Value;

/// Scores `items` with at most `in_flight` at a time; the rows in the items' order.
pub async fn score_part(
    service: &Service,
    model: &Arc<ServedModel>,
    items: &[Work],
    top_k: Option<usize>,
    in_flight: usize,
    scored: &dyn Fn(),
) -> Result<Vec<Row>, String> {
    let mut rows: Vec<Option<Row>> = vec![None; items.len()];
    let mut tasks = JoinSet::new();
    let mut next = 0;
    while next < items.len() || !tasks.is_empty() {
        while next < items.len() && tasks.len() < in_flight.max(1) {
            let (service, model, item) = (service.clone(), model.clone(), items[next].clone());
            let index = next;
            tasks.spawn(async move { (index, score_item(&service, &model, &item, top_k).await) });
            next += 1;
        }
        if let Some(joined) = tasks.join_next().await {
            let (index, row) = joined.map_err(|e| format!("a scoring task failed: {e}"))?;
            rows[index] = Some(row);
            scored();
        }
    }
    Ok(rows.into_iter().flatten().collect())
}

async fn score_item(
    service: &Service,
    model: &Arc<ServedModel>,
    item: &Work,
    top_k: Option<usize>,
) -> Row {
    let body = match &item.source {
        Source::Body(body) => body.clone(),
        Source::Bad(why) => return row(item, Err(why.clone())),
        Source::File(path) if is_npz(path) => {
            return row(item, score_npz(service, model, path, top_k).await);
        }
        Source::File(path) => {
            let path = path.clone();
            let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
            match read
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                Ok(bytes) => Bytes::from(bytes),
                Err(e) => return row(item, Err(format!("cannot read the file: {e}"))),
            }
        }
    };
    let scored = score_body(service, model, top_k, body).await;
    row(
        item,
        scored.map_err(|e| public_message(&e, &item.key.to_string())),
    )
}

fn is_npz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}

/// An `.npz` file's tensors (keyed by input name, as `run` takes them), answered as `/score`
/// answers.
async fn score_npz(
    service: &Service,
    model: &Arc<ServedModel>,
    path: &Path,
    top_k: Option<usize>,
) -> Result<Value, String> {
    let decoding = Instant::now();
    let file = path.to_path_buf();
    let inputs = tokio::task::spawn_blocking(move || read_npz(&file))
        .await
        .map_err(|e| format!("cannot read the file: {e}"))?
        .map_err(|e| e.to_string())?;
    answer(service, model, top_k, inputs, decoding)
        .await
        .map_err(|e| public_message(&e, &path.display().to_string()))
}

/// What a row says of a failure: the client's message (internal details go to the log).
fn public_message(error: &ApiError, key: &str) -> String {
    if error.kind == ErrorKind::Internal {
        tracing::error!(key, "{}", error.message);
    }
    error.public_message().to_string()
}

fn row(item: &Work, outcome: Result<Value, String>) -> Row {
    let mut row = match outcome {
        Ok(output) => json!({ "key": item.key, "output": output, "error": null }),
        Err(error) => json!({ "key": item.key, "output": null, "error": error }),
    };
    if let Some(id) = &item.id {
        row["id"] = id.clone();
    }
    row
}

/// The part file's bytes: one JSON object per line.
pub fn json_lines(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        out.extend_from_slice(row.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}
