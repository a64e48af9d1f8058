//! The `serve` flags both binaries share, and the launch sequence behind them: logging, the
//! model registry, the async runtime, loading in the background, the transports (HTTP, gRPC
//! when built in, and one more a binary brings, such as MQTT), and shutdown on SIGTERM. A
//! binary brings only its engine loader, its transports and its defaults for the machine it
//! targets.

use std::future::Future;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use destino_core::Result;
use destino_core::engine::{EngineConfig, EngineLoader};
use destino_core::repository::Repository;
use destino_http::{AppState, HttpOptions, ServeOptions};
use destino_serving::background::load_in_background;
use destino_serving::{
    BatchPolicy, Instances, Metrics, Registry, Service, ServiceOptions, ServingDefaults,
};
use tokio::sync::watch;

use crate::grpc;
use crate::machine::this_machine;
use crate::updates::UpdateArgs;

/// `--instances`: a count, or `auto` (chosen per model from the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstancesArg {
    Auto,
    Count(usize),
}

impl std::str::FromStr for InstancesArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "auto" => Ok(InstancesArg::Auto),
            _ => match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(InstancesArg::Count(n)),
                _ => Err(format!("`{s}` is not `auto` or a count of 1 or more")),
            },
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What a destination picks when a flag is not given: hosts batch and use every core, devices
/// keep memory and threads small.
#[derive(Debug, Clone, Copy)]
pub struct DestinationDefaults {
    /// The binary's name, for messages.
    pub program: &'static str,
    pub max_batch_size: usize,
    /// Threads of the async HTTP runtime; `None` is one per core.
    pub http_threads: Option<usize>,
    /// `--instances` when not given.
    pub instances: InstancesArg,
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
    /// gRPC port (Triton's default); 0 turns gRPC off. It binds --http-address too.
    #[cfg(feature = "grpc")]
    #[arg(long, env = "DESTINO_GRPC_PORT", default_value_t = 8001)]
    pub grpc_port: u16,
    /// Address the HTTP (and gRPC) server binds.
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
    /// its model.toml does not say; 0 turns batching off. [default: 4 on destino-server,
    /// 1 on destino-edge]
    #[arg(long, env = "DESTINO_MAX_BATCH_SIZE")]
    pub max_batch_size: Option<usize>,
    /// Longest a request waits for others to join its batch, in microseconds (model.toml
    /// overrides). 0 merges only requests already queued.
    #[arg(long, env = "DESTINO_MAX_QUEUE_DELAY_US", default_value_t = 0)]
    pub max_queue_delay_us: u64,
    /// Requests that may wait per model; more are refused with 429 and Retry-After.
    #[arg(long, env = "DESTINO_MAX_QUEUE_SIZE", default_value_t = 128)]
    pub max_queue_size: usize,
    /// Engine instances per model, each on its own thread (model.toml overrides). `auto`:
    /// one per `--threads` cores, within --instances-memory-mb at the model file's size each.
    /// [default: auto]
    #[arg(long, env = "DESTINO_INSTANCES")]
    pub instances: Option<InstancesArg>,
    /// Memory the instances of one model may take together under `--instances auto`, in MiB.
    /// [default: a quarter of the memory available at start, cgroup limit included]
    #[arg(long, env = "DESTINO_INSTANCES_MEMORY_MB")]
    pub instances_memory_mb: Option<u64>,
    /// Longest a request may wait for its outputs, in milliseconds; 0 waits forever.
    #[arg(long, env = "DESTINO_REQUEST_TIMEOUT_MS", default_value_t = 60_000)]
    pub request_timeout_ms: u64,
    /// Longest a client may take to send its request body, in ms (0: no limit); slower
    /// clients get 408, so trickled bodies cannot hold the server.
    #[arg(long, env = "DESTINO_BODY_READ_TIMEOUT_MS", default_value_t = 60_000)]
    pub body_read_timeout_ms: u64,
    /// Largest request body, in bytes.
    #[arg(long, env = "DESTINO_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    pub max_body_bytes: usize,
    /// Largest decoded image, in pixels (checked before decoding).
    #[arg(long, env = "DESTINO_MAX_IMAGE_PIXELS", default_value_t = destino_core::preprocess::DEFAULT_MAX_PIXELS)]
    pub max_image_pixels: u64,
    /// Most strings (or token-id lists) in one text request.
    #[arg(long, env = "DESTINO_MAX_TEXT_INPUTS", default_value_t = destino_core::text::DEFAULT_MAX_INPUTS)]
    pub max_text_inputs: usize,
    /// Most bytes of one string of a text request, checked before tokenizing.
    #[arg(long, env = "DESTINO_MAX_TEXT_BYTES", default_value_t = destino_core::text::DEFAULT_MAX_INPUT_BYTES)]
    pub max_text_bytes: usize,
    /// Most tokens, padding included, in one engine run of a text model.
    #[arg(long, env = "DESTINO_MAX_BATCH_TOKENS", default_value_t = destino_core::text::DEFAULT_MAX_BATCH_TOKENS)]
    pub max_batch_tokens: usize,
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
    /// HTTP event loops, each a thread serving its own connections; also the threads of the
    /// runtime serving gRPC and MQTT. [default: one per core on destino-server, 2 on
    /// destino-edge]
    #[arg(long, env = "DESTINO_HTTP_THREADS")]
    pub http_threads: Option<usize>,
    #[command(flatten)]
    pub updates: UpdateArgs,
}

