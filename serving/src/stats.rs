//! Triton's statistics extension, per model version: requests that succeeded and failed,
//! time queued, and the three compute phases (`compute_input`: the request decoded into
//! tensors; `compute_infer`: the engine run; `compute_output`: the answer encoded), in total
//! and per batch size; with inference and execution counts and the last inference's time.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many times something happened and how long it took in all, in nanoseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub ns: u64,
}

impl Tally {
    fn add(&mut self, took: Duration) {
        self.count += 1;
        self.ns = self
            .ns
            .saturating_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    fn json(self) -> Value {
        json!({ "count": self.count, "ns": self.ns })
    }
}

/// The three compute phases of the runs of one batch size.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchTally {
    pub compute_input: Tally,
    pub compute_infer: Tally,
    pub compute_output: Tally,
}

/// A model version's statistics at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Statistics {
    /// When the last inference finished, in milliseconds since the Unix epoch (0: none yet).
    pub last_inference_ms: u64,
    /// Inferences run: a batch of n rows counts n.
    pub inference_count: u64,
    /// Engine runs: a batch counts once.
    pub execution_count: u64,
    pub success: Tally,
    pub fail: Tally,
    pub queue: Tally,
    pub compute_input: Tally,
    pub compute_infer: Tally,
    pub compute_output: Tally,
    /// Per batch size (rows per engine run).
    pub batches: BTreeMap<usize, BatchTally>,
}

impl Statistics {
    /// One entry of Triton's `model_stats` list, as its HTTP statistics extension answers.
    pub fn to_json(&self, name: &str, version: u64) -> Value {
        let batches: Vec<Value> = self
            .batches
            .iter()
            .map(|(size, b)| {
                json!({
                    "batch_size": size,
                    "compute_input": b.compute_input.json(),
                    "compute_infer": b.compute_infer.json(),
                    "compute_output": b.compute_output.json(),
                })
            })
            .collect();
        json!({
            "name": name,
            "version": version.to_string(),
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.json(),
                "fail": self.fail.json(),
                "queue": self.queue.json(),
                "compute_input": self.compute_input.json(),
                "compute_infer": self.compute_infer.json(),
                "compute_output": self.compute_output.json(),
                "cache_hit": Tally::default().json(),
                "cache_miss": Tally::default().json(),
            },
            "batch_stats": batches,
            "memory_usage": [],
        })
    }
}

/// The statistics of one model version, updated by the codecs, the scheduler and the
/// request's accounting.
#[derive(Debug, Default)]
pub struct Stats(Mutex<Statistics>);

impl Stats {
    fn update(&self, f: impl FnOnce(&mut Statistics)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn snapshot(&self) -> Statistics {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A request finished: successfully or not, after `took` in all.
    pub fn request(&self, success: bool, took: Duration) {
        self.update(|s| {
            if success {
                s.success.add(took);
            } else {
                s.fail.add(took);
            }
        });
    }

    pub fn queued(&self, took: Duration) {
        self.update(|s| s.queue.add(took));
    }

    /// A request's inputs were decoded into tensors (`rows` of them, when known).
    pub fn compute_input(&self, rows: usize, took: Duration) {
        self.update(|s| {
            s.compute_input.add(took);
            s.batches.entry(rows).or_default().compute_input.add(took);
        });
    }

    /// An engine run of `rows` rows for `requests` requests took `took`.
    pub fn compute_infer(&self, rows: usize, requests: usize, took: Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.update(|s| {
            s.execution_count += 1;
            s.inference_count += rows as u64;
            s.last_inference_ms = now;
            for _ in 0..requests {
                s.compute_infer.add(took);
            }
            s.batches.entry(rows).or_default().compute_infer.add(took);
        });
    }

    /// A request's answer was encoded.
    pub fn compute_output(&self, rows: usize, took: Duration) {
        self.update(|s| {
            s.compute_output.add(took);
            s.batches.entry(rows).or_default().compute_output.add(took);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_add_up_per_phase_and_batch_size() {
        let stats = Stats::default();
        stats.compute_input(1, Duration::from_nanos(10));
        stats.compute_infer(3, 2, Duration::from_nanos(100));
        stats.compute_output(1, Duration::from_nanos(5));
        stats.request(true, Duration::from_nanos(200));
        stats.request(false, Duration::from_nanos(50));
        let s = stats.snapshot();
        assert_eq!((s.inference_count, s.execution_count), (3, 1));
        assert_eq!(s.compute_infer, Tally { count: 2, ns: 200 });
        assert_eq!(s.batches[&3].compute_infer, Tally { count: 1, ns: 100 });
        assert_eq!(s.batches[&1].compute_input, Tally { count: 1, ns: 10 });
        assert_eq!(s.success, Tally { count: 1, ns: 200 });
        assert_eq!(s.fail, Tally { count: 1, ns: 50 });
        assert!(s.last_inference_ms > 0);
    }
}
