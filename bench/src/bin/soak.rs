//! `destino-soak`: drives a running server with a long mix of requests across models, JSON and
//! binary, and reports errors and the server's resident memory before, after a warm-up and at
//! the end. Exits 1 on any error or when memory grew by the limit or more after warm-up.
//!
//! `bench/soak` starts a release server and runs this with 1 M requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use destino_bench::{InferRequest, rss_kib};
use destino_tests::server::Client;

#[derive(Debug, Parser)]
struct Args {
    /// The server, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// The server's process id, for its resident memory.
    #[arg(long)]
    pid: u32,
    /// Requests in all.
    #[arg(long, default_value_t = 1_000_000)]
    requests: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Shared models and their weights in the mix, MODEL:WEIGHT,...
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "sklearn_digits_rf:70,silero_vad:20,ppocr_mobile_v2_cls:9,efficientnet_lite0:1"
    )]
    mix: Vec<String>,
    /// Share of the requests that warm the server up before the baseline memory reading.
    #[arg(long, default_value_t = 0.05)]
    warmup: f64,
    /// Largest memory growth after warm-up accepted, in percent.
    #[arg(long, default_value_t = 5.0)]
    max_growth_percent: f64,
}

/// The request list the workers cycle through: each model as often as its weight, in binary
/// and in JSON.
fn schedule(mix: &[String]) -> Result<Vec<InferRequest>> {
    let mut out = Vec::new();
    for entry in mix {
        let Some((model, weight)) = entry.split_once(':') else {
            bail!("--mix entries are MODEL:WEIGHT, got `{entry}`");
        };
        let weight: usize = weight.parse()?;
        for json in [false, true] {
            let request = InferRequest::for_model(model, json)?;
            out.extend(std::iter::repeat_n(request, weight));
        }
    }
    // Interleave models instead of sending runs of one.
    let n = out.len();
    let stride = (1..n)
        .rev()
        .find(|s| gcd(*s, n) == 1 && *s > n / 3)
        .unwrap_or(1);
    Ok((0..n).map(|i| out[(i * stride) % n].clone()).collect())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let schedule = Arc::new(schedule(&args.mix)?);
    let warmup_requests = (args.requests as f64 * args.warmup) as usize;
    let next = Arc::new(AtomicUsize::new(0));
    let rss_start = rss_kib(args.pid).unwrap_or(0);
    let rss_warm = Arc::new(AtomicUsize::new(0));
    // Resident memory at each tenth of the run, to tell a plateau from steady growth.
    let tenth = (args.requests / 10).max(1);
    let rss_tenths: Arc<Vec<AtomicUsize>> =
        Arc::new((0..10).map(|_| AtomicUsize::new(0)).collect());
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (schedule, next, rss_warm, rss_tenths) = (
                schedule.clone(),
                next.clone(),
                rss_warm.clone(),
                rss_tenths.clone(),
            );
            let (client, total, pid) = (Client::new(&args.url), args.requests, args.pid);
            std::thread::spawn(move || {
                let mut errors: BTreeMap<String, usize> = BTreeMap::new();
                let mut count = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    if i == warmup_requests {
                        rss_warm.store(rss_kib(pid).unwrap_or(0) as usize, Ordering::Relaxed);
                    }
                    if i % tenth == 0
                        && let Some(slot) = rss_tenths.get(i / tenth)
                    {
                        slot.store(rss_kib(pid).unwrap_or(0) as usize, Ordering::Relaxed);
                    }
                    let request = &schedule[i % schedule.len()];
                    let reply = client.post(&request.path, &request.headers(), &request.body);
                    if reply.status != 200 {
                        *errors
                            .entry(format!("{} {}", request.model, reply.status))
                            .or_default() += 1;
                    }
                    count += 1;
                }
                (count, errors)
            })
        })
        .collect();
    let mut done = 0;
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for worker in workers {
        let Ok((count, worker_errors)) = worker.join() else {
            bail!("a client thread panicked");
        };
        done += count;
        for (key, n) in worker_errors {
            *errors.entry(key).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    // Give the allocator a moment to return what the last requests freed.
    std::thread::sleep(Duration::from_millis(500));
    let rss_end = rss_kib(args.pid).unwrap_or(0);
    let rss_warm = rss_warm.load(Ordering::Relaxed) as u64;
    let growth = (rss_end as f64 - rss_warm as f64) / rss_warm.max(1) as f64 * 100.0;
    let failed: usize = errors.values().sum();
    println!(
        "| requests | clients | seconds | req/s | errors | RSS at start | RSS after warm-up | RSS at end | growth after warm-up |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {done} | {} | {:.0} | {:.0} | {failed} | {} | {} | {} | {growth:+.1} % |",
        args.concurrency,
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        mib(rss_start),
        mib(rss_warm),
        mib(rss_end),
    );
    let tenths: Vec<String> = rss_tenths
        .iter()
        .map(|r| format!("{:.1}", r.load(Ordering::Relaxed) as f64 / 1024.0))
        .collect();
    println!(
        "RSS at 0 %, 10 %, … 90 % of the requests, then the end (MiB): {}, {:.1}",
        tenths.join(", "),
        rss_end as f64 / 1024.0
    );
    for (key, n) in &errors {
        println!("errors: {key}: {n}");
    }
    if failed > 0 || growth >= args.max_growth_percent || rss_end == 0 {
        bail!("soak failed: {failed} errors, memory growth {growth:+.1} %");
    }
    Ok(())
}
