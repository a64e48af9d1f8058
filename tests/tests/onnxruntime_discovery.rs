//! When no candidate ONNX Runtime library loads, the error says what was tried and how to
//! fix it. (Its own test binary: a process loads ONNX Runtime at most once.)

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::PathBuf;
use std::process::Command;

use destino_core::Error;
use destino_ort::init_runtime;
use destino_tests::{binary, bundled_models};

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

#[test]
fn a_server_without_onnx_runtime_exits_with_the_fix() {
    let output = Command::new(binary("destino-server"))
        .args(["--onnxruntime", "/nonexistent/libonnxruntime.so", "serve"])
        .arg("--model-repository")
        .arg(bundled_models())
        .args(["--http-address", "127.0.0.1", "--http-port", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/libonnxruntime.so")
            && stderr.contains("scripts/fetch-onnxruntime"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
