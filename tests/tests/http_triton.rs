//! Triton's HTTP semantics where its clients notice: what is compressed, raw binary requests,
//! `binary_data_output` against a listed output's own `binary_data`, classification without
//! batching, BYTES that are not plain text, JSON nesting, repository bodies and parameters,
//! and error texts worded as Triton's. Runs on both binaries.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::TensorData;
use destino_serving::v2::response::binary_bytes;
use destino_tests::reference_case;
use destino_tests::server::{TestServer, add_model, test_repository, testing_edge};
use destino_tests::v2::{binary_request, response_header};
use serde_json::json;

fn digits_x() -> Vec<f32> {
    let case = reference_case("sklearn_digits_rf", None);
    case.inputs["X"].as_f32().unwrap().to_vec()
}

#[test]
fn only_inference_results_are_compressed_and_only_when_asked() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let gzip = [("accept-encoding", "gzip")];
    for path in [
        "/v2",
        "/v2/models/efficientnet_lite0",
        "/v2/repository/index",
        "/nothing",
    ] {
        let reply = c.get_with(path, &gzip);
        assert_eq!(
            reply.header("content-encoding"),
            None,
            "{path} is not an inference result"
        );
    }
    let case = reference_case("efficientnet_lite0", None);
    let (body, header) = binary_request(&case.inputs);
    let header = header.to_string();
    let infer = "/v2/models/efficientnet_lite0/infer";
    let headers = [
        ("inference-header-content-length", header.as_str()),
        ("accept-encoding", "gzip"),
    ];
    let compressed = c.post(infer, &headers, &body);
    assert_eq!(compressed.status, 200);
    assert_eq!(compressed.header("content-encoding"), Some("gzip"));
    let plain = c.post(infer, &headers[..1], &body);
    assert_eq!(
        plain.header("content-encoding"),
        None,
        "the client did not ask"
    );
    let error = c.post(infer, &gzip, b"{not json");
    assert_eq!(error.status, 400);
    assert_eq!(
        error.header("content-encoding"),
        None,
        "errors are not inference results"
    );
}

#[test]
fn a_raw_binary_request_is_the_single_inputs_data() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let x = digits_x();
    let raw = binary_bytes(&TensorData::F32(x[..2 * 64].to_vec()));
    let headers = [("inference-header-content-length", "0")];
    let reply = server
        .client
        .post("/v2/models/sklearn_digits_rf/infer", &headers, &raw);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    let label = answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap();
    assert_eq!(
        label["shape"],
        json!([2]),
        "two rows told from the byte size"
    );
    let (_, expected) = destino_tests::digits_reference();
    assert_eq!(label["data"], json!(expected[..2]));
    // Not a whole number of elements, or a model with several inputs: a clear 400.
    let ragged = server
        .client
        .post("/v2/models/sklearn_digits_rf/infer", &headers, &raw[..5]);
    assert!(ragged.error(400).contains("4-byte elements"));
    let silero = server
        .client
        .post("/v2/models/silero_vad/infer", &headers, &raw);
    assert!(silero.error(400).contains("one input"));
}

#[test]
fn binary_data_output_covers_unlisted_outputs_and_a_listed_outputs_own_choice_wins() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let x = digits_x();
    let input = json!({"name": "X", "shape": [1, 64], "datatype": "FP32", "data": x[..64]});
    let path = "/v2/models/sklearn_digits_rf/infer";
    let all_binary = json!({"inputs": [input], "parameters": {"binary_data_output": true}});
    let reply = server.client.post_json(path, &all_binary);
    assert!(reply.header("inference-header-content-length").is_some());
    let (header, _) = response_header(&reply);
    for output in header["outputs"].as_array().unwrap() {
        assert!(
            output["parameters"]["binary_data_size"].is_u64(),
            "{output}"
        );
    }
    let mixed = json!({
        "inputs": [input],
        "parameters": {"binary_data_output": true},
        "outputs": [{"name": "label", "parameters": {"binary_data": false}}, {"name": "probabilities"}],
    });
    let reply = server.client.post_json(path, &mixed);
    assert!(reply.header("inference-header-content-length").is_some());
    let (header, _) = response_header(&reply);
    let outputs = header["outputs"].as_array().unwrap();
    let label = outputs.iter().find(|o| o["name"] == "label").unwrap();
    let probabilities = outputs
        .iter()
        .find(|o| o["name"] == "probabilities")
        .unwrap();
    assert!(
        label["data"].is_array(),
        "its own binary_data: false wins: {label}"
    );
    assert!(
        probabilities["parameters"]["binary_data_size"].is_u64(),
        "{probabilities}"
    );
}

#[test]
fn classification_without_batching_ranks_the_whole_tensor() {
    let repository = tempfile::tempdir().unwrap();
    add_model(repository.path(), "efficientnet_lite0", None);
    let manifest = repository.path().join("efficientnet_lite0/model.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("max_batch_size = 8", "max_batch_size = 0"),
    )
    .unwrap();
    let server = TestServer::start(repository.path(), &[]);
    let case = reference_case("efficientnet_lite0", None);
    let mut request = destino_tests::v2::json_request(&case.inputs);
    request["outputs"] = json!([{"name": "logits", "parameters": {"classification": 3}}]);
    let reply = server
        .client
        .post_json("/v2/models/efficientnet_lite0/infer", &request);
    let output = &reply.json()["outputs"][0];
    assert_eq!(output["shape"], json!([3]), "{output}");
    assert!(
        output["data"][0]
            .as_str()
            .unwrap()
            .ends_with(":282:tiger cat"),
        "{output}"
    );
}

