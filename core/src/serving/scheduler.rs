//! One model version's queue and the engine threads that drain it: requests wait in a
//! bounded queue, compatible ones are merged into batches, and each engine instance runs on
//! its own thread. The async side only ever submits and awaits a reply.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use tokio::sync::oneshot;

use crate::engine::Engine;
use crate::error::Error;
use crate::metadata::Tensors;
use crate::serving::batch::{BatchKey, batch_rows, merge, split};
use crate::serving::metrics::Metrics;

/// How a model's requests are queued and batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most rows in one engine run; 0 turns batching off.
    pub max_batch_size: usize,
    /// Longest the first request of a batch waits for others to join.
    pub max_queue_delay: Duration,
    /// Most requests waiting before new ones are refused.
    pub max_queue_size: usize,
}

/// Why a request got no outputs.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Model(#[from] Error),
    #[error("model `{model}` has {capacity} requests queued, its limit; retry later")]
    QueueFull { model: String, capacity: usize },
    #[error("the request waited longer than its {0:?} timeout")]
    Timeout(Duration),
    #[error("model `{0}` stopped serving before the request ran")]
    Stopped(String),
}

/// The outputs of one request and where its time went.
#[derive(Debug)]
pub struct Reply {
    pub outputs: Tensors,
    pub queued: Duration,
    pub computed: Duration,
    /// Requests in the engine run that produced these outputs.
    pub batch_requests: usize,
}

struct Job {
    inputs: Tensors,
    rows: Option<usize>,
    enqueued: Instant,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Reply, ServeError>>,
}

/// The submitting side of a model's queue; dropping it lets the engine threads finish the
/// queued work and exit.
#[derive(Debug)]
pub struct Scheduler {
    model: String,
    sender: Sender<Job>,
    depth: Arc<AtomicUsize>,
    policy: BatchPolicy,
    metrics: Metrics,
}

impl Scheduler {
    /// Starts one thread per engine, all draining the same queue.
    pub fn start(
        model: &str,
        engines: Vec<Box<dyn Engine>>,
        batchable: bool,
        policy: BatchPolicy,
        metrics: Metrics,
    ) -> Scheduler {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let depth = Arc::new(AtomicUsize::new(0));
        for (index, engine) in engines.into_iter().enumerate() {
            let worker = Worker {
                model: model.to_string(),
                engine,
                receiver: receiver.clone(),
                stash: VecDeque::new(),
                batching: batchable && policy.max_batch_size > 1,
                policy,
                depth: depth.clone(),
                metrics: metrics.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("engine-{model}-{index}"))
                .spawn(move || worker.run());
            if let Err(e) = spawned {
                tracing::error!(model, "cannot start an engine thread: {e}");
            }
        }
        Scheduler {
            model: model.to_string(),
            sender,
            depth,
            policy,
            metrics,
        }
    }

    pub fn policy(&self) -> BatchPolicy {
        self.policy
    }

    /// Requests waiting now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Queues validated inputs and waits for their outputs. Refuses at once when the queue is
    /// full. Dropping the returned future (client gone) makes the engine skip the request.
    pub async fn infer(
        &self,
        inputs: Tensors,
        timeout: Option<Duration>,
    ) -> Result<Reply, ServeError> {
        let capacity = self.policy.max_queue_size;
        let admitted = self
            .depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                (d < capacity).then_some(d + 1)
            });
        if admitted.is_err() {
            return Err(ServeError::QueueFull {
                model: self.model.clone(),
                capacity,
            });
        }
        self.metrics
            .queue_depth
            .with_label_values(&[&self.model])
            .set(self.depth() as i64);
        let enqueued = Instant::now();
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            rows: batch_rows(&inputs),
            inputs,
            enqueued,
            deadline: timeout.map(|t| enqueued + t),
            reply,
        };
        if self.sender.send(job).is_err() {
            self.depth.fetch_sub(1, Ordering::AcqRel);
            return Err(ServeError::Stopped(self.model.clone()));
        }
        let wait = async {
            receiver
                .await
                .unwrap_or_else(|_| Err(ServeError::Stopped(self.model.clone())))
        };
        match timeout {
            Some(limit) => tokio::time::timeout(limit, wait)
                .await
                .unwrap_or(Err(ServeError::Timeout(limit))),
            None => wait.await,
        }
    }
}

