//! ONNX `Gather` with its indices checked first. tract 0.23 reads them unchecked: an index
//! out of range panics on a slice bound or, gathering single elements, silently reads the
//! neighbouring row (a negative index below `-len` wraps around). The specification makes
//! such indices an error, as ONNX Runtime does; here they are one, for that request.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::array::Gather;

/// The parser for `Gather` nodes (registered in `facts.rs`).
pub(crate) fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let axis = node.get_attr_opt("axis")?.unwrap_or(0);
    Ok((expand(CheckedGather(Gather::new(axis))), vec![]))
}

#[derive(Debug, Clone)]
struct CheckedGather(Gather);

impl Expansion for CheckedGather {
    fn name(&self) -> StaticName {
        "Gather".into()
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let rank = model.outlet_fact(inputs[0])?.rank();
        let axis = self.0.to_type_op(rank).axis;
        let check = IndicesInRange { axis };
        let indices = model.wire_node(format!("{prefix}.indices_in_range"), check, inputs)?[0];
        self.0.wire(prefix, model, &[inputs[0], indices])
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.0.rules(s, inputs, outputs)
    }
}

/// Passes `indices` (its second input) through when each lies in `[-len, len)`, `len` being
/// the size of `data` (its first input) on `axis`; otherwise fails the run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IndicesInRange {
    axis: usize,
}

impl IndicesInRange {
    fn check(&self, len: usize, indices: &Tensor) -> TractResult<()> {
        let values = indices.cast_to::<i64>()?;
        let len = len as i64;
        if let Some(bad) = values
            .to_plain_array_view::<i64>()?
            .iter()
            .find(|&&index| index < -len || index >= len)
        {
            bail!(
                "Gather index {bad} is out of range for an axis of {len} (allowed: {} to {})",
                -len,
                len - 1
            );
        }
        Ok(())
    }
}

impl Op for IndicesInRange {
    fn name(&self) -> StaticName {
        "IndicesInRange".into()
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for IndicesInRange {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        self.pass(inputs).map(Some)
    }

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.pass(inputs)
    }

    fn forwards_input(&self) -> Option<usize> {
        Some(1)
    }
}

impl IndicesInRange {
    fn pass(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (data, indices) = args_2!(inputs);
        let len = *data
            .shape()
            .get(self.axis)
            .ok_or_else(|| format_err!("Gather axis {} out of the data's rank", self.axis))?;
        self.check(len, &indices)?;
        Ok(tvec!(indices))
    }
}

impl TypedOp for IndicesInRange {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[1].clone()))
    }

    /// Constant indices against a known length are checked once, here, and the check leaves
    /// the graph: tract then folds constant gathers (a `Shape` followed by `Gather`) as usual.
    fn declutter(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TypedModelPatch>> {
        let data = model.outlet_fact(node.inputs[0])?;
        let indices = model.outlet_fact(node.inputs[1])?;
        let (Some(konst), Some(len)) = (
            indices.konst.as_ref(),
            data.shape
                .get(self.axis)
                .and_then(|d| usize::try_from(d.to_i64().ok()?).ok()),
        ) else {
            return Ok(None);
        };
        self.check(len, konst)?;
        TypedModelPatch::rewire(model, &node.inputs[1..], &[node.id.into()], &|_, inputs| {
            Ok(inputs.into())
        })
        .map(Some)
    }

    as_op!();
}
