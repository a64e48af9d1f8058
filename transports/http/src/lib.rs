//! destino's HTTP front door, one router for every destination: KServe V2 (with Triton's
//! binary tensor, classification and repository extensions), Azure ML routes, image
//! scoring, OpenAI embeddings, OpenAPI, Prometheus metrics. Handlers are thin: the protocols live in
//! `destino_serving`; this crate owns the routes, the middleware and the one place an error
//! becomes a status (`error.rs`).

pub mod azure;
pub mod body;
pub mod error;
pub mod error_bodies;
mod event_loop;
pub mod front_door;
pub mod middleware;
pub mod openai;
pub mod openapi;
pub mod repository;
mod request_id;
pub mod router;
pub mod server;
pub mod state;
pub mod v2;

pub use router::router;
pub use server::{ServeOptions, serve};
pub use state::{AppState, AppStateParts, HttpOptions};
