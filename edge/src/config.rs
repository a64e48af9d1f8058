//! `EdgeConfig`: every flag of `destino-edge`, each also settable from the environment.

use clap::{Args, Parser, Subcommand};
use destino_batch::BatchArgs;
use destino_cli::offline::{InspectArgs, ProfileArgs, RunArgs};
use destino_cli::probe::ProbeArgs;
use destino_cli::{DestinationDefaults, ServeArgs};
use destino_core::{Device, EngineConfig};
use destino_folder::WatchArgs;
use destino_mqtt::MqttArgs;

/// destino on devices: serve and score ONNX models with the pure-Rust tract engine.
#[derive(Debug, Parser)]
#[command(name = "destino-edge", version)]
pub struct EdgeConfig {
    /// Threads one inference may use.
    #[arg(long, global = true, env = "DESTINO_THREADS", default_value_t = 1)]
    pub threads: usize,
    /// Keep each model's parsed graph in memory so inputs of a new shape are planned without
    /// reading the model file again (costs about the model's size in memory).
    #[arg(long, global = true, env = "DESTINO_KEEP_GRAPH")]
    pub keep_graph: bool,
    /// Device: cpu, or cuda (an NVIDIA GPU through tract's CUDA runtime: a build with the
    /// `cuda` feature, CUDA 12.2 or newer and cuDNN 9). Nodes without a CUDA kernel stay on
    /// the CPU; a device that does not start falls back to the CPU, loudly.
    #[arg(long, global = true, env = "DESTINO_DEVICE", default_value = "cpu")]
    pub device: Device,
    /// Exit when the requested GPU cannot start (checked once, before any model loads), and
    /// fail a model the GPU cannot plan instead of running it on the CPU.
    #[arg(long, global = true, env = "DESTINO_REQUIRE_GPU")]
    pub require_gpu: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load every model of the repository and serve the same HTTP API as destino-server.
    Serve(ServeArgs),
    /// Score MQTT messages (images or V2 requests) and publish the predictions; also serves
    /// the HTTP API.
    Mqtt(Box<MqttCommand>),
    /// Score each image file dropped into a folder; answers go beside it or to JSON lines.
    Watch(WatchArgs),
    /// Score every file of a folder into resumable JSON-lines part files (shardable).
    Batch(BatchArgs),
    /// Score the tensors of an .npz file and write the outputs to another .npz.
    Run(RunArgs),
    /// Time each operator of tract's optimised plan on the inputs of an .npz file.
    Profile(ProfileArgs),
    /// Show a model's inputs, outputs, opsets and whether tract can run all its operators.
    Inspect(InspectArgs),
    /// GET an http:// URL and succeed on 2xx: a container health check without curl.
    Probe(ProbeArgs),
}

/// `mqtt`: the broker and topics, and everything `serve` takes (HTTP keeps serving beside).
#[derive(Debug, Clone, Args)]
pub struct MqttCommand {
    #[command(flatten)]
    pub mqtt: MqttArgs,
    /// Repository, limits and the HTTP API, which keeps serving beside MQTT.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl EdgeConfig {
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            threads: self.threads,
            low_memory: !self.keep_graph,
            device: self.device,
            require_device: self.require_gpu,
            ..EngineConfig::default()
        }
    }
}

/// Devices keep memory small: no batching unless asked, two HTTP threads; an instance per
/// core within the memory budget (tract instances share their model's plans and weights).
pub const EDGE_DEFAULTS: DestinationDefaults = DestinationDefaults {
    program: "destino-edge",
    max_batch_size: 1,
    http_threads: Some(2),
    instances: destino_cli::launch::InstancesArg::Auto,
};

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        super::EdgeConfig::command().debug_assert();
    }
}
