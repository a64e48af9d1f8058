//! Plans: the ONNX graph is parsed once at load; an optimised plan is built per set of
//! concrete input shapes (symbolic and unknown dims resolved from the request) and kept in a
//! small LRU cache. With `low_memory` the parsed graph is dropped after load and read again
//! from the model file when a new shape needs a plan. Plans use the file's declared facts
//! first, fewer when analysis fails with them (`facts.rs`).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use destino_core::repository::FileStamp;
use destino_core::{Device, EngineConfig, Error, ModelMetadata, OnnxModel, OpType, Result, Tensor};
use lru::LruCache;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_linalg::multithread::Executor;
use tract_onnx::tract_hir::infer::InferenceModelExt;
use tract_onnx::tract_hir::ops::konst::Const;

use crate::convert::{datum_type, plan_values, to_tract};
use crate::device::{self, Placement};
use crate::empty;
use crate::facts::Facts;
use crate::fold::{decided_ifs, inline_branch};
use crate::layout::{self, Layout};
use crate::panics::contained;
use crate::{ENGINE, engine_error, rewrite, small_integers, unsupported_ops};

/// Plans kept per model: one per distinct set of input shapes seen recently. Each holds its
/// own packed weights, so low-memory mode keeps fewer.
const PLAN_CACHE: usize = 16;
const PLAN_CACHE_LOW_MEMORY: usize = 4;

/// An optimised model, and the model inputs it took as constants (not passed when it runs).
pub(crate) struct Planned {
    pub(crate) runnable: Arc<TypedRunnableModel>,
    pub(crate) baked: Vec<usize>,
    pub(crate) layout: Layout,
    /// Where the nodes run, when a device was asked for.
    pub(crate) placement: Option<Placement>,
}

pub(crate) type Plan = Arc<Planned>;
type PlanKey = (Vec<Vec<usize>>, Vec<i64>);

/// A model parsed by tract, with its optimised plans: one per model file, shared by its
/// engine instances (plans are immutable; each run has its own state).
pub(crate) struct Planner {
    /// The graph parsed with `facts`; `None` in low-memory mode, where it is re-read from
    /// `path`.
    model: Option<InferenceModel>,
    /// The file's facts plans use: the first set a plan succeeded with (sticky).
    facts: Facts,
    /// The layout of the plan built last; `None` before any plan (so before `facts` has
    /// been tried).
    layout: Option<Layout>,
    /// Where the nodes of the plan built last run, when a device was asked for.
    placement: Option<Placement>,
    device: Device,
    /// Fail a plan the device cannot take rather than plan it for the CPU.
    require_device: bool,
    path: PathBuf,
    /// The model file's size and modification time at load: a re-read must see the same file.
    stamp: Option<FileStamp>,
    pub(crate) metadata: ModelMetadata,
    /// The names of the graph's outputs, in the order plans produce them.
    pub(crate) graph_outputs: Vec<String>,
    ops: Vec<OpType>,
    plans: LruCache<PlanKey, Plan>,
    /// The parsed ONNX graph, kept for models with `If` nodes (see `build_folded_plan`).
    proto: Option<pb::ModelProto>,
    model_dir: Option<String>,
    /// Set once a plan needed input values: small integer inputs (axes, sizes, a sample
    /// rate) are then constants of each plan, which is keyed by their values too.
    concrete: bool,
    options: RunOptions,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("metadata", &self.metadata)
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

impl Planner {
    /// Parses the model and, when it fixes every input shape, builds that plan now, so a
    /// model tract cannot run fails at load rather than on its first request. Free dims are
    /// not guessed: a guess (1) a good model cannot take would make it unavailable.
    pub(crate) fn load(path: &Path, config: &EngineConfig) -> Result<Planner> {
        let mut planner = contained("loading", || Planner::open(path, config))??;
        // Zero-filled small integer inputs (axes, sizes) are values destino made up: a plan
        // that fails on them waits for a request's real ones.
        if let Some(fixed) = planner.metadata.fixed_inputs() {
            let inputs: Vec<&Tensor> = planner
                .metadata
                .inputs
                .iter()
                .filter_map(|info| fixed.get(&info.name))
                .collect();
            let made_up = inputs.iter().any(|t| small_integers(t).is_some());
            match planner.plan(&inputs) {
                Err(_) if made_up => {}
                planned => {
                    planned?;
                }
            }
        }
        if config.low_memory {
            planner.model = None;
        }
        Ok(planner)
    }

