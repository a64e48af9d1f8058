//! What a model declares about its inputs and outputs, and the checks requests must pass
//! before any engine sees them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorData};

/// Named tensors, as inputs to or outputs of one inference.
pub type Tensors = BTreeMap<String, Tensor>;

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(usize),
    /// A named dimension (`batch`, `N`): free, but equal wherever the same name appears.
    Symbolic(String),
    Unknown,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(name) => f.write_str(name),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A declared input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    /// `None` when the model does not declare even the rank.
    pub shape: Option<Vec<Dim>>,
}

impl TensorInfo {
    /// The shape as text, `[batch, 3, 224, 224]`, or `[..]` when the rank is unknown.
    pub fn shape_text(&self) -> String {
        match &self.shape {
            None => "[..]".into(),
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(Dim::to_string).collect();
                format!("[{}]", dims.join(", "))
            }
        }
    }

    /// True when every dimension is fixed, so the shape is known before any request.
    pub fn is_static(&self) -> bool {
        self.shape
            .as_ref()
            .is_some_and(|dims| dims.iter().all(|d| matches!(d, Dim::Fixed(_))))
    }
}

/// An opset the model imports: `domain` is empty for the default ONNX domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opset {
    pub domain: String,
    pub version: i64,
}

/// Everything an engine and a protocol need to know about a loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelMetadata {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub opsets: Vec<Opset>,
    pub producer: String,
}

impl ModelMetadata {
    pub fn input(&self, name: &str) -> Option<&TensorInfo> {
        self.inputs.iter().find(|i| i.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&TensorInfo> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// Zero-filled inputs when the model fixes every dim of every input: the only inputs
    /// whose shapes are the model's own rather than a guess.
    pub fn fixed_inputs(&self) -> Option<Tensors> {
        self.inputs
            .iter()
            .map(|info| {
                let shape = info
                    .shape
                    .as_ref()?
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => Some(*n),
                        Dim::Symbolic(_) | Dim::Unknown => None,
                    })
                    .collect::<Option<Vec<usize>>>()?;
                let len = crate::tensor::element_count(&shape)?;
                let tensor = Tensor::new(shape, TensorData::zeros(info.dtype, len)).ok()?;
                Some((info.name.clone(), tensor))
            })
            .collect()
    }

    /// Checks names, dtypes, ranks, fixed dims and the consistency of named dims of `inputs`
    /// against the declared inputs, so engines only ever see well-formed requests.
    pub fn validate_inputs(&self, inputs: &Tensors) -> Result<()> {
        if let Some(unknown) = inputs.keys().find(|name| self.input(name).is_none()) {
            return Err(Error::UnknownInput {
                name: unknown.clone(),
                known: self.inputs.iter().map(|i| i.name.clone()).collect(),
            });
        }
        let mut symbols: HashMap<&str, (usize, &str)> = HashMap::new();
        for info in &self.inputs {
            let tensor = inputs.get(&info.name).ok_or_else(|| Error::MissingInput {
                name: info.name.clone(),
            })?;
            if tensor.dtype() != info.dtype {
                return Err(Error::InputDType {
                    name: info.name.clone(),
                    expected: info.dtype,
                    actual: tensor.dtype(),
                });
            }
            let Some(dims) = &info.shape else { continue };
            let shape_error = |reason: String| Error::InputShape {
                name: info.name.clone(),
                expected: info.shape_text(),
                actual: tensor.shape().to_vec(),
                reason: Some(reason),
            };
            if dims.len() != tensor.shape().len() {
                return Err(shape_error(format!(
                    "rank {} instead of {}",
                    tensor.shape().len(),
                    dims.len()
                )));
            }
            for (axis, (dim, &actual)) in dims.iter().zip(tensor.shape()).enumerate() {
                match dim {
                    Dim::Fixed(expected) if *expected != actual => {
                        return Err(shape_error(format!(
                            "dim {axis} is {actual} instead of {expected}"
                        )));
                    }
                    Dim::Symbolic(symbol) => match symbols.get(symbol.as_str()) {
                        Some(&(bound, other)) if bound != actual => {
                            return Err(shape_error(format!(
                                "`{symbol}` is {actual} here but {bound} in input `{other}`"
                            )));
                        }
                        _ => {
                            symbols.insert(symbol, (actual, &info.name));
                        }
                    },
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_model() -> ModelMetadata {
        let sym = |s: &str| Dim::Symbolic(s.into());
        ModelMetadata {
            inputs: vec![
                TensorInfo {
                    name: "input".into(),
                    dtype: DType::F32,
                    shape: Some(vec![sym("batch"), Dim::Fixed(3), Dim::Unknown]),
                },
                TensorInfo {
                    name: "mask".into(),
                    dtype: DType::Bool,
                    shape: Some(vec![sym("batch")]),
                },
            ],
            ..Default::default()
        }
    }

    fn inputs(image_shape: Vec<usize>, mask_rows: usize) -> Tensors {
        let n: usize = image_shape.iter().product();
        let mut t = Tensors::new();
        t.insert(
            "input".into(),
            Tensor::new(image_shape, vec![0f32; n]).unwrap(),
        );
        t.insert(
            "mask".into(),
            Tensor::new(vec![mask_rows], vec![true; mask_rows]).unwrap(),
        );
        t
    }

    #[test]
    fn accepts_matching_inputs() {
        image_model()
            .validate_inputs(&inputs(vec![2, 3, 7], 2))
            .unwrap();
    }

    #[test]
    fn rejects_each_kind_of_mismatch() {
        let meta = image_model();
        let err = meta.validate_inputs(&inputs(vec![2, 4, 7], 2)).unwrap_err();
        assert!(err.to_string().contains("dim 1 is 4 instead of 3"), "{err}");
        let err = meta.validate_inputs(&inputs(vec![2, 3], 2)).unwrap_err();
        assert!(err.to_string().contains("rank 2 instead of 3"), "{err}");
        let err = meta.validate_inputs(&inputs(vec![2, 3, 7], 1)).unwrap_err();
        assert!(err.to_string().contains("`batch` is 1 here but 2"), "{err}");

        let mut extra = inputs(vec![1, 3, 1], 1);
        extra.insert("nope".into(), Tensor::scalar(1f32));
        assert!(
            matches!(meta.validate_inputs(&extra), Err(Error::UnknownInput { name, .. }) if name == "nope")
        );

        let mut missing = inputs(vec![1, 3, 1], 1);
        missing.remove("mask");
        assert!(
            matches!(meta.validate_inputs(&missing), Err(Error::MissingInput { name }) if name == "mask")
        );

        let mut wrong_type = inputs(vec![1, 3, 1], 1);
        wrong_type.insert("mask".into(), Tensor::new(vec![1], vec![1u8]).unwrap());
        let err = meta.validate_inputs(&wrong_type).unwrap_err();
        assert!(
            err.to_string().contains("expected dtype bool, got uint8"),
            "{err}"
        );
    }
}
