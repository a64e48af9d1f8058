//! `destino-server serve`: the engine loader with its GPU policy, then the HTTP front door
//! from the core.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use destino_core::model::EngineLoader;
use destino_core::{Device, EngineConfig, Result};

use crate::commands::engine_loader;
use crate::config::{EngineKind, RuntimeArgs, SERVER_DEFAULTS, ServerServeArgs};
use crate::ort_engine::runtime_version;

pub fn serve(runtime: &RuntimeArgs, args: &ServerServeArgs) -> Result<ExitCode> {
    args.common.init_logging();
    let loader = engine_loader(runtime, runtime.engine)?;
    if runtime.engine == EngineKind::Ort {
        println!("onnxruntime: {}", runtime_version());
    }
    let loader = with_gpu_policy(loader, args.require_gpu);
    let registry = args
        .common
        .registry(loader, runtime.engine_config(), &SERVER_DEFAULTS)?;
    Ok(args.common.serve(registry, &SERVER_DEFAULTS))
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
