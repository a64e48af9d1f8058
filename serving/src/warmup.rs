//! Warm-up: one inference on each new engine instance before it serves, so the first
//! request does not pay for lazy allocation and planning. Only inputs that make sense are
//! used, and a warm-up that fails is reported, never held against the model: it serves
//! whatever happens here.
//!
//! The inputs, in order of preference:
//! 1. the samples `model.toml` names (`warmup = "samples.npz"`);
//! 2. for a text model, one short sentence its own tokenizer turns into token inputs;
//! 3. inputs made from the declared shapes: fixed dims as declared, a free leading (batch)
//!    dim as 1, an image input as the size its preprocessing makes, zeros throughout;
//! 4. none, when some input has another free dim, an unknown rank or holds strings: no size
//!    or value would be right for every model.

use std::path::Path;

use destino_core::manifest::Manifest;
use destino_core::metadata::{Dim, ModelMetadata, TensorInfo};
use destino_core::npz::read_npz;
use destino_core::tensor::element_count;
use destino_core::text::{TextLimits, TextModel};
use destino_core::{DType, Engine, Tensor, TensorData, Tensors};

/// The sentence a text model is warmed up with.
const WARMUP_TEXT: &str = "Warming up.";

/// What a model is warmed up with, or why it is not.
#[derive(Debug, Clone, PartialEq)]
pub enum Warmup {
    Samples(Tensors),
    Text(Tensors),
    Synthetic(Tensors),
    Skipped(String),
}

/// How a warm-up went: `None` when it ran and succeeded, otherwise what the repository
/// index and the log report.
pub type WarmupNote = Option<String>;

impl Warmup {
    /// The warm-up for a model, from its manifest (`base`: the folder of `model.toml`) and,
    /// for a text model, its tokenizer.
    pub fn for_model(
        metadata: &ModelMetadata,
        manifest: &Manifest,
        base: &Path,
        text: Option<&TextModel>,
    ) -> Warmup {
        if let Some(file) = &manifest.warmup {
            let path = base.join(file);
            return match read_npz(&path) {
                Ok(samples) => Warmup::Samples(samples),
                Err(e) => Warmup::Skipped(format!("cannot read the warm-up samples: {e}")),
            };
        }
        if let Some(text) = text {
            let tokens = text.tokenize(&[WARMUP_TEXT], &TextLimits::default());
            return match tokens.and_then(|t| text.tensors(&t.iter().collect::<Vec<_>>())) {
                Ok(inputs) => Warmup::Text(inputs),
                Err(e) => Warmup::Skipped(format!("cannot tokenize a warm-up sentence: {e}")),
            };
        }
        let inputs: Result<Tensors, String> = metadata
            .inputs
            .iter()
            .map(|info| Ok((info.name.clone(), synthetic_input(info, manifest)?)))
            .collect();
        match inputs {
            Ok(inputs) => Warmup::Synthetic(inputs),
            Err(reason) => Warmup::Skipped(reason),
        }
    }

    /// Runs the warm-up on `engine`; the note says what went wrong, if anything.
    pub fn run(&self, engine: &mut dyn Engine) -> WarmupNote {
        let (inputs, source) = match self {
            Warmup::Samples(inputs) => (inputs, "the samples model.toml names"),
            Warmup::Text(inputs) => (inputs, "a sentence its tokenizer made"),
            Warmup::Synthetic(inputs) => (inputs, "inputs made from the declared shapes"),
            Warmup::Skipped(reason) => return Some(format!("no warm-up: {reason}")),
        };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run(inputs)));
        match run {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("warm-up with {source} failed: {e}")),
            Err(_) => Some(format!("warm-up with {source} panicked in the engine")),
        }
    }
}

