//! destino's gRPC front door: Triton's `inference.GRPCInferenceService` (the superset of
//! KServe's `grpc_predict_v2.proto`) and the standard `grpc.health.v1.Health`, over the same
//! registry, queues, limits and metrics as HTTP. `status.rs` is the one place an error
//! becomes a gRPC code.

pub mod documents;
pub mod health;
pub mod infer;
pub mod server;
pub mod service;
pub mod status;
pub mod stream;
pub mod tensors;

/// The protocol, generated at build time from `proto/` (Triton's files, BSD-3).
#[allow(clippy::all, missing_debug_implementations, unreachable_pub)]
pub mod proto {
    tonic::include_proto!("inference");
}

pub use server::{GrpcOptions, serve, serve_on};
