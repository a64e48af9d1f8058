//! The device policy of both binaries on this machine, which has no GPU: `destino-server`
//! with its CPU-only ONNX Runtime (the CUDA execution provider cannot start) and
//! `destino-edge` built with tract's CUDA runtime (`cuda` feature: no driver to load). The
//! device is decided once at start, never by a later load.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::ffi::OsStr;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use destino_core::npz::write_npz;
use destino_tests::server::{TestServer, add_model};
use destino_tests::{binary, reference_case};
use serde_json::json;

/// Runs `program` with `args` to its exit (at most a minute): status, stdout, stderr.
fn run_to_exit(program: &str, args: &[&OsStr]) -> (ExitStatus, String, String) {
    let mut child = Command::new(binary(program))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{program} {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `program --device cuda serve --require-gpu` on a repository: it exits before listening,
/// saying why; returns its stderr.
fn refuses_to_start_without_a_gpu(program: &str) -> String {
    let repository = tempfile::tempdir().unwrap();
    add_model(repository.path(), "sklearn_digits_rf", None);
    let args = [
        "--device",
        "cuda",
        "serve",
        "--require-gpu",
        "--http-port",
        "0",
    ];
    let mut args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    args.extend([
        OsStr::new("--model-repository"),
        repository.path().as_os_str(),
    ]);
    let (status, stdout, stderr) = run_to_exit(program, &args);
    assert!(!status.success());
    assert!(
        stderr.contains("cuda:0") && stderr.contains("--require-gpu"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "it must refuse before serving: {stdout}"
    );
    stderr
}

#[test]
fn require_gpu_refuses_to_start_without_a_gpu_before_listening() {
    refuses_to_start_without_a_gpu("destino-server");
}

#[test]
fn the_edge_binary_refuses_with_the_cuda_runtimes_own_reason() {
    let stderr = refuses_to_start_without_a_gpu("destino-edge");
    // Built with the `cuda` feature: tract-cuda looked for the driver and said so.
    assert!(stderr.contains("CUDA driver"), "{stderr}");
    assert!(!stderr.contains("built without CUDA"), "{stderr}");
}

#[test]
fn without_a_gpu_the_edge_binary_serves_on_the_cpu_after_one_loud_fallback() {
    let repository = tempfile::tempdir().unwrap();
    add_model(repository.path(), "sklearn_digits_rf", None);
    let root = repository.path().to_str().unwrap();
    let serve = [
        "--device",
        "cuda",
        "serve",
        "--http-address",
        "127.0.0.1",
        "--http-port",
        "0",
    ];
    let args: Vec<&str> = serve
        .into_iter()
        .chain(["--model-repository", root])
        .collect();
    let server = TestServer::spawn_program("destino-edge", &args);
    server.wait_ready();
    let c = &server.client;
    let model = c.get("/v2/models/sklearn_digits_rf").json();
    assert_eq!(model["parameters"]["engine"], "tract", "{model}");
    assert_eq!(model["parameters"]["execution_provider"], "cpu", "{model}");
    assert!(model["parameters"].get("nodes_on_cpu").is_none(), "{model}");
    let (rows, labels) = destino_tests::digits_reference();
    let request = json!({
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 64], "data": rows[0]}],
        "outputs": [{"name": "label"}],
    });
    let answer = c.post_json("/v2/models/sklearn_digits_rf/infer", &request);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let label = &answer.json()["outputs"][0]["data"][0];
    assert_eq!(label, &json!(labels[0]), "{}", answer.text());
    let metrics = c.get("/metrics").text();
    assert!(metrics.contains(r#"device="cpu""#), "{metrics}");
    assert!(
        !metrics.contains("destino_model_nodes_on_cpu{"),
        "{metrics}"
    );
    let output = server.output();
    assert_eq!(output.matches("FALLING BACK TO CPU").count(), 1, "{output}");
    assert!(output.contains("CUDA driver"), "{output}");
}

#[test]
fn the_edge_run_command_falls_back_and_require_gpu_refuses() {
    let case = reference_case("sklearn_digits_rf", None);
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.npz");
    let outputs = dir.path().join("out.npz");
    write_npz(&inputs, &case.inputs).unwrap();
    let run = |extra: &[&str]| {
        let mut args: Vec<&OsStr> = ["--device", "cuda"].iter().map(OsStr::new).collect();
        args.extend(extra.iter().map(OsStr::new));
        args.extend([OsStr::new("run"), OsStr::new("--model")]);
        args.push(case.model.as_os_str());
        args.extend([OsStr::new("--inputs"), inputs.as_os_str()]);
        args.extend([OsStr::new("--outputs"), outputs.as_os_str()]);
        run_to_exit("destino-edge", &args)
    };
    let (status, stdout, stderr) = run(&[]);
    assert!(status.success(), "{stdout}{stderr}");
    assert_eq!(stderr.matches("FALLING BACK TO CPU").count(), 1, "{stderr}");
    assert!(stdout.contains("wrote"), "{stdout}");
    assert!(outputs.exists());
    std::fs::remove_file(&outputs).unwrap();
    let (status, _, stderr) = run(&["--require-gpu"]);
    assert!(!status.success());
    assert!(stderr.contains("--require-gpu"), "{stderr}");
    assert!(!outputs.exists(), "a refused run writes nothing");
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
