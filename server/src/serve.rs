//! `destino-server serve`: the engine, the device policy decided once at start, then the
//! launch sequence every destination shares.

use std::process::ExitCode;

use destino_core::{Device, EngineConfig, Result};
use destino_ort::{OrtEngine, runtime_version};
use destino_serving::device::with_device_fallback;

use crate::commands::engine_loader;
use crate::config::{EngineKind, RuntimeArgs, SERVER_DEFAULTS, ServerServeArgs};

pub fn serve(runtime: &RuntimeArgs, args: &ServerServeArgs) -> Result<ExitCode> {
    args.common.init_logging();
    let loader = engine_loader(runtime, runtime.engine)?;
    let mut config = runtime.engine_config();
    if runtime.engine == EngineKind::Ort {
        println!("onnxruntime: {}", runtime_version());
        match start_device(&config, args.require_gpu) {
            Ok(device) => config.device = device,
            Err(code) => return Ok(code),
        }
    }
    let loader = with_device_fallback(loader, args.require_gpu);
    let registry = args.common.registry(loader, config, &SERVER_DEFAULTS)?;
    Ok(args.common.serve(registry, &SERVER_DEFAULTS, None))
}

/// Starts the requested device once, before any model loads: the device models use, or
/// (with `--require-gpu`) the exit code when it does not start. Without a GPU the server
/// falls back to the CPU for every model, loudly.
fn start_device(config: &EngineConfig, require_gpu: bool) -> Result<Device, ExitCode> {
    let Err(e) = OrtEngine::check_device(config) else {
        return Ok(config.device);
    };
    if require_gpu {
        tracing::error!("{e}; --require-gpu is set: not starting");
        eprintln!("destino-server: {e}; --require-gpu is set, so the server does not start");
        return Err(ExitCode::FAILURE);
    }
    tracing::error!(
        "GPU START FAILED, FALLING BACK TO CPU ({e}); pass --require-gpu to exit instead"
    );
    Ok(Device::Cpu)
}