#[test]
fn bytes_that_are_not_plain_text() {
    let repository = tempfile::tempdir().unwrap();
    let folder = repository.path().join("all_dtypes");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        destino_tests::fixture("all_dtypes.onnx"),
        folder.join("model.onnx"),
    )
    .unwrap();
    let server = TestServer::start(repository.path(), &[]);
    // Every input of the identity model, with the strings under test.
    let request = |strings: &[&[u8]]| -> (Vec<u8>, String) {
        let mut raw = Vec::new();
        let mut inputs = Vec::new();
        for (name, datatype, bytes) in [
            ("x_bool", "BOOL", vec![1u8]),
            ("x_uint8", "UINT8", vec![1]),
            ("x_uint16", "UINT16", vec![1, 0]),
            ("x_uint32", "UINT32", vec![1, 0, 0, 0]),
            ("x_uint64", "UINT64", vec![1, 0, 0, 0, 0, 0, 0, 0]),
            ("x_int8", "INT8", vec![1]),
            ("x_int16", "INT16", vec![1, 0]),
            ("x_int32", "INT32", vec![1, 0, 0, 0]),
            ("x_int64", "INT64", vec![1, 0, 0, 0, 0, 0, 0, 0]),
            ("x_float16", "FP16", vec![0, 60]),
            ("x_float32", "FP32", vec![0, 0, 128, 63]),
            ("x_float64", "FP64", vec![0, 0, 0, 0, 0, 0, 240, 63]),
            ("scalar", "INT64", vec![7, 0, 0, 0, 0, 0, 0, 0]),
        ] {
            let shape = if name == "scalar" {
                json!([])
            } else {
                json!([1])
            };
            inputs.push(json!({"name": name, "datatype": datatype, "shape": shape,
                "parameters": {"binary_data_size": bytes.len()}}));
            raw.extend(bytes);
        }
        let mut strings_raw = Vec::new();
        for s in strings {
            strings_raw.extend((s.len() as u32).to_le_bytes());
            strings_raw.extend_from_slice(s);
        }
        inputs.push(
            json!({"name": "x_string", "datatype": "BYTES", "shape": [strings.len()],
            "parameters": {"binary_data_size": strings_raw.len()}}),
        );
        raw.extend(strings_raw);
        let header = json!({"inputs": inputs, "outputs": [{"name": "y_string"}]}).to_string();
        let length = header.len().to_string();
        let mut body = header.into_bytes();
        body.extend(raw);
        (body, length)
    };
    let post = |strings: &[&[u8]]| {
        let (body, length) = request(strings);
        let headers = [("inference-header-content-length", length.as_str())];
        server
            .client
            .post("/v2/models/all_dtypes/infer", &headers, &body)
    };
    let invalid_utf8 = post(&[b"ok", b"\xff\xfe"]);
    assert!(invalid_utf8.error(400).contains("not UTF-8"));
    let nul = post(&[b"a\0b"]);
    if testing_edge() {
        // tract's strings hold any text: the NUL comes back.
        assert_eq!(nul.status, 200, "{}", nul.text());
        assert_eq!(nul.json()["outputs"][0]["data"], json!(["a\u{0}b"]));
    } else {
        assert!(
            nul.error(400).contains("NUL byte"),
            "ONNX Runtime cannot hold it"
        );
    }
}

#[test]
fn json_nesting_repository_bodies_and_triton_error_texts() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let deep = format!(
        r#"{{"inputs": [{{"name": "X", "shape": [1], "datatype": "FP32", "data": {}1{}}}]}}"#,
        "[".repeat(101),
        "]".repeat(101)
    );
    let nested = c.post("/v2/models/sklearn_digits_rf/infer", &[], deep.as_bytes());
    assert!(nested.error(400).contains("deeper than 100"));
    let score = c.post("/score?model=sklearn_digits_rf", &[], deep.as_bytes());
    assert!(score.error(400).contains("deeper than 100"));

    let not_bool = c.post("/v2/repository/index", &[], br#"{"ready": "yes"}"#);
    assert_eq!(not_bool.status, 400, "{}", not_bool.text());
    let ready_only = c
        .post("/v2/repository/index", &[], br#"{"ready": true}"#)
        .json();
    assert_eq!(ready_only.as_array().unwrap().len(), 4, "{ready_only}");
    let with_config = c.post(
        "/v2/repository/models/sklearn_digits_rf/load",
        &[],
        br#"{"parameters": {"config": "{\"max_batch_size\": 2}"}}"#,
    );
    assert!(with_config.error(400).contains("config"));
    let with_file = c.post(
        "/v2/repository/models/sklearn_digits_rf/load",
        &[],
        br#"{"parameters": {"file:1/model.onnx": "AAAA"}}"#,
    );
    assert!(with_file.error(400).contains("file:1/model.onnx"));

    let unknown = c.post("/v2/models/nope/infer", &[], b"{}");
    assert!(
        unknown
            .error(404)
            .starts_with("Request for unknown model: 'nope' is not found")
    );
    let version = c.get("/v2/models/sklearn_digits_rf/versions/9");
    assert!(
        version
            .error(404)
            .starts_with("Request for unknown model: 'sklearn_digits_rf' version 9 is not found")
    );
}
