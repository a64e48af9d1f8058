//! The HTTP front door every destination serves, from one router: KServe V2 (with Triton's
//! binary tensor, classification and repository extensions), Azure ML routes, image scoring,
//! Prometheus metrics.

pub mod azure;
pub mod body;
pub mod error;
pub mod images;
pub mod inference;
pub mod launch;
pub mod message;
pub mod middleware;
pub mod openapi;
pub mod repository;
pub mod router;
pub mod server;
pub mod state;
pub mod v2;

pub use launch::{DestinationDefaults, LogFormat, ServeArgs};
pub use router::router;
pub use server::{ServeOptions, serve};
pub use state::{AppState, HttpOptions};
