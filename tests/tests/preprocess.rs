//! The image path: `models/efficientnet_lite0/model.toml` turns the shared sample images into
//! the reference tensors, and both engines rank the documented classes first.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::manifest::Manifest;
use destino_core::npz::read_npy_file;
use destino_core::postprocess::{classify, load_labels};
use destino_core::preprocess::DEFAULT_MAX_PIXELS;
use destino_core::{Engine, EngineConfig, Tensor, Tensors};
use destino_edge::TractEngine;
use destino_server::ort_engine::OrtEngine;
use destino_tests::{bundled_models, init_onnxruntime, shared_models};

fn preprocess(image: &str) -> Tensor {
    let dir = bundled_models().join("efficientnet_lite0");
    let manifest = Manifest::load_from_dir(&dir).unwrap();
    let spec = manifest.inputs["input"].image.as_ref().unwrap();
    let bytes = std::fs::read(shared_models().join("images").join(image)).unwrap();
    spec.tensor_from_bytes(&bytes, DEFAULT_MAX_PIXELS).unwrap()
}

fn assert_close_to_reference(image: &str, reference: &str) {
    let ours = preprocess(image);
    let expected = read_npy_file(&shared_models().join(reference)).unwrap();
    assert_eq!(ours.shape(), expected.shape());
    let (a, b) = (ours.as_f32().unwrap(), expected.as_f32().unwrap());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let mean = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
    assert!(
        worst <= 1e-2,
        "{image}: max abs diff {worst} (mean {mean}) over 1e-2"
    );
}

#[test]
fn chelsea_preprocesses_to_the_reference_tensor() {
    assert_close_to_reference("chelsea.png", "efficientnet_lite0.input.npy");
}

#[test]
fn coffee_preprocesses_to_the_reference_tensor() {
    assert_close_to_reference("coffee.png", "efficientnet_lite0.coffee.input.npy");
}

fn top5(engine: &mut dyn Engine, image: &str) -> Vec<(String, f32)> {
    let dir = bundled_models().join("efficientnet_lite0");
    let manifest = Manifest::load_from_dir(&dir).unwrap();
    let labels = load_labels(&dir.join("labels.txt")).unwrap();
    let mut inputs = Tensors::new();
    inputs.insert("input".into(), preprocess(image));
    let outputs = engine.run(&inputs).unwrap();
    let rows = classify(
        &outputs["logits"],
        &manifest.outputs["logits"],
        Some(&labels),
    )
    .unwrap();
    rows[0]
        .iter()
        .map(|c| {
            let label = c.label.clone().unwrap();
            (label.split(',').next().unwrap().to_string(), c.score)
        })
        .collect()
}

fn assert_documented_top5(engine: &mut dyn Engine) {
    let cat = top5(engine, "chelsea.png");
    let names: Vec<&str> = cat.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "tiger cat",
            "Egyptian cat",
            "tabby",
            "lynx",
            "window screen"
        ],
        "{cat:?}"
    );
    for ((_, score), documented) in cat.iter().zip([0.383, 0.370, 0.161, 0.021, 0.001]) {
        assert!((score - documented).abs() < 0.01, "{cat:?}");
    }
    let coffee = top5(engine, "coffee.png");
    let names: Vec<&str> = coffee.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "espresso",
            "cup",
            "consomme",
            "chocolate sauce",
            "coffee mug"
        ],
        "{coffee:?}"
    );
    assert!((coffee[0].1 - 0.957).abs() < 0.01, "{coffee:?}");
}

#[test]
fn onnxruntime_ranks_the_documented_classes() {
    init_onnxruntime();
    let path = bundled_models().join("efficientnet_lite0/model.onnx");
    let mut engine = OrtEngine::load(&path, &EngineConfig::default()).unwrap();
    assert_documented_top5(&mut engine);
}

#[test]
fn tract_ranks_the_documented_classes() {
    let path = bundled_models().join("efficientnet_lite0/model.onnx");
    let mut engine = TractEngine::load(&path, &EngineConfig::default()).unwrap();
    assert_documented_top5(&mut engine);
}