struct Worker {
    model: String,
    engine: Box<dyn Engine>,
    receiver: Receiver<Job>,
    /// Requests taken from the queue that did not fit the batch being built.
    stash: VecDeque<Job>,
    batching: bool,
    policy: BatchPolicy,
    depth: Arc<AtomicUsize>,
    metrics: Metrics,
}

impl Worker {
    fn run(mut self) {
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
            self.leave_queue();
            let waited = deadline - job.enqueued;
            let _ = job.reply.send(Err(ServeError::Timeout(waited)));
            return None;
        }
        Some(job)
    }

    /// True (and the request leaves the queue, counted as cancelled) when its client left.
    fn abandoned(&self, job: &Job) -> bool {
        if !job.reply.is_closed() {
            return false;
        }
        self.leave_queue();
        self.metrics
            .requests
            .with_label_values(&[&self.model, "", "failure", "cancelled"])
            .inc();
        true
    }

    fn leave_queue(&self) {
        let depth = self.depth.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        self.metrics
            .queue_depth
            .with_label_values(&[&self.model])
            .set(depth as i64);
    }

    /// Starting from `first`, takes compatible requests until the batch is full or the first
    /// request has waited `max_queue_delay`.
    fn collect_batch(&mut self, first: Job) -> Vec<Job> {
        let max_rows = self.policy.max_batch_size;
        let rows = match first.rows {
            Some(rows) if self.batching && rows < max_rows => rows,
            _ => return vec![first],
        };
        let key = BatchKey::of(&first.inputs);
        let mut batch = vec![first];
        let mut rows = rows;
        let fits = |job: &Job, rows: usize| {
            job.rows.is_some_and(|r| rows + r <= max_rows) && BatchKey::of(&job.inputs) == key
        };
        let mut kept = VecDeque::new();
        while let Some(job) = self.stash.pop_front() {
            if fits(&job, rows) {
                rows += job.rows.unwrap_or(0);
                batch.push(job);
            } else {
                kept.push_back(job);
            }
        }
        self.stash = kept;
        let window_end = batch[0].enqueued + self.policy.max_queue_delay;
        while rows < max_rows {
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
            if fits(&job, rows) {
                rows += job.rows.unwrap_or(0);
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
        for _ in &batch {
            self.leave_queue();
        }
        let started = Instant::now();
        for job in &batch {
            self.metrics
                .queue_seconds
                .with_label_values(&[&self.model])
                .observe((started - job.enqueued).as_secs_f64());
        }
        self.metrics
            .batch_size
            .with_label_values(&[&self.model])
            .observe(batch.len() as f64);
        if batch.len() == 1 {
            let result = self.run_engine(&batch[0].inputs);
            let outputs = vec![result.map_err(ServeError::from)];
            return self.reply(batch, outputs, started);
        }
        let inputs: Vec<&Tensors> = batch.iter().map(|j| &j.inputs).collect();
        let rows: Vec<usize> = batch.iter().map(|j| j.rows.unwrap_or(0)).collect();
        let merged = merge(&inputs).and_then(|m| self.run_engine(&m));
        let outputs = match merged.and_then(|out| split(&out, &rows)) {
            Ok(per_request) => per_request.into_iter().map(Ok).collect(),
            Err(e) => {
                // Axis 0 of some output is not the batch: this model cannot be batched after all.
                tracing::warn!(
                    model = self.model,
                    "batched run failed ({e}); running requests one by one from now on"
                );
                self.batching = false;
                batch
                    .iter()
                    .map(|j| self.run_engine(&j.inputs).map_err(ServeError::from))
                    .collect()
            }
        };
        self.reply(batch, outputs, started);
    }

    /// Runs the engine; a panic inside it fails this run only, and the thread keeps serving.
    fn run_engine(&mut self, inputs: &Tensors) -> Result<Tensors, Error> {
        let engine = &mut self.engine;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.run_validated(inputs)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(model = self.model, "engine panicked: {message}");
            Err(Error::Engine {
                engine: engine.name(),
                message: format!("the engine panicked: {message}"),
            })
        })
    }

    fn reply(&self, batch: Vec<Job>, outputs: Vec<Result<Tensors, ServeError>>, started: Instant) {
        let computed = started.elapsed();
        let batch_requests = batch.len();
        for (job, result) in batch.into_iter().zip(outputs) {
            self.metrics
                .compute_seconds
                .with_label_values(&[&self.model])
                .observe(computed.as_secs_f64());
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