    /// The facts the plans so far were built with (`None` before the first plan).
    pub(crate) fn facts(&self) -> Option<Facts> {
        self.layout.is_some().then_some(self.facts)
    }

    /// How the plan built last lays out its convolutions.
    pub(crate) fn layout(&self) -> Option<Layout> {
        self.layout
    }

    /// Where the nodes of the plan built last run (`None` on the CPU, or before any plan).
    pub(crate) fn placement(&self) -> Option<&Placement> {
        self.placement.as_ref()
    }

    /// The device plans are built for: the one asked, unless the last plan was refused.
    pub(crate) fn device(&self) -> Device {
        match &self.placement {
            Some(placement) if placement.refused.is_some() => Device::Cpu,
            _ => self.device,
        }
    }

    /// Maps a tract failure while building a plan: when it names operators of the model
    /// outside the default domain, those are reported as unsupported; otherwise it is an
    /// engine error carrying tract's whole explanation.
    fn classify(&self, e: &TractError) -> Error {
        let text = format!("{e:#}");
        let named: Vec<OpType> = self
            .ops
            .iter()
            .filter(|op| !op.domain.is_empty() && text.contains(op.name.as_str()))
            .cloned()
            .collect();
        if named.is_empty() {
            engine_error(text)
        } else {
            Error::UnsupportedOperators {
                engine: ENGINE,
                ops: named,
                detail: Some(text),
            }
        }
    }

    /// The optimised plan for these inputs' shapes, built on first use: with the current
    /// facts, then (before any plan exists, or when these fail) with fewer.
    pub(crate) fn plan(&mut self, inputs: &[&Tensor]) -> Result<Plan> {
        let key = self.plan_key(inputs);
        if let Some(plan) = self.plans.get(&key) {
            return Ok(plan.clone());
        }
        if self.model.is_none() && FileStamp::of(&self.path) != self.stamp {
            return Err(Error::ModelFileChanged {
                path: self.path.clone(),
            });
        }
        let mut facts = self.facts;
        let plan = loop {
            match contained("planning", || self.build_any_plan(inputs, facts))? {
                Ok(plan) => break plan,
                Err(e) => match facts.next() {
                    Some(fewer) => facts = fewer,
                    None => return Err(self.classify(&e)),
                },
            }
        };
        if facts != self.facts {
            self.adopt(facts)?;
        }
        self.layout = Some(plan.layout);
        self.placement = plan.placement.clone();
        let key = self.plan_key(inputs);
        self.plans.put(key, plan.clone());
        Ok(plan)
    }

    /// A plan with `facts`: for any input values, or else for these inputs' small integer
    /// values (operators whose axes, sizes or shapes arrive as inputs; `If` conditions, whose
    /// taken branches are then inlined). The second is sound because plans are then keyed
    /// by those values; once needed, it is used for every plan of the model.
    fn build_any_plan(&mut self, inputs: &[&Tensor], facts: Facts) -> TractResult<Plan> {
        if self.concrete {
            return self.build_concrete_plan(inputs, facts);
        }
        let direct = match self.build_plan(inputs, facts, false) {
            Ok(plan) => return Ok(plan),
            Err(direct) => direct,
        };
        let plan = self
            .build_concrete_plan(inputs, facts)
            .map_err(|_| direct)?;
        self.concrete = true;
        self.plans.clear();
        Ok(plan)
    }

    fn build_concrete_plan(&self, inputs: &[&Tensor], facts: Facts) -> TractResult<Plan> {
        if self.proto.is_some() {
            self.build_folded_plan(inputs, facts)
        } else {
            self.build_plan(inputs, facts, true)
        }
    }

