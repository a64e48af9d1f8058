//! Running the HTTP front door: listeners, background model loading, the repository watcher,
//! and graceful shutdown (stop accepting, drain in-flight requests within a deadline).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::router::{metrics_router, router};
use crate::http::state::AppState;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub address: SocketAddr,
    /// A second listener serving only `/metrics` (it is on the main port too).
    pub metrics_address: Option<SocketAddr>,
    /// How long in-flight requests may take to finish after SIGTERM or ctrl-c.
    pub shutdown_grace: Duration,
    /// Poll the repository this often and hot-swap changed models.
    pub watch_interval: Option<Duration>,
}

/// Serves until SIGTERM or ctrl-c. Models load in the background after the listener is up, so
/// liveness answers at once and readiness turns on when they are warm.
pub async fn serve(state: AppState, options: ServeOptions) -> std::io::Result<()> {
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
    start_loading(&state, options.watch_interval);

    let (stop, stopped) = watch::channel(false);
    let accepting = state.accepting.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: draining in-flight requests");
        accepting.store(false, Ordering::Release);
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
    tracing::info!("stopped");
    Ok(())
}

fn start_loading(state: &AppState, watch_interval: Option<Duration>) {
    let registry = state.registry.clone();
    let spawned = std::thread::Builder::new()
        .name("model-loader".into())
        .spawn(move || {
            if let Err(e) = registry.load_all() {
                tracing::error!("cannot load the model repository: {e}");
            }
            let served = registry.served().len();
            tracing::info!(models = served, root = %registry.root().display(), "startup loading done");
            println!("ready: {served} model(s) from {}", registry.root().display());
            let Some(interval) = watch_interval else { return };
            loop {
                std::thread::sleep(interval);
                registry.sync_with_repository();
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the model loader: {e}");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
