//! What the load generators share: batch-1 requests built from the shared models' reference
//! inputs, latency statistics, and the server's resident memory.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use destino_core::{Engine, EngineConfig, Tensors};
use destino_ort::OrtEngine;
use destino_tests::v2::{binary_request, json_request_in_client_order};
use destino_tests::{init_onnxruntime, reference_case};

/// Throughput and latency percentiles of one measurement.
#[derive(Debug)]
pub struct Stats {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: usize,
}

pub fn stats(mut latencies: Vec<Duration>, elapsed: Duration, errors: usize) -> Stats {
    latencies.sort();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(index).copied().unwrap_or_default()
    };
    Stats {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        errors,
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Batch-1 inputs: the first row of each reference input when all inputs share a leading
/// batch axis longer than 1; otherwise (a state tensor's leading axis is not a batch, say) the
/// inputs as they are.
pub fn first_row(inputs: &Tensors) -> Result<Tensors> {
    let leading: Vec<usize> = inputs
        .values()
        .filter_map(|t| t.shape().first().copied())
        .collect();
    let batch = match leading.first() {
        Some(&n) if n > 1 && leading.iter().all(|&d| d == n) => n,
        _ => return Ok(inputs.clone()),
    };
    inputs
        .iter()
        .map(|(name, t)| {
            let row = if t.shape().is_empty() {
                t.clone()
            } else {
                t.split_batch(&[1, batch - 1])?.remove(0)
            };
            Ok((name.clone(), row))
        })
        .collect()
}

/// One ready-to-send V2 inference request.
#[derive(Debug, Clone)]
pub struct InferRequest {
    pub model: String,
    pub path: String,
    pub body: Vec<u8>,
    /// `inference-header-content-length` for binary tensors, `None` for JSON.
    pub header_length: Option<String>,
}

impl InferRequest {
    /// The batch-1 request of a shared model, as Triton binary tensors or JSON.
    pub fn for_model(model: &str, json: bool) -> Result<InferRequest> {
        let case = reference_case(model, None);
        let inputs = first_row(&case.inputs).context("batch-1 request")?;
        let (body, header_length) = if json {
            (json_request_in_client_order(&inputs), None)
        } else {
            let (body, length) = binary_request(&inputs);
            (body, Some(length.to_string()))
        };
        Ok(InferRequest {
            model: model.to_string(),
            path: format!("/v2/models/{model}/infer"),
            body,
            header_length,
        })
    }

    pub fn headers(&self) -> Vec<(&str, &str)> {
        match &self.header_length {
            Some(length) => vec![("inference-header-content-length", length.as_str())],
            None => vec![("content-type", "application/json")],
        }
    }
}

/// Resident memory of a process, in KiB (Linux `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `engines` engines of `threads` threads each, each on its own thread, running `inputs`
/// back to back for `seconds`: calls per second of them all.
pub fn in_process(
    model: &Path,
    inputs: &[Tensors],
    threads: usize,
    engines: usize,
    seconds: f64,
) -> Result<Stats> {
    init_onnxruntime();
    let config = EngineConfig {
        threads,
        instances: engines,
        ..EngineConfig::default()
    };
    let mut loaded = Vec::new();
    for _ in 0..engines.max(1) {
        let mut engine = OrtEngine::load(model, &config)?;
        for input in inputs {
            engine.run(input)?;
        }
        loaded.push(engine);
    }
    let start = Instant::now();
    let runs: Vec<Result<Vec<Duration>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = loaded
            .into_iter()
            .map(|mut engine| {
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    for input in inputs.iter().cycle() {
                        if start.elapsed().as_secs_f64() >= seconds {
                            break;
                        }
                        let t = Instant::now();
                        engine.run(input)?;
                        latencies.push(t.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("engine thread panicked")))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    for run in runs {
        latencies.extend(run?);
    }
    Ok(stats(latencies, elapsed, 0))
}
