//! Bad models and bad inputs give the right typed error on both engines, never a panic.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::npz::read_npy_file;
use destino_core::parity::{Tolerance, compare_all};
use destino_core::{Engine, EngineConfig, Error, OpType, Tensor, Tensors};
use destino_tests::{ENGINES, Loader, fixture, load_ort, load_tract, model_path, reference_case};
use destino_tract::TractEngine;

#[test]
fn broken_model_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("truncated.onnx");
    let bytes = std::fs::read(model_path("efficientnet_lite0")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let text = dir.path().join("text.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    for (name, load) in ENGINES {
        for path in [&empty, &truncated, &text] {
            match load(path) {
                Err(Error::ModelInvalid { path: p, .. }) => assert_eq!(&p, path),
                other => panic!(
                    "{name} on {}: expected ModelInvalid, got {other:?}",
                    path.display()
                ),
            }
        }
        let missing = dir.path().join("missing.onnx");
        assert!(
            matches!(load(&missing), Err(Error::ModelNotFound { .. })),
            "{name}"
        );
        assert!(
            matches!(load(dir.path()), Err(Error::ModelInvalid { .. })),
            "{name}"
        );
    }
}

fn silero_inputs() -> Tensors {
    reference_case("silero_vad", None).inputs
}

fn expect_error(load: Loader, model: &str, inputs: &Tensors, check: impl Fn(&Error) -> bool) {
    let mut engine = load(&model_path(model)).unwrap();
    match engine.run(inputs) {
        Err(e) if check(&e) => {}
        other => panic!("{} on {model}: unexpected {other:?}", engine.name()),
    }
}

#[test]
fn bad_inputs_are_typed_errors_before_the_engine_runs() {
    for (_, load) in ENGINES {
        let mut unknown = silero_inputs();
        unknown.insert("samples".into(), Tensor::scalar(1f32));
        expect_error(
            load,
            "silero_vad",
            &unknown,
            |e| matches!(e, Error::UnknownInput { name, known } if name == "samples" && known.len() == 3),
        );

        let mut missing = silero_inputs();
        missing.remove("state");
        expect_error(
            load,
            "silero_vad",
            &missing,
            |e| matches!(e, Error::MissingInput { name } if name == "state"),
        );

        let mut wrong_dtype = silero_inputs();
        wrong_dtype.insert("sr".into(), Tensor::scalar(16000i32));
        expect_error(load, "silero_vad", &wrong_dtype, |e| {
            e.to_string() == "input `sr`: expected dtype int64, got int32"
        });

        let mut wrong_rank = silero_inputs();
        wrong_rank.insert("sr".into(), Tensor::new(vec![1], vec![16000i64]).unwrap());
        expect_error(load, "silero_vad", &wrong_rank, |e| {
            matches!(e, Error::InputShape { name, .. } if name == "sr")
                && e.to_string().contains("rank 1 instead of 0")
        });

        let mut wrong_dim = Tensors::new();
        wrong_dim.insert(
            "input".into(),
            Tensor::new(vec![1, 4, 224, 224], vec![0f32; 4 * 224 * 224]).unwrap(),
        );
        expect_error(load, "efficientnet_lite0", &wrong_dim, |e| {
            e.to_string().contains("expected shape [batch, 3, 224, 224], got [1, 4, 224, 224] (dim 1 is 4 instead of 3)")
        });
    }
}

#[test]
fn errors_leave_the_engine_usable() {
    for (_, load) in ENGINES {
        let mut engine = load(&model_path("silero_vad")).unwrap();
        let mut bad = silero_inputs();
        bad.remove("input");
        assert!(engine.run(&bad).is_err());
        let case = reference_case("silero_vad", None);
        let outputs = engine.run(&case.inputs).unwrap();
        assert!(
            compare_all(&outputs, &case.expected, Tolerance::default())
                .iter()
                .all(|c| c.within)
        );
    }
}

#[test]
fn tract_refuses_a_model_listing_every_missing_operator() {
    let path = fixture("unsupported_ops.onnx");
    match TractEngine::load(&path, &EngineConfig::default()) {
        Err(Error::UnsupportedOperators { engine, ops, .. }) => {
            assert_eq!(engine, "tract");
            let op = |name: &str| OpType {
                domain: String::new(),
                name: name.into(),
            };
            assert_eq!(ops, vec![op("CumProd"), op("LpPool")]);
        }
        other => panic!("expected UnsupportedOperators, got {other:?}"),
    }
    let message = TractEngine::load(&path, &EngineConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("CumProd (domain ai.onnx), LpPool (domain ai.onnx)"),
        "{message}"
    );
}

#[test]
fn both_engines_run_a_scikit_learn_pipeline_like_scikit_learn() {
    let mut inputs = Tensors::new();
    inputs.insert(
        "X".into(),
        read_npy_file(&fixture("digits_pipeline.input.npy")).unwrap(),
    );
    let mut expected = Tensors::new();
    for name in ["label", "probabilities"] {
        let file = fixture(&format!("digits_pipeline.output.{name}.npy"));
        expected.insert(name.into(), read_npy_file(&file).unwrap());
    }
    for load in [load_ort, load_tract] {
        let mut engine = load(&fixture("digits_pipeline.onnx")).unwrap();
        let outputs = engine.run(&inputs).unwrap();
        for comparison in compare_all(&outputs, &expected, Tolerance::default()) {
            assert!(comparison.within, "{}: {comparison}", engine.name());
        }
    }
}

#[test]
fn a_zipmap_output_is_served_as_its_probability_tensor_on_both_engines() {
    let path = fixture("digits_zipmap.onnx");
    let model = destino_core::OnnxModel::read(&path).unwrap();
    assert!(
        model.skipped_outputs.is_empty(),
        "{:?}",
        model.skipped_outputs
    );
    assert_eq!(model.zipmaps.len(), 1);
    let mut inputs = Tensors::new();
    inputs.insert(
        "X".into(),
        read_npy_file(&fixture("digits_pipeline.input.npy")).unwrap(),
    );
    let mut expected = Tensors::new();
    for (output, file) in [
        ("output_label", "label"),
        ("output_probability", "probabilities"),
    ] {
        let file = fixture(&format!("digits_pipeline.output.{file}.npy"));
        expected.insert(output.into(), read_npy_file(&file).unwrap());
    }
    for load in [load_ort, load_tract] {
        let mut engine = load(&path).unwrap();
        let names: Vec<&str> = engine
            .metadata()
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(names, ["output_label", "output_probability"]);
        let outputs = engine.run(&inputs).unwrap();
        assert_eq!(outputs.len(), 2);
        for comparison in compare_all(&outputs, &expected, Tolerance::default()) {
            assert!(comparison.within, "{}: {comparison}", engine.name());
        }
    }
}
