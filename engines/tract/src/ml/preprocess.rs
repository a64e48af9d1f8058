//! The element-wise preprocessing operators of `ai.onnx.ml` that scikit-learn pipelines
//! export: `Binarizer`, `Scaler`, `Imputer`, `LabelEncoder` and `OneHotEncoder`.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::tract_hir::internal::*;

use super::kernel::{Kernel, MlOp, Shape, Type, values_f64};
use super::parse::load;

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// `values` (row-major, input's shape) as a tensor of type `dt`.
fn shaped(values: Vec<f64>, shape: &[usize], dt: DatumType) -> TractResult<TValue> {
    let tensor = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), values)?.into_tensor();
    Ok(tensor.cast_to_dt(dt)?.into_owned().into_tvalue())
}

/// The value for column `i % columns` of a per-column list (or its only value).
fn per_column(list: &[f64], i: usize, columns: usize) -> f64 {
    if list.len() == 1 {
        list[0]
    } else {
        list.get(i % columns.max(1)).copied().unwrap_or(0.0)
    }
}

fn last_dim(shape: &[usize]) -> usize {
    shape.last().copied().unwrap_or(1)
}

#[derive(Debug)]
struct Binarizer {
    threshold: f64,
}

impl Kernel for Binarizer {
    fn name(&self) -> &'static str {
        "Binarizer"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(Type::Input, Shape::Input)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let y = values_f64(x)?
            .into_iter()
            .map(|v| if v > self.threshold { 1.0 } else { 0.0 })
            .collect();
        Ok(tvec!(shaped(y, x.shape(), x.datum_type())?))
    }
}

pub fn binarizer(_: &ParsingContext, node: &NodeProto) -> Built {
    let threshold = node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0);
    Ok((
        MlOp::boxed(Binarizer {
            threshold: f64::from(threshold),
        }),
        vec![],
    ))
}

#[derive(Debug)]
struct Scaler {
    offset: Vec<f64>,
    scale: Vec<f64>,
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(Type::Fixed(DatumType::F32), Shape::Input)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let columns = last_dim(x.shape());
        for (name, list) in [("offset", &self.offset), ("scale", &self.scale)] {
            ensure!(
                list.len() <= 1 || list.len() == columns,
                "Scaler: {} {name} values for {columns} columns",
                list.len()
            );
        }
        let y = values_f64(x)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let offset = if self.offset.is_empty() {
                    0.0
                } else {
                    per_column(&self.offset, i, columns)
                };
                let scale = if self.scale.is_empty() {
                    1.0
                } else {
                    per_column(&self.scale, i, columns)
                };
                (v - offset) * scale
            })
            .collect();
        Ok(tvec!(shaped(y, x.shape(), DatumType::F32)?))
    }
}

pub fn scaler(_: &ParsingContext, node: &NodeProto) -> Built {
    let list = |name| -> TractResult<Vec<f64>> {
        Ok(node
            .get_attr_opt_vec::<f32>(name)?
            .unwrap_or_default()
            .into_iter()
            .map(f64::from)
            .collect())
    };
    Ok((
        MlOp::boxed(Scaler {
            offset: list("offset")?,
            scale: list("scale")?,
        }),
        vec![],
    ))
}

#[derive(Debug)]
struct Imputer {
    imputed: Vec<f64>,
    replaced: f64,
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(Type::Input, Shape::Input)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let columns = last_dim(x.shape());
        ensure!(
            self.imputed.len() == 1 || self.imputed.len() == columns,
            "Imputer: {} imputed values for {columns} columns",
            self.imputed.len()
        );
        let y = values_f64(x)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let missing = if self.replaced.is_nan() {
                    v.is_nan()
                } else {
                    v == self.replaced
                };
                if missing {
                    per_column(&self.imputed, i, columns)
                } else {
                    v
                }
            })
            .collect();
        Ok(tvec!(shaped(y, x.shape(), x.datum_type())?))
    }
}

