use std::path::PathBuf;
use std::sync::Arc;

use destino_core::tensor::TensorData;
use destino_core::{Engine, EngineConfig, Tensor, Tensors};

use crate::TractEngine;

pub(crate) fn shared_model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/models")
        .join(name)
}

fn digits_row(engine: &TractEngine) -> Tensors {
    let input = &engine.metadata().inputs[0];
    let row = Tensor::new(vec![1, 64], TensorData::F32(vec![3.0; 64])).unwrap();
    Tensors::from([(input.name.clone(), row)])
}

#[test]
fn instances_of_a_model_share_one_planner_and_its_plans() {
    let path = shared_model("sklearn_digits_rf.onnx");
    let config = EngineConfig::default();
    let mut first = TractEngine::load(&path, &config).unwrap();
    let mut second = TractEngine::load(&path, &config).unwrap();
    assert!(Arc::ptr_eq(&first.planner, &second.planner));
    // Its batch axis is free: nothing is planned until a request brings a shape.
    assert_eq!(second.facts(), None);
    let answer = first.run(&digits_row(&first)).unwrap();
    assert!(
        second.facts().is_some(),
        "the first instance's plan is the second's"
    );
    assert_eq!(second.run(&digits_row(&second)).unwrap(), answer);
    let other = EngineConfig {
        threads: 2,
        ..EngineConfig::default()
    };
    let threaded = TractEngine::load(&path, &other).unwrap();
    assert!(!Arc::ptr_eq(&first.planner, &threaded.planner));
    drop((first, second, threaded));
    let again = TractEngine::load(&path, &config).unwrap();
    assert_eq!(again.facts(), None, "a planner dies with its last instance");
}
