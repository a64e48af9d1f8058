//! `destino-bench`: closed-loop HTTP load against a running server (each of `concurrency`
//! clients sends its next request when the previous answer arrives), and the same model's
//! raw in-process ONNX Runtime throughput, on one engine and on one engine per core (the
//! machine's ceiling), so the server's overhead reads as ratios. (bench/run compares small
//! requests with a static-response server using wrk, which loads it harder than these
//! clients can.)
//!
//! With `--image FILE` the request is that encoded image, posted to the model's image route
//! (`/models/{model}/predict`), and the in-process engine runs the tensor it preprocesses to:
//! the ratio then includes decoding and resizing. With `--text FILE` (a text model), each
//! request is one of the file's sentences to `/v1/embeddings` (`text.rs`).
//!
//! `bench/run` starts a release server and calls this for the models and concurrencies of
//! the README table.

mod grpc;
mod text;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use destino_bench::{Stats, first_row, in_process, ms, stats};
use destino_core::Tensors;
use destino_core::manifest::Manifest;
use destino_core::preprocess::DEFAULT_MAX_PIXELS;
use destino_tests::server::Client;
use destino_tests::v2::{binary_request, json_request_in_client_order};
use destino_tests::{model_path, reference_case};

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
    /// Post this encoded image to the model's image route instead of its reference tensors.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Post this file's sentences (one per line, in turn) to `/v1/embeddings`; the model's
    /// tokenizer is `<model>.tokenizer.json` beside it.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Where the model's `model.toml` is (for `--image`).
    #[arg(long, default_value = "models")]
    manifests: PathBuf,
    /// Send the reference tensors over gRPC to this address (host:port), raw contents.
    #[arg(long)]
    grpc: Option<String>,
    /// Engines run side by side for the all-cores ceiling (one thread each). [default: the
    /// cores of this machine]
    #[arg(long)]
    engines: Option<usize>,
    /// Write the request's body to this file, send it to --url once, write the answer's
    /// body to --save-response, and exit (for other load generators and a static server).
    #[arg(long, requires = "save_response")]
    save_request: Option<PathBuf>,
    #[arg(long, requires = "save_request")]
    save_response: Option<PathBuf>,
}

