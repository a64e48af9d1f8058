//! The weights every instance of a model shares: its large initializers, read once from the
//! file and handed to each session (`AddInitializer`: ONNX Runtime uses that memory and
//! keeps no copy of its own), and one prepacked-weights container for what the kernels
//! repack. Without this, each instance holds a full copy of the model's weights.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use destino_core::repository::FileStamp;
use destino_core::weights::shareable_initializers;
use destino_core::{Tensor, TensorData};
use ort::session::builder::{PrepackedWeights, SessionBuilder};
use ort::value::DynValue;

/// Initializers smaller than this stay in each session: sharing them saves nothing.
const MIN_SHARED_BYTES: usize = 4096;

/// What the sessions of one model file share.
#[derive(Debug)]
pub(crate) struct SharedWeights {
    prepacked: PrepackedWeights,
    initializers: Vec<(String, Arc<DynValue>)>,
}

impl SharedWeights {
    fn read(path: &Path) -> SharedWeights {
        // Unreadable weights are ONNX Runtime's to report, when it loads the file itself.
        let initializers = shareable_initializers(path, MIN_SHARED_BYTES)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, tensor)| Some((name, Arc::new(to_value(tensor)?))))
            .collect();
        SharedWeights {
            prepacked: PrepackedWeights::new(),
            initializers,
        }
    }

    /// `builder` using these weights.
    pub(crate) fn apply(&self, mut builder: SessionBuilder) -> ort::Result<SessionBuilder> {
        builder = builder.with_prepacked_weights(&self.prepacked)?;
        for (name, value) in &self.initializers {
            builder = builder.with_initializer(name, value.clone())?;
        }
        Ok(builder)
    }
}

fn to_value(tensor: Tensor) -> Option<DynValue> {
    let (shape, data) = tensor.into_parts();
    let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    macro_rules! value {
        ($v:expr) => {
            ort::value::Tensor::from_array((shape, $v))
                .ok()
                .map(|t| t.into_dyn())
        };
    }
    match data {
        TensorData::F32(v) => value!(v),
        TensorData::F64(v) => value!(v),
        TensorData::F16(v) => value!(v),
        TensorData::I64(v) => value!(v),
        TensorData::I32(v) => value!(v),
        TensorData::I8(v) => value!(v),
        TensorData::U8(v) => value!(v),
        _ => None,
    }
}

/// A model file as it is now: a changed file (hot swap) shares nothing with the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileKey {
    path: PathBuf,
    stamp: Option<FileStamp>,
}

impl FileKey {
    fn of(path: &Path) -> FileKey {
        FileKey {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            stamp: FileStamp::of(path),
        }
    }
}

/// Weights in use; an entry dies with the last session of its model.
static SHARED: Mutex<Vec<(FileKey, Weak<SharedWeights>)>> = Mutex::new(Vec::new());

/// The weights the sessions of `path` share, read on first use.
pub(crate) fn for_model(path: &Path) -> Arc<SharedWeights> {
    let key = FileKey::of(path);
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    shared.retain(|(_, weights)| weights.strong_count() > 0);
    if let Some(weights) = shared
        .iter()
        .filter(|(k, _)| *k == key)
        .find_map(|(_, weights)| weights.upgrade())
    {
        return weights;
    }
    let weights = Arc::new(SharedWeights::read(path));
    shared.push((key, Arc::downgrade(&weights)));
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_share_their_weights_while_a_session_holds_them() {
        let env = std::env::var("ORT_DYLIB_PATH").ok();
        crate::init_runtime(&crate::runtime_path::candidates(None, env.as_deref()))
            .expect("ONNX Runtime (scripts/fetch-onnxruntime)");
        let dir = std::env::temp_dir().join(format!("destino-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.onnx"), dir.join("b.onnx"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"bb").unwrap();
        let first = for_model(&a);
        assert!(Arc::ptr_eq(&first, &for_model(&a)));
        assert!(!Arc::ptr_eq(&first, &for_model(&b)));
        std::fs::write(&a, b"changed").unwrap();
        assert!(
            !Arc::ptr_eq(&first, &for_model(&a)),
            "a changed file shares nothing"
        );
        drop(first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
