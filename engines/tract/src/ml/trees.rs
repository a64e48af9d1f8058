//! `TreeEnsembleClassifier`, `TreeEnsembleRegressor` (ai.onnx.ml v1/v3) and `TreeEnsemble`
//! (v5) as destino kernels over a flattened [`Forest`].

use tract_onnx::tract_hir::internal::*;

use super::kernel::{Kernel, Shape, Type, features};
use super::tree::{Aggregate, Forest, PostTransform, logistic, probit, transform_row};

/// The input's rows for `forest`, which must have every feature the trees read.
fn rows_for(forest: &Forest, input: &Tensor) -> TractResult<(Vec<f64>, usize, usize)> {
    let (x, rows, columns) = features(input)?;
    ensure!(
        columns >= forest.features,
        "the trees read feature {} of {columns}",
        forest.features - 1
    );
    Ok((x, rows, columns))
}

/// Class labels: integers or strings.
#[derive(Debug, Clone)]
pub enum Labels {
    Int(Vec<i64>),
    Text(Vec<String>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Text(v) => v.len(),
        }
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Labels::Int(_) => DatumType::I64,
            Labels::Text(_) => DatumType::String,
        }
    }
}

#[derive(Debug)]
pub struct TreeClassifier {
    pub forest: Forest,
    pub labels: Labels,
    pub base: Vec<f64>,
    pub post: PostTransform,
    /// Two classes and every leaf weight for the same one: one score decides.
    pub binary_case: bool,
    pub weights_all_positive: bool,
}

/// A row's label: an index into the labels, or (two classes, mixed layout) ONNX Runtime's
/// bare 0/1.
enum Label {
    Index(usize),
    Bare(i64),
}

impl TreeClassifier {
    /// One row's label and class scores (`scores` holds the accumulated sums on entry).
    fn finish(&self, scores: &mut [f64], has: &mut [bool]) -> Label {
        if scores.len() > 2 {
            for (k, &b) in self.base.iter().enumerate().take(scores.len()) {
                scores[k] = if has[k] { scores[k] + b } else { b };
                has[k] = true;
            }
            let mut best: Option<usize> = None;
            for k in 0..scores.len() {
                if has[k] && best.is_none_or(|b| scores[k] > scores[b]) {
                    best = Some(k);
                }
            }
            transform_row(scores, self.post);
            return Label::Index(best.unwrap_or(0));
        }
        // Two classes, as ONNX Runtime resolves what the specification leaves open.
        let mut one_score = false;
        let mut second = -1;
        match self.base.len() {
            2 if has[1] => {
                scores[1] = self.base[1] + scores[0];
                scores[0] = -scores[1];
            }
            2 => {
                scores[1] += self.base[1];
                scores[0] += self.base[0];
            }
            1 => {
                scores[0] += self.base[0];
                one_score = !has[1];
            }
            0 => {
                second = 3;
                one_score = !has[1];
            }
            _ => {}
        }
        let positive = if !one_score && has[1] {
            scores[1]
        } else if has[0] {
            scores[0]
        } else {
            0.0
        };
        let label = if self.binary_case {
            let (threshold, codes) = if self.weights_all_positive {
                (0.5, (0, 1))
            } else {
                (0.0, (2, 3))
            };
            if positive > threshold {
                second = codes.0;
                Label::Index(1)
            } else {
                second = codes.1;
                Label::Index(0)
            }
        } else {
            Label::Bare(i64::from(positive > 0.0))
        };
        if !one_score {
            transform_row(scores, self.post);
        } else {
            let s = scores[0];
            let pair = match (self.post, second) {
                (PostTransform::Probit, _) => [probit(s), 0.0],
                (_, 0 | 1) => [1.0 - s, s],
                (PostTransform::Logistic, 2 | 3) => [logistic(-s), logistic(s)],
                (_, 2 | 3) => [-s, s],
                _ => [s, 0.0],
            };
            scores.copy_from_slice(&pair);
        }
        label
    }
}

