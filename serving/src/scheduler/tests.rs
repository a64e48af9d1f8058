//! The scheduler driven by the fake engine: batching, failed runs, dead and unstartable
//! engine threads. Runs are held at the fake engine's gate, so requests are known to be
//! queued (and batched) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use destino_core::{Engine, Tensors};
use tokio::task::JoinHandle;

use super::*;
use crate::testing::{FAIL, FakeControl, FakeEngine, PANIC, POISON, fake_inputs, fake_loader};

const PATIENCE: Duration = Duration::from_secs(10);

fn policy(max_batch_size: usize) -> BatchPolicy {
    BatchPolicy {
        max_batch_size,
        max_queue_delay: Duration::ZERO,
        max_queue_size: 64,
    }
}

fn config(control: &Arc<FakeControl>, max_batch_size: usize, spawn: Spawn) -> SchedulerConfig {
    let loader = fake_loader(control.clone());
    SchedulerConfig {
        policy: policy(max_batch_size),
        batchable: true,
        factory: Arc::new(move || loader(std::path::Path::new("fake.onnx"), &Default::default())),
        restart: RestartPolicy {
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        spawn,
        metrics: Metrics::new(),
        stats: Arc::default(),
    }
}

fn start(control: &Arc<FakeControl>, max_batch_size: usize) -> Arc<Scheduler> {
    let engine: Box<dyn Engine> = Box::new(FakeEngine::new(control.clone()));
    let config = config(control, max_batch_size, std_spawn());
    Arc::new(Scheduler::start("fake", vec![engine], config))
}

fn submit(scheduler: &Arc<Scheduler>, first: f32) -> JoinHandle<Result<Reply, ServeError>> {
    let scheduler = scheduler.clone();
    tokio::spawn(async move { scheduler.infer(fake_inputs(1, first), None).await })
}

/// Waits (yielding) until `done` holds; false after `PATIENCE`.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    true
}

/// Holds the engine in a run of `first`, queues one request per value of `then`, and
/// releases them: they reach the engine together.
async fn queued_together(
    scheduler: &Arc<Scheduler>,
    control: &Arc<FakeControl>,
    first: f32,
    then: &[f32],
) -> Vec<Result<Reply, ServeError>> {
    let runs_before = control.runs().len();
    control.close();
    let mut handles = vec![submit(scheduler, first)];
    assert!(control.wait_for_runs(runs_before + 1, PATIENCE));
    handles.extend(then.iter().map(|&value| submit(scheduler, value)));
    assert!(eventually(|| scheduler.depth() == then.len()).await);
    control.open();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("the request task"));
    }
    results
}

/// The `destino_instances_busy` gauge of the scheduler's model.
fn busy_instances(scheduler: &Scheduler) -> i64 {
    let prefix = "destino_instances_busy{model=\"fake\"} ";
    let metrics = scheduler.shared.metrics.render();
    let line = metrics.lines().find(|l| l.starts_with(prefix));
    line.map_or(0, |l| l[prefix.len()..].parse().expect("a gauge value"))
}

