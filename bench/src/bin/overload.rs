//! `destino-overload`: overload and drain behaviour of a running server, in four phases of
//! closed-loop clients (each sends its next request as soon as it has an answer, ignoring
//! `Retry-After`: the worst case):
//!   baseline  the sustainable number of clients;
//!   overload  `factor` times as many: the excess must be refused with 429/503 and
//!             `Retry-After`, accepted requests' p99 must stay bounded, memory flat;
//!   recovery  the sustainable number again: no errors, latency back to baseline;
//!   drain     SIGTERM to the server under load: no request it accepted may fail, and it
//!             must exit (the script checks the exit status).
//! Exits 1 when a phase breaks its rule. `bench/overload` starts a release server for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use destino_bench::{InferRequest, ms, rss_kib, stats};

#[derive(Debug, Parser)]
struct Args {
    /// The server, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    url: String,
    /// The server's process id (memory readings and SIGTERM).
    #[arg(long)]
    pid: u32,
    /// Shared model to load.
    #[arg(long, default_value = "efficientnet_lite0")]
    model: String,
    /// Clients the server sustains without queueing much.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// How many times the sustainable clients the overload phase runs.
    #[arg(long, default_value_t = 10)]
    factor: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
}

/// What one phase saw.
#[derive(Debug, Default)]
struct Phase {
    statuses: BTreeMap<u16, usize>,
    /// 429/503 answers without a `Retry-After` header.
    without_retry_after: usize,
    /// Requests that got no HTTP answer (refused or closed connections).
    transport_errors: usize,
    accepted: Vec<Duration>,
    peak_rss_kib: u64,
}

fn run_phase(args: &Args, request: &InferRequest, clients: usize, stop: Arc<AtomicBool>) -> Phase {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("{}{}", args.url, request.path);
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (agent, url, request, stop) =
                (agent.clone(), url.clone(), request.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut phase = Phase::default();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let mut call = agent.post(&url);
                    for (name, value) in request.headers() {
                        call = call.header(name, value);
                    }
                    match call.send(&request.body[..]) {
                        Ok(mut response) => {
                            let status = response.status().as_u16();
                            let _ = response.body_mut().read_to_vec();
                            *phase.statuses.entry(status).or_default() += 1;
                            if status == 200 {
                                phase.accepted.push(started.elapsed());
                            } else if (status == 429 || status == 503)
                                && response.headers().get("retry-after").is_none()
                            {
                                phase.without_retry_after += 1;
                            }
                        }
                        Err(_) => {
                            phase.transport_errors += 1;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                phase
            })
        })
        .collect();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    while !stop.load(Ordering::Relaxed) {
        peak = peak.max(rss_kib(args.pid).unwrap_or(0));
        if Instant::now() >= deadline {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut total = Phase {
        peak_rss_kib: peak,
        ..Phase::default()
    };
    for worker in workers {
        if let Ok(phase) = worker.join() {
            for (status, n) in phase.statuses {
                *total.statuses.entry(status).or_default() += n;
            }
            total.without_retry_after += phase.without_retry_after;
            total.transport_errors += phase.transport_errors;
            total.accepted.extend(phase.accepted);
        }
    }
    total
}

fn row(name: &str, clients: usize, phase: &Phase, seconds: f64) {
    let accepted = phase.accepted.len();
    let s = stats(phase.accepted.clone(), Duration::from_secs_f64(seconds), 0);
    let refused: usize = phase
        .statuses
        .iter()
        .filter(|(status, _)| **status != 200)
        .map(|(_, n)| n)
        .sum();
    let statuses: Vec<String> = phase
        .statuses
        .iter()
        .map(|(status, n)| format!("{status}×{n}"))
        .collect();
    println!(
        "| {name} | {clients} | {accepted} | {:.0} | {} | {} | {refused} | {} | {} | {} | {:.1} MiB |",
        s.per_second,
        ms(s.p50),
        ms(s.p99),
        statuses.join(" "),
        phase.without_retry_after,
        phase.transport_errors,
        phase.peak_rss_kib as f64 / 1024.0
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let request = InferRequest::for_model(&args.model, false)?;
    println!(
        "| phase | clients | accepted | accepted/s | p50 ms | p99 ms | refused | statuses | refusals without Retry-After | no answer | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let timed = |clients| run_phase(&args, &request, clients, Arc::new(AtomicBool::new(false)));
    let baseline = timed(args.clients);
    row("baseline", args.clients, &baseline, args.seconds);
    let overload_clients = args.clients * args.factor;
    let overload = timed(overload_clients);
    row("overload", overload_clients, &overload, args.seconds);
    let recovery = timed(args.clients);
    row("recovery", args.clients, &recovery, args.seconds);

    // Drain: SIGTERM after a second of load; the phase ends when the server is gone.
    let stop = Arc::new(AtomicBool::new(false));
    let pid = args.pid;
    let signaller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            while rss_kib(pid).is_some() {
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    let drain_args = Args {
        seconds: 600.0,
        ..args
    };
    let drain = run_phase(&drain_args, &request, drain_args.clients, stop);
    let _ = signaller.join();
    row("drain (SIGTERM)", drain_args.clients, &drain, 1.0);

    let mut broken = Vec::new();
    let unexpected =
        |phase: &Phase, allowed: &[u16]| phase.statuses.keys().any(|s| !allowed.contains(s));
    if unexpected(&baseline, &[200]) || baseline.transport_errors > 0 {
        broken.push("baseline had errors");
    }
    if unexpected(&overload, &[200, 429, 503]) || overload.transport_errors > 0 {
        broken.push("overload answered something other than 200/429/503");
    }
    if overload.without_retry_after > 0 {
        broken.push("overload refusals without Retry-After");
    }
    if unexpected(&recovery, &[200]) || recovery.transport_errors > 0 {
        broken.push("recovery had errors");
    }
    if unexpected(&drain, &[200]) {
        broken.push("a request accepted during the drain failed");
    }
    if !broken.is_empty() {
        bail!("{}", broken.join("; "));
    }
    Ok(())
}
