//! Postprocessing of classifier outputs: activation, labels, top-k.

use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::{Activation, OutputSpec};
use crate::tensor::Tensor;

/// One ranked class of a classification answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub index: usize,
    pub label: Option<String>,
    pub score: f32,
}

/// Reads a labels file: line i names class i.
pub fn load_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// Applies `activation` in place to one row of scores.
pub fn activate(activation: Activation, row: &mut [f32]) {
    match activation {
        Activation::None => {}
        Activation::Sigmoid => row.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
        Activation::Softmax => {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for x in row.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            row.iter_mut().for_each(|x| *x /= sum);
        }
    }
}

/// The `top_k` classes of each row of `scores` (the last axis holds the classes; leading axes
/// are rows), after the output's activation, best first.
pub fn classify(
    scores: &Tensor,
    spec: &OutputSpec,
    labels: Option<&[String]>,
) -> Result<Vec<Vec<Class>>> {
    let values = scores
        .data()
        .to_f64_vec()
        .ok_or_else(|| Error::InvalidTensor("cannot classify a string tensor".into()))?;
    let classes = scores.shape().last().copied().unwrap_or(1);
    if classes == 0 {
        return Ok(vec![]);
    }
    Ok(values
        .chunks(classes)
        .map(|row| {
            let mut row: Vec<f32> = row.iter().map(|&x| x as f32).collect();
            activate(spec.activation, &mut row);
            let mut ranked: Vec<usize> = (0..row.len()).collect();
            ranked.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            ranked
                .into_iter()
                .take(spec.top_k)
                .map(|index| Class {
                    index,
                    label: labels.and_then(|l| l.get(index)).cloned(),
                    score: row[index],
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(activation: Activation, top_k: usize) -> OutputSpec {
        OutputSpec {
            activation,
            labels: None,
            top_k,
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row = [1.0f32, 3.0, 2.0, 5.0];
        activate(Activation::Softmax, &mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[3] > row[1] && row[1] > row[2] && row[2] > row[0]);
        let mut huge = [0.0f32, 1000.0];
        activate(Activation::Softmax, &mut huge);
        assert_eq!(huge, [0.0, 1.0]);
        let mut logit = [0.0f32];
        activate(Activation::Sigmoid, &mut logit);
        assert_eq!(logit, [0.5]);
    }

    #[test]
    fn top_k_per_row_with_labels() {
        let scores = Tensor::new(vec![2, 3], vec![0.1f32, 0.7, 0.2, 0.5, 0.1, 0.4]).unwrap();
        let labels = vec!["a".to_string(), "b".into(), "c".into()];
        let rows = classify(&scores, &spec(Activation::None, 2), Some(&labels)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0].label.as_deref(), Some("b"));
        assert_eq!(rows[0][1].index, 2);
        assert_eq!(
            rows[1].iter().map(|c| c.index).collect::<Vec<_>>(),
            vec![0, 2]
        );
    }
}
