//! destino's inference core: everything that is the same at every destination, with no
//! async, no transport and no inference runtime: tensors and dtypes, the ONNX reader, the
//! `Engine` trait, preprocessing and postprocessing, `model.toml` manifests, tokenizers for text models, the model
//! repository layout, npz files and output comparison. Engines implement [`Engine`] in their
//! own crates.

pub mod dtype;
pub mod engine;
pub mod error;
#[cfg(feature = "libdeflate")]
mod fast_png;
pub mod manifest;
pub mod metadata;
pub mod npz;
pub mod offline;
pub mod onnx;
pub mod parity;
#[cfg(feature = "libdeflate")]
mod png_unfilter;
pub mod postprocess;
pub mod preprocess;
pub mod repository;
pub mod tensor;
pub mod text;
pub mod weights;

pub use dtype::DType;
pub use engine::{Device, Engine, EngineConfig, EngineLoader, loader};
pub use error::{Error, OpType, Result};
pub use metadata::{Dim, ModelMetadata, TensorInfo, Tensors};
pub use onnx::OnnxModel;
pub use tensor::{Tensor, TensorData};

/// A fixed xorshift sequence for tests: the same cases on every run.
#[cfg(test)]
fn test_random(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
