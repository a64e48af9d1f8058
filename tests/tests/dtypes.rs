//! Every dtype destino serves goes into and comes out of each engine unchanged
//! (`fixtures/all_dtypes.onnx`: one Identity per dtype, plus a rank-0 input).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_core::{DType, Engine, EngineConfig, Tensor, TensorData, Tensors};
use destino_edge::TractEngine;
use destino_server::ort_engine::OrtEngine;
use destino_tests::{fixture, init_onnxruntime};
use half::f16;

fn samples() -> Vec<TensorData> {
    vec![
        vec![true, false, true].into(),
        vec![0u8, 7, u8::MAX].into(),
        vec![0u16, 7, u16::MAX].into(),
        vec![0u32, 7, u32::MAX].into(),
        vec![0u64, 7, u64::MAX].into(),
        vec![i8::MIN, -1, i8::MAX].into(),
        vec![i16::MIN, -1, i16::MAX].into(),
        vec![i32::MIN, -1, i32::MAX].into(),
        vec![i64::MIN, -1, i64::MAX].into(),
        vec![f16::MIN, f16::from_f32(-0.5), f16::INFINITY].into(),
        vec![f32::MIN_POSITIVE, -1.5, f32::NEG_INFINITY].into(),
        vec![f64::MAX, 1e-300, -0.0].into(),
        vec!["".to_string(), "ascii".into(), "ünïcödé ✓".into()].into(),
    ]
}

fn inputs() -> Tensors {
    let mut inputs: Tensors = samples()
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
