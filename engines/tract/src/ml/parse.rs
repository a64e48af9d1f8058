//! Reading the tree operators' attributes into kernels.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::tract_hir::internal::*;

use super::kernel::{MlOp, values_f64};
use super::tree::{Aggregate, Cmp, Forest, NodeSpec, PostTransform, WeightSpec};
use super::trees::{Labels, TreeClassifier, TreeRegressor};

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

fn err(node: &NodeProto, message: impl std::fmt::Display) -> TractError {
    format_err!("{} `{}`: {message}", node.op_type, node.name)
}

/// A float list given as `NAME` (floats) or `NAME_as_tensor` (a tensor, e.g. doubles).
pub(super) fn floats(
    ctx: &ParsingContext,
    node: &NodeProto,
    name: &str,
) -> TractResult<Option<Vec<f64>>> {
    if let Some(values) = node.get_attr_opt_vec::<f32>(name)? {
        return Ok(Some(values.into_iter().map(f64::from).collect()));
    }
    node.get_attr_opt::<&TensorProto>(&format!("{name}_as_tensor"))?
        .map(|t| tensor_values(ctx, t))
        .transpose()
}

/// A tensor attribute's value (external data resolved as the model's own).
pub(super) fn load(ctx: &ParsingContext, t: &TensorProto) -> TractResult<Tensor> {
    tract_onnx::tensor::load_tensor(&*ctx.framework.provider, t, None)
}

fn tensor_values(ctx: &ParsingContext, t: &TensorProto) -> TractResult<Vec<f64>> {
    values_f64(&load(ctx, t)?)
}

fn ints(node: &NodeProto, name: &str) -> TractResult<Vec<i64>> {
    Ok(node.get_attr_opt_vec::<i64>(name)?.unwrap_or_default())
}

fn same_len(node: &NodeProto, lists: &[(&str, usize)]) -> TractResult<()> {
    let n = lists[0].1;
    if let Some((name, len)) = lists.iter().find(|(_, len)| *len != n) {
        return Err(err(
            node,
            format!("`{name}` has {len} entries, `{}` {n}", lists[0].0),
        ));
    }
    Ok(())
}

/// The v1/v3 node lists.
fn node_specs(ctx: &ParsingContext, node: &NodeProto) -> TractResult<Vec<NodeSpec>> {
    let trees = ints(node, "nodes_treeids")?;
    let ids = ints(node, "nodes_nodeids")?;
    let features = ints(node, "nodes_featureids")?;
    let modes = node
        .get_attr_opt_vec::<String>("nodes_modes")?
        .unwrap_or_default();
    let thresholds = floats(ctx, node, "nodes_values")?.unwrap_or_default();
    let if_true = ints(node, "nodes_truenodeids")?;
    let if_false = ints(node, "nodes_falsenodeids")?;
    let missing = ints(node, "nodes_missing_value_tracks_true")?;
    same_len(
        node,
        &[
            ("nodes_nodeids", ids.len()),
            ("nodes_treeids", trees.len()),
            ("nodes_featureids", features.len()),
            ("nodes_modes", modes.len()),
            ("nodes_values", thresholds.len()),
            ("nodes_truenodeids", if_true.len()),
            ("nodes_falsenodeids", if_false.len()),
        ],
    )?;
    if !missing.is_empty() && missing.len() != ids.len() {
        return Err(err(
            node,
            "`nodes_missing_value_tracks_true` does not match the nodes",
        ));
    }
    (0..ids.len())
        .map(|i| {
            Ok(NodeSpec {
                tree: trees[i],
                id: ids[i],
                feature: features[i],
                threshold: thresholds[i],
                cmp: Cmp::parse(&modes[i]).map_err(|e| err(node, e))?,
                missing_goes_true: missing.get(i).is_some_and(|&m| m != 0),
                if_true: if_true[i],
                if_false: if_false[i],
            })
        })
        .collect()
}

