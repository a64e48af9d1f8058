//! One model version's queue and the engine threads that drain it: requests wait in a
//! bounded queue, compatible ones are merged into batches, and each engine instance runs on
//! its own supervised thread. The async side only ever submits and awaits a reply.
//!
//! - `worker.rs`: one instance's loop: take requests, batch, run, reply.
//! - `supervisor.rs`: keeps each instance's thread alive: restarts it (a fresh engine from
//!   the factory) with backoff after a panic, and retries a thread that could not start.
//! - `health.rs`: how many instances serve, and why the others do not.

mod health;
mod supervisor;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use destino_core::{Engine, Error, Result, Tensors};
use tokio::sync::oneshot;

use crate::batch::{Padding, batch_rows};
use crate::metrics::{Metrics, ModelMetrics};
use crate::stats::Stats;

pub use health::InstanceStatus;
pub use supervisor::{RestartPolicy, Spawn, std_spawn};

use health::Health;
use supervisor::Supervisor;

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
    #[error("model `{0}`: the engine thread running the request failed; retry")]
    Lost(String),
    #[error("model `{model}` has no engine running ({reason}); it is being restarted")]
    EngineDown { model: String, reason: String },
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

/// Makes a fresh engine instance (loaded and warmed), to replace one whose thread died.
pub type EngineFactory = Arc<dyn Fn() -> Result<Box<dyn Engine>> + Send + Sync>;

/// One queued request.
struct Job {
    inputs: Tensors,
    rows: Option<usize>,
    /// How the request may join others of another length (text models' tokens).
    padding: Option<Arc<Padding>>,
    enqueued: Instant,
    deadline: Option<Instant>,
    /// The request's span, entered on the engine thread so its logs carry the request id.
    span: tracing::Span,
    reply: oneshot::Sender<Result<Reply, ServeError>>,
}

/// What every instance of one model shares.
struct Shared {
    model: String,
    policy: BatchPolicy,
    /// Cleared for good when a batched run's outputs prove axis 0 is not the batch.
    batching: AtomicBool,
    depth: AtomicUsize,
    health: Health,
    metrics: Metrics,
    /// This model's queue and engine metrics.
    model_metrics: ModelMetrics,
    stats: Arc<Stats>,
    /// Set when the scheduler is dropped: instances stop instead of restarting.
    closed: AtomicBool,
}

impl Shared {
    fn leave_queue(&self) {
        let depth = self.depth.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        self.model_metrics.set_queue_depth(depth);
    }
}

/// Everything `Scheduler::start` needs besides the engines.
#[derive(Clone)]
pub struct SchedulerConfig {
    pub policy: BatchPolicy,
    /// Whether the model's inputs and outputs allow merging requests at all.
    pub batchable: bool,
    pub factory: EngineFactory,
    pub restart: RestartPolicy,
    pub spawn: Spawn,
    pub metrics: Metrics,
    pub stats: Arc<Stats>,
}

impl std::fmt::Debug for SchedulerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerConfig")
            .field("policy", &self.policy)
            .field("batchable", &self.batchable)
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

/// The submitting side of a model's queue; dropping it lets the engine threads finish the
/// queued work and exit.
pub struct Scheduler {
    sender: Sender<Job>,
    shared: Arc<Shared>,
    supervisor: Supervisor,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("model", &self.shared.model)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Starts one supervised thread per engine, all draining the same queue.
    pub fn start(model: &str, engines: Vec<Box<dyn Engine>>, config: SchedulerConfig) -> Scheduler {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            model: model.to_string(),
            policy: config.policy,
            batching: AtomicBool::new(config.batchable && config.policy.max_batch_size > 1),
            depth: AtomicUsize::new(0),
            health: Health::new(engines.len()),
            metrics: config.metrics.clone(),
            model_metrics: config.metrics.model(model),
            stats: config.stats.clone(),
            closed: AtomicBool::new(false),
        });
        let supervisor = Supervisor::new(shared.clone(), receiver, &config);
        for (index, engine) in engines.into_iter().enumerate() {
            supervisor.start_instance(index, Some(engine));
        }
        Scheduler {
            sender,
            shared,
            supervisor,
        }
    }

    pub fn policy(&self) -> BatchPolicy {
        self.shared.policy
    }

    /// Whether requests are still merged (off for good once outputs proved unsplittable).
    pub fn batching(&self) -> bool {
        self.shared.batching.load(Ordering::Relaxed)
    }

    /// Requests waiting now.
    pub fn depth(&self) -> usize {
        self.shared.depth.load(Ordering::Relaxed)
    }

    /// How many engine instances serve now (no lock: checked on every request).
    pub fn live(&self) -> usize {
        self.shared.health.live()
    }

    /// How many engine instances serve, and why the others do not. Retries instances whose
    /// thread could not start, when their backoff has passed.
    pub fn status(&self) -> InstanceStatus {
        self.supervisor.retry_pending();
        self.shared.health.status()
    }

    /// Queues validated inputs and waits for their outputs. Refuses at once when the queue is
    /// full or no engine instance runs. Dropping the returned future (client gone) makes the
    /// engine skip the request.
    pub async fn infer(
        &self,
        inputs: Tensors,
        timeout: Option<Duration>,
    ) -> Result<Reply, ServeError> {
        self.infer_padded(inputs, timeout, None).await
    }

    /// As `infer`, for a request that may be padded (`padding`) to share a run with requests
    /// of other lengths.
    pub async fn infer_padded(
        &self,
        inputs: Tensors,
        timeout: Option<Duration>,
        padding: Option<Arc<Padding>>,
    ) -> Result<Reply, ServeError> {
        let model = &self.shared.model;
        if self.live() == 0 {
            let status = self.status();
            if status.live == 0 {
                return Err(ServeError::EngineDown {
                    model: model.clone(),
                    reason: status.problem.unwrap_or_else(|| "starting".into()),
                });
            }
        }
        let capacity = self.shared.policy.max_queue_size;
        let admitted = self
            .shared
            .depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                (d < capacity).then_some(d + 1)
            });
        match admitted {
            Ok(depth) => self.shared.model_metrics.set_queue_depth(depth + 1),
            Err(_) => {
                return Err(ServeError::QueueFull {
                    model: model.clone(),
                    capacity,
                });
            }
        }
        let enqueued = Instant::now();
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            rows: batch_rows(&inputs),
            inputs,
            padding,
            enqueued,
            deadline: timeout.map(|t| enqueued + t),
            span: tracing::Span::current(),
            reply,
        };
        if self.sender.send(job).is_err() {
            self.shared.leave_queue();
            return Err(ServeError::Stopped(model.clone()));
        }
        let wait = async {
            receiver
                .await
                .unwrap_or_else(|_| Err(ServeError::Lost(model.clone())))
        };
        match timeout {
            Some(limit) => tokio::time::timeout(limit, wait)
                .await
                .unwrap_or(Err(ServeError::Timeout(limit))),
            None => wait.await,
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
