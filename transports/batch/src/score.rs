//! Scoring a part. Files are read and scored concurrently (the scheduler batches what is in
//! flight; image decoding runs on the serving pool). A table's rows become tensors a chunk of
//! `--batch-size` rows at a time, several chunks in flight. Rows come back in the part's
//! order; a file or row that cannot be read or scored is one row with an error, never a
//! failed job.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use destino_core::metadata::{TensorInfo, Tensors};
use destino_core::npz::read_npz;
use destino_core::tensor::TensorData;
use destino_serving::inference::infer;
use destino_serving::score::body_outputs;
use destino_serving::text::{TextRequest, embed, embeddings_tensors, runs_in_flight};
use destino_serving::{ApiError, ErrorKind, ServedModel, Service};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::builder::InputColumn;
use crate::job::Item;
use crate::output::{OutputSchema, RowOutputs, ScoredRow};
use crate::table::PartRows;

/// What every part of a job is scored with.
#[derive(Debug, Clone)]
pub struct Scorer {
    pub service: Service,
    pub model: Arc<ServedModel>,
    pub schema: Arc<OutputSchema>,
    /// What a table's rows feed: the model's inputs, or a text model's strings.
    pub inputs: Arc<Vec<TensorInfo>>,
    /// Whether rows stack on a batch axis (else a chunk is one row).
    pub batched: bool,
    pub batch_size: usize,
    /// Chunks of a table scored at once (each a whole batch).
    pub in_flight: usize,
    /// Slots of the model's queue, shared by every part in flight: a request holds one (a
    /// text chunk as many as it queues runs) while it is read and scored, so a job never
    /// finds the queue full and never fails a row with "retry later".
    pub queue_slots: Arc<Semaphore>,
}

/// The name of a text model's one table input.
pub const TEXT_INPUT: &str = "text";

