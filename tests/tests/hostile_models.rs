//! Model files are attack surface: hostile ONNX files (`tests/python/hostile_models.py`) are
//! refused by both engines with an error — never read outside their folder, never a crash —
//! and a server given them alongside a good model serves the good one.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;

use destino_core::{Error, Tensor, Tensors};
use destino_tests::server::{TestServer, add_model};
use destino_tests::{ENGINES, generated_models};

/// Writes the hostile models into `root` and returns their names.
fn hostile_models(root: &Path) -> Vec<String> {
    generated_models("hostile_models.py", root)
}

#[test]
fn both_engines_refuse_every_hostile_model() {
    let dir = tempfile::tempdir().unwrap();
    let names = hostile_models(dir.path());
    assert!(names.len() >= 15, "{names:?}");
    let mut report = Vec::new();
    for name in &names {
        let path = dir.path().join(name).join("model.onnx");
        for (engine, load) in ENGINES {
            match load(&path) {
                Err(e) => {
                    if name.starts_with("external_")
                        && !name.contains("missing")
                        && !name.contains("past")
                        && !name.contains("lies")
                    {
                        assert!(
                            matches!(&e, Error::ModelInvalid { reason, .. } if reason.contains("outside the model's folder")),
                            "{engine} {name}: {e}"
                        );
                    }
                    report.push(format!("{engine} {name}: {e}"));
                }
                Ok(mut model) => {
                    let x = Tensor::new(vec![4], vec![0.0f32; 4]).unwrap();
                    let inputs: Tensors = [("x".to_string(), x)].into_iter().collect();
                    let answer = model.run(&inputs);
                    // tract runs an operator by the newest semantics it knows whatever opset
                    // the file claims: lenient, not unsafe (ONNX Runtime refuses).
                    assert!(
                        name == "opset_from_the_future" && engine == "tract" && answer.is_ok(),
                        "{engine} loaded hostile model {name}; running it gave {answer:?}"
                    );
                    report.push(format!("{engine} {name}: loaded and ran"));
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn a_server_given_hostile_models_serves_the_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let names = hostile_models(dir.path());
    add_model(dir.path(), "sklearn_digits_rf", None);
    let server = TestServer::start(dir.path(), &[]);
    let index = server
        .client
        .post_json("/v2/repository/index", &serde_json::json!({}))
        .json();
    for name in &names {
        let entry = index
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {index}"));
        assert_eq!(entry["state"], "UNAVAILABLE", "{entry}");
        assert!(
            entry["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{entry}"
        );
    }
    let ready = server.client.get("/v2/models/sklearn_digits_rf/ready");
    assert_eq!(ready.status, 200, "{}", server.output());
    assert!(!server.output().contains("panicked"), "{}", server.output());
}
