//! The tract engine: pure Rust, no C/C++ runtime. The only crate that names `tract`. An
//! instance runs the plans of its model's shared planner (`planner.rs`: parsing and plans
//! per input shape; `shared.rs`: one per model file, whatever the instance count); every
//! call into tract is panic-contained (`panics.rs`). With the `cuda` feature plans can run
//! on an NVIDIA GPU (`device.rs`).

mod convert;
mod device;
mod empty;
mod facts;
mod fold;
mod gather;
mod layout;
mod ml;
mod panics;
mod planner;
mod profile;
mod rewrite;
mod shared;

use std::path::Path;

use destino_core::{
    Device, Engine, EngineConfig, Error, ModelMetadata, OnnxModel, OpType, Result, Tensor,
    TensorData, Tensors,
};
use tract_onnx::prelude::*;

use crate::convert::{from_tract, plan_values};
pub use crate::facts::Facts;
use crate::panics::contained;
pub use crate::profile::{NodeProfile, OpProfile, Profile, describe as describe_profile};
use crate::shared::{SharedPlanner, lock};

const ENGINE: &str = "tract";

/// Domains whose operators tract registers (it keys its registry by name only).
const KNOWN_DOMAINS: [&str; 2] = ["", "ai.onnx.ml"];

fn engine_error(e: impl std::fmt::Display) -> Error {
    Error::Engine {
        engine: ENGINE,
        message: e.to_string(),
    }
}

/// Operators of `model` that tract has no implementation for, each with its domain.
pub fn unsupported_ops(model: &OnnxModel) -> Vec<OpType> {
    let registry = Facts::Bare.parser().op_register;
    model
        .ops
        .iter()
        .filter(|op| {
            !KNOWN_DOMAINS.contains(&op.domain.as_str()) || !registry.0.contains_key(&op.name)
        })
        .cloned()
        .collect()
}

/// One engine instance: its model's shared planner, and what a run needs without it.
pub struct TractEngine {
    planner: SharedPlanner,
    metadata: ModelMetadata,
    /// The names of the graph's outputs, in the order plans produce them.
    graph_outputs: Vec<String>,
}

impl std::fmt::Debug for TractEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractEngine")
            .field("metadata", &self.metadata)
            .field("facts", &self.facts())
            .finish_non_exhaustive()
    }
}

impl TractEngine {
    /// The facts the plans so far were built with (`None` before the first plan).
    pub fn facts(&self) -> Option<Facts> {
        lock(&self.planner).facts()
    }

    /// Whether `config.device` can run tract's plans on this machine (the CPU always can;
    /// CUDA with the `cuda` feature, a driver and a GPU). Call once before loading models.
    pub fn check_device(config: &EngineConfig) -> Result<()> {
        device::check(config.device)
    }
}

impl Engine for TractEngine {
    fn load(path: &Path, config: &EngineConfig) -> Result<Self> {
        let planner = shared::planner(path, config)?;
        let (metadata, graph_outputs) = {
            let planner = lock(&planner);
            (planner.metadata.clone(), planner.graph_outputs.clone())
        };
        Ok(TractEngine {
            planner,
            metadata,
            graph_outputs,
        })
    }

    fn name(&self) -> &'static str {
        ENGINE
    }

    fn device(&self) -> Device {
        lock(&self.planner).device()
    }

    fn nodes_on_cpu(&self) -> Option<usize> {
        lock(&self.planner).placement()?.nodes_on_cpu()
    }

    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn notes(&self) -> Vec<String> {
        let planner = lock(&self.planner);
        let placed = |layout: layout::Layout| match planner.placement() {
            Some(placement) if placement.refused.is_none() => placement.to_string(),
            Some(placement) => format!("{placement}; {layout}"),
            None => layout.to_string(),
        };
        match planner.facts().zip(planner.layout()) {
            Some((facts, layout)) => vec![facts.describe().to_string(), placed(layout)],
            None => vec![
                "not planned yet: plans are built for the input shapes requests bring".to_string(),
            ],
        }
    }

    fn run_validated(&mut self, inputs: &Tensors) -> Result<Tensors> {
        let (plan, values) = self.prepare(inputs)?;
        let outputs = contained("running", || plan.runnable.run(values))?
            .map_err(|e| engine_error(format!("{e:#}")))?;
        let mut result = Tensors::new();
        // The graph's outputs, in order; those destino does not serve are dropped.
        for (name, value) in self.graph_outputs.iter().zip(outputs) {
            if self.metadata.output(name).is_some() {
                result.insert(name.clone(), from_tract(name, &value)?);
            }
        }
        Ok(result)
    }
}

impl TractEngine {
    /// The plan for these inputs (built on first use) and the values it takes, in order.
    fn prepare(&self, inputs: &Tensors) -> Result<(planner::Plan, TVec<TValue>)> {
        let ordered = self
            .metadata
            .inputs
            .iter()
            .map(|info| {
                inputs.get(&info.name).ok_or_else(|| Error::MissingInput {
                    name: info.name.clone(),
                })
            })
            .collect::<Result<Vec<&Tensor>>>()?;
        // Planning holds the planner (one instance plans a new shape for all); running not.
        let plan = lock(&self.planner).plan(&ordered)?;
        let values = plan_values(&ordered, &plan.baked)?;
        Ok((plan, values))
    }

    /// Times each operator of the plan for these inputs over `runs` runs.
    pub fn profile(&mut self, inputs: &Tensors, runs: usize) -> Result<Profile> {
        self.metadata.validate_inputs(inputs)?;
        let (plan, values) = self.prepare(inputs)?;
        profile::profile(&plan, values, runs)
    }
}

/// Integer or bool inputs this small are the kind a graph needs as constants (axes, sizes,
/// shapes, pads, a sample rate, an `If` condition), not data.
const SMALL_INTEGERS: usize = 16;

/// The values of an integer or bool input of at most [`SMALL_INTEGERS`] elements.
pub(crate) fn small_integers(tensor: &Tensor) -> Option<Vec<i64>> {
    fn widen<T: Copy>(v: &[T], f: impl Fn(T) -> Option<i64>) -> Option<Vec<i64>> {
        if v.len() > SMALL_INTEGERS {
            return None;
        }
        v.iter().map(|&x| f(x)).collect()
    }
    match tensor.data() {
        TensorData::Bool(v) => widen(v, |b| Some(i64::from(b))),
        TensorData::U8(v) => widen(v, |x| Some(i64::from(x))),
        TensorData::U16(v) => widen(v, |x| Some(i64::from(x))),
        TensorData::U32(v) => widen(v, |x| Some(i64::from(x))),
        TensorData::U64(v) => widen(v, |x| i64::try_from(x).ok()),
        TensorData::I8(v) => widen(v, |x| Some(i64::from(x))),
        TensorData::I16(v) => widen(v, |x| Some(i64::from(x))),
        TensorData::I32(v) => widen(v, |x| Some(i64::from(x))),
        TensorData::I64(v) => widen(v, Some),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
