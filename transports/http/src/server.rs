//! Running the HTTP front door: the listener (and an optional metrics-only one), and graceful
//! shutdown: when `shutdown` fires, stop accepting and let in-flight requests drain within a
//! deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

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
}

/// Serves until `shutdown` completes, then drains for at most `shutdown_grace`.
pub async fn serve(
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(options.address).await?;
    let address = listener.local_addr()?;
    // Small answers go out at once instead of waiting on Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    // Scripts and tests read this line to find the port (useful with --http-port 0).
    println!("destino listening on http://{address}");
    tracing::info!(%address, "listening");
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
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut graceful = stopped.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|s| *s).await;
    });
    let mut deadline = stopped;
    tokio::select! {
        result = server => result?,
        _ = async move {
            let _ = deadline.wait_for(|s| *s).await;
            tokio::time::sleep(options.shutdown_grace).await;
        } => tracing::warn!(grace = ?options.shutdown_grace, "drain deadline passed; closing remaining connections"),
    }
    Ok(())
}
