//! One engine instance's loop: take a request, merge compatible ones up to the batch limit
//! within the queue delay, run, split the outputs back, reply.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use destino_core::{Engine, Error, Tensors};

use super::{Job, Reply, ServeError, Shared};
use crate::batch::{BatchKey, merge, merge_padded, sequence_length, split};

/// The text of a panic's payload.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

pub(super) struct Worker {
    engine: Box<dyn Engine>,
    shared: Arc<Shared>,
    receiver: Receiver<Job>,
    /// Requests taken from the queue that did not fit the batch being built.
    stash: VecDeque<Job>,
}

impl Worker {
    pub(super) fn new(
        engine: Box<dyn Engine>,
        shared: Arc<Shared>,
        receiver: Receiver<Job>,
    ) -> Worker {
        Worker {
            engine,
            shared,
            receiver,
            stash: VecDeque::new(),
        }
    }

    /// Serves until the queue closes (the scheduler was dropped and the queue drained).
    pub(super) fn run(&mut self) {
        while let Some(first) = self.next_job() {
            let batch = self.collect_batch(first);
            if !batch.is_empty() {
                self.execute(batch);
            }
        }
    }

    fn next_job(&mut self) -> Option<Job> {
        loop {
            let job = match self.stash.pop_front() {
                Some(job) => job,
                None => self.receiver.recv().ok()?,
            };
            if let Some(job) = self.admit(job) {
                return Some(job);
            }
        }
    }

    /// Drops requests whose client left or whose deadline passed; returns the others.
    fn admit(&self, job: Job) -> Option<Job> {
        if self.abandoned(&job) {
            return None;
        }
        if let Some(deadline) = job.deadline
            && Instant::now() >= deadline
        {
            self.shared.leave_queue();
            let waited = deadline - job.enqueued;
            let _ = job.reply.send(Err(ServeError::Timeout(waited)));
            return None;
        }
        Some(job)
    }

    /// True (and the request leaves the queue) when its client left. The request path
    /// counts it, once, as cancelled.
    fn abandoned(&self, job: &Job) -> bool {
        if !job.reply.is_closed() {
            return false;
        }
        self.shared.leave_queue();
        true
    }

