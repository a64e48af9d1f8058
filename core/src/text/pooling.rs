//! One vector per input from what the model answers: as it is, or pooled over the real
//! tokens; optionally scaled to unit length.

use std::borrow::Cow;

use super::spec::Pooling;
use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorData};

/// The embedding of each row of `output`, whose rows hold `lengths[i]` real tokens each
/// (padding on the right). `pooling` `None` means: as the output's rank says.
pub fn pool(output: &Tensor, lengths: &[usize], pooling: Option<Pooling>) -> Result<Vec<Vec<f32>>> {
    let shape = output.shape();
    let values = floats(output.data())?;
    let rows = lengths.len();
    let fail = |what: String| Error::Engine {
        engine: "text",
        message: what,
    };
    if shape.first() != Some(&rows) {
        return Err(fail(format!(
            "the embedding output has shape {shape:?}, not {rows} rows"
        )));
    }
    match (shape.len(), pooling) {
        (2, None | Some(Pooling::None)) => {
            let dim = shape[1];
            Ok(values
                .chunks_exact(dim.max(1))
                .map(<[f32]>::to_vec)
                .collect())
        }
        (3, Some(Pooling::None)) => Err(fail(
            "pooling `none` needs a [batch, dim] output; this one is [batch, sequence, dim]".into(),
        )),
        (3, pooling) => {
            let (sequence, dim) = (shape[1], shape[2]);
            let token = |row: usize, t: usize| {
                let start = (row * sequence + t) * dim;
                &values[start..start + dim]
            };
            let mut embeddings = Vec::with_capacity(rows);
            for (row, &length) in lengths.iter().enumerate() {
                let length = length.min(sequence);
                let vector = match pooling.unwrap_or(Pooling::Mean) {
                    Pooling::Cls => token(row, 0).to_vec(),
                    Pooling::LastToken => token(row, length.saturating_sub(1)).to_vec(),
                    _ => mean((0..length).map(|t| token(row, t)), dim),
                };
                embeddings.push(vector);
            }
            Ok(embeddings)
        }
        (rank, _) => Err(fail(format!(
            "the embedding output has rank {rank}; expected [batch, dim] or [batch, sequence, dim]"
        ))),
    }
}

fn mean<'a>(tokens: impl Iterator<Item = &'a [f32]>, dim: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dim];
    let mut count = 0usize;
    for token in tokens {
        for (s, v) in sum.iter_mut().zip(token) {
            *s += v;
        }
        count += 1;
    }
    let scale = 1.0 / count.max(1) as f32;
    sum.iter_mut().for_each(|s| *s *= scale);
    sum
}

/// Scales `vector` to unit length (a zero vector stays zero).
pub fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}

fn floats(data: &TensorData) -> Result<Cow<'_, [f32]>> {
    match data {
        TensorData::F32(v) => Ok(Cow::Borrowed(v)),
        TensorData::F16(_) | TensorData::F64(_) => Ok(Cow::Owned(
            data.to_f64_vec()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        )),
        other => Err(Error::Engine {
            engine: "text",
            message: format!(
                "the embedding output is {}, not a float tensor",
                other.dtype()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tensor {
        // 2 rows × 3 tokens × 2 dims; row 1 has 2 real tokens and one padding token.
        Tensor::new(
            vec![2, 3, 2],
            vec![1f32, 2., 3., 4., 5., 6., 10., 20., 30., 40., 99., 99.],
        )
        .unwrap()
    }

    #[test]
    fn mean_pooling_ignores_padding() {
        let pooled = pool(&tokens(), &[3, 2], None).unwrap();
        assert_eq!(pooled, vec![vec![3., 4.], vec![20., 30.]]);
    }

    #[test]
    fn cls_and_last_token() {
        let cls = pool(&tokens(), &[3, 2], Some(Pooling::Cls)).unwrap();
        assert_eq!(cls, vec![vec![1., 2.], vec![10., 20.]]);
        let last = pool(&tokens(), &[3, 2], Some(Pooling::LastToken)).unwrap();
        assert_eq!(last, vec![vec![5., 6.], vec![30., 40.]]);
    }

    #[test]
    fn pooled_outputs_pass_through_and_rows_must_match() {
        let out = Tensor::new(vec![2, 2], vec![3f32, 4., 0., 0.]).unwrap();
        let mut rows = pool(&out, &[1, 1], None).unwrap();
        normalize(&mut rows[0]);
        normalize(&mut rows[1]);
        assert_eq!(rows, vec![vec![0.6, 0.8], vec![0., 0.]]);
        assert!(pool(&out, &[1, 1, 1], None).is_err());
        assert!(pool(&tokens(), &[3, 2], Some(Pooling::None)).is_err());
    }
}