fn y(reply: &Result<Reply, ServeError>) -> Vec<f32> {
    let outputs: &Tensors = &reply.as_ref().expect("a reply").outputs;
    outputs["y"].as_f32().expect("f32 outputs").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batched_run_is_retried_alone_and_batching_stays_on() {
    let control = FakeControl::new();
    let scheduler = start(&control, 8);
    let results = queued_together(&scheduler, &control, 1.0, &[FAIL, 2.0, 3.0]).await;
    assert_eq!(y(&results[0]), [2.0, 1.0]);
    assert!(
        matches!(results[1], Err(ServeError::Model(_))),
        "the failing request fails"
    );
    assert_eq!(y(&results[2]), [3.0, 1.0]);
    assert_eq!(y(&results[3]), [4.0, 1.0]);
    // The batch of three failed as a whole, then ran one request at a time.
    assert_eq!(control.runs(), [1, 3, 1, 1, 1]);
    assert!(
        scheduler.batching(),
        "a failed run does not turn batching off"
    );
    queued_together(&scheduler, &control, 1.0, &[2.0, 3.0]).await;
    assert_eq!(control.runs()[5..], [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_that_do_not_split_turn_batching_off_for_good() {
    let control = FakeControl::new();
    control.wrong_axis_0.store(true, Ordering::SeqCst);
    let scheduler = start(&control, 8);
    let results = queued_together(&scheduler, &control, 1.0, &[2.0, 3.0]).await;
    for (result, x) in results.iter().zip([1.0, 2.0, 3.0]) {
        assert_eq!(y(result), [x + 1.0, 1.0]);
    }
    assert_eq!(control.runs(), [1, 2, 1, 1]);
    assert!(!scheduler.batching());
    queued_together(&scheduler, &control, 1.0, &[2.0, 3.0]).await;
    assert_eq!(control.runs()[4..], [1, 1, 1], "no more batches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_run_fails_that_request_only() {
    let control = FakeControl::new();
    let scheduler = start(&control, 1);
    let panicked = scheduler.infer(fake_inputs(1, PANIC), None).await;
    let Err(ServeError::Model(e)) = panicked else {
        panic!("expected an engine error, got {panicked:?}");
    };
    assert!(e.to_string().contains("panicked"), "{e}");
    let next = scheduler.infer(fake_inputs(1, 5.0), None).await;
    assert_eq!(y(&next), [6.0, 1.0]);
    assert_eq!(
        control.loads.load(Ordering::SeqCst),
        1,
        "the same engine serves on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_engine_thread_is_restarted_and_nobody_waits_on_it() {
    let control = FakeControl::new();
    let scheduler = start(&control, 1);
    control.refuse_loads.store(true, Ordering::SeqCst);
    // The engine panics and is left broken: its thread dies outside the run.
    let poisoned = scheduler.infer(fake_inputs(1, POISON), None).await;
    assert!(matches!(poisoned, Err(ServeError::Lost(_))), "{poisoned:?}");
    assert!(eventually(|| scheduler.status().live == 0).await);
    assert_eq!(busy_instances(&scheduler), 0, "a dead thread is not busy");
    let status = scheduler.status();
    assert!(
        status.problem.as_deref().unwrap_or("").contains("panicked"),
        "{status:?}"
    );
    // No timeout on this request: it must be answered at once, not wait for a worker.
    let waiting = tokio::time::timeout(PATIENCE, scheduler.infer(fake_inputs(1, 1.0), None));
    let refused = waiting.await.expect("answered without waiting");
    assert!(
        matches!(refused, Err(ServeError::EngineDown { .. })),
        "{refused:?}"
    );
    // Once the model file loads again, a fresh engine takes over.
    control.refuse_loads.store(false, Ordering::SeqCst);
    assert!(eventually(|| scheduler.status().live == 1).await);
    let served = scheduler.infer(fake_inputs(1, 1.0), None).await;
    assert_eq!(y(&served), [2.0, 1.0]);
    assert_eq!(control.loads.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_thread_that_cannot_start_is_retried_with_backoff() {
    let control = FakeControl::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let refusing: Spawn = Arc::new(move |name, run| {
        if counted.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err(std::io::Error::other("no threads left"));
        }
        std_spawn()(name, run)
    });
    let engine: Box<dyn Engine> = Box::new(FakeEngine::new(control.clone()));
    let scheduler = Scheduler::start("fake", vec![engine], config(&control, 1, refusing));
    let status = scheduler.status();
    assert_eq!(status.live, 0);
    assert!(
        status
            .problem
            .unwrap_or_default()
            .contains("no threads left")
    );
    let refused = scheduler.infer(fake_inputs(1, 1.0), None).await;
    assert!(
        matches!(refused, Err(ServeError::EngineDown { .. })),
        "{refused:?}"
    );
    assert!(eventually(|| scheduler.status().live == 1).await);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let served = scheduler.infer(fake_inputs(1, 1.0), None).await;
    assert_eq!(y(&served), [2.0, 1.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_is_busy_from_leaving_the_queue_until_its_run_is_counted() {
    let control = FakeControl::new();
    let scheduler = start(&control, 1);
    assert_eq!(busy_instances(&scheduler), 0);
    control.close();
    let held = submit(&scheduler, 1.0);
    assert!(control.wait_for_runs(1, PATIENCE));
    assert_eq!((busy_instances(&scheduler), scheduler.depth()), (1, 0));
    control.open();
    assert_eq!(y(&held.await.expect("the request task")), [2.0, 1.0]);
    assert_eq!(busy_instances(&scheduler), 0);
    assert_eq!(scheduler.shared.stats.snapshot().inference_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_in_the_queue_times_out() {
    let control = FakeControl::new();
    let scheduler = start(&control, 1);
    control.close();
    let holding = submit(&scheduler, 1.0);
    assert!(control.wait_for_runs(1, PATIENCE));
    let late = scheduler
        .infer(fake_inputs(1, 2.0), Some(Duration::from_millis(20)))
        .await;
    assert!(matches!(late, Err(ServeError::Timeout(_))), "{late:?}");
    control.open();
    assert_eq!(y(&holding.await.expect("the request task")), [2.0, 1.0]);
    // The timed-out request never reaches the engine, and leaves the queue.
    assert!(eventually(|| scheduler.depth() == 0).await);
    assert_eq!(control.runs(), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_span_reaches_the_engine_thread() {
    use tracing::Instrument;
    capture::install();
    let control = FakeControl::new();
    let scheduler = start(&control, 1);
    let span = tracing::info_span!("request", request_id = "req-42");
    let _ = scheduler
        .infer(fake_inputs(1, PANIC), None)
        .instrument(span)
        .await;
    // The engine thread logged the panic inside the request's span.
    let lines = capture::LINES.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("engine panicked") && l.contains("req-42")),
        "{lines:?}"
    );
}

/// A minimal subscriber that writes each event with the fields of its spans.
mod capture {
    use std::fmt::Write as _;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata};

    pub struct Subscriber;

    /// Every event logged in this test binary, with its spans' fields.
    pub static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

    /// Makes `Subscriber` the process's subscriber (once), so engine threads log to it.
    pub fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = tracing::subscriber::set_global_default(Subscriber);
        });
    }

    static NEXT: AtomicU64 = AtomicU64::new(1);
    type SpanEntry = (u64, String, &'static Metadata<'static>);
    static SPANS: Mutex<Vec<SpanEntry>> = Mutex::new(Vec::new());

    struct Text(String);
    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }

    thread_local! {
        static CURRENT: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    impl tracing::Subscriber for Subscriber {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let id = NEXT.fetch_add(1, Ordering::SeqCst);
            let mut text = Text(String::new());
            attrs.record(&mut text);
            SPANS.lock().unwrap().push((id, text.0, attrs.metadata()));
            Id::from_u64(id)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut text = Text(String::new());
            event.record(&mut text);
            let spans = SPANS.lock().unwrap();
            CURRENT.with(|current| {
                for id in current.borrow().iter() {
                    if let Some((_, fields, _)) = spans.iter().find(|(s, ..)| s == id) {
                        text.0.push_str(fields);
                    }
                }
            });
            LINES.lock().unwrap().push(text.0);
        }
        fn enter(&self, span: &Id) {
            CURRENT.with(|current| current.borrow_mut().push(span.into_u64()));
        }
        fn exit(&self, _: &Id) {
            CURRENT.with(|current| {
                current.borrow_mut().pop();
            });
        }
        fn current_span(&self) -> tracing_core::span::Current {
            let Some(id) = CURRENT.with(|current| current.borrow().last().copied()) else {
                return tracing_core::span::Current::none();
            };
            let spans = SPANS.lock().unwrap();
            match spans.iter().find(|(s, ..)| *s == id) {
                Some((_, _, metadata)) => {
                    tracing_core::span::Current::new(Id::from_u64(id), metadata)
                }
                None => tracing_core::span::Current::none(),
            }
        }
    }
}
