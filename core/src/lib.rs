//! destino's inference core: everything that is the same at every destination. It never
//! names an inference runtime; engines implement [`Engine`] in their own crates.

pub mod dtype;
pub mod engine;
pub mod error;
pub mod http;
pub mod manifest;
pub mod memory;
pub mod metadata;
pub mod model;
pub mod npz;
pub mod offline;
pub mod onnx;
pub mod parity;
pub mod postprocess;
pub mod preprocess;
pub mod probe;
pub mod repository;
pub mod serving;
pub mod tensor;

pub use dtype::DType;
pub use engine::{Device, Engine, EngineConfig};
pub use error::{Error, OpType, Result};
pub use metadata::{Dim, ModelMetadata, TensorInfo, Tensors};
pub use onnx::OnnxModel;
pub use tensor::{Tensor, TensorData};