    /// Plans from now on use `facts`; the graph kept in memory is re-read with them.
    fn adopt(&mut self, facts: Facts) -> Result<()> {
        if self.model.is_some() {
            let model = contained("parsing", || self.parse(facts))?
                .map_err(|e| engine_error(format!("{e:#}")))?;
            self.model = Some(model);
        }
        self.facts = facts;
        Ok(())
    }

    /// Shapes of the inputs, and once plans are concrete, the values of small integer inputs.
    fn plan_key(&self, inputs: &[&Tensor]) -> PlanKey {
        let shapes = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let values = if self.concrete {
            inputs
                .iter()
                .filter_map(|t| small_integers(t))
                .flatten()
                .collect()
        } else {
            Vec::new()
        };
        (shapes, values)
    }

    /// Types and shapes every input; with `with_values`, small integer inputs become
    /// constants of the graph (their indices are returned).
    fn input_facts(
        &self,
        model: &mut InferenceModel,
        inputs: &[&Tensor],
        with_values: bool,
    ) -> TractResult<Vec<usize>> {
        let outlets = model.input_outlets()?.to_vec();
        let mut baked = Vec::new();
        for (index, tensor) in inputs.iter().enumerate() {
            let fact = InferenceFact::dt_shape(datum_type(tensor.dtype()), tensor.shape().to_vec());
            model.set_input_fact(index, fact)?;
            if with_values && small_integers(tensor).is_some() {
                baked.push(index);
            }
        }
        for &index in &baked {
            let outlet = outlets[index];
            let value = to_tract(inputs[index]).map_err(TractError::msg)?;
            model.nodes[outlet.node].op = Box::new(Const::new(value.clone().into_arc_tensor())?);
            model.set_outlet_fact(outlet, InferenceFact::from(value))?;
        }
        model
            .inputs
            .retain(|outlet| !baked.iter().any(|&index| outlets[index] == *outlet));
        Ok(baked)
    }

