//! Text models over real HTTP: a model folder with `tokenizer.json` serves OpenAI's
//! `/v1/embeddings` (the server tokenizes), equal to the reference embeddings on both
//! engines, and through KServe V2 (a BYTES input) and `/score`; a text classifier answers
//! labels; bad text is a clear 4xx that leaves other requests alone; the real `openai` and
//! `tritonclient` (HTTP, gRPC) Python packages work unchanged.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use base64::Engine as _;
use destino_core::Tensor;
use destino_core::npz::read_npy_file;
use destino_core::parity::{Tolerance, compare};
use destino_tests::server::{TestServer, add_model};
use destino_tests::shared_models;
use destino_tests::{generated_models, run_client_suite};
use serde_json::{Value, json};

const MODEL: &str = "paraphrase_minilm_l3";

/// A repository with the MiniLM sentence embedder (linked, with its tokenizer) and the
/// digits forest (a tensor model).
fn text_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let folder = add_model(dir.path(), MODEL, None);
    let tokenizer = shared_models().join(format!("{MODEL}.tokenizer.json"));
    std::os::unix::fs::symlink(tokenizer, folder.join("tokenizer.json")).unwrap();
    add_model(dir.path(), "sklearn_digits_rf", None);
    dir
}

fn sentences() -> Vec<String> {
    let text = std::fs::read_to_string(shared_models().join(format!("{MODEL}.sentences.txt")));
    text.unwrap().lines().map(str::to_string).collect()
}

fn embeddings(reply: &Value) -> Tensor {
    let rows = reply["data"].as_array().unwrap();
    let mut values = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["index"], i);
        assert_eq!(row["object"], "embedding");
        let vector: Vec<f32> = match &row["embedding"] {
            Value::String(text) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            other => serde_json::from_value(other.clone()).unwrap(),
        };
        values.push(vector);
    }
    let dim = values.first().map_or(0, Vec::len);
    Tensor::new(vec![values.len(), dim], values.concat()).unwrap()
}

fn reference() -> Tensor {
    read_npy_file(&shared_models().join(format!("{MODEL}.output.461.npy"))).unwrap()
}

fn assert_reference_rows(actual: &Tensor, rows: std::ops::Range<usize>) {
    let reference = reference();
    let dim = reference.shape()[1];
    let data = reference.as_f32().unwrap()[rows.start * dim..rows.end * dim].to_vec();
    let expected = Tensor::new(vec![rows.len(), dim], data).unwrap();
    let comparison = compare("embeddings", actual, &expected, Tolerance::default());
    assert!(comparison.within, "{comparison}");
}

#[test]
fn embeddings_equal_the_reference_in_every_encoding() {
    let repository = text_repository();
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let texts = sentences();
    for format in ["float", "base64"] {
        let body = json!({ "model": MODEL, "input": texts, "encoding_format": format });
        let reply = c.post_json("/v1/embeddings", &body);
        assert_eq!(reply.status, 200, "{}\n{}", reply.text(), server.output());
        let reply = reply.json();
        assert_eq!(reply["object"], "list");
        assert_eq!(reply["model"], MODEL);
        assert_reference_rows(&embeddings(&reply), 0..texts.len());
        // Every sentence's tokens, [CLS] and [SEP] included, without the batch's padding.
        let tokens = reply["usage"]["prompt_tokens"].as_u64().unwrap();
        assert!(tokens > 9 * 5 && tokens < 9 * 14, "{tokens}");
    }
    // One sentence alone (no padding) answers its row of the padded batch.
    let one = c.post_json(
        "/v1/embeddings",
        &json!({ "model": MODEL, "input": texts[3] }),
    );
    assert_reference_rows(&embeddings(&one.json()), 3..4);
    // Token ids a client tokenized itself: [CLS] hello [SEP].
    let ids = c.post_json(
        "/v1/embeddings",
        &json!({ "model": MODEL, "input": [[101, 7592, 102]] }),
    );
    let by_ids = embeddings(&ids.json());
    let by_text = embeddings(
        &c.post_json(
            "/v1/embeddings",
            &json!({ "model": MODEL, "input": "hello" }),
        )
        .json(),
    );
    assert!(compare("ids", &by_ids, &by_text, Tolerance::default()).within);
    let models = c.get("/v1/models").json();
    let names: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, [MODEL, "sklearn_digits_rf"]);
    assert_eq!(
        c.get(&format!("/v1/models/{MODEL}")).json()["object"],
        "model"
    );
    // Warmed up with a sentence its tokenizer made: the index reports no warm-up problem.
    let index = c.post_json("/v2/repository/index", &json!({})).json();
    let entry = index
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == MODEL)
        .unwrap();
    assert_eq!(entry["state"], "READY");
    assert!(entry.get("reason").is_none(), "{entry}");
}

/// The OpenAI error of a reply, after checking its status.
fn openai_error(reply: &destino_tests::server::Reply, status: u16) -> String {
    assert_eq!(reply.status, status, "{}", reply.text());
    let error = &reply.json()["error"];
    assert!(error["type"].is_string(), "{error}");
    error["message"].as_str().unwrap().to_string()
}