pub fn imputer(_: &ParsingContext, node: &NodeProto) -> Built {
    let floats = node
        .get_attr_opt_vec::<f32>("imputed_value_floats")?
        .filter(|v| !v.is_empty());
    let ints = node
        .get_attr_opt_vec::<i64>("imputed_value_int64s")?
        .filter(|v| !v.is_empty());
    let (imputed, replaced) = match (floats, ints) {
        (Some(f), None) => (
            f.into_iter().map(f64::from).collect(),
            f64::from(
                node.get_attr_opt::<f32>("replaced_value_float")?
                    .unwrap_or(0.0),
            ),
        ),
        (None, Some(i)) => (
            i.into_iter().map(|v| v as f64).collect(),
            node.get_attr_opt::<i64>("replaced_value_int64")?
                .unwrap_or(0) as f64,
        ),
        _ => bail!(
            "Imputer `{}`: needs exactly one of imputed_value_floats and imputed_value_int64s",
            node.name
        ),
    };
    Ok((MlOp::boxed(Imputer { imputed, replaced }), vec![]))
}

/// A key or value of `LabelEncoder`/`OneHotEncoder`: integers, floats (by bits, NaN as one
/// value) or strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Item {
    Int(i64),
    Float(u64),
    Text(String),
}

impl Item {
    fn float(v: f64) -> Item {
        Item::Float(if v.is_nan() {
            f64::NAN.to_bits()
        } else {
            (v + 0.0).to_bits()
        })
    }
}

/// The elements of `tensor` as items: strings as text, floats by value, integers as i64.
fn items(tensor: &Tensor) -> TractResult<Vec<Item>> {
    let dt = tensor.datum_type();
    Ok(if dt == DatumType::String {
        tensor
            .to_plain_array_view::<String>()?
            .iter()
            .map(|s| Item::Text(s.clone()))
            .collect()
    } else if dt.is_float() {
        values_f64(tensor)?.into_iter().map(Item::float).collect()
    } else {
        let ints = tensor.cast_to::<i64>()?;
        ints.to_plain_array_view::<i64>()?
            .iter()
            .map(|&v| Item::Int(v))
            .collect()
    })
}

/// `values` of one kind as a tensor of `dt` and `shape`.
fn tensor_of(values: &[Item], shape: &[usize], dt: DatumType) -> TractResult<TValue> {
    let tensor = if dt == DatumType::String {
        let texts: Vec<String> = values
            .iter()
            .map(|v| match v {
                Item::Text(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), texts)?.into_tensor()
    } else {
        let numbers: Vec<f64> = values
            .iter()
            .map(|v| match v {
                Item::Int(i) => *i as f64,
                Item::Float(bits) => f64::from_bits(*bits),
                Item::Text(_) => 0.0,
            })
            .collect();
        let tensor = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), numbers)?.into_tensor();
        if matches!(dt, DatumType::I64) {
            // Through i64 directly: f64 holds every label an exporter writes, but be exact.
            let ints: Vec<i64> = values
                .iter()
                .map(|v| match v {
                    Item::Int(i) => *i,
                    Item::Float(bits) => f64::from_bits(*bits) as i64,
                    Item::Text(_) => 0,
                })
                .collect();
            tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), ints)?.into_tensor()
        } else {
            tensor.cast_to_dt(dt)?.into_owned()
        }
    };
    Ok(tensor.into_tvalue())
}

#[derive(Debug)]
struct LabelEncoder {
    map: HashMap<Item, Item>,
    default: Item,
    output: DatumType,
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(Type::Fixed(self.output), Shape::Input)]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let mapped: Vec<Item> = items(x)?
            .iter()
            .map(|k| self.map.get(k).unwrap_or(&self.default).clone())
            .collect();
        Ok(tvec!(tensor_of(&mapped, x.shape(), self.output)?))
    }
}

