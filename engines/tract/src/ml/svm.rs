//! `SVMClassifier` and `SVMRegressor` (ai.onnx.ml): libsvm's one-vs-one decision values,
//! votes and pairwise-coupled probabilities, as the ONNX reference and ONNX Runtime compute
//! them (including their two-class conventions).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::kernel::{Kernel, MlOp, Shape, Type, features};
use super::tree::{PostTransform, logistic, probit, transform_row};
use super::trees::Labels;

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum KernelFn {
    Linear,
    Poly { gamma: f64, coef0: f64, degree: i32 },
    Rbf { gamma: f64 },
    Sigmoid { gamma: f64, coef0: f64 },
}

impl KernelFn {
    fn parse(node: &NodeProto) -> TractResult<KernelFn> {
        let params = node
            .get_attr_opt_vec::<f32>("kernel_params")?
            .unwrap_or_default();
        let param = |i: usize| params.get(i).copied().map_or(0.0, f64::from);
        let (gamma, coef0, degree) = (param(0), param(1), param(2) as i32);
        let name = node
            .get_attr_opt::<String>("kernel_type")?
            .unwrap_or_else(|| "LINEAR".into());
        Ok(match name.to_ascii_uppercase().as_str() {
            "LINEAR" => KernelFn::Linear,
            "POLY" => KernelFn::Poly {
                gamma,
                coef0,
                degree,
            },
            "RBF" => KernelFn::Rbf { gamma },
            "SIGMOID" => KernelFn::Sigmoid { gamma, coef0 },
            other => bail!(
                "{} `{}`: unknown kernel_type `{other}`",
                node.op_type,
                node.name
            ),
        })
    }

    fn apply(self, a: &[f64], b: &[f64]) -> f64 {
        let dot = || a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        match self {
            KernelFn::Linear => dot(),
            KernelFn::Poly {
                gamma,
                coef0,
                degree,
            } => (dot() * gamma + coef0).powi(degree),
            KernelFn::Sigmoid { gamma, coef0 } => (dot() * gamma + coef0).tanh(),
            KernelFn::Rbf { gamma } => {
                let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
                (-gamma * d2).exp()
            }
        }
    }
}