#[test]
fn bad_text_is_a_clear_client_error_and_harms_nothing() {
    let repository = text_repository();
    let server = TestServer::start(repository.path(), &["--max-text-bytes", "65536"]);
    let c = &server.client;
    let post =
        |input: Value| c.post_json("/v1/embeddings", &json!({ "model": MODEL, "input": input }));
    assert!(openai_error(&post(json!("")), 400).contains("empty"));
    assert!(openai_error(&post(json!(["fine", ""])), 400).contains("input 1 is empty"));
    let huge = "word ".repeat(200_000);
    assert!(openai_error(&post(json!(huge)), 413).contains("bytes"));
    let many = vec!["a"; 100_000];
    assert!(openai_error(&post(json!(many)), 413).contains("100000 inputs"));
    assert!(openai_error(&post(json!([[101, 999_999]])), 400).contains("vocabulary"));
    assert!(openai_error(&post(json!([[101, -3]])), 400).contains("vocabulary"));
    assert!(openai_error(&post(json!({"text": "x"})), 400).contains("must be a string"));
    let invalid_utf8 = br#"{"model": "paraphrase_minilm_l3", "input": "caf\xe9"}"#;
    let reply = c.post(
        "/v1/embeddings",
        &[("content-type", "application/json")],
        invalid_utf8,
    );
    assert!(openai_error(&reply, 400).contains("malformed"));
    let tensors_only = c.post_json(
        "/v1/embeddings",
        &json!({ "model": "sklearn_digits_rf", "input": "x" }),
    );
    assert!(openai_error(&tensors_only, 400).contains("not a text model"));
    let unknown = c.post_json("/v1/embeddings", &json!({ "model": "nope", "input": "x" }));
    assert!(openai_error(&unknown, 404).contains("nope"));
    let dims = c.post_json(
        "/v1/embeddings",
        &json!({ "model": MODEL, "input": "x", "dimensions": 8 }),
    );
    assert!(openai_error(&dims, 400).contains("384 dimensions"));
    // A large request is no bad request: 1000 strings, far more runs than the queue holds.
    let many: Vec<String> = (0..1000).map(|i| format!("sentence number {i}")).collect();
    let reply = post(json!(many));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["data"].as_array().unwrap().len(), 1000);
    // Nothing above touched the model: a good request still answers the reference.
    let good = post(json!(sentences()));
    assert_reference_rows(&embeddings(&good.json()), 0..9);
}

#[test]
fn the_openai_and_triton_python_clients_work_unchanged() {
    let repository = text_repository();
    let (server, grpc) = TestServer::start_with_grpc(repository.path(), &[]);
    let url = format!("{}/v1", server.client.base);
    let report = run_client_suite(
        "test_text_clients.py",
        &["--url", &url, "--grpc-url", &grpc, "--model", MODEL],
        || server.output(),
    );
    assert!(report.contains("OK"), "{report}");
}

/// The classes `/score` answers for each input: (label, score) pairs, best first.
fn classes(reply: &Value, output: &str) -> Vec<Vec<(String, f64)>> {
    let rows = reply["outputs"][output]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"));
    rows.iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["label"].as_str().unwrap().to_string(),
                        c["score"].as_f64().unwrap(),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_text_classifier_answers_labels_on_every_route() {
    let repository = text_repository();
    assert_eq!(
        generated_models("text_models.py", repository.path()),
        ["intent"]
    );
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let texts = [
        "A man is eating a piece of bread.",
        "The dog chased the cat.",
        "She plays the guitar and the piano.",
    ];
    let reply = c.post_json("/score?model=intent", &json!({ "data": texts }));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let array = c.post_json("/score?model=intent", &json!(texts));
    assert_eq!(classes(&array.json(), "logits")[1][0].0, "animal");
    let top: Vec<String> = classes(&reply.json(), "logits")
        .iter()
        .map(|r| r[0].0.clone())
        .collect();
    assert_eq!(top, ["food", "animal", "music"]);
    // A raw text body, as an MQTT message or a dropped file carries it.
    let raw = c.post(
        "/models/intent/predict",
        &[("content-type", "text/plain")],
        texts[1].as_bytes(),
    );
    assert_eq!(classes(&raw.json(), "logits")[0][0].0, "animal");
    // KServe V2: the strings in one BYTES input, Triton's classification extension on the output.
    let v2 = c.post_json(
        "/v2/models/intent/infer",
        &json!({
            "inputs": [{ "name": "text", "shape": [3], "datatype": "BYTES", "data": texts }],
            "outputs": [{ "name": "logits", "parameters": { "classification": 1 } }]
        }),
    );
    assert_eq!(v2.status, 200, "{}", v2.text());
    let v2 = v2.json();
    let labels: Vec<&str> = v2["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        labels[0].ends_with(":0:food") && labels[2].ends_with(":2:music"),
        "{labels:?}"
    );
    let wrong = c.post_json(
        "/v2/models/intent/infer",
        &json!({
            "inputs": [{ "name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"] }],
            "outputs": [{ "name": "nope" }]
        }),
    );
    assert_eq!(wrong.status, 400, "{}", wrong.text());
}

