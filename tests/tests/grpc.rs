//! gRPC with the clients people use: `tritonclient[grpc]` (sync, asyncio, streaming) and
//! grpcio's health checking (`tests/python/test_tritonclient_grpc.py`), KServe's
//! InferenceGRPCClient (`tests/python/test_kserve_grpc.py`),
//! against real servers: one serving the shared models and `all_dtypes`, one requiring an
//! API key.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::Command;

use destino_tests::server::{TestServer, test_repository};
use destino_tests::{fixture, python_env, shared_models};

const MAX_MESSAGE_BYTES: &str = "4000000";

#[test]
fn tritonclient_grpc_kserve_and_health_clients() {
    let python = python_env();
    let repository = test_repository();
    let all_dtypes = repository.path().join("all_dtypes");
    std::fs::create_dir_all(&all_dtypes).unwrap();
    std::fs::copy(fixture("all_dtypes.onnx"), all_dtypes.join("model.onnx")).unwrap();
    let (server, url) =
        TestServer::start_with_grpc(repository.path(), &["--max-body-bytes", MAX_MESSAGE_BYTES]);
    let (auth_server, auth_url) =
        TestServer::start_with_grpc(repository.path(), &["--api-key", "grpc-secret"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/test_tritonclient_grpc.py");
    let output = Command::new(python)
        .arg(script)
        .args([
            "--url",
            &url,
            "--auth-url",
            &auth_url,
            "--api-key",
            "grpc-secret",
        ])
        .args(["--max-message-bytes", MAX_MESSAGE_BYTES, "--shared"])
        .arg(shared_models())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "gRPC client tests failed:\n{}\n{}\nserver:\n{}\nauth server:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.output(),
        auth_server.output()
    );
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(report.contains("OK"), "{report}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/test_kserve_grpc.py");
    let output = Command::new(python_env())
        .arg(script)
        .args(["--url", &url, "--shared"])
        .arg(shared_models())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "KServe's gRPC client failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