impl ServeArgs {
    pub fn repository(&self) -> PathBuf {
        self.model_repository
            .clone()
            .or_else(|| std::env::var_os("AZUREML_MODEL_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("models"))
    }

    /// `--api-key`, when one is set (an empty key is none).
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref().filter(|k| !k.is_empty())
    }

    pub fn http_options(&self) -> HttpOptions {
        HttpOptions {
            max_body_bytes: self.max_body_bytes,
            body_read_timeout: (self.body_read_timeout_ms > 0)
                .then(|| Duration::from_millis(self.body_read_timeout_ms)),
            api_key: self.api_key().map(str::to_string),
            cors_origins: self.cors_allow_origin.clone(),
            updates: self.updates.http_updates,
        }
    }

    pub fn service_options(&self) -> ServiceOptions {
        ServiceOptions {
            max_image_pixels: self.max_image_pixels,
            request_timeout: (self.request_timeout_ms > 0)
                .then(|| Duration::from_millis(self.request_timeout_ms)),
            score_model: self.score_model.clone(),
            default_top_k: None,
            text: destino_core::text::TextLimits {
                max_inputs: self.max_text_inputs,
                max_input_bytes: self.max_text_bytes,
                max_batch_tokens: self.max_batch_tokens,
            },
        }
    }

    pub fn serve_options(&self, defaults: &DestinationDefaults) -> ServeOptions {
        ServeOptions {
            address: SocketAddr::new(self.http_address, self.http_port),
            metrics_address: self
                .metrics_port
                .map(|port| SocketAddr::new(self.http_address, port)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            event_loops: self.threads(defaults),
        }
    }

    /// How often `--watch` polls the repository, when it is on.
    pub fn watch_interval(&self) -> Option<Duration> {
        self.watch
            .then(|| Duration::from_millis(self.watch_interval_ms.max(100)))
    }

    pub fn serving_defaults(&self, defaults: &DestinationDefaults) -> ServingDefaults {
        ServingDefaults {
            policy: BatchPolicy {
                max_batch_size: self.max_batch_size.unwrap_or(defaults.max_batch_size),
                max_queue_delay: Duration::from_micros(self.max_queue_delay_us),
                max_queue_size: self.max_queue_size,
            },
            instances: match self.instances.unwrap_or(defaults.instances) {
                InstancesArg::Count(n) => Instances::Fixed(n),
                InstancesArg::Auto => Instances::Auto(this_machine(self.instances_memory_mb)),
            },
        }
    }

    /// Sends `tracing` output to stderr, as text or JSON lines.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .or_else(|_| tracing_subscriber::EnvFilter::try_new(&self.log_level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal());
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }

    /// The model registry these flags describe, not yet loaded.
    pub fn registry(
        &self,
        loader: EngineLoader,
        engine: EngineConfig,
        defaults: &DestinationDefaults,
    ) -> Result<Registry> {
        let root = self.repository();
        // An unreadable repository is a configuration error: fail before listening.
        Repository::scan(&root)?;
        Ok(Registry::new(
            root,
            loader,
            engine,
            self.serving_defaults(defaults),
            Metrics::new(),
        ))
    }

    /// `--http-threads`, or the destination's default, or one per core.
    fn threads(&self, defaults: &DestinationDefaults) -> usize {
        self.http_threads
            .or(defaults.http_threads)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// The multi-threaded runtime for everything but the HTTP event loops (gRPC, MQTT,
    /// signals), as many threads as those loops.
    pub fn runtime(
        &self,
        defaults: &DestinationDefaults,
    ) -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads(defaults))
            .enable_all()
            .build()
    }

    /// Serves `registry` over HTTP, and over `transport` when a binary brings one, until
    /// SIGTERM or ctrl-c; then readiness fails and in-flight requests drain.
    pub fn serve(
        &self,
        registry: Registry,
        defaults: &DestinationDefaults,
        transport: Option<Transport>,
    ) -> ExitCode {
        let registry = Arc::new(registry);
        let mut service = Service::new(registry.clone(), self.service_options());
        if self.updates.http_updates
            && self.api_key().is_none()
            && self.updates.update_public_key.is_none()
        {
            tracing::warn!(
                "model updates over HTTP are open to anyone who reaches this port: set --api-key or --update-public-key, or --http-updates false"
            );
        }
        if self.updates.enabled() {
            match self.updates.updater(registry) {
                Ok(updater) => service = service.with_updates(updater),
                Err(e) => {
                    eprintln!("{}: {e}", defaults.program);
                    return ExitCode::FAILURE;
                }
            }
        }
        let state = AppState::new(service.clone(), self.http_options());
        let options = self.serve_options(defaults);
        let address = options.address;
        let watch_interval = self.watch_interval();
        let grace = options.shutdown_grace;
        let served = self.runtime(defaults).and_then(|runtime| {
            runtime.block_on(async {
                load_in_background(service.registry.clone(), watch_interval);
                let (stop, stopped) = watch::channel(false);
                let signals = service.clone();
                tokio::spawn(async move {
                    shutdown_signal(signals).await;
                    let _ = stop.send(true);
                });
                let http = destino_http::serve(state, options, until(stopped.clone()));
                let grpc = grpc::front_door(self, service.clone(), stopped.clone(), grace);
                let transports = async { tokio::try_join!(http, grpc).map(drop) };
                let served = match transport {
                    None => transports.await,
                    Some(transport) => tokio::select! {
                        served = transports => served,
                        () = transport(service) => Ok(()),
                    },
                };
                tracing::info!("stopped");
                served
            })
        });
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: cannot serve on {address}: {e}", defaults.program);
                ExitCode::FAILURE
            }
        }
    }
}

/// Completes once `stopped` turns true.
pub(crate) async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// A transport served beside HTTP (the MQTT bridge), given the service once HTTP listens.
pub type Transport = Box<dyn FnOnce(Service) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Completes on SIGTERM or ctrl-c, after readiness has been turned off.
async fn shutdown_signal(service: Service) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested: draining in-flight requests");
    service.stop_accepting();
}