/// Leaf weights, from the `class_*` or `target_*` lists.
fn weight_specs(
    ctx: &ParsingContext,
    node: &NodeProto,
    prefix: &str,
) -> TractResult<Vec<WeightSpec>> {
    let trees = ints(node, &format!("{prefix}_treeids"))?;
    let nodes = ints(node, &format!("{prefix}_nodeids"))?;
    let targets = ints(node, &format!("{prefix}_ids"))?;
    let values = floats(ctx, node, &format!("{prefix}_weights"))?.unwrap_or_default();
    same_len(
        node,
        &[
            ("treeids", trees.len()),
            ("nodeids", nodes.len()),
            ("ids", targets.len()),
            ("weights", values.len()),
        ],
    )?;
    Ok((0..trees.len())
        .map(|i| WeightSpec {
            tree: trees[i],
            node: nodes[i],
            target: targets[i],
            value: values[i],
        })
        .collect())
}

fn post_transform(node: &NodeProto) -> TractResult<PostTransform> {
    let name = node
        .get_attr_opt::<String>("post_transform")?
        .unwrap_or_else(|| "NONE".into());
    PostTransform::parse(&name).map_err(|e| err(node, e))
}

pub fn classifier(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let labels = match (
        node.get_attr_opt_vec::<i64>("classlabels_int64s")?,
        node.get_attr_opt_vec::<String>("classlabels_strings")?,
    ) {
        (Some(ints), None) => Labels::Int(ints),
        (None, Some(strings)) => Labels::Text(strings),
        _ => {
            return Err(err(
                node,
                "needs exactly one of classlabels_int64s and classlabels_strings",
            ));
        }
    };
    if labels.len() < 2 {
        return Err(err(node, "needs at least two classes"));
    }
    let weights = weight_specs(ctx, node, "class")?;
    let forest = Forest::from_specs(&node_specs(ctx, node)?, &weights, labels.len())
        .map_err(|e| err(node, e))?;
    let mut classes: Vec<i64> = weights.iter().map(|w| w.target).collect();
    classes.sort_unstable();
    classes.dedup();
    let kernel = TreeClassifier {
        binary_case: labels.len() == 2 && classes.len() == 1,
        weights_all_positive: weights.iter().all(|w| w.value >= 0.0),
        base: floats(ctx, node, "base_values")?.unwrap_or_default(),
        post: post_transform(node)?,
        forest,
        labels,
    };
    Ok((MlOp::boxed(kernel), vec![]))
}

pub fn regressor(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1);
    let targets = usize::try_from(targets)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| err(node, "n_targets must be positive"))?;
    let forest = Forest::from_specs(
        &node_specs(ctx, node)?,
        &weight_specs(ctx, node, "target")?,
        targets,
    )
    .map_err(|e| err(node, e))?;
    let aggregate = node
        .get_attr_opt::<String>("aggregate_function")?
        .unwrap_or_else(|| "SUM".into());
    let kernel = TreeRegressor {
        forest,
        aggregate: Aggregate::parse(&aggregate).map_err(|e| err(node, e))?,
        base: floats(ctx, node, "base_values")?.unwrap_or_default(),
        post: post_transform(node)?,
        output: DatumType::F32,
        name: "TreeEnsembleRegressor",
    };
    Ok((MlOp::boxed(kernel), vec![]))
}

