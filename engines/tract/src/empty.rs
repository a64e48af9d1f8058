//! Operators whose outputs are empty are not run: each such output is the empty tensor of its
//! type and shape, which is all a result with no elements can be. Some of tract's kernels
//! divide by a plane or row length and panic on an empty one (a 2×2 `MaxPool` with
//! `auto_pad=VALID` over an image smaller than its window: a fully convolutional detector
//! asked about a small image), where the specification's answer is an empty tensor.
//!
//! Plans have concrete input shapes, so analysis knows every output's size. This runs before
//! typing, because tract evaluates operators on empty inputs while it types the graph (an
//! empty tensor is a constant to it), and so reached the panicking kernels while planning.

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, InferenceModelExt};
use tract_onnx::tract_hir::ops::konst::Const;
use tract_onnx::tract_hir::ops::source::Source;

/// Replaces every single-output node whose output is empty by a constant; returns how many.
pub(crate) fn fold_empty_outputs(model: &mut InferenceModel) -> TractResult<usize> {
    model.analyse(false)?;
    let mut folded = 0;
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        if node.op_is::<Const>() || node.op_is::<Source>() || node.outputs.len() != 1 {
            continue;
        }
        let Some(empty) = empty_tensor(&node.outputs[0].fact) else {
            continue;
        };
        for input in std::mem::take(&mut model.nodes[id].inputs) {
            let upstream = &mut model.nodes[input.node].outputs[input.slot].successors;
            upstream.retain(|inlet| inlet.node != id);
        }
        model.nodes[id].op = Box::new(Const::new(empty.clone().into_arc_tensor())?);
        model.set_outlet_fact(OutletId::new(id, 0), InferenceFact::from(empty))?;
        folded += 1;
    }
    Ok(folded)
}

/// The empty tensor `fact` describes, when its type and shape are known and it has no elements.
fn empty_tensor(fact: &InferenceFact) -> Option<Tensor> {
    let datum_type = fact.datum_type.concretize()?;
    let dims = fact
        .shape
        .concretize()?
        .iter()
        .map(|dim| usize::try_from(dim.to_i64().ok()?).ok())
        .collect::<Option<Vec<usize>>>()?;
    if !dims.contains(&0) {
        return None;
    }
    Tensor::zero_dt(datum_type, &dims).ok()
}