/// What one client sends, over and over.
struct Request {
    path: String,
    /// Bodies sent in turn (one for all but text requests).
    bodies: Vec<Vec<u8>>,
    headers: Vec<(&'static str, String)>,
    protocol: &'static str,
}

impl Request {
    fn new(args: &Args, inputs: &Tensors, image: Option<&[u8]>) -> Request {
        if let Some(bytes) = image {
            return Request {
                path: format!("/models/{}/predict", args.model),
                bodies: vec![bytes.to_vec()],
                headers: vec![("content-type", "image/png".to_string())],
                protocol: "image",
            };
        }
        let path = format!("/v2/models/{}/infer", args.model);
        if args.json {
            Request {
                path,
                bodies: vec![json_request_in_client_order(inputs)],
                headers: vec![("content-type", "application/json".to_string())],
                protocol: "JSON",
            }
        } else {
            let (body, length) = binary_request(inputs);
            Request {
                path,
                bodies: vec![body],
                headers: vec![("inference-header-content-length", length.to_string())],
                protocol: "binary",
            }
        }
    }
}

/// The tensors `image` preprocesses to under the model's `model.toml`.
fn image_inputs(args: &Args, image: &[u8]) -> Result<Tensors> {
    let manifest = Manifest::load_from_dir(&args.manifests.join(&args.model))?;
    let (name, spec) = manifest
        .inputs
        .iter()
        .find_map(|(name, spec)| Some((name.clone(), spec.image.clone()?)))
        .context("the model.toml declares no image input")?;
    Ok(Tensors::from([(
        name,
        spec.tensor_from_bytes(image, DEFAULT_MAX_PIXELS)?,
    )]))
}

fn over_http(args: &Args, request: &Request, concurrency: usize) -> Stats {
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = Client::new(&args.url);
            let (path, bodies, headers) = (
                request.path.clone(),
                request.bodies.clone(),
                request.headers.clone(),
            );
            std::thread::spawn(move || {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let (mut latencies, mut errors) = (Vec::new(), 0);
                for body in bodies.iter().cycle() {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let t = Instant::now();
                    if client.post(&path, &headers, body).status == 200 {
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

/// `served / baseline`, two decimals.
fn ratio(served: &Stats, baseline: &Stats) -> String {
    format!("{:.2}", served.per_second / baseline.per_second)
}

fn row(model: &str, path: &str, clients: usize, served: &Stats, ratios: &[String]) {
    let errors = if served.errors > 0 {
        format!(" ({} errors)", served.errors)
    } else {
        String::new()
    };
    println!(
        "| {model} | {path} | {clients} | {:.0}{errors} | {} | {} | {} |",
        served.per_second,
        ms(served.p50),
        ms(served.p99),
        ratios.join(" | ")
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let image = match &args.image {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("{}", path.display()))?),
        None => None,
    };
    let model = model_path(&args.model);
    let text = match &args.text {
        Some(file) => {
            let tokenizer = model.with_extension("tokenizer.json");
            Some(text::case(&args.model, &model, &tokenizer, file)?)
        }
        None => None,
    };
    let (request, inputs) = match &text {
        Some(case) => (
            Request {
                path: "/v1/embeddings".into(),
                bodies: case.bodies.clone(),
                headers: vec![("content-type", "application/json".to_string())],
                protocol: "text",
            },
            case.inputs.clone(),
        ),
        None => {
            let inputs = match &image {
                Some(bytes) => image_inputs(&args, bytes)?,
                None => first_row(&reference_case(&args.model, None).inputs)
                    .context("batch-1 request")?,
            };
            (Request::new(&args, &inputs, image.as_deref()), vec![inputs])
        }
    };
    if let (Some(request_file), Some(file)) = (&args.save_request, &args.save_response) {
        let body = &request.bodies[0];
        std::fs::write(request_file, body)?;
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let answer = Client::new(&args.url).post(&request.path, &headers, body);
        anyhow::ensure!(
            answer.status == 200,
            "the server answered {}",
            answer.status
        );
        std::fs::write(file, &answer.body)?;
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engines = args.engines.unwrap_or(cores);
    let one = in_process(&model, &inputs, args.threads, 1, args.seconds)?;
    let all = in_process(&model, &inputs, args.threads, engines, args.seconds)?;
    row(
        &args.model,
        "in-process engine",
        1,
        &one,
        &["1.00".into(), ratio(&one, &all)],
    );
    let label = format!("in-process, {engines} engines");
    row(
        &args.model,
        &label,
        engines,
        &all,
        &[ratio(&all, &one), "1.00".into()],
    );
    let grpc = args
        .grpc
        .as_ref()
        .map(|address| (address, grpc::request(&args.model, &inputs[0])));
    for &concurrency in &args.concurrency {
        let (served, path) = match &grpc {
            Some((address, message)) => (
                grpc::load(address, message, concurrency, args.seconds)?,
                "gRPC raw".to_string(),
            ),
            None => (
                over_http(&args, &request, concurrency),
                format!("HTTP {}", request.protocol),
            ),
        };
        row(
            &args.model,
            &path,
            concurrency,
            &served,
            &[ratio(&served, &one), ratio(&served, &all)],
        );
        if let Some(case) = &text {
            // The server's CPU time per request is cores / throughput at best.
            let cpu_us = cores as f64 * 1e6 / served.per_second.max(f64::MIN_POSITIVE);
            println!(
                "| {} | tokenizing (in-process) | {concurrency} | {:.1} µs/sentence | | | {:.1} % of the CPU time per request | |",
                args.model,
                case.tokenize_us,
                100.0 * case.tokenize_us / cpu_us
            );
        }
    }
    Ok(())
}
