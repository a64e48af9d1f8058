//! destino on hosts: the ONNX Runtime engine, the server's configuration and commands.

pub mod commands;
pub mod config;
pub mod ort_engine;
pub mod runtime_path;
pub mod serve;