/// Opset-5 `TreeEnsemble`: nodes by position, leaves apart, modes and splits as tensors.
pub fn ensemble(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let tensor = |name: &str| -> TractResult<Vec<f64>> {
        let t = node
            .get_attr_opt::<&TensorProto>(name)?
            .ok_or_else(|| err(node, format!("needs `{name}`")))?;
        tensor_values(ctx, t)
    };
    let splits = tensor("nodes_splits")?;
    let modes = tensor("nodes_modes")?;
    let features = ints(node, "nodes_featureids")?;
    let (if_true, if_false) = (
        ints(node, "nodes_truenodeids")?,
        ints(node, "nodes_falsenodeids")?,
    );
    let (true_leaf, false_leaf) = (
        ints(node, "nodes_trueleafs")?,
        ints(node, "nodes_falseleafs")?,
    );
    let missing = ints(node, "nodes_missing_value_tracks_true")?;
    let n = splits.len();
    same_len(
        node,
        &[
            ("nodes_splits", n),
            ("nodes_modes", modes.len()),
            ("nodes_featureids", features.len()),
            ("nodes_truenodeids", if_true.len()),
            ("nodes_falsenodeids", if_false.len()),
            ("nodes_trueleafs", true_leaf.len()),
            ("nodes_falseleafs", false_leaf.len()),
        ],
    )?;
    let membership = node
        .get_attr_opt::<&TensorProto>("membership_values")?
        .map(|t| tensor_values(ctx, t))
        .transpose()?
        .unwrap_or_default();
    // The sets of the BRANCH_MEMBER nodes, in node order, separated by NaN.
    let mut sets = membership
        .split(|v| v.is_nan())
        .map(<[f64]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter();
    let index = |v: i64| u32::try_from(v).map_err(|_| err(node, format!("index {v}")));
    let mut nodes = Vec::with_capacity(n);
    let mut member_sets = Vec::new();
    for i in 0..n {
        let cmp =
            match modes[i] as u8 {
                0 => Cmp::Leq,
                1 => Cmp::Lt,
                2 => Cmp::Gte,
                3 => Cmp::Gt,
                4 => Cmp::Eq,
                5 => Cmp::Neq,
                6 => {
                    member_sets.push(sets.next().ok_or_else(|| {
                        err(node, "fewer membership sets than BRANCH_MEMBER nodes")
                    })?);
                    Cmp::Member(index(member_sets.len() as i64 - 1)?)
                }
                other => return Err(err(node, format!("unknown node mode {other}"))),
            };
        nodes.push((
            index(features[i])?,
            splits[i],
            cmp,
            missing.get(i).is_some_and(|&m| m != 0),
        ));
    }
    let children = |ids: &[i64], leaf: &[i64]| -> TractResult<Vec<(bool, u32)>> {
        ids.iter()
            .zip(leaf)
            .map(|(&id, &l)| Ok((l != 0, index(id)?)))
            .collect()
    };
    let targets_ids = ints(node, "leaf_targetids")?;
    let weights = tensor("leaf_weights")?;
    same_len(
        node,
        &[
            ("leaf_targetids", targets_ids.len()),
            ("leaf_weights", weights.len()),
        ],
    )?;
    let leaves = targets_ids
        .iter()
        .zip(&weights)
        .map(|(&t, &w)| Ok((index(t)?, w)))
        .collect::<TractResult<Vec<_>>>()?;
    let roots = ints(node, "tree_roots")?
        .into_iter()
        .map(index)
        .collect::<TractResult<Vec<_>>>()?;
    let targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1);
    let targets = usize::try_from(targets)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| err(node, "n_targets must be positive"))?;
    let forest = Forest::from_v5(
        &nodes,
        &children(&if_true, &true_leaf)?,
        &children(&if_false, &false_leaf)?,
        &leaves,
        &roots,
        member_sets,
        targets,
    )
    .map_err(|e| err(node, e))?;
    let aggregate = match node.get_attr_opt::<i64>("aggregate_function")?.unwrap_or(1) {
        0 => Aggregate::Average,
        1 => Aggregate::Sum,
        2 => Aggregate::Min,
        3 => Aggregate::Max,
        other => return Err(err(node, format!("unknown aggregate function {other}"))),
    };
    let post = match node.get_attr_opt::<i64>("post_transform")?.unwrap_or(0) {
        0 => PostTransform::None,
        1 => PostTransform::Softmax,
        2 => PostTransform::Logistic,
        3 => PostTransform::SoftmaxZero,
        4 => PostTransform::Probit,
        other => return Err(err(node, format!("unknown post transform {other}"))),
    };
    let output = node
        .get_attr_opt::<&TensorProto>("leaf_weights")?
        .map(|t| load(ctx, t))
        .transpose()?
        .map_or(DatumType::F32, |t| t.datum_type());
    let kernel = TreeRegressor {
        forest,
        aggregate,
        base: Vec::new(),
        post,
        output,
        name: "TreeEnsemble",
    };
    Ok((MlOp::boxed(kernel), vec![]))
}
