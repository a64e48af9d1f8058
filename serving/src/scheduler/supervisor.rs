//! Keeps each engine instance's thread alive. A thread that panics outside a run (the engine
//! left broken, a bug in batching) is marked down, and after a backoff gets a fresh engine
//! from the factory; a thread the OS refuses to start is retried with the same backoff.
//! While no instance of the model is up, queued and new requests are answered at once
//! instead of waiting for their timeout.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use destino_core::Engine;

use super::worker::{Worker, panic_message};
use super::{EngineFactory, Job, SchedulerConfig, ServeError, Shared};

/// Starts a named thread running the closure; the OS may refuse (`Err`). Replaceable so
/// tests can refuse on demand.
pub type Spawn = Arc<dyn Fn(String, Box<dyn FnOnce() + Send>) -> std::io::Result<()> + Send + Sync>;

/// Threads from `std::thread::Builder`.
pub fn std_spawn() -> Spawn {
    Arc::new(|name, run| {
        std::thread::Builder::new()
            .name(name)
            .spawn(run)
            .map(|_| ())
    })
}

/// How long an instance waits before it is restarted: `first_delay`, doubling up to
/// `max_delay` while restarts keep failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RestartPolicy {
    fn after(&self, delay: Duration) -> Duration {
        (delay * 2).min(self.max_delay)
    }
}

/// An instance whose thread could not start, and when to try again.
struct Pending {
    index: usize,
    due: Instant,
    delay: Duration,
}

pub(super) struct Supervisor {
    shared: Arc<Shared>,
    receiver: Receiver<Job>,
    factory: EngineFactory,
    restart: RestartPolicy,
    spawn: Spawn,
    pending: Mutex<Vec<Pending>>,
    /// Whether `pending` holds anything: the per-request check takes no lock.
    has_pending: AtomicBool,
}

impl Supervisor {
    pub(super) fn new(
        shared: Arc<Shared>,
        receiver: Receiver<Job>,
        config: &SchedulerConfig,
    ) -> Supervisor {
        Supervisor {
            shared,
            receiver,
            factory: config.factory.clone(),
            restart: config.restart,
            spawn: config.spawn.clone(),
            pending: Mutex::default(),
            has_pending: AtomicBool::new(false),
        }
    }

    /// Runs instance `index` on its own thread, with `engine` or (when `None`) a fresh one.
    pub(super) fn start_instance(&self, index: usize, engine: Option<Box<dyn Engine>>) {
        self.try_start(index, engine, self.restart.first_delay);
    }

    fn try_start(&self, index: usize, engine: Option<Box<dyn Engine>>, delay: Duration) {
        let instance = Instance {
            index,
            shared: self.shared.clone(),
            receiver: self.receiver.clone(),
            factory: self.factory.clone(),
            restart: self.restart,
        };
        let name = format!("engine-{}-{index}", self.shared.model);
        if let Err(e) = (self.spawn)(name, Box::new(move || instance.run(engine))) {
            let reason = format!("cannot start an engine thread: {e}");
            tracing::error!(model = self.shared.model, instance = index, "{reason}");
            self.shared.health.down(index, reason);
            let due = Instant::now() + delay;
            let pending = Pending { index, due, delay };
            let mut all = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            all.push(pending);
            self.has_pending.store(true, Ordering::Release);
        }
    }

    /// Starts again the instances whose thread could not start, once their backoff passed.
    pub(super) fn retry_pending(&self) {
        if !self.has_pending.load(Ordering::Acquire) {
            return;
        }
        let due: Vec<Pending> = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let (due, later) = pending.drain(..).partition(|p| p.due <= now);
            *pending = later;
            self.has_pending
                .store(!pending.is_empty(), Ordering::Release);
            due
        };
        for p in due {
            self.try_start(p.index, None, self.restart.after(p.delay));
        }
    }
}

/// One instance's thread: runs a worker until the queue closes, and replaces the engine
/// after a panic.
struct Instance {
    index: usize,
    shared: Arc<Shared>,
    receiver: Receiver<Job>,
    factory: EngineFactory,
    restart: RestartPolicy,
}

impl Instance {
    fn run(self, mut engine: Option<Box<dyn Engine>>) {
        let mut delay = self.restart.first_delay;
        loop {
            if self.shared.closed.load(Ordering::Acquire) && engine.is_none() {
                return;
            }
            let current = match engine.take().map(Ok).unwrap_or_else(|| self.fresh_engine()) {
                Ok(current) => current,
                Err(reason) => {
                    self.down(format!("restarting its engine failed: {reason}"));
                    if !self.wait(delay) {
                        return;
                    }
                    delay = self.restart.after(delay);
                    continue;
                }
            };
            self.shared.health.up(self.index);
            self.report_readiness();
            let started = Instant::now();
            let mut worker = Worker::new(current, self.shared.clone(), self.receiver.clone());
            let outcome = catch_unwind(AssertUnwindSafe(|| worker.run()));
            // Dropping a broken engine may panic too; its queued jobs fail as it goes.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(worker)));
            let Err(panic) = outcome else {
                return; // the queue closed: this version no longer serves
            };
            self.down(format!(
                "an engine thread panicked: {}",
                panic_message(panic.as_ref())
            ));
            if started.elapsed() > self.restart.max_delay {
                delay = self.restart.first_delay;
            }
            if !self.wait(delay) {
                return;
            }
            delay = self.restart.after(delay);
        }
    }

    fn fresh_engine(&self) -> Result<Box<dyn Engine>, String> {
        match catch_unwind(AssertUnwindSafe(|| (self.factory)())) {
            Ok(Ok(engine)) => Ok(engine),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(format!("it panicked: {}", panic_message(panic.as_ref()))),
        }
    }

    fn down(&self, reason: String) {
        tracing::error!(
            model = self.shared.model,
            instance = self.index,
            "{reason}; restarting"
        );
        self.shared.health.down(self.index, reason);
        self.report_readiness();
    }

    /// `destino_model_ready` follows whether any instance serves (while this version does).
    fn report_readiness(&self) {
        if !self.shared.closed.load(Ordering::Acquire) {
            let ready = self.shared.health.live() > 0;
            self.shared
                .metrics
                .set_model_ready(&self.shared.model, ready);
        }
    }

    /// Waits `delay` before a restart. While no instance serves, requests in the queue are
    /// answered at once. False when the model stopped serving meanwhile.
    fn wait(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            if self.shared.closed.load(Ordering::Acquire) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            if self.shared.health.live() > 0 {
                std::thread::sleep(left.min(Duration::from_millis(50)));
                continue;
            }
            match self.receiver.recv_timeout(left) {
                Ok(job) => self.refuse(job),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    fn refuse(&self, job: Job) {
        self.shared.leave_queue();
        let reason = self.shared.health.status().problem.unwrap_or_default();
        let _ = job.reply.send(Err(ServeError::EngineDown {
            model: self.shared.model.clone(),
            reason,
        }));
    }
}