    /// The optimised plan: on the device asked for, or on the CPU channels-first or
    /// channels-last, whichever runs `inputs` faster (`layout.rs`).
    fn optimise(
        &self,
        mut model: InferenceModel,
        baked: Vec<usize>,
        inputs: &[&Tensor],
    ) -> TractResult<Plan> {
        empty::fold_empty_outputs(&mut model)?;
        let typed = model.into_typed()?.into_decluttered()?;
        let mut placement = None;
        if self.device != Device::Cpu {
            let planned = contained("planning on the device", || {
                device::plan(typed.clone(), self.device, &self.options)
            });
            let reason = match planned {
                Ok(Ok((runnable, placement))) => {
                    return Ok(Arc::new(Planned {
                        runnable,
                        baked,
                        layout: Layout::Declared,
                        placement: Some(placement),
                    }));
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(e) => e.to_string(),
            };
            if self.require_device {
                return Err(TractError::msg(format!(
                    "{} cannot run this model, and the device is required: {reason}",
                    self.device
                )));
            }
            placement = Some(Placement::refused(self.device, reason));
        }
        let values = plan_values(inputs, &baked).map_err(TractError::msg)?;
        let (runnable, layout) = layout::fastest(typed, &self.options, &values)?;
        Ok(Arc::new(Planned {
            runnable,
            baked,
            layout,
            placement,
        }))
    }

    /// The graph parsed with `facts`: the one in memory when it has them, otherwise read
    /// again from the kept ONNX graph or the unchanged model file.
    fn graph(&self, facts: Facts) -> TractResult<InferenceModel> {
        match &self.model {
            Some(model) if facts == self.facts => Ok(model.clone()),
            _ => self.parse(facts),
        }
    }

    fn parse(&self, facts: Facts) -> TractResult<InferenceModel> {
        let onnx = facts.parser();
        if let Some(proto) = &self.proto {
            return Ok(onnx.parse(proto, self.model_dir.as_deref())?.model);
        }
        if FileStamp::of(&self.path) != self.stamp {
            return Err(TractError::msg(format!(
                "{} changed since it was loaded: load the model again",
                self.path.display()
            )));
        }
        let mut proto = onnx.proto_model_for_path(&self.path)?;
        rewrite::apply(&mut proto);
        Ok(onnx.parse(&proto, self.model_dir.as_deref())?.model)
    }

    fn build_plan(&self, inputs: &[&Tensor], facts: Facts, with_values: bool) -> TractResult<Plan> {
        let mut model = self.graph(facts)?;
        let baked = self.input_facts(&mut model, inputs, with_values)?;
        self.optimise(model, baked, inputs)
    }

    /// tract analyses both branches of an `If` against the same facts, so a branch that is
    /// not taken but inconsistent with them (the common `if dim == 1: squeeze` pattern) makes
    /// the whole model fail. With concrete shapes and integer scalar values (e.g. a sample
    /// rate) most conditions are known: inline the taken branch of each such `If` in the ONNX
    /// graph, repeatedly (nested ones surface as their parents are inlined), then plan.
    fn build_folded_plan(&self, inputs: &[&Tensor], facts: Facts) -> TractResult<Plan> {
        let onnx = facts.parser();
        let mut proto = self
            .proto
            .clone()
            .ok_or_else(|| TractError::msg("no ONNX graph kept"))?;
        loop {
            let parsed = onnx.parse(&proto, self.model_dir.as_deref())?;
            let mut model = parsed.model;
            let baked = self.input_facts(&mut model, inputs, true)?;
            let _ = model.analyse(true); // obstinate: resolve what can be, failures included
            let graph = proto
                .graph
                .as_mut()
                .ok_or_else(|| TractError::msg("model has no graph"))?;
            let decided = decided_ifs(&model, graph);
            if decided.is_empty() {
                return self.optimise(model, baked, inputs);
            }
            for (index, taken) in decided.into_iter().rev() {
                inline_branch(graph, index, taken)?;
            }
        }
    }

    /// Parses the file with the first facts and builds the engine (no plan yet).
    fn open(path: &Path, config: &EngineConfig) -> Result<Self> {
        device::check(config.device)?;
        let onnx = OnnxModel::read(path)?;
        let unsupported = unsupported_ops(&onnx);
        if !unsupported.is_empty() {
            return Err(Error::UnsupportedOperators {
                engine: ENGINE,
                ops: unsupported,
                detail: None,
            });
        }
        let invalid = |e: TractError| Error::ModelInvalid {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let facts = Facts::Declared;
        let parser = facts.parser();
        let mut proto = parser.proto_model_for_path(path).map_err(invalid)?;
        rewrite::apply(&mut proto);
        let model_dir = path.parent().and_then(Path::to_str).map(str::to_string);
        let parsed = parser
            .parse(&proto, model_dir.as_deref())
            .map_err(invalid)?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(invalid(TractError::msg(format!(
                "unresolved inputs {:?}",
                parsed.unresolved_inputs
            ))));
        }
        let model = parsed.model;
        let has_if = onnx
            .ops
            .iter()
            .any(|op| op.domain.is_empty() && op.name == "If");
        let graph_outputs = model
            .output_outlets()
            .map_err(engine_error)?
            .iter()
            .map(|&o| model.outlet_label(o).unwrap_or_default().to_string())
            .collect();
        let tract_inputs = model.input_outlets().map_err(engine_error)?.len();
        if tract_inputs != onnx.metadata.inputs.len() {
            return Err(engine_error(format!(
                "tract sees {tract_inputs} inputs, the model declares {}",
                onnx.metadata.inputs.len()
            )));
        }
        let options = RunOptions {
            executor: (config.threads > 1).then(|| Executor::multithread(config.threads)),
            ..RunOptions::default()
        };
        let cache = if config.low_memory {
            PLAN_CACHE_LOW_MEMORY
        } else {
            PLAN_CACHE
        };
        Ok(Planner {
            model: Some(model),
            facts,
            layout: None,
            placement: None,
            device: config.device,
            require_device: config.require_device,
            path: path.to_path_buf(),
            stamp: FileStamp::of(path),
            ops: onnx.ops.iter().cloned().collect(),
            metadata: onnx.metadata,
            graph_outputs,
            proto: has_if.then_some(proto),
            model_dir,
            concrete: false,
            plans: LruCache::new(NonZeroUsize::new(cache).unwrap_or(NonZeroUsize::MIN)),
            options,
        })
    }
}
