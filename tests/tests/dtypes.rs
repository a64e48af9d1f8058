//! Every dtype destino serves goes into and comes out of each engine unchanged
//! (`fixtures/all_dtypes.onnx`: one Identity per dtype, plus a rank-0 input).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::{DType, Engine, EngineConfig, Tensor, Tensors};
use destino_ort::OrtEngine;
use destino_tests::{dtype_samples, fixture, init_onnxruntime};
use destino_tract::TractEngine;

fn inputs() -> Tensors {
    let mut inputs: Tensors = dtype_samples(false)
        .into_iter()
        .map(|data| {
            (
                format!("x_{}", data.dtype()),
                Tensor::new(vec![3], data).unwrap(),
            )
        })
        .collect();
    inputs.insert("scalar".into(), Tensor::scalar(-42i64));
    inputs
}

fn assert_identity(engine: &mut dyn Engine) {
    let metadata = engine.metadata();
    assert_eq!(metadata.inputs.len(), DType::ALL.len() + 1);
    for dtype in DType::ALL {
        assert_eq!(metadata.input(&format!("x_{dtype}")).unwrap().dtype, dtype);
    }
    let inputs = inputs();
    let outputs = engine.run(&inputs).unwrap();
    for dtype in DType::ALL {
        let (x, y) = (format!("x_{dtype}"), format!("y_{dtype}"));
        assert_eq!(outputs[&y], inputs[&x], "{} changed {dtype}", engine.name());
    }
    assert_eq!(
        outputs["scalar_out"],
        Tensor::scalar(-42i64),
        "{}",
        engine.name()
    );
}

#[test]
fn onnxruntime_round_trips_every_dtype() {
    init_onnxruntime();
    assert_identity(
        &mut OrtEngine::load(&fixture("all_dtypes.onnx"), &EngineConfig::default()).unwrap(),
    );
}

#[test]
fn tract_round_trips_every_dtype() {
    assert_identity(
        &mut TractEngine::load(&fixture("all_dtypes.onnx"), &EngineConfig::default()).unwrap(),
    );
}