fn synthetic_input(info: &TensorInfo, manifest: &Manifest) -> Result<Tensor, String> {
    let name = &info.name;
    if info.dtype == DType::String {
        return Err(format!("input `{name}` holds strings"));
    }
    let image = manifest.inputs.get(name).and_then(|s| s.image.as_ref());
    let shape = match (image, &info.shape) {
        (Some(spec), _) => spec
            .output_shape()
            .ok_or_else(|| format!("image input `{name}` has no fixed preprocessed size"))?,
        (None, None) => return Err(format!("input `{name}` has no declared rank")),
        (None, Some(dims)) => dims
            .iter()
            .enumerate()
            .map(|(axis, dim)| match dim {
                Dim::Fixed(n) => Ok(*n),
                Dim::Symbolic(_) | Dim::Unknown if axis == 0 => Ok(1),
                Dim::Symbolic(s) => Err(format!("input `{name}` has a free dim `{s}`")),
                Dim::Unknown => Err(format!("input `{name}` has a free dim on axis {axis}")),
            })
            .collect::<Result<Vec<usize>, String>>()?,
    };
    let len = element_count(&shape).ok_or_else(|| format!("input `{name}` is too large"))?;
    Tensor::new(shape, TensorData::zeros(info.dtype, len)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use destino_core::manifest::MANIFEST_FILE;

    fn input(name: &str, dtype: DType, dims: &[Dim]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype,
            shape: Some(dims.to_vec()),
        }
    }

    fn model(inputs: Vec<TensorInfo>) -> ModelMetadata {
        ModelMetadata {
            inputs,
            ..ModelMetadata::default()
        }
    }

    fn synthetic(metadata: &ModelMetadata, manifest: &Manifest) -> Warmup {
        Warmup::for_model(metadata, manifest, Path::new("."), None)
    }

    #[test]
    fn a_free_batch_dim_is_one_and_fixed_dims_are_kept() {
        let m = model(vec![input(
            "x",
            DType::F32,
            &[Dim::Symbolic("batch".into()), Dim::Fixed(64)],
        )]);
        let Warmup::Synthetic(inputs) = synthetic(&m, &Manifest::default()) else {
            panic!("expected synthetic inputs");
        };
        assert_eq!(inputs["x"].shape(), &[1, 64]);
    }

    #[test]
    fn other_free_dims_and_strings_are_not_guessed() {
        let spatial = model(vec![input(
            "image",
            DType::F32,
            &[
                Dim::Fixed(1),
                Dim::Fixed(3),
                Dim::Symbolic("h".into()),
                Dim::Symbolic("w".into()),
            ],
        )]);
        assert_eq!(
            synthetic(&spatial, &Manifest::default()),
            Warmup::Skipped("input `image` has a free dim `h`".into())
        );
        let text = model(vec![input("text", DType::String, &[Dim::Fixed(1)])]);
        assert!(matches!(
            synthetic(&text, &Manifest::default()),
            Warmup::Skipped(_)
        ));
    }

    #[test]
    fn image_inputs_take_their_preprocessed_size() {
        let m = model(vec![input(
            "image",
            DType::F32,
            &[
                Dim::Symbolic("n".into()),
                Dim::Fixed(3),
                Dim::Unknown,
                Dim::Unknown,
            ],
        )]);
        let manifest = Manifest::parse(
            "[inputs.image.image]\nresize = { shorter_side = 256 }\ncrop = [224, 200]\n",
            Path::new(MANIFEST_FILE),
        )
        .unwrap();
        let Warmup::Synthetic(inputs) = synthetic(&m, &manifest) else {
            panic!("expected synthetic inputs");
        };
        assert_eq!(inputs["image"].shape(), &[1, 3, 224, 200]);
    }

    #[test]
    fn samples_named_by_the_manifest_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let samples = Tensors::from([(
            "x".to_string(),
            Tensor::new(vec![2, 2], vec![1f32, 2.0, 3.0, 4.0]).unwrap(),
        )]);
        destino_core::npz::write_npz(&dir.path().join("samples.npz"), &samples).unwrap();
        let manifest =
            Manifest::parse("warmup = \"samples.npz\"\n", Path::new(MANIFEST_FILE)).unwrap();
        let m = model(vec![input("x", DType::F32, &[Dim::Unknown, Dim::Unknown])]);
        assert_eq!(
            Warmup::for_model(&m, &manifest, dir.path(), None),
            Warmup::Samples(samples)
        );
        let missing = Manifest::parse("warmup = \"gone.npz\"\n", Path::new(MANIFEST_FILE)).unwrap();
        assert!(matches!(
            Warmup::for_model(&m, &missing, dir.path(), None),
            Warmup::Skipped(_)
        ));
    }
}