    /// Starting from `first`, takes compatible requests until the batch is full or the first
    /// request has waited `max_queue_delay`.
    fn collect_batch(&mut self, first: Job) -> Vec<Job> {
        let max_rows = self.shared.policy.max_batch_size;
        let batching = self.shared.batching.load(Ordering::Relaxed);
        let rows = match first.rows {
            Some(rows) if batching && rows < max_rows => rows,
            _ => return vec![first],
        };
        let mut batch = vec![first];
        let mut fill = Fill::of(&batch[0], rows);
        let mut kept = VecDeque::new();
        while let Some(job) = self.stash.pop_front() {
            if fill.take(&job, max_rows) {
                batch.push(job);
            } else {
                kept.push_back(job);
            }
        }
        self.stash = kept;
        let window_end = batch[0].enqueued + self.shared.policy.max_queue_delay;
        while fill.rows < max_rows {
            let received = match window_end.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => {
                    self.receiver.recv_timeout(left).map_err(|e| match e {
                        RecvTimeoutError::Timeout => TryRecvError::Empty,
                        RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                    })
                }
                _ => self.receiver.try_recv(),
            };
            let Ok(job) = received else { break };
            let Some(job) = self.admit(job) else { continue };
            if fill.take(&job, max_rows) {
                batch.push(job);
            } else {
                self.stash.push_back(job);
                break;
            }
        }
        batch.retain(|job| !self.abandoned(job));
        batch
    }

    fn execute(&mut self, batch: Vec<Job>) {
        // Busy before the requests leave the queue and until they are counted, so a queue
        // and instances seen idle together mean no run is under way.
        let busy = self.shared.model_metrics.instance_busy();
        for _ in &batch {
            self.shared.leave_queue();
        }
        let started = Instant::now();
        for job in &batch {
            let waited = started - job.enqueued;
            self.shared.model_metrics.observe_queued(waited);
            self.shared.stats.queued(waited);
        }
        self.shared.model_metrics.observe_batch(batch.len());
        let outputs = if batch.len() == 1 {
            let job = &batch[0];
            vec![self.run_one(job)]
        } else {
            self.run_batch(&batch)
        };
        let rows = batch.iter().map(|j| j.rows.unwrap_or(1)).sum();
        self.shared
            .stats
            .compute_infer(rows, batch.len(), started.elapsed());
        drop(busy);
        self.reply(batch, outputs, started);
    }

    fn run_one(&mut self, job: &Job) -> Result<Tensors, ServeError> {
        let _entered = job.span.enter();
        self.run_engine(&job.inputs).map_err(ServeError::from)
    }

    /// Runs the merged batch. A failed run is retried one request at a time, for this batch
    /// only; outputs that do not split by request prove axis 0 is not the batch, and only
    /// then is batching turned off for the model.
    fn run_batch(&mut self, batch: &[Job]) -> Vec<Result<Tensors, ServeError>> {
        let inputs: Vec<&Tensors> = batch.iter().map(|j| &j.inputs).collect();
        let rows: Vec<usize> = batch.iter().map(|j| j.rows.unwrap_or(0)).collect();
        let model = self.shared.model.clone();
        let merged = match &batch[0].padding {
            Some(padding) => merge_padded(&inputs, padding),
            None => merge(&inputs),
        };
        match merged.and_then(|merged| self.run_engine(&merged)) {
            Ok(outputs) => match split(&outputs, &rows) {
                Ok(per_request) => return per_request.into_iter().map(Ok).collect(),
                Err(e) => {
                    self.shared.batching.store(false, Ordering::Relaxed);
                    tracing::warn!(
                        model,
                        "outputs of a batch of {} requests do not split by request ({e}): axis 0 is not the batch; batching is off for this model",
                        batch.len()
                    );
                }
            },
            Err(e) => {
                for job in batch {
                    let _entered = job.span.enter();
                    tracing::warn!(
                        model,
                        "the batched run of {} requests failed ({e}); running each alone",
                        batch.len()
                    );
                }
            }
        }
        batch.iter().map(|job| self.run_one(job)).collect()
    }

    /// Runs the engine; a panic inside the run fails this run only (the engine is asked for
    /// its name afterwards: an engine a panic left broken takes its thread down there, and
    /// the supervisor replaces it).
    fn run_engine(&mut self, inputs: &Tensors) -> Result<Tensors, Error> {
        let engine = &mut self.engine;
        match catch_unwind(AssertUnwindSafe(|| engine.run_validated(inputs))) {
            Ok(result) => result,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(model = self.shared.model, "engine panicked: {message}");
                Err(Error::Engine {
                    engine: engine.name(),
                    message: format!("the engine panicked: {message}"),
                })
            }
        }
    }

    fn reply(&self, batch: Vec<Job>, outputs: Vec<Result<Tensors, ServeError>>, started: Instant) {
        let computed = started.elapsed();
        let batch_requests = batch.len();
        for (job, result) in batch.into_iter().zip(outputs) {
            self.shared.model_metrics.observe_computed(computed);
            let reply = result.map(|outputs| Reply {
                outputs,
                queued: started - job.enqueued,
                computed,
                batch_requests,
            });
            // The client may have gone meanwhile; nothing to do then.
            let _ = job.reply.send(reply);
        }
    }
}

/// The batch being built: what a request must match to join it, and how full it is.
struct Fill {
    key: BatchKey,
    rows: usize,
    /// The longest sequence so far and the token budget, for padded requests.
    longest: usize,
    max_tokens: Option<usize>,
}

impl Fill {
    fn of(first: &Job, rows: usize) -> Fill {
        Fill {
            key: batch_key(first),
            rows,
            longest: sequence_length(&first.inputs),
            max_tokens: first.padding.as_ref().map(|p| p.max_tokens),
        }
    }

    /// Counts `job` in when it fits: same key, rows within `max_rows` and, padded, the
    /// rows × longest sequence within the token budget.
    fn take(&mut self, job: &Job, max_rows: usize) -> bool {
        let Some(rows) = job.rows.map(|r| self.rows + r).filter(|&r| r <= max_rows) else {
            return false;
        };
        let longest = self.longest.max(sequence_length(&job.inputs));
        if batch_key(job) != self.key
            || self
                .max_tokens
                .is_some_and(|budget| rows * longest > budget)
        {
            return false;
        }
        self.rows = rows;
        self.longest = longest;
        true
    }
}

/// What a request must share with the others of its batch (its length too, unless padded).
fn batch_key(job: &Job) -> BatchKey {
    match job.padding {
        Some(_) => BatchKey::padded(&job.inputs),
        None => BatchKey::of(&job.inputs),
    }
}
