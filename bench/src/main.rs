//! `destino-bench`: closed-loop HTTP load against a running server (each of `concurrency`
//! clients sends its next request when the previous answer arrives), and the same model's
//! raw in-process ONNX Runtime throughput, so the server's overhead reads as a ratio.
//!
//! `bench/run` starts a release server and calls this for the models and concurrencies of
//! the README table.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use destino_bench::{Stats, first_row, ms, stats};
use destino_core::{Engine, EngineConfig, Tensors};
use destino_server::ort_engine::OrtEngine;
use destino_tests::server::Client;
use destino_tests::v2::{binary_request, json_request};
use destino_tests::{init_onnxruntime, model_path, reference_case};

#[derive(Debug, Parser)]
struct Args {
    /// The server, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// Shared model to benchmark (its reference input's first row is the request).
    #[arg(long)]
    model: String,
    /// Client counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Send JSON instead of Triton binary tensors.
    #[arg(long)]
    json: bool,
    /// Engine threads for the in-process measurement (match the server's --threads).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn in_process(model: &Path, inputs: &Tensors, threads: usize, seconds: f64) -> Result<Stats> {
    init_onnxruntime();
    let config = EngineConfig {
        threads,
        ..EngineConfig::default()
    };
    let mut engine = OrtEngine::load(model, &config)?;
    engine.run(inputs)?;
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        engine.run(inputs)?;
        latencies.push(t.elapsed());
    }
    Ok(stats(latencies, start.elapsed(), 0))
}

fn over_http(args: &Args, inputs: &Tensors, concurrency: usize) -> Stats {
    let path = format!("/v2/models/{}/infer", args.model);
    let (body, header) = if args.json {
        (
            serde_json::to_vec(&json_request(inputs)).unwrap_or_default(),
            None,
        )
    } else {
        let (body, length) = binary_request(inputs);
        (body, Some(length.to_string()))
    };
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, path, body, header) = (
                Client::new(&args.url),
                path.clone(),
                body.clone(),
                header.clone(),
            );
            std::thread::spawn(move || {
                let headers: Vec<(&str, &str)> = match &header {
                    Some(length) => vec![("inference-header-content-length", length.as_str())],
                    None => vec![("content-type", "application/json")],
                };
                let (mut latencies, mut errors) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if client.post(&path, &headers, &body).status == 200 {
                        latencies.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        if let Ok((l, e)) = worker.join() {
            latencies.extend(l);
            errors += e;
        }
    }
    stats(latencies, start.elapsed(), errors)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let case = reference_case(&args.model, None);
    let inputs = first_row(&case.inputs).context("batch-1 request")?;
    let model = model_path(&args.model);
    let engine = in_process(&model, &inputs, args.threads, args.seconds)?;
    let protocol = if args.json { "JSON" } else { "binary" };
    println!(
        "| {} | in-process engine | 1 | {:.0} | {} | {} | 1.00 |",
        args.model,
        engine.per_second,
        ms(engine.p50),
        ms(engine.p99)
    );
    for &concurrency in &args.concurrency {
        let http = over_http(&args, &inputs, concurrency);
        let errors = if http.errors > 0 {
            format!(" ({} errors)", http.errors)
        } else {
            String::new()
        };
        println!(
            "| {} | HTTP {protocol} | {concurrency} | {:.0}{errors} | {} | {} | {:.2} |",
            args.model,
            http.per_second,
            ms(http.p50),
            ms(http.p99),
            http.per_second / engine.per_second
        );
    }
    Ok(())
}
