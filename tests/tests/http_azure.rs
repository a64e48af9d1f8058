//! Azure ML routes and image scoring over real HTTP: liveness, readiness, `/score` with JSON
//! or images, multipart batches, the OpenAPI document, API key, CORS and request ids.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::parity::{Tolerance, compare};
use destino_tests::server::{TestServer, add_model, test_repository};
use destino_tests::{digits_reference, reference_case, shared_models};
use serde_json::{Value, json};

fn image(name: &str) -> Vec<u8> {
    std::fs::read(shared_models().join("images").join(name)).unwrap()
}

fn top_label(outputs: &Value, row: usize) -> String {
    outputs["outputs"]["logits"][row][0]["label"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn liveness_readiness_and_openapi() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let live = c.get("/");
    assert_eq!((live.status, live.text().as_str()), (200, "Healthy"));
    assert_eq!(c.get("/ready").status, 200);
    let doc = c.get("/swagger.json").json();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/score",
        "/v2/models/{model}/infer",
        "/v2/health/ready",
        "/models/{model}/predict",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let models: Vec<&str> = doc["x-models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(models.len(), 4, "{models:?}");
}

#[test]
fn score_takes_json_for_single_and_multi_input_models() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let (rows, expected) = digits_reference();
    let several = c.post_json("/score", &json!({"data": rows}));
    assert!(several.error(400).contains("?model="));

    let reply = c
        .post_json("/score?model=sklearn_digits_rf", &json!({"data": rows}))
        .json();
    let labels = &reply["outputs"]["label"];
    assert_eq!(labels, &json!(expected));
    assert_eq!(
        reply["outputs"]["probabilities"].as_array().unwrap().len(),
        rows.len()
    );

    // `curl -d` sends JSON labelled as a form: it is still JSON.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let body = serde_json::to_vec(&json!({"data": rows})).unwrap();
    let as_form = c
        .post("/score?model=sklearn_digits_rf", &form, &body)
        .json();
    assert_eq!(as_form["outputs"]["label"], json!(expected));
    let not_json = c.post("/score?model=sklearn_digits_rf", &form, b"[1, 2]");
    assert!(not_json.error(415).contains("declares no image input"));

    // One row without its batch axis gets one added.
    let one = c
        .post_json("/score?model=sklearn_digits_rf", &json!({"data": rows[0]}))
        .json();
    assert_eq!(one["outputs"]["label"], json!([expected[0]]));

    let silero = reference_case("silero_vad", None);
    let state: Vec<Vec<Vec<f32>>> = silero.inputs["state"]
        .as_f32()
        .unwrap()
        .chunks(128)
        .map(|c| vec![c.to_vec()])
        .collect();
    let frame: Vec<Vec<f32>> = vec![silero.inputs["input"].as_f32().unwrap().to_vec()];
    let body = json!({"input": frame, "state": state, "sr": 16000});
    let reply = c.post_json("/score?model=silero_vad", &body).json();
    let probability = reply["outputs"]["output"][0][0].as_f64().unwrap();
    let expected = silero.expected["output"].as_f32().unwrap()[0];
    assert!(
        (probability - f64::from(expected)).abs() < 1e-4,
        "{probability} vs {expected}"
    );

    let wrong = c.post_json("/score?model=silero_vad", &json!({"audio": [1.0]}));
    assert!(wrong.error(400).contains("unknown input `audio`"));
    let ragged = c.post_json(
        "/score?model=sklearn_digits_rf",
        &json!({"data": [[1.0, 2.0], [3.0]]}),
    );
    assert!(ragged.error(400).contains("different lengths"));
    assert_eq!(
        c.post_json("/score?model=nope", &json!({"data": []}))
            .status,
        404
    );
}

#[test]
fn images_score_raw_and_multipart_with_labels() {
    let repository = tempfile::tempdir().unwrap();
    add_model(repository.path(), "efficientnet_lite0", None);
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let png = [("content-type", "image/png")];
    let unlabelled = [("content-type", "application/x-www-form-urlencoded")];
    let reply = c.post("/score", &unlabelled, &image("chelsea.png")).json();
    assert_eq!(top_label(&reply, 0), "tiger cat");
    assert_eq!(reply["outputs"]["logits"][0].as_array().unwrap().len(), 5);

    let boundary = "destino-boundary";
    let mut body = Vec::new();
    for (i, file) in ["chelsea.png", "coffee.png"].into_iter().enumerate() {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image{i}\"; filename=\"{file}\"\r\nContent-Type: image/png\r\n\r\n").bytes());
        body.extend(image(file));
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    let multipart = format!("multipart/form-data; boundary={boundary}");
    let reply = c
        .post(
            "/models/efficientnet_lite0/predict?top_k=2",
            &[("content-type", &multipart)],
            &body,
        )
        .json();
    assert_eq!(top_label(&reply, 0), "tiger cat");
    assert_eq!(top_label(&reply, 1), "espresso");
    assert_eq!(reply["outputs"]["logits"][1].as_array().unwrap().len(), 2);
    let score = reply["outputs"]["logits"][1][0]["score"].as_f64().unwrap();
    assert!(
        compare(
            "espresso",
            &destino_core::Tensor::scalar(score),
            &destino_core::Tensor::scalar(0.957f64),
            Tolerance {
                atol: 0.01,
                rtol: 0.0
            }
        )
        .within,
        "{score}"
    );

    let versioned = c.post(
        "/models/efficientnet_lite0/versions/1/predict",
        &png,
        &image("coffee.png"),
    );
    assert_eq!(top_label(&versioned.json(), 0), "espresso");

    let png_bytes = image("chelsea.png");
    let truncated = c.post(
        "/models/efficientnet_lite0/predict",
        &png,
        &png_bytes[..png_bytes.len() / 2],
    );
    assert!(truncated.error(400).contains("image 0"));
    let not_image = c.post("/models/efficientnet_lite0/predict", &png, b"hello");
    assert!(not_image.error(400).contains("image"));
}

