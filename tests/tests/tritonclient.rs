//! The client people already use: the real `tritonclient[http]` Python package, JSON and
//! binary tensors, against a running server (`tests/python/test_tritonclient.py`).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::Command;

use destino_tests::server::{TestServer, test_repository};
use destino_tests::{python_env, shared_models};

#[test]
fn tritonclient_http_json_and_binary() {
    let python = python_env();
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let url = server.client.base.trim_start_matches("http://").to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/test_tritonclient.py");
    let output = Command::new(python)
        .arg(script)
        .args(["--url", &url, "--shared"])
        .arg(shared_models())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tritonclient tests failed:\n{}\n{}\nserver:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.output()
    );
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(report.contains("OK"), "{report}");
}