/// A key or value list given by one of `{prefix}_strings`, `_int64s`, `_floats` or
/// `{prefix}_tensor`, with its type.
fn listed(
    ctx: &ParsingContext,
    node: &NodeProto,
    prefix: &str,
) -> TractResult<Option<(Vec<Item>, DatumType)>> {
    if let Some(t) = node.get_attr_opt::<&TensorProto>(&format!("{prefix}_tensor"))? {
        let t = load(ctx, t)?;
        return Ok(Some((items(&t)?, t.datum_type())));
    }
    if let Some(v) = node.get_attr_opt_vec::<String>(&format!("{prefix}_strings"))? {
        return Ok(Some((
            v.into_iter().map(Item::Text).collect(),
            DatumType::String,
        )));
    }
    if let Some(v) = node.get_attr_opt_vec::<i64>(&format!("{prefix}_int64s"))? {
        return Ok(Some((
            v.into_iter().map(Item::Int).collect(),
            DatumType::I64,
        )));
    }
    if let Some(v) = node.get_attr_opt_vec::<f32>(&format!("{prefix}_floats"))? {
        return Ok(Some((
            v.into_iter().map(|f| Item::float(f64::from(f))).collect(),
            DatumType::F32,
        )));
    }
    Ok(None)
}

pub fn label_encoder(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let fail = |m: &str| format_err!("LabelEncoder `{}`: {m}", node.name);
    if node
        .get_attr_opt_vec::<String>("classes_strings")?
        .is_some()
    {
        return Err(fail(
            "opset 1's classes_strings form is not supported; export with ai.onnx.ml opset 2 or later",
        ));
    }
    let (keys, _) = listed(ctx, node, "keys")?.ok_or_else(|| fail("has no keys"))?;
    let (values, output) = listed(ctx, node, "values")?.ok_or_else(|| fail("has no values"))?;
    if keys.len() != values.len() {
        return Err(fail("keys and values differ in length"));
    }
    let default = if let Some(t) = node.get_attr_opt::<&TensorProto>("default_tensor")? {
        items(&load(ctx, t)?)?
            .into_iter()
            .next()
            .ok_or_else(|| fail("empty default_tensor"))?
    } else if output == DatumType::String {
        Item::Text(
            node.get_attr_opt::<String>("default_string")?
                .unwrap_or_else(|| "_Unused".into()),
        )
    } else if output.is_float() {
        Item::float(f64::from(
            node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0),
        ))
    } else {
        Item::Int(node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1))
    };
    let map = keys.into_iter().zip(values).collect();
    Ok((
        MlOp::boxed(LabelEncoder {
            map,
            default,
            output,
        }),
        vec![],
    ))
}

#[derive(Debug)]
struct OneHotEncoder {
    categories: HashMap<Item, usize>,
    count: usize,
    /// Unknown values encode as all zeros; otherwise they are an error.
    zeros: bool,
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(Type::Fixed(DatumType::F32), Shape::InputBy(self.count))]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let values = if x.datum_type().is_float() {
            // Numeric categories are integers: floats compare by their integer value.
            values_f64(x)?
                .into_iter()
                .map(|v| Item::Int(v as i64))
                .collect()
        } else {
            items(x)?
        };
        let mut y = vec![0f32; values.len() * self.count];
        for (i, v) in values.iter().enumerate() {
            match self.categories.get(v) {
                Some(&k) => y[i * self.count + k] = 1.0,
                None if self.zeros => {}
                None => bail!("OneHotEncoder: {v:?} is not a known category"),
            }
        }
        let mut shape = x.shape().to_vec();
        shape.push(self.count);
        Ok(tvec!(
            tract_ndarray::ArrayD::from_shape_vec(shape, y)?
                .into_tensor()
                .into_tvalue()
        ))
    }
}

