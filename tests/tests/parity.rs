//! Every shared model on both engines reproduces its reference outputs; the engines agree.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::parity::{Tolerance, compare_all};
use destino_core::{Engine, EngineConfig, Error, Tensor, Tensors};
use destino_ort::OrtEngine;
use destino_tests::{ReferenceCase, init_onnxruntime, reference_case};
use destino_tract::TractEngine;

/// The shared models' documented tolerance: float atol 1e-4, rtol 1e-3; integers exact.
const TOLERANCE: Tolerance = Tolerance {
    atol: 1e-4,
    rtol: 1e-3,
};

fn assert_matches_reference(engine: &mut dyn Engine, case: &ReferenceCase) {
    let outputs = engine
        .run(&case.inputs)
        .unwrap_or_else(|e| panic!("{}: {e}", case.model.display()));
    assert_eq!(outputs.len(), case.metadata.outputs.len());
    for comparison in compare_all(&outputs, &case.expected, TOLERANCE) {
        assert!(
            comparison.within,
            "{} on {}: {comparison}",
            case.model.display(),
            engine.name()
        );
    }
}

fn ort(case: &ReferenceCase) -> OrtEngine {
    init_onnxruntime();
    OrtEngine::load(&case.model, &EngineConfig::default()).unwrap()
}

fn tract(case: &ReferenceCase) -> TractEngine {
    TractEngine::load(&case.model, &EngineConfig::default()).unwrap()
}

const CASES: [(&str, Option<&str>); 5] = [
    ("efficientnet_lite0", None),
    ("efficientnet_lite0", Some("coffee")),
    ("ppocr_mobile_v2_cls", None),
    ("silero_vad", None),
    ("sklearn_digits_rf", None),
];

#[test]
fn onnxruntime_reproduces_every_reference() {
    for (model, case) in CASES {
        let case = reference_case(model, case);
        assert_matches_reference(&mut ort(&case), &case);
    }
}

#[test]
fn tract_reproduces_every_reference() {
    for (model, case) in CASES {
        let case = reference_case(model, case);
        assert_matches_reference(&mut tract(&case), &case);
    }
}

#[test]
fn recurrent_layers_agree_in_every_direction() {
    let dir = tempfile::tempdir().unwrap();
    let names = destino_tests::generated_models("recurrent_models.py", dir.path());
    assert_eq!(names.len(), 18, "{names:?}");
    for name in names {
        let model = dir.path().join(format!("{name}.onnx"));
        let inputs = destino_core::npz::read_npz(&dir.path().join(format!("{name}.npz"))).unwrap();
        let expected = destino_tests::load_ort(&model)
            .unwrap()
            .run(&inputs)
            .unwrap();
        let actual = destino_tests::load_tract(&model)
            .unwrap()
            .run(&inputs)
            .unwrap();
        assert_eq!(actual.len(), expected.len(), "{name}");
        for comparison in compare_all(&actual, &expected, TOLERANCE) {
            assert!(comparison.within, "{name}: tract vs ort: {comparison}");
        }
    }
}

#[test]
fn onnxruntime_with_two_threads_matches_one() {
    init_onnxruntime();
    let case = reference_case("efficientnet_lite0", None);
    let config = EngineConfig {
        threads: 2,
        ..EngineConfig::default()
    };
    let mut engine = OrtEngine::load(&case.model, &config).unwrap();
    assert_matches_reference(&mut engine, &case);
}

#[test]
fn tract_with_two_threads_matches_one() {
    let case = reference_case("efficientnet_lite0", Some("coffee"));
    let config = EngineConfig {
        threads: 2,
        ..EngineConfig::default()
    };
    let mut engine = TractEngine::load(&case.model, &config).unwrap();
    assert_matches_reference(&mut engine, &case);
}

/// Joins the inputs of two cases along the batch axis.
fn batch_of_two(a: &Tensors, b: &Tensors) -> Tensors {
    a.iter()
        .map(|(name, t)| {
            (
                name.clone(),
                Tensor::concat_batch(&[t.clone(), b[name].clone()]).unwrap(),
            )
        })
        .collect()
}

