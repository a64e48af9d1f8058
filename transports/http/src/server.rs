//! Running the HTTP front door: one acceptor handing connections to `event_loops` threads,
//! an optional metrics-only listener, and graceful shutdown: when `shutdown` fires, stop
//! accepting and let in-flight requests drain within a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::event_loop::{EventLoop, Outcome, accept};
use crate::router::{metrics_router, router};
use crate::state::AppState;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub address: SocketAddr,
    /// A second listener serving only `/metrics` (it is on the main port too).
    pub metrics_address: Option<SocketAddr>,
    /// How long in-flight requests may take to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// Threads serving connections, each running its own event loop.
    pub event_loops: usize,
}

/// Serves until `shutdown` completes, then drains for at most `shutdown_grace`.
pub async fn serve(
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(options.address).await?;
    let address = listener.local_addr()?;
    // Scripts and tests read this line to find the port (useful with --http-port 0).
    println!("destino listening on http://{address}");
    tracing::info!(%address, event_loops = options.event_loops, "listening");
    if let Some(metrics_address) = options.metrics_address {
        let metrics_listener = TcpListener::bind(metrics_address).await?;
        tracing::info!(address = %metrics_listener.local_addr()?, "metrics listening");
        let app = metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics_listener, app).await {
                tracing::error!("metrics listener failed: {e}");
            }
        });
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut senders = Vec::new();
    let mut loops = Vec::new();
    for index in 0..options.event_loops.max(1) {
        let (sender, connections) = mpsc::unbounded_channel();
        let (done, finished) = oneshot::channel();
        let event_loop = EventLoop {
            connections,
            address,
            app: router(state.clone()),
            stopped: stopped.clone(),
            grace: options.shutdown_grace,
        };
        std::thread::Builder::new()
            .name(format!("http-{index}"))
            .spawn(move || {
                let _ = done.send(event_loop.run());
            })?;
        senders.push(sender);
        loops.push(finished);
    }
    tokio::spawn(accept(listener, senders, stopped));
    let mut drained = true;
    for finished in loops {
        let outcome = finished
            .await
            .map_err(|_| std::io::Error::other("an HTTP event loop stopped unexpectedly"))??;
        drained &= outcome == Outcome::Drained;
    }
    if !drained {
        let grace = options.shutdown_grace;
        tracing::warn!(
            ?grace,
            "drain deadline passed; closed the remaining connections"
        );
    }
    Ok(())
}
