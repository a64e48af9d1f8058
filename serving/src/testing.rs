//! A scriptable engine for tests of the engine room (scheduler, registry, routers): it
//! answers `y = x + 1` for an input `x: f32[batch, 2]`, and the test steers it through the
//! values it sends and a shared [`FakeControl`]:
//! - a row starting with `FAIL` (-1) fails the run (a batched run fails as a whole);
//! - a row starting with `PANIC` (-2) panics inside the run;
//! - a row starting with `POISON` (-3) panics and leaves the engine broken: any later call
//!   panics too, so the thread dies outside the run;
//! - a closed gate holds every run until the test opens it;
//! - `wrong_axis_0` answers one row however many came (axis 0 is not the batch).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use destino_core::engine::{EngineConfig, EngineLoader};
use destino_core::metadata::{Dim, ModelMetadata, TensorInfo};
use destino_core::{DType, Engine, Error, Result, Tensor, TensorData, Tensors};

pub const FAIL: f32 = -1.0;
pub const PANIC: f32 = -2.0;
pub const POISON: f32 = -3.0;

/// What the test sees of and does to every engine made from one control.
#[derive(Debug, Default)]
pub struct FakeControl {
    /// Rows of every run, in order.
    runs: Mutex<Vec<usize>>,
    /// Engines loaded so far.
    pub loads: AtomicUsize,
    /// Loads fail while set.
    pub refuse_loads: AtomicBool,
    /// Outputs with one row whatever the batch.
    pub wrong_axis_0: AtomicBool,
    ran: Condvar,
    closed: Mutex<bool>,
    gate: Condvar,
}

impl FakeControl {
    pub fn new() -> Arc<FakeControl> {
        Arc::new(FakeControl::default())
    }

    /// Rows of each run so far.
    pub fn runs(&self) -> Vec<usize> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Holds every run (after it is recorded) until `open`.
    pub fn close(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    pub fn open(&self) {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.gate.notify_all();
    }

    /// Waits until `count` runs have started (or `limit` passes; the caller asserts).
    pub fn wait_for_runs(&self, count: usize, limit: Duration) -> bool {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let (runs, _) = self
            .ran
            .wait_timeout_while(runs, limit, |runs| runs.len() < count)
            .unwrap_or_else(PoisonError::into_inner);
        runs.len() >= count
    }

    fn record_and_hold(&self, rows: usize) {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rows);
        self.ran.notify_all();
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        let _open = self
            .gate
            .wait_while(closed, |closed| *closed)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// `x: f32[batch, 2]` in, `y: f32[batch, 2]` out.
pub fn fake_metadata() -> ModelMetadata {
    let tensor = |name: &str| TensorInfo {
        name: name.into(),
        dtype: DType::F32,
        shape: Some(vec![Dim::Symbolic("batch".into()), Dim::Fixed(2)]),
    };
    ModelMetadata {
        inputs: vec![tensor("x")],
        outputs: vec![tensor("y")],
        ..ModelMetadata::default()
    }
}

/// Inputs of `rows` rows, each `[first, 0]`.
pub fn fake_inputs(rows: usize, first: f32) -> Tensors {
    let data: Vec<f32> = (0..rows).flat_map(|_| [first, 0.0]).collect();
    let tensor = Tensor::new(vec![rows, 2], data).expect("a valid tensor");
    Tensors::from([("x".to_string(), tensor)])
}

#[derive(Debug)]
pub struct FakeEngine {
    metadata: ModelMetadata,
    control: Arc<FakeControl>,
    poisoned: bool,
}

impl FakeEngine {
    pub fn new(control: Arc<FakeControl>) -> FakeEngine {
        control.loads.fetch_add(1, Ordering::SeqCst);
        FakeEngine {
            metadata: fake_metadata(),
            control,
            poisoned: false,
        }
    }

    /// An engine with a control nobody else holds.
    pub fn identity() -> FakeEngine {
        FakeEngine::new(FakeControl::new())
    }

    fn check_health(&self) {
        assert!(!self.poisoned, "the fake engine was left broken by a panic");
    }
}

impl Engine for FakeEngine {
    fn load(_: &Path, _: &EngineConfig) -> Result<Self> {
        Ok(FakeEngine::identity())
    }

    fn name(&self) -> &'static str {
        self.check_health();
        "fake"
    }

    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn run_validated(&mut self, inputs: &Tensors) -> Result<Tensors> {
        self.check_health();
        let x = inputs
            .get("x")
            .and_then(Tensor::as_f32)
            .ok_or_else(|| Error::InvalidTensor("fake engine: no f32 input `x`".into()))?;
        let rows = x.len() / 2;
        self.control.record_and_hold(rows);
        let firsts: Vec<f32> = x.chunks(2).map(|row| row[0]).collect();
        if firsts.contains(&POISON) {
            self.poisoned = true;
            panic!("fake engine: poisoned on demand");
        }
        if firsts.contains(&PANIC) {
            panic!("fake engine: panic on demand");
        }
        if firsts.contains(&FAIL) {
            return Err(Error::Engine {
                engine: "fake",
                message: "failure on demand".into(),
            });
        }
        let out_rows = if self.control.wrong_axis_0.load(Ordering::SeqCst) {
            1
        } else {
            rows
        };
        let y: Vec<f32> = x.iter().take(out_rows * 2).map(|v| v + 1.0).collect();
        let y = Tensor::new(vec![out_rows, 2], TensorData::F32(y))?;
        Ok(Tensors::from([("y".to_string(), y)]))
    }
}

/// A loader of fake engines sharing `control`; fails while `control.refuse_loads` is set.
pub fn fake_loader(control: Arc<FakeControl>) -> EngineLoader {
    Arc::new(move |path, _| {
        if control.refuse_loads.load(Ordering::SeqCst) {
            return Err(Error::ModelInvalid {
                path: path.to_path_buf(),
                reason: "refused on demand".into(),
            });
        }
        Ok(Box::new(FakeEngine::new(control.clone())) as Box<dyn Engine>)
    })
}

/// A registry over `root` with the fake engine, every model loaded: one instance, batches of
/// one, a queue of 16, restarts within milliseconds.
pub fn fake_registry(root: &Path, control: Arc<FakeControl>) -> crate::Registry {
    let defaults = crate::ServingDefaults {
        policy: crate::BatchPolicy {
            max_batch_size: 1,
            max_queue_delay: Duration::ZERO,
            max_queue_size: 16,
        },
        instances: crate::Instances::Fixed(1),
    };
    let supervision = crate::Supervision {
        restart: crate::scheduler::RestartPolicy {
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        spawn: crate::scheduler::std_spawn(),
    };
    let registry = crate::Registry::new(
        root.to_path_buf(),
        fake_loader(control),
        EngineConfig::default(),
        defaults,
        crate::Metrics::new(),
    )
    .with_supervision(supervision);
    if let Err(e) = registry.load_all() {
        panic!("the fake repository loads: {e}");
    }
    registry
}
