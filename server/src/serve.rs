//! `destino-server serve`: logging, the engine loader with its GPU policy, then the HTTP
//! front door from the core.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use destino_core::http::{AppState, serve as serve_http};
use destino_core::model::EngineLoader;
use destino_core::repository::Repository;
use destino_core::serving::{Metrics, Registry};
use destino_core::{Device, EngineConfig, Result};

use crate::commands::engine_loader;
use crate::config::{EngineKind, LogFormat, RuntimeArgs, ServeArgs};
use crate::ort_engine::runtime_version;

pub fn serve(runtime: &RuntimeArgs, args: &ServeArgs) -> Result<ExitCode> {
    init_logging(args);
    let loader = engine_loader(runtime, runtime.engine)?;
    if runtime.engine == EngineKind::Ort {
        println!("onnxruntime: {}", runtime_version());
    }
    let root = args.repository();
    // An unreadable repository is a configuration error: fail before listening.
    Repository::scan(&root)?;
    let loader = with_gpu_policy(loader, args.require_gpu);
    let registry = Registry::new(
        root,
        loader,
        runtime.engine_config(),
        args.serving_defaults(),
        Metrics::new(),
    );
    let state = AppState::new(Arc::new(registry), args.http_options());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.http_threads {
        builder.worker_threads(threads.max(1));
    }
    let served = builder
        .enable_all()
        .build()
        .and_then(|rt| rt.block_on(serve_http(state, args.serve_options())));
    Ok(match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "destino-server: cannot serve on {}: {e}",
                args.serve_options().address
            );
            ExitCode::FAILURE
        }
    })
}

fn init_logging(args: &ServeArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A model that cannot start on the GPU falls back to the CPU, loudly; with `require_gpu`
/// the server exits instead.
fn with_gpu_policy(loader: EngineLoader, require_gpu: bool) -> EngineLoader {
    Arc::new(move |path: &Path, config: &EngineConfig| {
        let result = loader(path, config);
        match (&result, config.device) {
            (Err(e), Device::Cuda(_)) => {
                if require_gpu {
                    tracing::error!(model = %path.display(), "GPU start failed and --require-gpu is set: {e}");
                    eprintln!(
                        "destino-server: {} cannot start on {}: {e}",
                        path.display(),
                        config.device
                    );
                    std::process::exit(1);
                }
                tracing::error!(
                    model = %path.display(),
                    "GPU START FAILED, FALLING BACK TO CPU ({e}); pass --require-gpu to exit instead"
                );
                let cpu = EngineConfig {
                    device: Device::Cpu,
                    ..config.clone()
                };
                loader(path, &cpu)
            }
            _ => result,
        }
    })
}
