//! The Azure ML `/score` JSON body (`{"data": ...}` or one field per input), against a
//! single-input model and a model with several inputs of different dtypes.
#![no_main]

use std::sync::LazyLock;

use destino_serving::score::json_inputs;
use destino_core::{DType, Dim, ModelMetadata, TensorInfo};
use libfuzzer_sys::fuzz_target;

fn info(name: &str, dtype: DType, shape: Option<Vec<Dim>>) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        dtype,
        shape,
    }
}

static MODELS: LazyLock<[ModelMetadata; 2]> = LazyLock::new(|| {
    let batch = || Dim::Symbolic("batch".into());
    [
        ModelMetadata {
            inputs: vec![info(
                "x",
                DType::F32,
                Some(vec![Dim::Unknown, Dim::Fixed(3)]),
            )],
            outputs: vec![info("y", DType::F32, Some(vec![batch()]))],
            ..Default::default()
        },
        ModelMetadata {
            inputs: vec![
                info("ids", DType::I64, Some(vec![batch(), Dim::Unknown])),
                info("mask", DType::Bool, Some(vec![batch(), Dim::Unknown])),
                info("text", DType::String, Some(vec![batch()])),
                info("scale", DType::F16, None),
                info(
                    "pixels",
                    DType::U8,
                    Some(vec![Dim::Fixed(2), Dim::Fixed(2)]),
                ),
            ],
            outputs: vec![info("y", DType::F32, None)],
            ..Default::default()
        },
    ]
});

fuzz_target!(|data: &[u8]| {
    for model in MODELS.iter() {
        let _ = json_inputs(model, data);
    }
});