/// libsvm's `multiclass_probability`: pairwise probabilities `r` (k × k) coupled into one
/// distribution (Wu, Lin and Weng, method 2).
fn couple(k: usize, r: &[f64]) -> Vec<f64> {
    let mut q = vec![0.0; k * k];
    for t in 0..k {
        for j in 0..k {
            if j == t {
                q[t * k + t] = (0..k)
                    .filter(|&i| i != t)
                    .map(|i| r[i * k + t] * r[i * k + t])
                    .sum();
            } else {
                q[t * k + j] = -r[j * k + t] * r[t * k + j];
            }
        }
    }
    let mut p = vec![1.0 / k as f64; k];
    let eps = 0.005 / k as f64;
    for _ in 0..k.max(100) {
        let mut qp: Vec<f64> = (0..k)
            .map(|t| (0..k).map(|j| q[t * k + j] * p[j]).sum())
            .collect();
        let mut pqp: f64 = p.iter().zip(&qp).map(|(a, b)| a * b).sum();
        if qp.iter().all(|v| (v - pqp).abs() < eps) {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[t * k + t];
            p[t] += diff;
            pqp =
                (pqp + diff * (diff * q[t * k + t] + 2.0 * qp[t])) / ((1.0 + diff) * (1.0 + diff));
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[t * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
    p
}

#[derive(Debug)]
pub struct SvmClassifier {
    kernel: KernelFn,
    labels: Labels,
    /// Support vectors, row-major; empty in linear mode.
    vectors: Vec<f64>,
    per_class: Vec<usize>,
    coefficients: Vec<f64>,
    rho: Vec<f64>,
    prob_a: Vec<f64>,
    prob_b: Vec<f64>,
    post: PostTransform,
    features: usize,
}

impl SvmClassifier {
    fn classes(&self) -> usize {
        self.labels.len().max(1)
    }

    fn has_probabilities(&self) -> bool {
        !self.prob_a.is_empty() && !self.per_class.is_empty()
    }

    /// Columns of the scores output.
    fn score_columns(&self) -> usize {
        let k = self.classes();
        let raw = if self.per_class.is_empty() || self.has_probabilities() {
            k
        } else {
            k * (k - 1) / 2
        };
        if raw == 1 && self.post != PostTransform::Probit && self.rho.len() == 1 {
            2
        } else {
            raw
        }
    }

    /// (votes, decision values) of one row; votes are empty in linear mode.
    fn decide(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let k = self.classes();
        if self.per_class.is_empty() {
            let scores = (0..k)
                .map(|j| {
                    self.rho[0]
                        + KernelFn::Linear.apply(
                            x,
                            &self.coefficients[j * self.features..(j + 1) * self.features],
                        )
                })
                .collect();
            return (Vec::new(), scores);
        }
        let count: usize = self.per_class.iter().sum();
        let kernels: Vec<f64> = (0..count)
            .map(|j| {
                self.kernel
                    .apply(x, &self.vectors[j * self.features..(j + 1) * self.features])
            })
            .collect();
        let start: Vec<usize> = self
            .per_class
            .iter()
            .scan(0, |s, &c| {
                let at = *s;
                *s += c;
                Some(at)
            })
            .collect();
        let coef = |row: usize, col: usize| self.coefficients[row * count + col];
        let (mut votes, mut scores) = (vec![0.0; k], Vec::with_capacity(k * (k - 1) / 2));
        for i in 0..k {
            for j in i + 1..k {
                let s1: f64 = (start[i]..start[i] + self.per_class[i])
                    .map(|v| coef(j - 1, v) * kernels[v])
                    .sum();
                let s2: f64 = (start[j]..start[j] + self.per_class[j])
                    .map(|v| coef(i, v) * kernels[v])
                    .sum();
                let s = self.rho[scores.len()] + s1 + s2;
                votes[if s > 0.0 { i } else { j }] += 1.0;
                scores.push(s);
            }
        }
        (votes, scores)
    }

    fn probabilities(&self, scores: &[f64]) -> Vec<f64> {
        let k = self.classes();
        let mut r = vec![0.0; k * k];
        let mut index = 0;
        for i in 0..k {
            for j in i + 1..k {
                let p = (1.0 - logistic(scores[index] * self.prob_a[index] + self.prob_b[index]))
                    .clamp(1e-7, 1.0 - 1e-7);
                r[i * k + j] = p;
                r[j * k + i] = 1.0 - p;
                index += 1;
            }
        }
        couple(k, &r)
    }

    /// One row: (label index or bare 0/1, scores as written).
    fn row(&self, x: &[f64]) -> (Result<usize, i64>, Vec<f64>) {
        let (votes, decisions) = self.decide(x);
        let has_proba = self.has_probabilities();
        let mut scores = if has_proba {
            self.probabilities(&decisions)
        } else {
            decisions
        };
        let ranked = if votes.is_empty() { &scores } else { &votes };
        let (best, weight) =
            ranked.iter().enumerate().fold(
                (0, f64::MIN),
                |(b, w), (i, &v)| if v > w { (i, v) } else { (b, w) },
            );
        let mut second = -1;
        let label = if self.rho.len() == 1 {
            if self.labels.len() == 2 {
                second = 2;
                let all_positive = self.coefficients.iter().all(|&c| c >= 0.0);
                if !has_proba && all_positive && weight >= 0.5 {
                    Ok(1)
                } else {
                    Ok(best)
                }
            } else {
                Err(i64::from(weight > 0.0))
            }
        } else {
            Ok(best)
        };
        if scores.len() >= 2 {
            transform_row(&mut scores, self.post);
        } else if let Some(&s) = scores.first() {
            scores = match (self.post, second) {
                (PostTransform::Probit, _) => vec![probit(s)],
                (PostTransform::Logistic, 2) => vec![logistic(-s), logistic(s)],
                (PostTransform::Softmax, 2) | (PostTransform::SoftmaxZero, 2) => {
                    let mut pair = vec![-s, s];
                    transform_row(&mut pair, self.post);
                    pair
                }
                (_, 2) => vec![-s, s],
                _ => vec![s],
            };
        }
        (label, scores)
    }
}

impl Kernel for SvmClassifier {
    fn name(&self) -> &'static str {
        "SVMClassifier"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        let label = match self.labels {
            Labels::Int(_) => DatumType::I64,
            Labels::Text(_) => DatumType::String,
        };
        vec![
            (Type::Fixed(label), Shape::Rows),
            (
                Type::Fixed(DatumType::F32),
                Shape::RowsBy(self.score_columns()),
            ),
        ]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = features(&inputs[0])?;
        ensure!(
            columns == self.features,
            "SVMClassifier: {columns} features, the model has {}",
            self.features
        );
        let width = self.score_columns();
        let (mut labels, mut scores) = (Vec::with_capacity(rows), Vec::with_capacity(rows * width));
        for row in x.chunks(columns.max(1)).take(rows) {
            let (label, row_scores) = self.row(row);
            ensure!(
                row_scores.len() == width,
                "SVMClassifier: {} scores for {width} columns",
                row_scores.len()
            );
            labels.push(label);
            scores.extend(row_scores.iter().map(|&s| s as f32));
        }
        let labels = match &self.labels {
            Labels::Int(values) => tensor1(
                &labels
                    .iter()
                    .map(|l| match l {
                        Ok(i) => values[*i],
                        Err(bare) => *bare,
                    })
                    .collect::<Vec<_>>(),
            ),
            Labels::Text(values) => tensor1(
                &labels
                    .iter()
                    .map(|l| match l {
                        Ok(i) => values[*i].clone(),
                        Err(bare) => values[*bare as usize].clone(),
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        let scores = tract_ndarray::Array2::from_shape_vec((rows, width), scores)?.into_tensor();
        Ok(tvec!(labels.into_tvalue(), scores.into_tvalue()))
    }
}

fn floats(ctx: &ParsingContext, node: &NodeProto, name: &str) -> TractResult<Vec<f64>> {
    Ok(super::parse::floats(ctx, node, name)?.unwrap_or_default())
}

pub fn classifier(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let fail = |m: String| format_err!("SVMClassifier `{}`: {m}", node.name);
    let labels = match (
        node.get_attr_opt_vec::<i64>("classlabels_ints")?,
        node.get_attr_opt_vec::<String>("classlabels_strings")?,
    ) {
        (Some(ints), None) => Labels::Int(ints),
        (None, Some(texts)) => Labels::Text(texts),
        _ => {
            return Err(fail(
                "needs exactly one of classlabels_ints and classlabels_strings".into(),
            ));
        }
    };
    let k = labels.len();
    if k < 2 {
        return Err(fail("needs at least two classes".into()));
    }
    let per_class = node
        .get_attr_opt_vec::<i64>("vectors_per_class")?
        .unwrap_or_default()
        .into_iter()
        .map(|c| usize::try_from(c).map_err(|_| fail(format!("vectors_per_class {c}"))))
        .collect::<TractResult<Vec<_>>>()?;
    let per_class = if per_class.iter().sum::<usize>() == 0 {
        Vec::new()
    } else {
        per_class
    };
    let (vectors, coefficients, rho) = (
        floats(ctx, node, "support_vectors")?,
        floats(ctx, node, "coefficients")?,
        floats(ctx, node, "rho")?,
    );
    let (prob_a, prob_b) = (floats(ctx, node, "prob_a")?, floats(ctx, node, "prob_b")?);
    let post = PostTransform::parse(
        &node
            .get_attr_opt::<String>("post_transform")?
            .unwrap_or_else(|| "NONE".into()),
    )
    .map_err(fail)?;
    let pairs = k * (k - 1) / 2;
    let features = if per_class.is_empty() {
        if coefficients.is_empty() || coefficients.len() % k != 0 || rho.is_empty() {
            return Err(fail(format!(
                "{} coefficients for {k} classes (linear mode)",
                coefficients.len()
            )));
        }
        coefficients.len() / k
    } else {
        if per_class.len() != k {
            return Err(fail(format!(
                "vectors_per_class lists {} classes of {k}",
                per_class.len()
            )));
        }
        let count: usize = per_class.iter().sum();
        if vectors.is_empty()
            || vectors.len() % count != 0
            || coefficients.len() != (k - 1) * count
            || rho.len() != pairs
        {
            return Err(fail(
                "support_vectors, coefficients and rho do not match vectors_per_class".into(),
            ));
        }
        if !prob_a.is_empty() && (prob_a.len() != pairs || prob_b.len() != pairs) {
            return Err(fail(
                "prob_a and prob_b need one value per pair of classes".into(),
            ));
        }
        vectors.len() / count
    };
    let kernel = SvmClassifier {
        kernel: KernelFn::parse(node)?,
        labels,
        vectors,
        per_class,
        coefficients,
        rho,
        prob_a,
        prob_b,
        post,
        features,
    };
    Ok((MlOp::boxed(kernel), vec![]))
}

#[derive(Debug)]
pub struct SvmRegressor {
    kernel: KernelFn,
    vectors: Vec<f64>,
    coefficients: Vec<f64>,
    rho: f64,
    one_class: bool,
    post: PostTransform,
    features: usize,
}

impl Kernel for SvmRegressor {
    fn name(&self) -> &'static str {
        "SVMRegressor"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(Type::Fixed(DatumType::F32), Shape::RowsBy(1))]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = features(&inputs[0])?;
        ensure!(
            columns == self.features,
            "SVMRegressor: {columns} features, the model has {}",
            self.features
        );
        let mut out = Vec::with_capacity(rows);
        for row in x.chunks(columns.max(1)).take(rows) {
            let s = if self.vectors.is_empty() {
                KernelFn::Linear.apply(row, &self.coefficients)
            } else {
                self.vectors
                    .chunks(self.features)
                    .zip(&self.coefficients)
                    .map(|(v, c)| c * self.kernel.apply(row, v))
                    .sum()
            } + self.rho;
            let s = if self.one_class {
                if s > 0.0 { 1.0 } else { -1.0 }
            } else if self.post == PostTransform::Probit {
                probit(s)
            } else {
                s
            };
            out.push(s as f32);
        }
        Ok(tvec!(
            tract_ndarray::Array2::from_shape_vec((rows, 1), out)?
                .into_tensor()
                .into_tvalue()
        ))
    }
}

pub fn regressor(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let fail = |m: String| format_err!("SVMRegressor `{}`: {m}", node.name);
    let (vectors, coefficients, rho) = (
        floats(ctx, node, "support_vectors")?,
        floats(ctx, node, "coefficients")?,
        floats(ctx, node, "rho")?,
    );
    let supports = node.get_attr_opt::<i64>("n_supports")?.unwrap_or(0);
    let supports = usize::try_from(supports).map_err(|_| fail(format!("n_supports {supports}")))?;
    let rho = *rho.first().ok_or_else(|| fail("needs rho".into()))?;
    let features = if supports == 0 {
        coefficients.len()
    } else {
        if vectors.len() % supports != 0 || coefficients.len() != supports {
            return Err(fail(
                "support_vectors and coefficients do not match n_supports".into(),
            ));
        }
        vectors.len() / supports
    };
    let post = PostTransform::parse(
        &node
            .get_attr_opt::<String>("post_transform")?
            .unwrap_or_else(|| "NONE".into()),
    )
    .map_err(fail)?;
    let kernel = SvmRegressor {
        kernel: KernelFn::parse(node)?,
        vectors: if supports == 0 { Vec::new() } else { vectors },
        coefficients,
        rho,
        one_class: node.get_attr_opt::<i64>("one_class")?.unwrap_or(0) != 0,
        post,
        features,
    };
    Ok((MlOp::boxed(kernel), vec![]))
}