pub fn one_hot_encoder(_: &ParsingContext, node: &NodeProto) -> Built {
    let categories: Vec<Item> = match (
        node.get_attr_opt_vec::<i64>("cats_int64s")?,
        node.get_attr_opt_vec::<String>("cats_strings")?,
    ) {
        (Some(ints), None) => ints.into_iter().map(Item::Int).collect(),
        (None, Some(texts)) => texts.into_iter().map(Item::Text).collect(),
        _ => bail!(
            "OneHotEncoder `{}`: needs exactly one of cats_int64s and cats_strings",
            node.name
        ),
    };
    let count = categories.len();
    let categories = categories
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, i))
        .collect();
    let zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
    Ok((
        MlOp::boxed(OneHotEncoder {
            categories,
            count,
            zeros,
        }),
        vec![],
    ))
}

#[derive(Debug)]
struct FeatureVectorizer {
    dimensions: Vec<usize>,
}

impl Kernel for FeatureVectorizer {
    fn name(&self) -> &'static str {
        "FeatureVectorizer"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(
            Type::Fixed(DatumType::F32),
            Shape::RowsBy(self.dimensions.iter().sum()),
        )]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == self.dimensions.len(),
            "FeatureVectorizer: {} inputs for {} dimensions",
            inputs.len(),
            self.dimensions.len()
        );
        let rows = |t: &Tensor| if t.rank() >= 2 { t.shape()[0] } else { 1 };
        let n = rows(&inputs[0]);
        let width: usize = self.dimensions.iter().sum();
        let mut y = vec![0f32; n * width];
        let mut offset = 0;
        for (input, &dims) in inputs.iter().zip(&self.dimensions) {
            ensure!(rows(input) == n, "FeatureVectorizer: inputs differ in rows");
            let values = values_f64(input)?;
            let columns = values.len().checked_div(n).unwrap_or(0);
            for r in 0..n {
                for c in 0..dims.min(columns) {
                    y[r * width + offset + c] = values[r * columns + c] as f32;
                }
            }
            offset += dims;
        }
        Ok(tvec!(
            tract_ndarray::Array2::from_shape_vec((n, width), y)?
                .into_tensor()
                .into_tvalue()
        ))
    }
}

pub fn feature_vectorizer(_: &ParsingContext, node: &NodeProto) -> Built {
    let dimensions = node
        .get_attr_opt_vec::<i64>("inputdimensions")?
        .unwrap_or_default()
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| format_err!("FeatureVectorizer: dimension {d}")))
        .collect::<TractResult<Vec<_>>>()?;
    Ok((MlOp::boxed(FeatureVectorizer { dimensions }), vec![]))
}

/// `ZipMap` served as the probability tensor it zips (the core declares its output so, and
/// the ONNX Runtime engine converts its maps back to the same tensor).
#[derive(Debug)]
struct ZipMap {
    classes: usize,
}

impl Kernel for ZipMap {
    fn name(&self) -> &'static str {
        "ZipMap"
    }

    fn outputs(&self) -> Vec<(Type, Shape)> {
        vec![(Type::Fixed(DatumType::F32), Shape::RowsBy(self.classes))]
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let values = values_f64(x)?;
        ensure!(
            self.classes > 0 && values.len() % self.classes == 0,
            "ZipMap: {} probabilities for {} classes",
            values.len(),
            self.classes
        );
        let rows = values.len() / self.classes;
        let y: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
        Ok(tvec!(
            tract_ndarray::Array2::from_shape_vec((rows, self.classes), y)?
                .into_tensor()
                .into_tvalue()
        ))
    }
}

pub fn zipmap(_: &ParsingContext, node: &NodeProto) -> Built {
    let classes = match (
        node.get_attr_opt_vec::<i64>("classlabels_int64s")?,
        node.get_attr_opt_vec::<String>("classlabels_strings")?,
    ) {
        (Some(ints), None) => ints.len(),
        (None, Some(texts)) => texts.len(),
        _ => bail!(
            "ZipMap `{}`: needs exactly one of classlabels_int64s and classlabels_strings",
            node.name
        ),
    };
    Ok((MlOp::boxed(ZipMap { classes }), vec![]))
}