impl Kernel for TreeClassifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![
            (Type::Fixed(self.labels.datum_type()), Shape::Rows),
            (
                Type::Fixed(DatumType::F32),
                Shape::RowsBy(self.labels.len()),
            ),
        ]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = rows_for(&self.forest, &inputs[0])?;
        let n = self.labels.len();
        let mut probabilities = Vec::with_capacity(rows * n);
        let mut labels = Vec::with_capacity(rows);
        let (mut scores, mut has) = (vec![0.0; n], vec![false; n]);
        for row in x.chunks(columns.max(1)).take(rows) {
            scores.fill(0.0);
            has.fill(false);
            self.forest
                .accumulate(row, Aggregate::Sum, &mut scores, &mut has);
            labels.push(self.finish(&mut scores, &mut has));
            probabilities.extend(scores.iter().map(|&s| s as f32));
        }
        let labels = match &self.labels {
            Labels::Int(values) => tensor1(
                &labels
                    .iter()
                    .map(|l| match l {
                        Label::Index(i) => values[*i],
                        Label::Bare(b) => *b,
                    })
                    .collect::<Vec<_>>(),
            ),
            Labels::Text(values) => tensor1(
                &labels
                    .iter()
                    .map(|l| match l {
                        Label::Index(i) => values[*i].clone(),
                        Label::Bare(b) => values[*b as usize].clone(),
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        let probabilities = tract_ndarray::Array2::from_shape_vec((rows, n), probabilities)?;
        Ok(tvec!(
            labels.into_tvalue(),
            probabilities.into_tensor().into_tvalue()
        ))
    }
}

#[derive(Debug)]
pub struct TreeRegressor {
    pub forest: Forest,
    pub aggregate: Aggregate,
    pub base: Vec<f64>,
    pub post: PostTransform,
    /// `TreeEnsembleRegressor` answers f32; opset-5 `TreeEnsemble` the input's type.
    pub output: DatumType,
    pub name: &'static str,
}

impl TreeRegressor {
    fn finish(&self, scores: &mut [f64], has: &[bool]) {
        let trees = self.forest.trees().max(1) as f64;
        if scores.len() == 1 {
            let origin = if self.base.len() == 1 {
                self.base[0]
            } else {
                0.0
            };
            let s = match self.aggregate {
                Aggregate::Sum => scores[0] + origin,
                Aggregate::Average => scores[0] / trees + origin,
                Aggregate::Min | Aggregate::Max if has[0] => scores[0] + origin,
                Aggregate::Min | Aggregate::Max => origin,
            };
            scores[0] = if self.post == PostTransform::Probit {
                probit(s)
            } else {
                s
            };
            return;
        }
        let base = (self.base.len() == scores.len()).then_some(&self.base);
        for (k, s) in scores.iter_mut().enumerate() {
            let b = base.map_or(0.0, |b| b[k]);
            let value = if has[k] { *s } else { 0.0 };
            *s = match self.aggregate {
                Aggregate::Average => value / trees + b,
                _ => value + b,
            };
        }
        transform_row(scores, self.post);
    }
}

impl Kernel for TreeRegressor {
    fn name(&self) -> &'static str {
        self.name
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(Type::Fixed(self.output), Shape::RowsBy(self.forest.targets))]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = rows_for(&self.forest, &inputs[0])?;
        let n = self.forest.targets;
        let mut out = Vec::with_capacity(rows * n);
        let (mut scores, mut has) = (vec![0.0; n], vec![false; n]);
        for row in x.chunks(columns.max(1)).take(rows) {
            scores.fill(0.0);
            has.fill(false);
            self.forest
                .accumulate(row, self.aggregate, &mut scores, &mut has);
            self.finish(&mut scores, &has);
            out.extend_from_slice(&scores);
        }
        let out = tract_ndarray::Array2::from_shape_vec((rows, n), out)?.into_tensor();
        Ok(tvec!(
            out.cast_to_dt(self.output)?.into_owned().into_tvalue()
        ))
    }
}
