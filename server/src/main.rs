//! `destino-server`: the host binary.

use std::process::ExitCode;

use clap::Parser;
use destino_server::config::{Command, ServerConfig};
use destino_server::{commands, serve};

fn main() -> ExitCode {
    destino_cli::memory::tune_allocator(&destino_cli::memory::host_tunables());
    let config = ServerConfig::parse();
    let runtime = &config.runtime;
    let result = match &config.command {
        Command::Serve(args) => serve::serve(runtime, args),
        Command::Run(args) => commands::run(runtime, args),
        Command::Parity(args) => commands::parity(runtime, args),
        Command::Batch(args) => commands::batch(runtime, args),
        Command::Inspect(args) => commands::inspect(runtime, args),
        Command::Probe(args) => Ok(destino_cli::probe::run_probe(args)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("destino-server: {e}");
        ExitCode::FAILURE
    })
}
