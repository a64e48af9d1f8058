//! `destino-edge`: the device binary. Pure Rust (tract): no ONNX Runtime, no C++ runtime.

use std::process::ExitCode;

use clap::Parser;
use destino_core::model::loader;
use destino_core::offline::{describe, describe_support, run_command};
use destino_core::{Engine, OnnxModel};
use destino_edge::TractEngine;
use destino_edge::config::{Command, EDGE_DEFAULTS, EdgeConfig};

fn main() -> ExitCode {
    destino_core::memory::tune_allocator(destino_core::memory::DEVICE_TUNABLES);
    let config = EdgeConfig::parse();
    let engine_config = config.engine_config();
    match &config.command {
        Command::Serve(args) => {
            args.init_logging();
            match args.registry(loader::<TractEngine>(), engine_config, &EDGE_DEFAULTS) {
                Ok(registry) => args.serve(registry, &EDGE_DEFAULTS),
                Err(e) => fail(&e),
            }
        }
        Command::Probe(args) => destino_core::probe::run_probe(args),
        Command::Watch(args) => destino_edge::folder::run(args, engine_config),
        Command::Mqtt(args) => destino_edge::mqtt::run(args, engine_config),
        Command::Run(args) => TractEngine::load(&args.model, &engine_config)
            .and_then(|mut engine| run_command(&mut engine, args))
            .unwrap_or_else(|e| fail(&e)),
        Command::Inspect(args) => match OnnxModel::read(&args.model) {
            Ok(model) => {
                print!("{}", describe(&args.model, &model));
                let loaded = TractEngine::load(&args.model, &engine_config);
                let (line, ok) = describe_support("tract", &model, &loaded);
                println!("{line}");
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(&e),
        },
    }
}

fn fail(e: &destino_core::Error) -> ExitCode {
    eprintln!("destino-edge: {e}");
    ExitCode::FAILURE
}
