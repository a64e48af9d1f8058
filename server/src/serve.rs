//! `destino-server serve`: the engine, the device policy decided once at start, then the
//! launch sequence every destination shares.

use std::process::ExitCode;

use destino_cli::device::start_device;
use destino_core::Result;
use destino_ort::{OrtEngine, runtime_version};
use destino_serving::device::with_device_fallback;
use destino_tract::TractEngine;

use crate::commands::engine_loader;
use crate::config::{EngineKind, RuntimeArgs, SERVER_DEFAULTS, ServerServeArgs};

pub fn serve(runtime: &RuntimeArgs, args: &ServerServeArgs) -> Result<ExitCode> {
    args.common.init_logging();
    let loader = engine_loader(runtime, runtime.engine)?;
    let mut config = runtime.engine_config();
    config.require_device = args.require_gpu;
    if runtime.engine == EngineKind::Ort {
        println!("onnxruntime: {}", runtime_version());
    }
    let check = match runtime.engine {
        EngineKind::Ort => OrtEngine::check_device,
        EngineKind::Tract => TractEngine::check_device,
    };
    let config = match start_device(config, check, SERVER_DEFAULTS.program) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let loader = with_device_fallback(loader);
    let registry = args.common.registry(loader, config, &SERVER_DEFAULTS)?;
    Ok(args.common.serve(registry, &SERVER_DEFAULTS, None))
}
