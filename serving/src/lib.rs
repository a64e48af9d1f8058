//! destino's engine room, shared by every transport: the registry of served models (atomic
//! hot swap), one supervised scheduler per model version (bounded queue, dynamic batching,
//! engine threads restarted after failures), warm-up, metrics, and the protocol codecs
//! (KServe V2 JSON and binary, Azure ML `/score`, images, text embeddings, self-describing
//! messages). Errors
//! are transport-neutral ([`ApiError`] with an [`ErrorKind`]); each transport maps them once.
//! Nothing here knows HTTP.

pub mod background;
pub mod batch;
pub mod blocking;
pub mod config;
pub mod device;
pub mod error;
pub mod images;
pub mod inference;
pub mod instances;
pub mod message;
pub mod metrics;
pub mod openai;
pub mod registry;
pub mod scheduler;
pub mod score;
pub mod served;
pub mod service;
pub mod stats;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;
pub mod update;
pub mod v2;
pub mod warmup;

pub use error::{ApiError, ErrorKind};
pub use inference::RequestRecord;
pub use instances::{Instances, Machine};
pub use metrics::Metrics;
pub use registry::{IndexEntry, ModelState, Registry, RegistryError};
pub use scheduler::{BatchPolicy, Reply, ServeError};
pub use served::{ServedModel, ServingDefaults, Supervision};
pub use service::{Service, ServiceOptions, ServiceParts};
