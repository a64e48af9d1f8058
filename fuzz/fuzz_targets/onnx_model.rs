//! ONNX model files as `OnnxModel::read` checks them before any runtime loads them.
#![no_main]

use std::path::Path;

use destino_core::OnnxModel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = OnnxModel::from_bytes(data, Path::new("fuzz.onnx"));
});