fn assert_batch_equals_single_runs(engine: &mut dyn Engine, first: &Tensors, second: &Tensors) {
    let single_a = engine.run(first).unwrap();
    let single_b = engine.run(second).unwrap();
    let batched = engine.run(&batch_of_two(first, second)).unwrap();
    for (name, joined) in &batched {
        let rows: Vec<usize> = [&single_a[name], &single_b[name]]
            .iter()
            .map(|t| t.shape()[0])
            .collect();
        let parts = joined.split_batch(&rows).unwrap();
        for (part, single) in parts.iter().zip([&single_a, &single_b]) {
            let mut expected = Tensors::new();
            expected.insert(name.clone(), single[name].clone());
            let mut actual = Tensors::new();
            actual.insert(name.clone(), part.clone());
            let comparison = &compare_all(&actual, &expected, TOLERANCE)[0];
            assert!(
                comparison.within,
                "{} batch vs single: {comparison}",
                engine.name()
            );
        }
    }
}

#[test]
fn batch_of_two_equals_two_single_runs() {
    let cat = reference_case("efficientnet_lite0", None);
    let coffee = reference_case("efficientnet_lite0", Some("coffee"));
    assert_batch_equals_single_runs(&mut ort(&cat), &cat.inputs, &coffee.inputs);
    assert_batch_equals_single_runs(&mut tract(&cat), &cat.inputs, &coffee.inputs);

    // A text line and the same line flipped upside down.
    let line = reference_case("ppocr_mobile_v2_cls", None);
    let upside_down = upside_down(&line);
    assert_batch_equals_single_runs(&mut ort(&line), &line.inputs, &upside_down);
    assert_batch_equals_single_runs(&mut tract(&line), &line.inputs, &upside_down);
}

/// The orientation classifier's input rotated by 180°.
fn upside_down(line: &ReferenceCase) -> Tensors {
    let x = &line.inputs["x"];
    let planes = x.as_f32().unwrap().chunks(48 * 192);
    let rotated: Vec<f32> = planes
        .flat_map(|plane| plane.iter().rev().copied())
        .collect();
    let mut inputs = Tensors::new();
    inputs.insert(
        "x".into(),
        Tensor::new(x.shape().to_vec(), rotated).unwrap(),
    );
    inputs
}

#[test]
fn orientation_classifier_sees_the_flip() {
    let line = reference_case("ppocr_mobile_v2_cls", None);
    let upside_down = upside_down(&line);
    for engine in [&mut ort(&line) as &mut dyn Engine, &mut tract(&line)] {
        let scores = engine.run(&upside_down).unwrap();
        let p = scores["save_infer_model/scale_0.tmp_1"]
            .as_f32()
            .unwrap()
            .to_vec();
        assert!(
            p[1] > 0.5,
            "{}: a line rotated by 180° should read as 180: {p:?}",
            engine.name()
        );
    }
}

#[test]
fn tract_in_low_memory_mode_rereads_the_graph_for_new_shapes_from_the_same_file() {
    let cat = reference_case("efficientnet_lite0", None);
    let coffee = reference_case("efficientnet_lite0", Some("coffee"));
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    std::fs::copy(&cat.model, &model).unwrap();
    let config = EngineConfig {
        low_memory: true,
        ..EngineConfig::default()
    };
    let mut engine = TractEngine::load(&model, &config).unwrap();
    // Batch 1 was planned at load; batch 2 needs the graph again, read from the file.
    assert_matches_reference(&mut engine, &cat);
    assert_batch_equals_single_runs(&mut engine, &cat.inputs, &coffee.inputs);

    // A file replaced after load is not silently mixed in: new shapes fail until reloaded.
    std::fs::write(&model, b"not the model").unwrap();
    let three = batch_of_two(&batch_of_two(&cat.inputs, &coffee.inputs), &cat.inputs);
    let error = engine.run(&three).unwrap_err();
    assert!(
        matches!(&error, Error::ModelFileChanged { path } if path == &model),
        "{error}"
    );
    // Shapes already planned keep serving.
    assert_matches_reference(&mut engine, &coffee);
}
