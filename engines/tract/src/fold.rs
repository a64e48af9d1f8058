//! `If` folding: with concrete input shapes and scalar values, the branch each `If` takes is
//! often known; inlining it in the ONNX graph spares tract analysing the branch not taken.

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// Name tract gives the node built from `node`.
fn tract_node_name(node: &pb::NodeProto) -> Option<&str> {
    if !node.name.is_empty() {
        Some(&node.name)
    } else {
        node.output
            .first()
            .map(String::as_str)
            .filter(|o| !o.is_empty())
    }
}

/// Top-level `If` nodes of `graph` whose condition analysis resolved: (index, branch taken).
pub(crate) fn decided_ifs(model: &InferenceModel, graph: &pb::GraphProto) -> Vec<(usize, bool)> {
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, node)| node.op_type == "If" && node.domain.is_empty())
        .filter_map(|(index, node)| {
            let tract_node = model.node_by_name(tract_node_name(node)?).ok()?;
            let condition = model.outlet_fact(*tract_node.inputs.first()?).ok()?;
            let value = condition.value.concretize()?;
            Some((index, value.cast_to_scalar::<bool>().ok()?))
        })
        .collect()
}

/// Replaces the `If` at `index` by the nodes of its `taken` branch, whose outputs are then
/// copied to the `If`'s outputs. ONNX names are unique model-wide, so nothing is renamed.
pub(crate) fn inline_branch(
    graph: &mut pb::GraphProto,
    index: usize,
    taken: bool,
) -> TractResult<()> {
    let node = graph.node.remove(index);
    let attribute = if taken { "then_branch" } else { "else_branch" };
    let body = node
        .attribute
        .iter()
        .find(|a| a.name == attribute)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| TractError::msg(format!("If node `{}` has no {attribute}", node.name)))?;
    let mut nodes = body.node.clone();
    for (i, (inner, outer)) in body.output.iter().zip(&node.output).enumerate() {
        nodes.push(pb::NodeProto {
            name: format!("{}__taken_{i}", node.name),
            op_type: "Identity".into(),
            input: vec![inner.name.clone()],
            output: vec![outer.clone()],
            ..Default::default()
        });
    }
    graph.initializer.extend(body.initializer.iter().cloned());
    graph.node.splice(index..index, nodes);
    Ok(())
}