#[test]
fn image_pixel_limit_refuses_before_decoding() {
    let repository = tempfile::tempdir().unwrap();
    add_model(repository.path(), "efficientnet_lite0", None);
    let server = TestServer::start(repository.path(), &["--max-image-pixels", "10000"]);
    let reply = server.client.post(
        "/score",
        &[("content-type", "image/png")],
        &image("chelsea.png"),
    );
    assert!(reply.error(413).contains("over the limit of 10000"));
    assert_eq!(server.client.get("/v2/health/ready").status, 200);
}

#[test]
fn api_key_cors_and_request_ids() {
    let repository = tempfile::tempdir().unwrap();
    add_model(repository.path(), "sklearn_digits_rf", None);
    let server = TestServer::start(
        repository.path(),
        &[
            "--api-key",
            "s3cret",
            "--cors-allow-origin",
            "https://app.example",
        ],
    );
    let c = &server.client;
    let denied = c.get("/v2/models/sklearn_digits_rf");
    assert!(denied.error(401).contains("API key"));
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    let wrong = c.get_with(
        "/v2/models/sklearn_digits_rf",
        &[("authorization", "Bearer nope")],
    );
    assert_eq!(wrong.status, 401);
    let allowed = c.get_with(
        "/v2/models/sklearn_digits_rf",
        &[("authorization", "Bearer s3cret")],
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(c.get("/v2/health/ready").status, 200, "health needs no key");
    assert_eq!(c.get("/").status, 200);

    let traced = c.get_with("/v2/health/live", &[("x-request-id", "trace-me-7")]);
    assert_eq!(traced.header("x-request-id"), Some("trace-me-7"));
    let generated = c.get("/v2/health/live");
    assert_eq!(generated.header("x-request-id").map(str::len), Some(36));

    let cors = c.get_with("/v2/health/live", &[("origin", "https://app.example")]);
    assert_eq!(
        cors.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let other = c.get_with("/v2/health/live", &[("origin", "https://evil.example")]);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn azure_ml_model_dir_and_port_come_from_the_environment() {
    let model_dir = tempfile::tempdir().unwrap();
    add_model(model_dir.path(), "sklearn_digits_rf", None);
    let server = TestServer::start_with_env(&[
        ("AZUREML_MODEL_DIR", model_dir.path()),
        ("DESTINO_HTTP_PORT", std::path::Path::new("0")),
        ("DESTINO_HTTP_ADDRESS", std::path::Path::new("127.0.0.1")),
    ]);
    let (rows, expected) = digits_reference();
    let reply = server
        .client
        .post_json("/score", &json!({"data": rows}))
        .json();
    assert_eq!(reply["outputs"]["label"], json!(expected));
    assert!(
        server
            .output()
            .contains(&model_dir.path().display().to_string())
    );
}
