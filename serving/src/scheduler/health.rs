//! Which engine instances of a model serve, and why the others do not.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// A model's engine instances at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub instances: usize,
    pub live: usize,
    /// Why the latest instance that is down went down.
    pub problem: Option<String>,
}

/// Per instance: `None` while it serves, the reason while it does not; and how many serve,
/// readable without a lock on every request.
#[derive(Debug)]
pub(super) struct Health {
    down: Mutex<Vec<Option<String>>>,
    live: AtomicUsize,
}

impl Health {
    /// `instances` instances, each serving (their engines are loaded when the scheduler starts).
    pub(super) fn new(instances: usize) -> Health {
        Health {
            down: Mutex::new(vec![None; instances]),
            live: AtomicUsize::new(instances),
        }
    }

    pub(super) fn up(&self, index: usize) {
        self.set(index, None);
    }

    pub(super) fn down(&self, index: usize, reason: String) {
        self.set(index, Some(reason));
    }

    fn set(&self, index: usize, state: Option<String>) {
        let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = down.get_mut(index) {
            *slot = state;
        }
        let live = down.iter().filter(|d| d.is_none()).count();
        self.live.store(live, Ordering::Release);
    }

    pub(super) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    pub(super) fn status(&self) -> InstanceStatus {
        let down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        InstanceStatus {
            instances: down.len(),
            live: down.iter().filter(|d| d.is_none()).count(),
            problem: down.iter().rev().flatten().next().cloned(),
        }
    }
}
