//! KServe V2 over real HTTP: health, metadata, JSON and binary inference on every shared
//! model and every dtype, the classification extension, images as BYTES, and bad requests.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use base64::Engine as _;
use destino_core::parity::{Tolerance, compare_all};
use destino_core::{Tensor, Tensors};
use destino_tests::server::{
    SHARED_MODELS, TestServer, post_ignoring_early_close, test_repository, testing_edge,
};
use destino_tests::v2::{
    binary_request, json_request, json_request_in_client_order, response_tensors,
};
use destino_tests::{digits_reference, dtype_samples, fixture, reference_case, shared_models};
use serde_json::{Value, json};

const TOLERANCE: Tolerance = Tolerance {
    atol: 1e-4,
    rtol: 1e-3,
};

fn assert_matches(outputs: &Tensors, expected: &Tensors, what: &str) {
    for comparison in compare_all(outputs, expected, TOLERANCE) {
        assert!(comparison.within, "{what}: {comparison}");
    }
}

#[test]
fn health_and_metadata() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    assert_eq!(c.get("/v2/health/live").json()["live"], true);
    assert_eq!(c.get("/v2/health/ready").json()["ready"], true);
    let meta = c.get("/v2").json();
    assert_eq!(meta["name"], "destino");
    assert!(
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );

    let model = c.get("/v2/models/efficientnet_lite0").json();
    assert_eq!(model["platform"], "onnx_onnxv1");
    assert_eq!(model["versions"], json!(["1"]));
    assert_eq!(
        model["inputs"][0],
        json!({"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]})
    );
    assert_eq!(model["outputs"][0]["shape"], json!([-1, 1000]));
    assert_eq!(model["parameters"]["execution_provider"], "cpu");
    let silero = c.get("/v2/models/silero_vad/versions/1").json();
    assert_eq!(
        silero["inputs"][2],
        json!({"name": "sr", "datatype": "INT64", "shape": []})
    );
    assert_eq!(c.get("/v2/models/silero_vad/ready").json()["ready"], true);
    assert_eq!(c.get("/v2/models/silero_vad/versions/1/ready").status, 200);

    assert!(c.get("/v2/models/nope").error(404).contains("nope"));
    assert!(c.get("/v2/models/nope/ready").error(404).contains("nope"));
    assert!(
        c.get("/v2/models/silero_vad/versions/7")
            .error(404)
            .contains("version 7")
    );
    assert!(c.get("/no/such/route").error(404).contains("route"));
    assert!(
        c.post("/v2/health/live", &[], b"")
            .error(405)
            .contains("not allowed")
    );
}

#[test]
fn every_shared_model_matches_its_reference_over_json_and_binary() {
    // JSON twice: sorted keys put `data` before `datatype` (kept as a JSON value, then
    // typed); tritonclient's member order lets the server read it typed while parsing.
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    for model in SHARED_MODELS {
        let case = reference_case(model, None);
        let path = format!("/v2/models/{model}/versions/1/infer");
        let reply = server.client.post_json(&path, &json_request(&case.inputs));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_matches(
            &response_tensors(&reply),
            &case.expected,
            &format!("{model} JSON"),
        );
        let json = [("content-type", "application/json")];
        let body = json_request_in_client_order(&case.inputs);
        let reply = server.client.post(&path, &json, &body);
        assert_matches(
            &response_tensors(&reply),
            &case.expected,
            &format!("{model} JSON in tritonclient's member order"),
        );

        let (body, header) = binary_request(&case.inputs);
        let header = header.to_string();
        let headers = [("inference-header-content-length", header.as_str())];
        let reply = server.client.post(&path, &headers, &body);
        assert!(reply.header("inference-header-content-length").is_some());
        assert_matches(
            &response_tensors(&reply),
            &case.expected,
            &format!("{model} binary"),
        );
    }
}

#[test]
fn the_tract_engine_serves_the_same_answers() {
    let repository = test_repository();
    // The edge binary has no engine switch: tract is its engine.
    let engine_flags: &[&str] = if testing_edge() {
        &[]
    } else {
        &["--engine", "tract"]
    };
    let server = TestServer::start(repository.path(), engine_flags);
    let model = server.client.get("/v2/models/efficientnet_lite0").json();
    assert_eq!(model["parameters"]["engine"], "tract");
    for model in SHARED_MODELS {
        let case = reference_case(model, None);
        let (body, header) = binary_request(&case.inputs);
        let header = header.to_string();
        let headers = [("inference-header-content-length", header.as_str())];
        let reply = server
            .client
            .post(&format!("/v2/models/{model}/infer"), &headers, &body);
        assert_matches(
            &response_tensors(&reply),
            &case.expected,
            &format!("{model} on tract"),
        );
    }
}

fn all_dtype_inputs(finite: bool) -> Tensors {
    let samples = dtype_samples(finite);
    let mut inputs: Tensors = samples
        .into_iter()
        .map(|d| (format!("x_{}", d.dtype()), Tensor::new(vec![3], d).unwrap()))
        .collect();
    inputs.insert("scalar".into(), Tensor::scalar(-42i64));
    inputs
}

#[test]
fn every_dtype_round_trips_over_json_and_binary() {
    let repository = tempfile::tempdir().unwrap();
    let dir = repository.path().join("all_dtypes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("all_dtypes.onnx"), dir.join("model.onnx")).unwrap();
    let server = TestServer::start(repository.path(), &[]);
    let path = "/v2/models/all_dtypes/infer";
    for (finite, binary) in [(true, false), (false, true)] {
        let inputs = all_dtype_inputs(finite);
        let reply = if binary {
            let (body, header) = binary_request(&inputs);
            let header = header.to_string();
            server
                .client
                .post(path, &[("inference-header-content-length", &header)], &body)
        } else {
            server.client.post_json(path, &json_request(&inputs))
        };
        let outputs = response_tensors(&reply);
        for (name, input) in &inputs {
            let output = if name == "scalar" {
                "scalar_out".to_string()
            } else {
                name.replacen("x_", "y_", 1)
            };
            assert_eq!(&outputs[&output], input, "{output} (binary: {binary})");
        }
    }
}

#[test]
fn nested_data_id_output_selection_and_classification() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let (rows, expected) = digits_reference();
    let request = json!({
        "id": "req-42",
        "inputs": [{"name": "X", "shape": [rows.len(), 64], "datatype": "FP32", "data": rows}],
        "outputs": [{"name": "label"}],
    });
    let reply = server
        .client
        .post_json("/v2/models/sklearn_digits_rf/infer", &request)
        .json();
    assert_eq!(reply["id"], "req-42");
    assert_eq!(reply["model_name"], "sklearn_digits_rf");
    assert_eq!(reply["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(reply["outputs"][0]["data"], json!(expected));

    let image = json!({
        "inputs": [{"name": "input", "shape": [1], "datatype": "BYTES",
            "data": [base64::engine::general_purpose::STANDARD.encode(std::fs::read(shared_models().join("images/chelsea.png")).unwrap())]}],
        "outputs": [{"name": "logits", "parameters": {"classification": 3}}],
    });
    let reply = server
        .client
        .post_json("/v2/models/efficientnet_lite0/infer", &image)
        .json();
    let classes = &reply["outputs"][0];
    assert_eq!(classes["datatype"], "BYTES");
    assert_eq!(classes["shape"], json!([1, 3]));
    let first = classes["data"][0].as_str().unwrap();
    let parts: Vec<&str> = first.splitn(3, ':').collect();
    assert_eq!(parts[1..], ["282", "tiger cat"], "{first}");
    let score: f32 = parts[0].parse().unwrap();
    assert!((score - 0.383).abs() < 0.02, "{first}");
}

fn error_of(reply: &destino_tests::server::Reply, status: u16) -> String {
    reply.error(status)
}

#[test]
fn bad_requests_get_clear_json_errors_and_the_server_keeps_serving() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &["--max-body-bytes", "2000000"]);
    let c = &server.client;
    let infer = "/v2/models/sklearn_digits_rf/infer";
    let x = |shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": "X", "shape": shape, "datatype": datatype, "data": data}]});
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            x(json!([1, 63]), "FP32", json!(vec![0.0; 63])),
            400,
            "expected shape",
        ),
        (
            x(json!([1, 64]), "FP64", json!(vec![0.0; 64])),
            400,
            "expected dtype",
        ),
        (
            x(json!([1, 64]), "FP32", json!(vec![0.0; 63])),
            400,
            "needs 64 elements",
        ),
        (x(json!([1, -64]), "FP32", json!([])), 400, "negative"),
        (
            x(json!([1, 64]), "FP32", json!(vec!["a"; 64])),
            400,
            "not a valid FP32",
        ),
        (
            x(json!([1, 64]), "FP9", json!(vec![0.0; 64])),
            400,
            "unknown datatype",
        ),
        (
            x(json!([1, 64]), "INT64", json!(vec![1.5; 64])),
            400,
            "not a valid INT64",
        ),
        (
            x(json!([4611686018427387904u64, 4]), "FP32", json!([])),
            400,
            "too many elements",
        ),
        (
            x(json!([100_000_000_000u64, 64]), "FP32", json!([0.0])),
            400,
            "needs 6400000000000 elements",
        ),
        (
            json!({"inputs": [{"name": "Y", "shape": [1], "datatype": "FP32", "data": [1]}]}),
            400,
            "unknown input `Y`",
        ),
        (json!({"inputs": []}), 400, "missing input `X`"),
        (json!({"inputs": "X"}), 400, "malformed"),
        (
            json!({"inputs": [{"name": "X", "shape": [1, 64], "datatype": "FP32"}]}),
            400,
            "neither",
        ),
    ];
    for (body, status, needle) in cases {
        let message = error_of(&c.post_json(infer, &body), status);
        assert!(message.contains(needle), "{body}: {message}");
    }
    let mut with_outputs = x(json!([1, 64]), "FP32", json!(vec![0.0; 64]));
    with_outputs["outputs"] = json!([{"name": "nope"}]);
    assert!(error_of(&c.post_json(infer, &with_outputs), 400).contains("unknown output"));

    let json_type = [("content-type", "application/json")];
    assert!(error_of(&c.post(infer, &json_type, b"{\"inputs\": [}"), 400).contains("malformed"));
    let deep = "[".repeat(10_000);
    let too_deep = error_of(&c.post(infer, &json_type, deep.as_bytes()), 400);
    assert!(too_deep.contains("nested deeper than 100"), "{too_deep}");
    let header = [("inference-header-content-length", "99999")];
    assert!(
        error_of(&c.post(infer, &header, b"{}"), 400).contains("Inference-Header-Content-Length")
    );
    let bad_header = [("inference-header-content-length", "abc")];
    assert_eq!(c.post(infer, &bad_header, b"{}").status, 400);

    let unknown = c.post_json("/v2/models/nope/infer", &json!({"inputs": []}));
    assert!(error_of(&unknown, 404).contains("unknown model"));
    let version = c.post_json(
        "/v2/models/sklearn_digits_rf/versions/9/infer",
        &json!({"inputs": []}),
    );
    assert_eq!(version.status, 404);

    let png = std::fs::read(shared_models().join("images/chelsea.png")).unwrap();
    let truncated = base64::engine::general_purpose::STANDARD.encode(&png[..png.len() / 3]);
    let image = json!({"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": [truncated]}]});
    let message = error_of(
        &c.post_json("/v2/models/efficientnet_lite0/infer", &image),
        400,
    );
    assert!(message.contains("image 0"), "{message}");

    let brotli = [("content-encoding", "br")];
    assert_eq!(
        c.post(infer, &brotli, b"{}").error(415),
        "unsupported media type"
    );

    let huge = vec![b' '; 2_500_000];
    let too_large = post_ignoring_early_close(&c.base, infer, &huge);
    assert!(error_of(&too_large, 413).contains("limit"));

    let case = reference_case("sklearn_digits_rf", None);
    assert_eq!(c.post_json(infer, &json_request(&case.inputs)).status, 200);
}
