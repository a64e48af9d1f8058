//! When no candidate ONNX Runtime library loads, the error says what was tried and how to
//! fix it. (Its own test binary: a process loads ONNX Runtime at most once.)

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::PathBuf;

use destino_core::Error;
use destino_server::ort_engine::init_runtime;

#[test]
fn failure_lists_every_candidate_and_the_fix() {
    let not_a_library = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let candidates = vec![
        (
            PathBuf::from("/nonexistent/libonnxruntime.so"),
            "--onnxruntime",
        ),
        (not_a_library.clone(), "ORT_DYLIB_PATH"),
    ];
    let err = init_runtime(&candidates).unwrap_err();
    assert!(matches!(err, Error::RuntimeUnavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/libonnxruntime.so (--onnxruntime)"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{} (ORT_DYLIB_PATH)", not_a_library.display())),
        "{message}"
    );
    assert!(message.contains("scripts/fetch-onnxruntime"), "{message}");
    assert!(message.contains("--engine tract"), "{message}");
}
