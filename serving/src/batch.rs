//! Dynamic batching rules: which models can merge requests, which requests merge, and how
//! merged inputs and outputs are joined and split.

use destino_core::dtype::DType;
use destino_core::metadata::{Dim, ModelMetadata, TensorInfo, Tensors};
use destino_core::tensor::Tensor;
use destino_core::{Error, Result};

/// True when every input and output declares a free leading axis (Triton's rule for
/// batchable models), and the named ones share one name: requests can then be stacked along
/// axis 0. (`model.toml` `max_batch_size = 0` turns batching off for a model this misjudges.)
pub fn supports_batching(metadata: &ModelMetadata) -> bool {
    let leading = |info: &TensorInfo| match info.shape.as_deref() {
        Some([Dim::Fixed(_), ..]) | Some([]) | None => None,
        Some([first, ..]) => Some(first.clone()),
    };
    let all = metadata.inputs.iter().chain(&metadata.outputs);
    let Some(dims) = all.map(leading).collect::<Option<Vec<Dim>>>() else {
        return false;
    };
    let mut names = dims.iter().filter_map(|d| match d {
        Dim::Symbolic(name) => Some(name),
        _ => None,
    });
    let first_name = names.next();
    !metadata.inputs.is_empty() && names.all(|n| Some(n) == first_name)
}

/// What requests must share to run in one batch: every input's dtype and non-batch dims.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchKey(Vec<(String, DType, Vec<usize>)>);

impl BatchKey {
    pub fn of(inputs: &Tensors) -> BatchKey {
        BatchKey(
            inputs
                .iter()
                .map(|(name, t)| (name.clone(), t.dtype(), t.shape()[1..].to_vec()))
                .collect(),
        )
    }
}

/// The rows (size of axis 0) a request contributes to a batch, when all its inputs agree.
pub fn batch_rows(inputs: &Tensors) -> Option<usize> {
    let mut rows = inputs.values().map(|t| t.shape().first().copied());
    let first = rows.next()??;
    rows.all(|r| r == Some(first)).then_some(first)
}

/// Stacks the inputs of several requests (same `BatchKey`) along axis 0.
pub fn merge(requests: &[&Tensors]) -> Result<Tensors> {
    let first = requests
        .first()
        .ok_or_else(|| Error::InvalidTensor("empty batch".into()))?;
    first
        .keys()
        .map(|name| {
            let parts = requests
                .iter()
                .map(|r| {
                    r.get(name).ok_or_else(|| {
                        Error::InvalidTensor(format!(
                            "input `{name}` missing from a batched request"
                        ))
                    })
                })
                .collect::<Result<Vec<&Tensor>>>()?;
            Ok((name.clone(), Tensor::concat_batch(&parts)?))
        })
        .collect()
}

/// Splits batched outputs back into one set per request, `rows[i]` rows each. Fails when an
/// output's axis 0 is not the batch, so the caller can run the requests one by one instead.
pub fn split(outputs: &Tensors, rows: &[usize]) -> Result<Vec<Tensors>> {
    let mut per_request: Vec<Tensors> = vec![Tensors::new(); rows.len()];
    for (name, tensor) in outputs {
        for (request, piece) in per_request.iter_mut().zip(tensor.split_batch(rows)?) {
            request.insert(name.clone(), piece);
        }
    }
    Ok(per_request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use destino_core::metadata::TensorInfo;

    fn info(name: &str, dims: Vec<Dim>) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dtype: DType::F32,
            shape: Some(dims),
        }
    }

    fn tensors(rows: usize, width: usize) -> Tensors {
        let t = Tensor::new(vec![rows, width], vec![rows as f32; rows * width]).unwrap();
        Tensors::from([("x".to_string(), t)])
    }

    #[test]
    fn batching_needs_a_free_leading_axis_everywhere() {
        let batch = Dim::Symbolic("N".into());
        let mut metadata = ModelMetadata {
            inputs: vec![info("x", vec![batch.clone(), Dim::Fixed(4)])],
            outputs: vec![info("y", vec![Dim::Unknown])],
            ..Default::default()
        };
        assert!(supports_batching(&metadata));
        // silero's state: [2, N, 128] is not batched on axis 0.
        metadata
            .inputs
            .push(info("state", vec![Dim::Fixed(2), batch, Dim::Fixed(128)]));
        assert!(!supports_batching(&metadata));
        metadata.inputs.truncate(1);
        metadata.outputs.push(info("scalar", vec![]));
        assert!(!supports_batching(&metadata));
        // Differently named leading axes are not one batch axis.
        metadata.outputs.pop();
        metadata
            .outputs
            .push(info("per_step", vec![Dim::Symbolic("T".into())]));
        assert!(!supports_batching(&metadata));
    }

    #[test]
    fn merge_then_split_round_trips() {
        let (a, b) = (tensors(1, 3), tensors(2, 3));
        assert_eq!(BatchKey::of(&a), BatchKey::of(&b));
        assert_ne!(BatchKey::of(&a), BatchKey::of(&tensors(1, 4)));
        assert_eq!(batch_rows(&b), Some(2));
        let merged = merge(&[&a, &b]).unwrap();
        assert_eq!(merged["x"].shape(), &[3, 3]);
        assert_eq!(split(&merged, &[1, 2]).unwrap(), vec![a, b]);
        assert!(split(&merged, &[1, 1]).is_err());
    }
}
