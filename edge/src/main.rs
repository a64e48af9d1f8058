//! `destino-edge`: the device binary. Pure Rust (tract): no ONNX Runtime, no C++ runtime.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use destino_core::offline::{InspectArgs, RunArgs, describe, describe_support, run_npz};
use destino_core::{Engine, EngineConfig, OnnxModel};
use destino_edge::TractEngine;

/// destino on devices: score ONNX models with the pure-Rust tract engine.
#[derive(Debug, Parser)]
#[command(name = "destino-edge", version)]
struct EdgeConfig {
    /// Threads one inference may use.
    #[arg(long, global = true, env = "DESTINO_THREADS", default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score the tensors of an .npz file and write the outputs to another .npz.
    Run(RunArgs),
    /// Show a model's inputs, outputs, opsets and whether tract can run all its operators.
    Inspect(InspectArgs),
}

fn main() -> ExitCode {
    let config = EdgeConfig::parse();
    let engine_config = EngineConfig {
        threads: config.threads,
        ..EngineConfig::default()
    };
    match config.command {
        Command::Run(args) => {
            let result = TractEngine::load(&args.model, &engine_config)
                .and_then(|mut engine| run_npz(&mut engine, &args.inputs, &args.outputs));
            match result {
                Ok(outputs) => {
                    let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
                    println!("wrote {} ({})", args.outputs.display(), names.join(", "));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
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
