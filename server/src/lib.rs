//! destino on hosts: the ONNX Runtime engine, and the server binary's configuration.

pub mod ort_engine;
pub mod runtime_path;
