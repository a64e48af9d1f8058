//! gRPC with the clients people use: `tritonclient[grpc]` (sync, asyncio, streaming) and
//! grpcio's health checking (`tests/python/test_tritonclient_grpc.py`), KServe's
//! InferenceGRPCClient (`tests/python/test_kserve_grpc.py`),
//! against real servers: one serving the shared models and `all_dtypes`, one requiring an
//! API key.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_tests::server::{TestServer, test_repository};
use destino_tests::{fixture, run_client_suite};

const MAX_MESSAGE_BYTES: &str = "4000000";

#[test]
fn tritonclient_grpc_kserve_and_health_clients() {
    let repository = test_repository();
    let all_dtypes = repository.path().join("all_dtypes");
    std::fs::create_dir_all(&all_dtypes).unwrap();
    std::fs::copy(fixture("all_dtypes.onnx"), all_dtypes.join("model.onnx")).unwrap();
    let (server, url) =
        TestServer::start_with_grpc(repository.path(), &["--max-body-bytes", MAX_MESSAGE_BYTES]);
    let (auth_server, auth_url) =
        TestServer::start_with_grpc(repository.path(), &["--api-key", "grpc-secret"]);
    let report = run_client_suite(
        "test_tritonclient_grpc.py",
        &[
            "--url",
            &url,
            "--http-url",
            &server.client.base,
            "--auth-url",
            &auth_url,
            "--api-key",
            "grpc-secret",
            "--max-message-bytes",
            MAX_MESSAGE_BYTES,
        ],
        || {
            format!(
                "{}\n--- the server with an API key:\n{}",
                server.output(),
                auth_server.output()
            )
        },
    );
    assert!(report.contains("OK"), "{report}");

    run_client_suite("test_kserve_grpc.py", &["--url", &url], || server.output());
}
