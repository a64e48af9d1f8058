//! ONNX graph rewrites applied before tract parses a model, for what tract 0.23 gets wrong.
//!
//! tract reads an `LSTM`, `GRU` or `RNN` with `direction = "reverse"` as a forward one (it
//! infers the direction from the number of weight sets). Its bidirectional form is right, so
//! a reverse node becomes a bidirectional one whose forward weights are the same, and each
//! output keeps only the backward half.

use std::collections::HashSet;

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

const RECURRENT: [&str; 3] = ["LSTM", "GRU", "RNN"];

/// Applies every rewrite to the model's graphs; returns how many nodes changed.
pub fn apply(model: &mut ModelProto) -> usize {
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(1);
    model
        .graph
        .as_mut()
        .map_or(0, |g| reverse_recurrences(g, opset))
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn is_reverse(node: &NodeProto) -> bool {
    (node.domain.is_empty() || node.domain == "ai.onnx")
        && RECURRENT.contains(&node.op_type.as_str())
        && attribute(node, "direction").is_some_and(|a| a.s == b"reverse")
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn ints_attribute(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int64s(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// A name no tensor of the graph has.
fn fresh(taken: &mut HashSet<String>, base: &str) -> String {
    let mut name = format!("{base}__destino");
    let mut n = 0;
    while taken.contains(&name) {
        n += 1;
        name = format!("{base}__destino{n}");
    }
    taken.insert(name.clone());
    name
}

fn reverse_recurrences(graph: &mut GraphProto, opset: i64) -> usize {
    let mut inner = 0;
    for node in &mut graph.node {
        for a in &mut node.attribute {
            if let Some(g) = a.g.as_mut() {
                inner += reverse_recurrences(g, opset);
            }
            for g in &mut a.graphs {
                inner += reverse_recurrences(g, opset);
            }
        }
    }
    if !graph.node.iter().any(is_reverse) {
        return inner;
    }
    let mut taken: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().chain(&n.output).cloned())
        .chain(graph.initializer.iter().map(|t| t.name.clone()))
        .chain(graph.input.iter().map(|i| i.name.clone()))
        .collect();
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut changed = 0;
    for mut node in std::mem::take(&mut graph.node) {
        if !is_reverse(&node) {
            nodes.push(node);
            continue;
        }
        changed += 1;
        let batch_first = attribute(&node, "layout").is_some_and(|a| a.i == 1);
        // W, R, B, initial_h, initial_c, P: a second (forward) copy of each, on the
        // direction axis (axis 1 for initial states in the batch-first layout).
        for index in [1, 2, 3, 5, 6, 7] {
            let Some(input) = node.input.get(index).filter(|i| !i.is_empty()).cloned() else {
                continue;
            };
            let axis = if batch_first && (index == 5 || index == 6) {
                1
            } else {
                0
            };
            let doubled = fresh(&mut taken, &input);
            nodes.push(NodeProto {
                name: fresh(&mut taken, &format!("{}_both_{index}", node.name)),
                op_type: "Concat".into(),
                input: vec![input.clone(), input],
                output: vec![doubled.clone()],
                attribute: vec![int_attribute("axis", axis)],
                ..Default::default()
            });
            node.input[index] = doubled;
        }
        for a in &mut node.attribute {
            if a.name == "direction" {
                a.s = b"bidirectional".to_vec();
            }
        }
        // Y [T, 2, B, H] (or [B, T, 2, H]); Y_h, Y_c [2, B, H] (or [B, 2, H]): the backward
        // half, at index 1 of the direction axis.
        let mut slices = Vec::new();
        for (index, output) in node.output.iter_mut().enumerate() {
            if output.is_empty() {
                continue;
            }
            let axis = match (index, batch_first) {
                (0, false) => 1,
                (0, true) => 2,
                (_, false) => 0,
                (_, true) => 1,
            };
            let both = fresh(&mut taken, output);
            let wanted = std::mem::replace(output, both.clone());
            let name = fresh(&mut taken, &format!("{wanted}_backward"));
            let mut slice = NodeProto {
                name: name.clone(),
                op_type: "Slice".into(),
                input: vec![both],
                output: vec![wanted],
                ..Default::default()
            };
            if opset >= 10 {
                for (part, value) in [("starts", 1), ("ends", 2), ("axes", axis)] {
                    let tensor = fresh(&mut taken, &format!("{name}_{part}"));
                    graph.initializer.push(int64s(&tensor, &[value]));
                    slice.input.push(tensor);
                }
            } else {
                slice.attribute = vec![
                    ints_attribute("starts", &[1]),
                    ints_attribute("ends", &[2]),
                    ints_attribute("axes", &[axis]),
                ];
            }
            slices.push(slice);
        }
        nodes.push(node);
        nodes.extend(slices);
    }
    graph.node = nodes;
    inner + changed
}
