//! Loading the repository in the background once the transports listen (liveness answers at
//! once; readiness turns on when the models are warm), and then, with `--watch`, polling it
//! and hot-swapping what changed. Repository scans and loads never run on the executor.

use std::sync::Arc;
use std::time::Duration;

use crate::registry::Registry;

/// Starts the loader thread: every model now, then a sync every `watch_interval`.
pub fn load_in_background(registry: Arc<Registry>, watch_interval: Option<Duration>) {
    let spawned = std::thread::Builder::new()
        .name("model-loader".into())
        .spawn(move || {
            if let Err(e) = registry.load_all() {
                tracing::error!("cannot load the model repository: {e}");
            }
            let served = registry.served().len();
            let root = registry.root().display().to_string();
            tracing::info!(models = served, root, "startup loading done");
            // Scripts and tests read this line to know the models are loaded.
            println!("ready: {served} model(s) from {root}");
            let Some(interval) = watch_interval else {
                return;
            };
            loop {
                std::thread::sleep(interval);
                registry.sync_with_repository();
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the model loader: {e}");
    }
}
