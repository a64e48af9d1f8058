//! Models tract 0.23.9 panicked on answer on the tract engine: an empty pooling plane is the
//! empty tensor the ONNX specification gives, and an out-of-range index is an error for that
//! request alone, at every thread count.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;

use destino_core::parity::{Tolerance, compare_all};
use destino_core::{Engine, EngineConfig, Tensor, Tensors};
use destino_tract::TractEngine;

fn tract(model: &Path, threads: usize) -> TractEngine {
    let config = EngineConfig {
        threads,
        ..EngineConfig::default()
    };
    TractEngine::load(model, &config).unwrap()
}

fn image(height: usize, width: usize) -> Tensors {
    let pixels: Vec<f32> = (0..3 * height * width)
        .map(|i| (i % 7) as f32 - 3.0)
        .collect();
    let tensor = Tensor::new(vec![1, 3, height, width], pixels).unwrap();
    Tensors::from([("image".to_string(), tensor)])
}

/// A 2×2, stride-2 window with auto_pad=VALID: ceil((size - 2 + 1) / 2) positions.
fn pooled(size: usize) -> usize {
    (size + 1).saturating_sub(2).div_ceil(2)
}

#[test]
fn a_detector_pools_an_image_smaller_than_its_window_to_an_empty_plane() {
    let dir = tempfile::tempdir().unwrap();
    let names = destino_tests::generated_models("small_input_models.py", dir.path());
    assert!(names.contains(&"face_detector".to_string()), "{names:?}");
    let model = dir.path().join("face_detector.onnx");
    let mut reference = destino_tests::load_ort(&model).unwrap();
    for threads in [1, 2] {
        let mut engine = tract(&model, threads);
        for (height, width) in [
            (0, 0),
            (0, 5),
            (1, 1),
            (1, 3),
            (2, 2),
            (3, 5),
            (4, 4),
            (9, 7),
            (64, 48),
        ] {
            let inputs = image(height, width);
            let outputs = engine
                .run(&inputs)
                .unwrap_or_else(|e| panic!("{height}×{width}, {threads} threads: {e}"));
            let expected = [1, 2, pooled(pooled(height)), pooled(pooled(width))];
            assert_eq!(outputs["scores"].shape(), expected, "{height}×{width}");
            // ONNX Runtime pools a window that does not fit as one position (not the
            // specification's none): compare values only where every window fits.
            if height >= 4 && width >= 4 {
                let want = reference.run(&inputs).unwrap();
                let tolerance = Tolerance {
                    atol: 1e-4,
                    rtol: 1e-4,
                };
                for comparison in compare_all(&outputs, &want, tolerance) {
                    assert!(comparison.within, "{height}×{width}: {comparison}");
                }
            }
        }
    }
}

#[test]
fn an_index_out_of_range_fails_that_request_alone() {
    let dir = tempfile::tempdir().unwrap();
    destino_tests::generated_models("small_input_models.py", dir.path());
    let model = dir.path().join("gather_runtime_indices.onnx");
    let indices = |values: Vec<i64>| {
        let tensor = Tensor::new(vec![values.len()], values).unwrap();
        Tensors::from([("indices".to_string(), tensor)])
    };
    for threads in [1, 2] {
        let mut engine = tract(&model, threads);
        for bad in [vec![4], vec![0, 1_000_000], vec![-5]] {
            let error = engine.run(&indices(bad.clone())).unwrap_err();
            assert!(
                error.to_string().contains("out of range for an axis of 4"),
                "{bad:?}: {error}"
            );
        }
        let rows = engine.run(&indices(vec![3, -4])).unwrap();
        let want = Tensor::new(vec![2, 3], vec![9f32, 10.0, 11.0, 0.0, 1.0, 2.0]).unwrap();
        assert_eq!(rows["rows"], want);
    }
}
