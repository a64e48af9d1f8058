//! `destino-edge`: the device binary. Pure Rust (tract): no ONNX Runtime, no C++ runtime.

use std::process::ExitCode;

use clap::Parser;
use destino_cli::Transport;
use destino_cli::device::start_device;
use destino_cli::machine::this_machine;
use destino_cli::offline::run_command;
use destino_core::npz::read_npz;
use destino_core::offline::{describe, describe_support};
use destino_core::{Engine, EngineConfig, EngineLoader, OnnxModel, loader};
use destino_edge::config::{Command, EDGE_DEFAULTS, EdgeConfig, MqttCommand};
use destino_serving::Instances;
use destino_serving::device::with_device_fallback;
use destino_tract::{TractEngine, describe_profile};

fn main() -> ExitCode {
    destino_cli::memory::tune_allocator(destino_cli::memory::DEVICE_TUNABLES);
    let config = EdgeConfig::parse();
    match &config.command {
        Command::Serve(args) => args.init_logging(),
        Command::Mqtt(command) => command.serve.init_logging(),
        _ => {}
    }
    // The device is checked once, before any model loads (the health probe loads none).
    let engine_config = match &config.command {
        Command::Probe(_) => config.engine_config(),
        _ => match start_device(
            config.engine_config(),
            TractEngine::check_device,
            EDGE_DEFAULTS.program,
        ) {
            Ok(engine_config) => engine_config,
            Err(code) => return code,
        },
    };
    let loader = with_device_fallback(loader::<TractEngine>());
    match &config.command {
        Command::Serve(args) => match args.registry(loader, engine_config, &EDGE_DEFAULTS) {
            Ok(registry) => args.serve(registry, &EDGE_DEFAULTS, None),
            Err(e) => fail(&e.to_string()),
        },
        Command::Mqtt(command) => mqtt(command, loader, engine_config),
        Command::Probe(args) => destino_cli::probe::run_probe(args),
        Command::Watch(args) => destino_folder::run(args, loader, engine_config),
        Command::Batch(args) => {
            let instances = Instances::Auto(this_machine(None));
            destino_batch::run(args, loader, engine_config, instances)
        }
        Command::Run(args) => TractEngine::load(&args.model, &engine_config)
            .and_then(|mut engine| run_command(&mut engine, args))
            .unwrap_or_else(|e| fail(&e.to_string())),
        Command::Profile(args) => TractEngine::load(&args.model, &engine_config)
            .and_then(|mut engine| {
                let inputs = read_npz(&args.inputs)?;
                let profile = engine.profile(&inputs, args.runs)?;
                print!("{}", describe_profile(&profile, args.nodes));
                Ok(ExitCode::SUCCESS)
            })
            .unwrap_or_else(|e| fail(&e.to_string())),
        Command::Inspect(args) => match OnnxModel::read(&args.model) {
            Ok(model) => {
                print!("{}", describe(&args.model, &model));
                let loaded = TractEngine::load(&args.model, &engine_config);
                let loaded = loaded.as_ref().map(|engine| engine as &dyn Engine);
                let (line, ok) = describe_support("tract", &model, loaded);
                println!("{line}");
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(&e.to_string()),
        },
    }
}

/// `mqtt`: the HTTP API with the MQTT bridge beside it.
fn mqtt(command: &MqttCommand, loader: EngineLoader, engine: EngineConfig) -> ExitCode {
    let mut serve = command.serve.clone();
    serve.updates.by_transport = command.mqtt.update_topic.is_some();
    let serve = &serve;
    let options = match destino_mqtt::options(&command.mqtt, serve.max_body_bytes) {
        Ok(options) => options,
        Err(e) => return fail(&e),
    };
    let registry = match serve.registry(loader, engine, &EDGE_DEFAULTS) {
        Ok(registry) => registry,
        Err(e) => return fail(&e.to_string()),
    };
    let args = command.mqtt.clone();
    let bridge: Transport =
        Box::new(move |service| Box::pin(destino_mqtt::serve(service, args, options)));
    serve.serve(registry, &EDGE_DEFAULTS, Some(bridge))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("destino-edge: {message}");
    ExitCode::FAILURE
}
