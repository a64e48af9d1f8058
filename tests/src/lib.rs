//! Helpers for destino's cross-crate tests: the shared real models and their reference
//! inputs and outputs (`../shared/models`).

use std::path::{Path, PathBuf};

use destino_core::npz::read_npy_file;
use destino_core::{ModelMetadata, OnnxModel, Tensors};

/// The shared models folder: `$DESTINO_SHARED_MODELS`, else `../shared/models` beside the
/// checkout.
pub fn shared_models() -> PathBuf {
    if let Ok(dir) = std::env::var("DESTINO_SHARED_MODELS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/models")
}

pub fn model_path(name: &str) -> PathBuf {
    shared_models().join(format!("{name}.onnx"))
}

/// A model's reference case: inputs and expected outputs, keyed by the model's names.
#[derive(Debug)]
pub struct ReferenceCase {
    pub model: PathBuf,
    pub metadata: ModelMetadata,
    pub inputs: Tensors,
    pub expected: Tensors,
}

/// Reads `<model>[.<case>].input[.<name>].npy` and `.output[...]` files: a file without a
/// name belongs to the model's only input or output.
pub fn reference_case(model: &str, case: Option<&str>) -> ReferenceCase {
    let path = model_path(model);
    let metadata = OnnxModel::read(&path).expect("shared model reads").metadata;
    let prefix = match case {
        Some(case) => format!("{model}.{case}"),
        None => model.to_string(),
    };
    let read = |kind: &str, names: Vec<&str>| -> Tensors {
        let mut tensors = Tensors::new();
        for name in names {
            let named = shared_models().join(format!("{prefix}.{kind}.{name}.npy"));
            let file = if named.exists() {
                named
            } else {
                shared_models().join(format!("{prefix}.{kind}.npy"))
            };
            let tensor =
                read_npy_file(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            tensors.insert(name.to_string(), tensor);
        }
        tensors
    };
    let inputs = read(
        "input",
        metadata.inputs.iter().map(|i| i.name.as_str()).collect(),
    );
    let expected = read(
        "output",
        metadata.outputs.iter().map(|o| o.name.as_str()).collect(),
    );
    ReferenceCase {
        model: path,
        metadata,
        inputs,
        expected,
    }
}
