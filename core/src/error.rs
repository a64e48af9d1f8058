//! The typed errors every destination reports, whichever engine runs.

use std::fmt;
use std::path::PathBuf;

use crate::dtype::DType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An operator of a model, named as ONNX names it: `domain` is empty for the default domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpType {
    pub domain: String,
    pub name: String,
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = if self.domain.is_empty() {
            "ai.onnx"
        } else {
            &self.domain
        };
        write!(f, "{} (domain {domain})", self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model not found: {}", path.display())]
    ModelNotFound { path: PathBuf },

    #[error("invalid model {}: {reason}", path.display())]
    ModelInvalid { path: PathBuf, reason: String },

    #[error("the {engine} engine cannot run {} of this model's operators: {}{}",
        ops.len(), join(ops), detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    UnsupportedOperators {
        engine: &'static str,
        ops: Vec<OpType>,
        detail: Option<String>,
    },

    #[error("{what} `{name}` has type {dtype}, which destino cannot serve")]
    UnsupportedDType {
        what: &'static str,
        name: String,
        dtype: String,
    },

    #[error("unknown input `{name}`; the model's inputs are: {}", known.join(", "))]
    UnknownInput { name: String, known: Vec<String> },

    #[error("missing input `{name}`")]
    MissingInput { name: String },

    #[error("input `{name}`: expected dtype {expected}, got {actual}")]
    InputDType {
        name: String,
        expected: DType,
        actual: DType,
    },

    #[error("input `{name}`: expected shape {expected}, got {actual:?}{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    InputShape {
        name: String,
        expected: String,
        actual: Vec<usize>,
        reason: Option<String>,
    },

    #[error("invalid tensor: {0}")]
    InvalidTensor(String),

    #[error("{engine} engine failed: {message}")]
    Engine {
        engine: &'static str,
        message: String,
    },

    #[error("inference runtime unavailable: {0}")]
    RuntimeUnavailable(String),

    /// A model that reads its file again on demand (the edge's low-memory mode) found the
    /// file changed or gone: what is loaded still serves, but nothing new can be built from it.
    #[error("{} changed or was removed since it was loaded; this request needs the file again (a new input shape) and is served once the model is reloaded", path.display())]
    ModelFileChanged { path: PathBuf },

    #[error("invalid manifest {}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },

    #[error("model repository: {0}")]
    Repository(String),

    #[error("image: {0}")]
    Image(String),

    /// An image whose decoded or resized size is over the configured pixel limit.
    #[error("image: {0}")]
    ImageTooLarge(String),

    /// Text a text model cannot take (empty, token ids outside the vocabulary).
    #[error("text: {0}")]
    Text(String),

    /// Text over a configured limit (bytes, tokens, inputs per request).
    #[error("text: {0}")]
    TextTooLong(String),

    /// The execution device could not be started (not a problem of the model itself).
    #[error("{device} is unavailable: {reason}")]
    DeviceUnavailable {
        device: crate::Device,
        reason: String,
    },

    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

impl Error {
    /// True when the caller's request was at fault (bad input), false for server-side failures.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::UnknownInput { .. }
                | Error::MissingInput { .. }
                | Error::InputDType { .. }
                | Error::InputShape { .. }
                | Error::InvalidTensor(_)
                | Error::Image(_)
                | Error::ImageTooLarge(_)
                | Error::Text(_)
                | Error::TextTooLong(_)
        )
    }

    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl fmt::Display) -> Error {
        Error::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

fn join(ops: &[OpType]) -> String {
    ops.iter()
        .map(OpType::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_operators_names_every_op_and_domain() {
        let err = Error::UnsupportedOperators {
            engine: "tract",
            ops: vec![
                OpType {
                    domain: "ai.onnx.ml".into(),
                    name: "TreeEnsembleClassifier".into(),
                },
                OpType {
                    domain: "ai.onnx.ml".into(),
                    name: "ZipMap".into(),
                },
            ],
            detail: None,
        };
        let text = err.to_string();
        assert!(
            text.contains("TreeEnsembleClassifier (domain ai.onnx.ml)"),
            "{text}"
        );
        assert!(text.contains("ZipMap (domain ai.onnx.ml)"), "{text}");
        assert!(text.contains("2 of this model's operators"), "{text}");
    }
}
