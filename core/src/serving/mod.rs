//! Serving machinery shared by every destination: the registry of served models, the
//! per-model queue with dynamic batching, and metrics.

pub mod batch;
pub mod metrics;
pub mod registry;
pub mod scheduler;
pub mod served;

pub use metrics::Metrics;
pub use registry::{IndexEntry, ModelState, Registry, RegistryError};
pub use scheduler::{BatchPolicy, Reply, ServeError};
pub use served::{ServedModel, ServingDefaults};
