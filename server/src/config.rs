//! `ServerConfig`: every flag of `destino-server`, each also settable from the environment.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use destino_core::http::{HttpOptions, ServeOptions};
use destino_core::offline::{InspectArgs, RunArgs};
use destino_core::serving::{BatchPolicy, ServingDefaults};
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
    Serve(ServeArgs),
    /// Score the tensors of an .npz file and write the outputs to another .npz.
    Run(RunArgs),
    /// Run a model on both engines and compare the outputs with each other and a reference.
    Parity(ParityArgs),
    /// Show a model's inputs, outputs, opsets and whether the engine runs all its operators.
    Inspect(InspectArgs),
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
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `serve` flags; names follow Triton's where one exists.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The model repository: NAME/model.onnx or NAME/VERSION/model.onnx, with optional
    /// model.toml. Falls back to AZUREML_MODEL_DIR, then `models`.
    #[arg(long, env = "DESTINO_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,
    /// HTTP port (0 picks a free one; the chosen address is printed).
    #[arg(long, env = "DESTINO_HTTP_PORT", default_value_t = 8000)]
    pub http_port: u16,
    /// Address the HTTP server binds.
    #[arg(long, env = "DESTINO_HTTP_ADDRESS", default_value = "0.0.0.0")]
    pub http_address: IpAddr,
    /// Also serve /metrics on this port (it is always on the HTTP port).
    #[arg(long, env = "DESTINO_METRICS_PORT")]
    pub metrics_port: Option<u16>,
    #[arg(long, env = "DESTINO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (RUST_LOG syntax), e.g. `info` or `destino_core=debug`.
    #[arg(long, env = "DESTINO_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Largest batch of a model whose inputs and outputs all have a free leading axis, when
    /// its model.toml does not say; 0 turns batching off.
    #[arg(long, env = "DESTINO_MAX_BATCH_SIZE", default_value_t = 4)]
    pub max_batch_size: usize,
    /// Longest a request waits for others to join its batch, in microseconds (model.toml
    /// overrides). 0 merges only requests already queued.
    #[arg(long, env = "DESTINO_MAX_QUEUE_DELAY_US", default_value_t = 0)]
    pub max_queue_delay_us: u64,
    /// Requests that may wait per model; more are refused with 429 and Retry-After.
    #[arg(long, env = "DESTINO_MAX_QUEUE_SIZE", default_value_t = 128)]
    pub max_queue_size: usize,
    /// Engine instances per model, each on its own thread (model.toml overrides).
    #[arg(long, env = "DESTINO_INSTANCES", default_value_t = 1)]
    pub instances: usize,
    /// Longest a request may wait for its outputs, in milliseconds; 0 waits forever.
    #[arg(long, env = "DESTINO_REQUEST_TIMEOUT_MS", default_value_t = 60_000)]
    pub request_timeout_ms: u64,
    /// Largest request body, in bytes.
    #[arg(long, env = "DESTINO_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    pub max_body_bytes: usize,
    /// Largest decoded image, in pixels (checked before decoding).
    #[arg(long, env = "DESTINO_MAX_IMAGE_PIXELS", default_value_t = destino_core::preprocess::DEFAULT_MAX_PIXELS)]
    pub max_image_pixels: u64,
    /// Require `Authorization: Bearer <key>` on every route but health.
    #[arg(long, env = "DESTINO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Origins allowed by CORS (comma-separated; `*` for any). Off when unset.
    #[arg(long, env = "DESTINO_CORS_ALLOW_ORIGIN", value_delimiter = ',')]
    pub cors_allow_origin: Vec<String>,
    /// The model `POST /score` uses when several are served.
    #[arg(long, env = "DESTINO_SCORE_MODEL")]
    pub score_model: Option<String>,
    /// Poll the repository and hot-swap new or changed models.
    #[arg(long, env = "DESTINO_WATCH")]
    pub watch: bool,
    /// How often --watch polls, in milliseconds.
    #[arg(long, env = "DESTINO_WATCH_INTERVAL_MS", default_value_t = 2000)]
    pub watch_interval_ms: u64,
    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    #[arg(long, env = "DESTINO_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Exit when a model cannot start on the requested GPU, instead of falling back to CPU.
    #[arg(long, env = "DESTINO_REQUIRE_GPU")]
    pub require_gpu: bool,
    /// Threads of the async HTTP runtime (default: one per core).
    #[arg(long, env = "DESTINO_HTTP_THREADS")]
    pub http_threads: Option<usize>,
}

impl ServeArgs {
    pub fn repository(&self) -> PathBuf {
        self.model_repository
            .clone()
            .or_else(|| std::env::var_os("AZUREML_MODEL_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("models"))
    }

    pub fn http_options(&self) -> HttpOptions {
        HttpOptions {
            max_body_bytes: self.max_body_bytes,
            max_image_pixels: self.max_image_pixels,
            request_timeout: (self.request_timeout_ms > 0)
                .then(|| Duration::from_millis(self.request_timeout_ms)),
            api_key: self.api_key.clone().filter(|k| !k.is_empty()),
            cors_origins: self.cors_allow_origin.clone(),
            score_model: self.score_model.clone(),
            default_top_k: None,
        }
    }

    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            address: SocketAddr::new(self.http_address, self.http_port),
            metrics_address: self
                .metrics_port
                .map(|port| SocketAddr::new(self.http_address, port)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            watch_interval: self
                .watch
                .then(|| Duration::from_millis(self.watch_interval_ms.max(100))),
        }
    }

    pub fn serving_defaults(&self) -> ServingDefaults {
        ServingDefaults {
            policy: BatchPolicy {
                max_batch_size: self.max_batch_size,
                max_queue_delay: Duration::from_micros(self.max_queue_delay_us),
                max_queue_size: self.max_queue_size,
            },
            instances: self.instances,
        }
    }
}

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
    /// Absolute tolerance for float outputs.
    #[arg(long, default_value_t = 1e-4)]
    pub atol: f64,
    /// Relative tolerance for float outputs.
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
}