#[test]
fn v2_and_score_embed_text_equal_to_the_reference() {
    let repository = text_repository();
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let texts = sentences();
    let v2 = c.post_json(
        &format!("/v2/models/{MODEL}/infer"),
        &json!({ "id": "t", "inputs": [{ "name": "text", "shape": [texts.len()], "datatype": "BYTES", "data": texts }] }),
    );
    assert_eq!(v2.status, 200, "{}", v2.text());
    let v2 = v2.json();
    assert_eq!(v2["id"], "t");
    let output = &v2["outputs"][0];
    assert_eq!(output["name"], "461");
    assert_eq!(output["shape"], json!([9, 384]));
    let data: Vec<f32> = serde_json::from_value(output["data"].clone()).unwrap();
    assert_reference_rows(&Tensor::new(vec![9, 384], data).unwrap(), 0..9);
    let score = c.post_json(&format!("/score?model={MODEL}"), &json!({ "data": texts }));
    assert_eq!(score.status, 200, "{}", score.text());
    let rows: Vec<Vec<f32>> =
        serde_json::from_value(score.json()["outputs"]["461"].clone()).unwrap();
    assert_reference_rows(&Tensor::new(vec![9, 384], rows.concat()).unwrap(), 0..9);
    // Tensors still work: the model's own inputs, tokenized by the client.
    let ids = read_npy_file(&shared_models().join(format!("{MODEL}.input.input_ids.npy"))).unwrap();
    let mask =
        read_npy_file(&shared_models().join(format!("{MODEL}.input.attention_mask.npy"))).unwrap();
    let tensor = |name: &str, t: &Tensor| json!({ "name": name, "shape": t.shape(), "datatype": "INT64", "data": t.data().to_f64_vec().unwrap().iter().map(|&v| v as i64).collect::<Vec<_>>() });
    let raw = c.post_json(
        &format!("/v2/models/{MODEL}/infer"),
        &json!({ "inputs": [tensor("input_ids", &ids), tensor("attention_mask", &mask)], "outputs": [{ "name": "461" }] }),
    );
    assert_eq!(raw.status, 200, "{}", raw.text());
}

#[test]
fn requests_of_different_lengths_share_engine_runs() {
    let repository = text_repository();
    // One instance that waits up to 2 s for company: the four requests below, sent at once,
    // are padded to the longest and run together.
    let args = [
        "--instances",
        "1",
        "--max-batch-size",
        "8",
        "--max-queue-delay-us",
        "2000000",
    ];
    let server = TestServer::start(repository.path(), &args);
    let texts = sentences();
    let picks = [0usize, 3, 5, 8];
    let replies: Vec<Tensor> = std::thread::scope(|scope| {
        let calls: Vec<_> = picks
            .iter()
            .map(|&i| {
                let (c, text) = (&server.client, &texts[i]);
                scope.spawn(move || {
                    let body = json!({ "model": MODEL, "input": text });
                    embeddings(&c.post_json("/v1/embeddings", &body).json())
                })
            })
            .collect();
        calls.into_iter().map(|call| call.join().unwrap()).collect()
    });
    for (&i, reply) in picks.iter().zip(&replies) {
        assert_reference_rows(reply, i..i + 1);
    }
    let stats = server
        .client
        .get(&format!("/v2/models/{MODEL}/stats"))
        .json();
    let model = &stats["model_stats"][0];
    assert_eq!(model["inference_count"], 4, "{stats}");
    let runs = model["execution_count"].as_u64().unwrap();
    assert!(runs < 4, "4 requests took {runs} runs: {stats}");
}

#[test]
fn queries_and_documents_get_the_prefixes_model_toml_gives() {
    let repository = text_repository();
    let folder = repository.path().join(MODEL);
    let manifest = "[text]\nquery_prefix = \"query: \"\ndocument_prefix = \"passage: \"\n";
    std::fs::write(folder.join("model.toml"), manifest).unwrap();
    let server = TestServer::start(repository.path(), &[]);
    let c = &server.client;
    let embed = |input: &str, input_type: Option<&str>| {
        let mut body = json!({ "model": MODEL, "input": input });
        if let Some(kind) = input_type {
            body["input_type"] = json!(kind);
        }
        let reply = c.post_json("/v1/embeddings", &body);
        assert_eq!(reply.status, 200, "{}", reply.text());
        embeddings(&reply.json())
    };
    let same = |a: &Tensor, b: &Tensor| compare("e", a, b, Tolerance::default()).within;
    let query = embed("a cat", Some("query"));
    assert!(same(&query, &embed("query: a cat", None)));
    assert!(same(
        &embed("a cat", Some("passage")),
        &embed("passage: a cat", None)
    ));
    assert!(!same(&query, &embed("a cat", None)));
    let bad = c.post_json(
        "/v1/embeddings",
        &json!({ "model": MODEL, "input": "x", "input_type": "question" }),
    );
    assert!(openai_error(&bad, 400).contains("input_type"));
}
