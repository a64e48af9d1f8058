//! `ServerConfig`: every flag of `destino-server`, each also settable from the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use destino_batch::BatchArgs;
use destino_cli::DestinationDefaults;
use destino_cli::offline::{InspectArgs, RunArgs, ToleranceArgs};
use destino_cli::probe::ProbeArgs;
use destino_core::{Device, EngineConfig};

/// destino on hosts: serve and score ONNX models with ONNX Runtime (or tract).
#[derive(Debug, Parser)]
#[command(name = "destino-server", version)]
pub struct ServerConfig {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load every model of the repository, warm each up, and serve.
    Serve(ServerServeArgs),
    /// Score the tensors of an .npz file and write the outputs to another .npz.
    Run(RunArgs),
    /// Run a model on both engines and compare the outputs with each other and a reference.
    Parity(ParityArgs),
    /// Score every file of a folder into resumable JSON-lines part files (shardable).
    Batch(BatchArgs),
    /// Show a model's inputs, outputs, opsets and whether the engine runs all its operators.
    Inspect(InspectArgs),
    /// GET an http:// URL and succeed on 2xx: a container health check without curl.
    Probe(ProbeArgs),
}

/// Which inference runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// ONNX Runtime (CPU, or CUDA with --device cuda).
    Ort,
    /// tract, the pure-Rust engine the edge binary uses.
    Tract,
}

#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Inference runtime.
    #[arg(long, global = true, env = "DESTINO_ENGINE", value_enum, default_value_t = EngineKind::Ort)]
    pub engine: EngineKind,
    /// Threads one inference may use. 1 keeps latency steady on small hosts where the HTTP
    /// side and a load generator share the cores; raise it on dedicated hosts.
    #[arg(long, global = true, env = "DESTINO_THREADS", default_value_t = 1)]
    pub threads: usize,
    /// Let idle ONNX Runtime worker threads spin: lower latency on dedicated cores, much
    /// slower when cores are shared.
    #[arg(long, global = true, env = "DESTINO_SPINNING")]
    pub spinning: bool,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, global = true, env = "DESTINO_DEVICE", default_value = "cpu")]
    pub device: Device,
    /// The ONNX Runtime library (libonnxruntime.so) to load; tried before ORT_DYLIB_PATH.
    #[arg(long, global = true, env = "DESTINO_ONNXRUNTIME")]
    pub onnxruntime: Option<PathBuf>,
}

impl RuntimeArgs {
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            threads: self.threads,
            spinning: self.spinning,
            device: self.device,
            require_device: false,
            low_memory: false,
            instances: 1,
        }
    }
}

/// `serve`: the flags every destination shares, plus the GPU policy only hosts have.
#[derive(Debug, Clone, Args)]
pub struct ServerServeArgs {
    #[command(flatten)]
    pub common: destino_cli::ServeArgs,
    /// Refuse to start when the requested GPU cannot start (checked once, before any model
    /// loads), and never fall back to the CPU for a model.
    #[arg(long, env = "DESTINO_REQUIRE_GPU")]
    pub require_gpu: bool,
}

/// Hosts batch a little by default and give the HTTP runtime and the engines every core.
pub const SERVER_DEFAULTS: DestinationDefaults = DestinationDefaults {
    program: "destino-server",
    max_batch_size: 4,
    http_threads: None,
    instances: destino_cli::launch::InstancesArg::Auto,
};

#[derive(Debug, Clone, Args)]
pub struct ParityArgs {
    /// The `.onnx` model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs: an `.npz` whose keys are the model's input names.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Reference outputs: an `.npz` whose keys are output names.
    #[arg(long)]
    pub expected: Option<PathBuf>,
    #[command(flatten)]
    pub tolerance: ToleranceArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        super::ServerConfig::command().debug_assert();
    }
}
