//! Dynamic batching rules: which models can merge requests, which requests merge, and how
//! merged inputs and outputs are joined and split.

use std::collections::BTreeMap;

use destino_core::dtype::DType;
use destino_core::metadata::{Dim, ModelMetadata, TensorInfo, Tensors};
use destino_core::tensor::{Tensor, TensorData};
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

/// What requests must share to run in one batch: every input's dtype and non-batch dims
/// (for padded requests, the dims after the sequence axis).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchKey {
    inputs: Vec<(String, DType, Vec<usize>)>,
    padded: bool,
}

impl BatchKey {
    pub fn of(inputs: &Tensors) -> BatchKey {
        BatchKey::after_axis(inputs, 1, false)
    }

    /// The key of requests padded on axis 1: their lengths may differ.
    pub fn padded(inputs: &Tensors) -> BatchKey {
        BatchKey::after_axis(inputs, 2, true)
    }

    fn after_axis(inputs: &Tensors, axis: usize, padded: bool) -> BatchKey {
        let inputs = inputs
            .iter()
            .map(|(name, t)| {
                let dims = t.shape().get(axis..).unwrap_or_default().to_vec();
                (name.clone(), t.dtype(), dims)
            })
            .collect();
        BatchKey { inputs, padded }
    }
}

/// How requests of different lengths share a run (a text model's token rows): each input is
/// padded on axis 1 with its value, within `max_tokens` (rows × padded length) per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Padding {
    pub values: BTreeMap<String, i64>,
    pub max_tokens: usize,
}

/// The longest axis 1 of a request's inputs (0 for inputs of rank below 2).
pub fn sequence_length(inputs: &Tensors) -> usize {
    inputs
        .values()
        .filter_map(|t| t.shape().get(1).copied())
        .max()
        .unwrap_or(0)
}

/// Pads each request's inputs on axis 1 to the longest, then stacks them along axis 0.
pub fn merge_padded(requests: &[&Tensors], padding: &Padding) -> Result<Tensors> {
    let length = requests
        .iter()
        .map(|r| sequence_length(r))
        .max()
        .unwrap_or(0);
    let padded = requests
        .iter()
        .map(|inputs| {
            inputs
                .iter()
                .map(|(name, t)| {
                    let value = padding.values.get(name).copied().unwrap_or(0);
                    Ok((name.clone(), pad_axis1(t, length, value)?))
                })
                .collect::<Result<Tensors>>()
        })
        .collect::<Result<Vec<Tensors>>>()?;
    merge(&padded.iter().collect::<Vec<_>>())
}

/// `tensor` ([rows, length, ..], integer) with axis 1 padded to `length` with `value`.
fn pad_axis1(tensor: &Tensor, length: usize, value: i64) -> Result<Tensor> {
    let shape = tensor.shape();
    let (rows, have) = match shape {
        [rows, have, ..] if *have < length => (*rows, *have),
        _ => return Ok(tensor.clone()),
    };
    let inner: usize = shape[2..].iter().product();
    fn pad<T: Copy>(data: &[T], rows: usize, have: usize, want: usize, value: T) -> Vec<T> {
        let mut out = Vec::with_capacity(rows * want);
        for row in data.chunks_exact(have.max(1)).take(rows) {
            out.extend_from_slice(row);
            out.extend(std::iter::repeat_n(value, want - have));
        }
        out
    }
    let data = match tensor.data() {
        TensorData::I64(v) => TensorData::I64(pad(v, rows, have * inner, length * inner, value)),
        TensorData::I32(v) => {
            TensorData::I32(pad(v, rows, have * inner, length * inner, value as i32))
        }
        other => {
            return Err(Error::InvalidTensor(format!(
                "padding needs integer inputs, not {}",
                other.dtype()
            )));
        }
    };
    let mut padded_shape = shape.to_vec();
    padded_shape[1] = length;
    Tensor::new(padded_shape, data)
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

    fn tokens(rows: Vec<Vec<i64>>) -> Tensors {
        let length = rows[0].len();
        let ids = Tensor::new(vec![rows.len(), length], rows.concat()).unwrap();
        let mask = Tensor::new(vec![rows.len(), length], vec![1i64; ids.len()]).unwrap();
        Tensors::from([("ids".to_string(), ids), ("mask".to_string(), mask)])
    }

    #[test]
    fn padded_requests_of_different_lengths_merge() {
        let (short, long) = (
            tokens(vec![vec![7, 8]]),
            tokens(vec![vec![1, 2, 3], vec![4, 5, 6]]),
        );
        assert_ne!(BatchKey::of(&short), BatchKey::of(&long));
        assert_eq!(BatchKey::padded(&short), BatchKey::padded(&long));
        assert_ne!(
            BatchKey::padded(&long),
            BatchKey::of(&tokens(vec![vec![1, 2]]))
        );
        assert_eq!(sequence_length(&long), 3);
        let padding = Padding {
            values: BTreeMap::from([("ids".to_string(), 0)]),
            max_tokens: 100,
        };
        let merged = merge_padded(&[&short, &long], &padding).unwrap();
        assert_eq!(merged["ids"].shape(), &[3, 3]);
        assert_eq!(
            merged["ids"].data(),
            &TensorData::I64(vec![7, 8, 0, 1, 2, 3, 4, 5, 6])
        );
        assert_eq!(
            merged["mask"].data(),
            &TensorData::I64(vec![1, 1, 0, 1, 1, 1, 1, 1, 1])
        );
    }
}
