//! The image path: `models/efficientnet_lite0/model.toml` turns the shared sample images into
//! the reference tensors, and both engines rank the documented classes first.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::manifest::Manifest;
use destino_core::npz::read_npy_file;
use destino_core::postprocess::{classify, load_labels};
use destino_core::preprocess::DEFAULT_MAX_PIXELS;
use destino_core::{Engine, EngineConfig, Tensor, Tensors};
use destino_ort::OrtEngine;
use destino_tests::{bundled_models, init_onnxruntime, shared_models};
use destino_tract::TractEngine;

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

/// The top 5 of `image` are the documented classes, each score within 0.01.
fn assert_top5(engine: &mut dyn Engine, image: &str, documented: [(&str, f32); 5]) {
    let ranked = top5(engine, image);
    let names: Vec<&str> = ranked.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<&str> = documented.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected, "{image}: {ranked:?}");
    for ((_, score), (_, documented)) in ranked.iter().zip(documented) {
        assert!((score - documented).abs() < 0.01, "{image}: {ranked:?}");
    }
}

fn assert_documented_top5(engine: &mut dyn Engine) {
    let cat = [
        ("tiger cat", 0.383),
        ("Egyptian cat", 0.370),
        ("tabby", 0.161),
        ("lynx", 0.021),
        ("window screen", 0.001),
    ];
    assert_top5(engine, "chelsea.png", cat);
    let coffee = [
        ("espresso", 0.957),
        ("cup", 0.014),
        ("consomme", 0.007),
        ("chocolate sauce", 0.004),
        ("coffee mug", 0.003),
    ];
    assert_top5(engine, "coffee.png", coffee);
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
