//! One tract operator for every `ai.onnx.ml` kernel destino computes itself: the kernel says
//! what its outputs are per input row and computes them; this wrapper gives tract the
//! inference rules, the typed facts and the evaluation.

use std::fmt;
use std::sync::Arc;

use tract_onnx::tract_hir::internal::*;

/// The shape of one output of a kernel for an input of `rows` rows (rank 2, or rank 1 as
/// one row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `[rows]`
    Rows,
    /// `[rows, n]`
    RowsBy(usize),
    /// The input's shape, whatever its rank.
    Input,
    /// The input's shape and one more axis of `n`.
    InputBy(usize),
}

/// The type of one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Fixed(DatumType),
    /// The input's.
    Input,
}

pub trait Kernel: fmt::Debug + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn outputs(&self) -> Vec<(Type, Shape)>;
    /// `inputs[0]` is the features; outputs have the shapes `outputs` says.
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;
}

/// A kernel as a tract operator. Two are equal only when they are the same instance.
#[derive(Debug, Clone)]
pub struct MlOp(pub Arc<dyn Kernel>);

impl MlOp {
    pub fn boxed(kernel: impl Kernel) -> Box<dyn InferenceOp> {
        Box::new(MlOp(Arc::new(kernel)))
    }
}

impl PartialEq for MlOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MlOp {}

impl Op for MlOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for MlOp {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        self.0.eval(inputs).map(Some)
    }

    fn eval(&self, _: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(inputs)
    }
}

/// The rows of an input of this shape.
fn rows(shape: &ShapeFact) -> TDim {
    if shape.rank() == 2 {
        shape[0].clone()
    } else {
        1.into()
    }
}

impl TypedOp for MlOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs
            .first()
            .ok_or_else(|| format_err!("{} needs an input", self.0.name()))?;
        let outputs = self.0.outputs();
        let by_rows = outputs
            .iter()
            .any(|(_, s)| matches!(s, Shape::Rows | Shape::RowsBy(_)));
        ensure!(
            !by_rows || input.rank() <= 2,
            "{} takes rank 1 or 2 inputs",
            self.0.name()
        );
        let rows = rows(&input.shape);
        Ok(outputs
            .into_iter()
            .map(|(dt, shape)| {
                let dt = match dt {
                    Type::Fixed(dt) => dt,
                    Type::Input => input.datum_type,
                };
                match shape {
                    Shape::Rows => TypedFact::dt_shape(dt, [rows.clone()]),
                    Shape::RowsBy(n) => TypedFact::dt_shape(dt, [rows.clone(), n.to_dim()]),
                    Shape::Input => TypedFact::dt_shape(dt, input.shape.clone()),
                    Shape::InputBy(n) => {
                        let mut dims: TVec<TDim> = input.shape.iter().cloned().collect();
                        dims.push(n.to_dim());
                        TypedFact::dt_shape(dt, dims)
                    }
                }
            })
            .collect())
    }

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }
}

impl InferenceRulesOp for MlOp {
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let declared = self.0.outputs();
        check_output_arity(outputs, declared.len())?;
        let Some(input) = inputs.first() else {
            bail!("{} needs an input", self.0.name());
        };
        for (output, (dt, shape)) in outputs.iter().zip(declared) {
            match dt {
                Type::Fixed(dt) => s.equals(&output.datum_type, dt)?,
                Type::Input => s.equals(&output.datum_type, &input.datum_type)?,
            }
            match shape {
                Shape::Rows | Shape::RowsBy(_) => {
                    if let Shape::RowsBy(n) = shape {
                        s.equals(&output.rank, 2)?;
                        s.equals(&output.shape[1], n.to_dim())?;
                    } else {
                        s.equals(&output.rank, 1)?;
                    }
                    s.given(&input.rank, move |s, rank| {
                        if rank == 2 {
                            s.equals(&output.shape[0], &input.shape[0])
                        } else {
                            s.equals(&output.shape[0], 1.to_dim())
                        }
                    })?;
                }
                Shape::Input => s.equals(&output.shape, &input.shape)?,
                Shape::InputBy(n) => {
                    s.equals(&output.rank, input.rank.bex() + 1)?;
                    s.given(&input.rank, move |s, rank| {
                        let rank = rank as usize;
                        for axis in 0..rank {
                            s.equals(&output.shape[axis], &input.shape[axis])?;
                        }
                        s.equals(&output.shape[rank], n.to_dim())
                    })?;
                }
            }
        }
        Ok(())
    }

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }

    fn to_typed(
        &self,
        _source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        let inputs: TVec<OutletId> = node.inputs.iter().map(|i| mapping[i]).collect();
        target.wire_node(&*node.name, self.clone(), &inputs)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs().len())
    }
}

/// The elements of `tensor` as f64, row-major.
pub fn values_f64(tensor: &Tensor) -> TractResult<Vec<f64>> {
    let tensor = tensor.cast_to::<f64>()?;
    Ok(tensor
        .to_plain_array_view::<f64>()?
        .iter()
        .copied()
        .collect())
}

/// The features of `input` (rank 1: one row; rank 2: rows × columns) as f64, row-major,
/// with the row and column counts.
pub fn features(input: &Tensor) -> TractResult<(Vec<f64>, usize, usize)> {
    let shape = input.shape();
    let (rows, columns) = match shape {
        [c] => (1, *c),
        [r, c] => (*r, *c),
        _ => bail!("features must be rank 1 or 2, got shape {shape:?}"),
    };
    Ok((values_f64(input)?, rows, columns))
}