impl Scorer {
    /// Scores `items` (files), enough at a time to fill a batch on every instance twice over;
    /// `scored(n)` as rows finish.
    pub async fn files(
        &self,
        items: &[Item],
        scored: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<ScoredRow>, String> {
        let limit = self.in_flight.max(1) * self.batch_size;
        let task = |index: usize| {
            let (scorer, item) = (self.clone(), items[index].clone());
            async move { scorer.file(&item).await }
        };
        in_order(items.len(), limit, task, |_| scored(1)).await
    }

    async fn file(&self, item: &Item) -> ScoredRow {
        let outcome = match self.queued(1, self.file_outputs(&item.path)).await {
            Ok(outputs) => self.schema.rows(outputs, 1).remove(0),
            Err(why) => Err(why),
        };
        ScoredRow {
            key: Value::from(item.key.clone()),
            id: None,
            outcome,
        }
    }

    async fn file_outputs(&self, path: &Path) -> Result<Tensors, String> {
        let file = path.to_path_buf();
        let npz = is_npz(path);
        let read = tokio::task::spawn_blocking(move || {
            if npz {
                read_npz(&file)
                    .map(FileContents::Tensors)
                    .map_err(|e| e.to_string())
            } else {
                std::fs::read(&file)
                    .map(|b| FileContents::Body(Bytes::from(b)))
                    .map_err(|e| format!("cannot read the file: {e}"))
            }
        })
        .await
        .map_err(|e| format!("cannot read the file: {e}"))??;
        let key = path.display().to_string();
        let outputs = match read {
            FileContents::Tensors(inputs) => infer(&self.service, &self.model, inputs, None)
                .await
                .map(|reply| reply.outputs),
            FileContents::Body(body) => body_outputs(&self.service, &self.model, body).await,
        };
        outputs.map_err(|e| public_message(&e, &key))
    }

    /// Scores a table part's rows (numbered from `first`), chunks of `batch_size` rows, at
    /// most `in_flight` chunks at a time; `scored(n)` as chunks finish.
    pub async fn rows(
        &self,
        part: Arc<dyn PartRows>,
        first: usize,
        scored: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<ScoredRow>, String> {
        let chunk = if self.batched { self.batch_size } else { 1 };
        let starts: Vec<usize> = (0..part.len()).step_by(chunk.max(1)).collect();
        let task = |index: usize| {
            let (scorer, part) = (self.clone(), part.clone());
            let range = starts[index]..(starts[index] + chunk).min(part.len());
            async move { scorer.chunk(part.as_ref(), range).await }
        };
        let chunks = in_order(starts.len(), self.in_flight.max(1), task, |results| {
            scored(results.len());
        })
        .await?;
        Ok(chunks
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(row, outcome)| ScoredRow {
                key: Value::from(first + row),
                id: part.id(row),
                outcome,
            })
            .collect())
    }

    /// One chunk: its rows' tensors built (rows that do not fit get their error), run once.
    async fn chunk(
        &self,
        part: &dyn PartRows,
        range: std::ops::Range<usize>,
    ) -> Vec<Result<RowOutputs, String>> {
        let mut columns = match self
            .inputs
            .iter()
            .map(|info| {
                let mut column = InputColumn::new(info, self.batched)?;
                column.reserve_rows(range.len());
                Ok(column)
            })
            .collect::<Result<Vec<_>, String>>()
        {
            Ok(columns) => columns,
            Err(why) => return vec![Err(why); range.len()],
        };
        let mut outcomes: Vec<Option<Result<RowOutputs, String>>> = vec![None; range.len()];
        let mut good = Vec::with_capacity(range.len());
        for (offset, row) in range.enumerate() {
            columns.iter_mut().for_each(InputColumn::begin_row);
            let filled = columns
                .iter_mut()
                .enumerate()
                .try_for_each(|(input, column)| {
                    part.fill(row, input, column)?;
                    column.end_row()
                });
            match filled {
                Ok(()) => good.push(offset),
                Err(why) => {
                    columns.iter_mut().for_each(InputColumn::cancel_row);
                    outcomes[offset] = Some(Err(why));
                }
            }
        }
        if !good.is_empty() {
            let slots = match &self.model.text {
                Some(_) => runs_in_flight(&self.model),
                None => 1,
            };
            let results = match self.queued(slots, self.run(columns)).await {
                Ok(outputs) => self.schema.rows(outputs, good.len()),
                Err(why) => vec![Err(why); good.len()],
            };
            for (offset, result) in good.into_iter().zip(results) {
                outcomes[offset] = Some(result);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err("the row was not scored".into())))
            .collect()
    }

    /// Runs `work` holding `slots` of the model's queue.
    async fn queued<T>(
        &self,
        slots: usize,
        work: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let slots = u32::try_from(slots).unwrap_or(u32::MAX);
        let _held = self
            .queue_slots
            .acquire_many(slots)
            .await
            .map_err(|_| "the job is stopping".to_string())?;
        work.await
    }

    /// Runs a chunk's tensors (a text model embeds its strings).
    async fn run(&self, columns: Vec<InputColumn>) -> Result<Tensors, String> {
        let mut inputs = Tensors::new();
        for column in columns {
            let name = column.name.clone();
            inputs.insert(name, column.finish()?);
        }
        let outputs = match inputs.remove(TEXT_INPUT) {
            Some(texts) if self.model.text.is_some() => {
                let (_, data) = texts.into_parts();
                let TensorData::String(texts) = data else {
                    return Err("a text model's column must hold strings".into());
                };
                match embed(
                    &self.service,
                    &self.model,
                    TextRequest::strings(texts),
                    None,
                )
                .await
                {
                    Ok(embeddings) => embeddings_tensors(&self.model, embeddings),
                    Err(e) => Err(e),
                }
            }
            _ => infer(&self.service, &self.model, inputs, None)
                .await
                .map(|reply| reply.outputs),
        };
        outputs.map_err(|e| public_message(&e, "a chunk of rows"))
    }
}

/// Runs `task(0..count)`, at most `limit` at a time, calling `done` as each ends; the results
/// in task order.
async fn in_order<T, F>(
    count: usize,
    limit: usize,
    mut task: impl FnMut(usize) -> F,
    mut done: impl FnMut(&T),
) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    while next < count || !tasks.is_empty() {
        while next < count && tasks.len() < limit {
            let future = task(next);
            let index = next;
            tasks.spawn(async move { (index, future.await) });
            next += 1;
        }
        if let Some(joined) = tasks.join_next().await {
            let (index, result) = joined.map_err(|e| format!("a scoring task failed: {e}"))?;
            done(&result);
            results[index] = Some(result);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

enum FileContents {
    Body(Bytes),
    Tensors(Tensors),
}

fn is_npz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}

/// What a row says of a failure: the client's message (internal details go to the log).
fn public_message(error: &ApiError, key: &str) -> String {
    if error.kind == ErrorKind::Internal {
        tracing::error!(key, "{}", error.message);
    }
    error.public_message().to_string()
}
