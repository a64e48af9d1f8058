//! HTTP event loops: threads with a single-threaded runtime each, serving the connections one
//! acceptor hands them in turn. A connection lives on one thread, so a request costs no
//! cross-thread wake-ups or work stealing, and every loop gets its share of the clients
//! (several loops accepting on one socket let one of them take nearly all).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// A connection on its way to an event loop, detached from the acceptor's runtime.
type Handoff = (std::net::TcpStream, SocketAddr);

/// How an event loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every connection finished within the grace period.
    Drained,
    /// The grace period ran out; the remaining connections were closed.
    Cut,
}

/// One thread's share of the front door.
pub struct EventLoop {
    pub connections: mpsc::UnboundedReceiver<Handoff>,
    pub address: SocketAddr,
    pub app: Router,
    pub stopped: watch::Receiver<bool>,
    pub grace: Duration,
}

impl EventLoop {
    /// Serves on the calling thread until shutdown and the drain are over.
    pub fn run(self) -> std::io::Result<Outcome> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let outcome = runtime.block_on(self.serve());
        // Blocking work still running (a large body being parsed) must not hold the thread.
        runtime.shutdown_background();
        Ok(outcome)
    }

    async fn serve(self) -> Outcome {
        let listener = Handed {
            connections: self.connections,
            address: self.address,
        };
        let mut graceful = self.stopped.clone();
        let server = axum::serve(listener, self.app).with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|s| *s).await;
        });
        let mut deadline = self.stopped;
        let grace = self.grace;
        tokio::select! {
            // Serving never fails: accept errors are handled by the acceptor.
            _ = server => Outcome::Drained,
            () = async move {
                let _ = deadline.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => Outcome::Cut,
        }
    }
}

/// Accepts on `listener` and hands each connection to the next loop, until `stopped`.
pub async fn accept(
    mut listener: TcpListener,
    loops: Vec<mpsc::UnboundedSender<Handoff>>,
    mut stopped: watch::Receiver<bool>,
) {
    for next in (0..loops.len()).cycle() {
        let (stream, peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            _ = stopped.wait_for(|s| *s) => return,
        };
        // Small answers go out at once instead of waiting on Nagle's algorithm.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        match stream.into_std() {
            Ok(stream) => {
                let _ = loops[next].send((stream, peer));
            }
            Err(e) => tracing::debug!("cannot hand over a connection: {e}"),
        }
    }
}

/// The connections handed to one loop, as a listener for `axum::serve`.
struct Handed {
    connections: mpsc::UnboundedReceiver<Handoff>,
    address: SocketAddr,
}

impl Listener for Handed {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Some((stream, peer)) = self.connections.recv().await else {
                // The acceptor stopped: shutdown has begun and ends this loop's serving.
                return std::future::pending().await;
            };
            match TcpStream::from_std(stream) {
                Ok(stream) => return (stream, peer),
                Err(e) => tracing::debug!("cannot take over a connection: {e}"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.address)
    }
}
