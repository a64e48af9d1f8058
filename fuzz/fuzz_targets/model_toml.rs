//! `model.toml` text: parse, then check against an image classifier's metadata.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use destino_core::manifest::Manifest;
use destino_core::{DType, Dim, ModelMetadata, TensorInfo};
use libfuzzer_sys::fuzz_target;

static MODEL: LazyLock<ModelMetadata> = LazyLock::new(|| {
    let batch = || Dim::Symbolic("batch".into());
    let info = |name: &str, dtype, shape| TensorInfo {
        name: name.into(),
        dtype,
        shape,
    };
    ModelMetadata {
        inputs: vec![
            info(
                "input",
                DType::F32,
                Some(vec![
                    batch(),
                    Dim::Fixed(3),
                    Dim::Fixed(224),
                    Dim::Fixed(224),
                ]),
            ),
            info(
                "x",
                DType::F16,
                Some(vec![batch(), Dim::Unknown, Dim::Unknown, Dim::Fixed(3)]),
            ),
            info("ids", DType::I64, None),
        ],
        outputs: vec![info(
            "logits",
            DType::F32,
            Some(vec![batch(), Dim::Fixed(1000)]),
        )],
        ..Default::default()
    }
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("model.toml");
    if let Ok(manifest) = Manifest::parse(text, path) {
        let _ = manifest.check(&MODEL, path);
    }
});
