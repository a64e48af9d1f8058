//! Classic-ML pipelines (tests/fixtures/ml: scikit-learn, XGBoost and LightGBM exports, and
//! hand-built tree ensembles) on both engines against the training library's own answers.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};

use destino_core::npz::read_npz;
use destino_core::parity::{Tolerance, compare_all};
use destino_tests::{Loader, load_ort, load_tract};

/// The fixtures' tolerance (tests/fixtures/ml/README.md): floats rtol 1e-4, atol 1e-5;
/// labels exact.
const TOLERANCE: Tolerance = Tolerance {
    atol: 1e-5,
    rtol: 1e-4,
};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ml");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 19, "fixtures in {}", root.display());
    dirs
}

fn check(engine: &str, load: Loader, dir: &Path) {
    let mut model = load(&dir.join("model.onnx"))
        .unwrap_or_else(|e| panic!("{} on {engine}: {e}", dir.display()));
    let inputs = read_npz(&dir.join("inputs.npz")).unwrap();
    let expected = read_npz(&dir.join("expected.npz")).unwrap();
    let outputs = model
        .run(&inputs)
        .unwrap_or_else(|e| panic!("{} on {engine}: {e}", dir.display()));
    let comparisons = compare_all(&outputs, &expected, TOLERANCE);
    assert_eq!(comparisons.len(), expected.len());
    for comparison in comparisons {
        assert!(
            comparison.within,
            "{} on {engine}: {comparison}",
            dir.display()
        );
    }
}

#[test]
fn onnxruntime_answers_every_pipeline_as_its_library_does() {
    for dir in fixtures() {
        check("ort", load_ort, &dir);
    }
}

#[test]
fn tract_answers_every_pipeline_as_its_library_does() {
    for dir in fixtures() {
        check("tract", load_tract, &dir);
    }
}
