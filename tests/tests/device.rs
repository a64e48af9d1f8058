//! The device policy of `destino-server`, on this machine's CPU-only ONNX Runtime (its CUDA
//! execution provider cannot start): decided once at start, never by a later load.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use destino_tests::binary;
use destino_tests::server::{TestServer, add_model};
use serde_json::json;

#[test]
fn require_gpu_refuses_to_start_without_a_gpu_before_listening() {
    let repository = tempfile::tempdir().unwrap();
    add_model(repository.path(), "sklearn_digits_rf", None);
    let mut child = Command::new(binary("destino-server"))
        .args([
            "--device",
            "cuda",
            "serve",
            "--require-gpu",
            "--http-port",
            "0",
        ])
        .arg("--model-repository")
        .arg(repository.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("destino-server --require-gpu kept running without a GPU");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!status.success());
    assert!(
        stderr.contains("cuda:0") && stderr.contains("--require-gpu"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "it must refuse before serving: {stdout}"
    );
}

#[test]
fn without_a_gpu_the_server_falls_back_once_and_a_bad_file_later_is_only_a_failed_load() {
    let repository = tempfile::tempdir().unwrap();
    add_model(repository.path(), "sklearn_digits_rf", Some(1));
    add_model(repository.path(), "ppocr_mobile_v2_cls", None);
    let server = TestServer::start(repository.path(), &["--device", "cuda"]);
    let c = &server.client;
    let model = c.get("/v2/models/sklearn_digits_rf").json();
    assert_eq!(model["parameters"]["execution_provider"], "cpu");
    let output = server.output();
    assert_eq!(
        output.matches("FALLING BACK TO CPU").count(),
        1,
        "the device is decided once, at start: {output}"
    );
    // A corrupt new version: the load fails, the process and the old version serve on.
    let broken = repository.path().join("sklearn_digits_rf/2");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("model.onnx"), b"not an onnx model").unwrap();
    let failed = c.post("/v2/repository/models/sklearn_digits_rf/load", &[], b"");
    assert_eq!(failed.status, 400, "{}", failed.text());
    assert_eq!(c.get("/v2/health/live").status, 200);
    let index = c.post_json("/v2/repository/index", &json!({})).json();
    let digits = index
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == "sklearn_digits_rf")
        .unwrap();
    assert_eq!(digits["state"], "READY", "{index}");
    assert_eq!(digits["version"], "1", "{index}");
}
