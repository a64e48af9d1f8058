//! Where a plan spends its time: every node of the optimised plan timed over several runs,
//! with tract's cost model (multiply-adds) beside it, grouped by operator.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use destino_core::Result;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Cost;
use tract_onnx::tract_core::plan::{SimpleState, eval};

use crate::engine_error;
use crate::panics::contained;
use crate::planner::Plan;

/// One operator of the optimised plan (all its nodes together).
#[derive(Debug, Clone, PartialEq)]
pub struct OpProfile {
    /// tract's name for the optimised operator (`OptMatMul`, `DepthWise`, ...).
    pub op: String,
    pub nodes: usize,
    /// Mean time per run, all its nodes together.
    pub time: Duration,
    /// Multiply-adds per run, from tract's cost model (0 where it has none).
    pub fma: u64,
}

/// One node of the optimised plan.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeProfile {
    pub name: String,
    pub op: String,
    /// The node's first input's shape.
    pub input: Vec<usize>,
    pub time: Duration,
    pub fma: u64,
}

/// A model's plan timed per operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub runs: usize,
    /// Mean time per run, every node included.
    pub total: Duration,
    /// Operators, the slowest first.
    pub ops: Vec<OpProfile>,
    /// Nodes, the slowest first.
    pub nodes: Vec<NodeProfile>,
}

/// Times `runs` runs of `plan` (after one untimed run that warms caches and buffers).
pub(crate) fn profile(plan: &Plan, inputs: TVec<TValue>, runs: usize) -> Result<Profile> {
    let runnable = &plan.runnable;
    let model = runnable.model();
    let mut times = vec![Duration::ZERO; model.nodes.len()];
    let mut state = SimpleState::new(runnable).map_err(|e| engine_error(format!("{e:#}")))?;
    let runs = runs.max(1);
    for run in 0..=runs {
        let timed = run > 0;
        let outcome = contained("running", || {
            state.run_plan_with_eval(inputs.clone(), |ctx, op_state, node, node_inputs| {
                let start = Instant::now();
                let outputs = eval(ctx, op_state, node, node_inputs);
                if timed {
                    times[node.id] += start.elapsed();
                }
                outputs
            })
        })?;
        outcome.map_err(|e| engine_error(format!("{e:#}")))?;
    }
    let mut ops: BTreeMap<String, OpProfile> = BTreeMap::new();
    let mut nodes = Vec::new();
    for node in &model.nodes {
        let name = node.op.name().to_string();
        let fma = fma_of(model, node);
        let time = times[node.id] / runs as u32;
        let input = node
            .inputs
            .first()
            .and_then(|outlet| model.outlet_fact(*outlet).ok())
            .and_then(|fact| fact.shape.as_concrete().map(<[usize]>::to_vec))
            .unwrap_or_default();
        nodes.push(NodeProfile {
            name: node.name.clone(),
            op: name.clone(),
            input,
            time,
            fma,
        });
        let entry = ops.entry(name.clone()).or_insert(OpProfile {
            op: name,
            nodes: 0,
            time: Duration::ZERO,
            fma: 0,
        });
        entry.nodes += 1;
        entry.time += time;
        entry.fma += fma;
    }
    let mut ops: Vec<OpProfile> = ops
        .into_values()
        .filter(|op| op.time > Duration::ZERO)
        .collect();
    ops.sort_by_key(|op| std::cmp::Reverse(op.time));
    nodes.sort_by_key(|node| std::cmp::Reverse(node.time));
    Ok(Profile {
        runs,
        total: ops.iter().map(|op| op.time).sum(),
        ops,
        nodes,
    })
}

/// Multiply-adds of one node per run, by tract's cost model.
fn fma_of(model: &TypedModel, node: &TypedNode) -> u64 {
    let Ok(facts) = model.node_input_facts(node.id) else {
        return 0;
    };
    let Ok(costs) = node.op.cost(&facts) else {
        return 0;
    };
    costs
        .iter()
        .filter(|(cost, _)| matches!(cost, Cost::FMA(_)))
        .filter_map(|(_, count)| count.to_i64().ok())
        .map(|count| count.max(0) as u64)
        .sum()
}

fn rate(fma: u64, time: Duration) -> String {
    let seconds = time.as_secs_f64();
    if fma > 0 && seconds > 0.0 {
        format!("{:.1}", fma as f64 / seconds / 1e9)
    } else {
        "-".to_string()
    }
}

/// The profile as tables: per operator (nodes, time per run, share, GFMA/s), then the
/// `top` slowest nodes.
pub fn describe(profile: &Profile, top: usize) -> String {
    let total = profile.total.as_secs_f64().max(f64::EPSILON);
    let mut text = format!(
        "{:<24} {:>5} {:>10} {:>7} {:>9}\n",
        "operator", "nodes", "ms/run", "share", "GFMA/s"
    );
    for op in &profile.ops {
        let seconds = op.time.as_secs_f64();
        text.push_str(&format!(
            "{:<24} {:>5} {:>10.3} {:>6.1}% {:>9}\n",
            op.op,
            op.nodes,
            seconds * 1e3,
            seconds / total * 100.0,
            rate(op.fma, op.time)
        ));
    }
    text.push_str(&format!(
        "{:<24} {:>5} {:>10.3}  (mean of {} runs)\n",
        "total",
        profile.ops.iter().map(|op| op.nodes).sum::<usize>(),
        total * 1e3,
        profile.runs
    ));
    if top > 0 {
        text.push_str(&format!(
            "\n{:<40} {:<16} {:<18} {:>8} {:>7}\n",
            "node", "operator", "input", "ms/run", "GFMA/s"
        ));
    }
    for node in profile.nodes.iter().take(top) {
        text.push_str(&format!(
            "{:<40} {:<16} {:<18} {:>8.3} {:>7}\n",
            node.name,
            node.op,
            format!("{:?}", node.input),
            node.time.as_secs_f64() * 1e3,
            rate(node.fma, node.time)
        ));
    }
    text
}
