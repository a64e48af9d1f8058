//! What the offline commands both binaries share do (`run`: npz in, npz out; `inspect`),
//! without their flags (destino-cli).

use std::fmt::Write as _;
use std::path::Path;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::metadata::{ModelMetadata, Tensors};
use crate::npz::{read_npz, write_npz};
use crate::onnx::OnnxModel;

/// Reads `inputs`, runs `engine`, writes `outputs`; returns the outputs.
pub fn run_npz(engine: &mut dyn Engine, inputs: &Path, outputs: &Path) -> Result<Tensors> {
    let tensors = read_npz(inputs)?;
    let result = engine.run(&tensors)?;
    write_npz(outputs, &result)?;
    Ok(result)
}

/// A human-readable summary of a model file.
pub fn describe(path: &Path, model: &OnnxModel) -> String {
    let meta = &model.metadata;
    let mut out = String::new();
    let _ = writeln!(out, "model: {}", path.display());
    if !meta.producer.is_empty() {
        let _ = writeln!(out, "producer: {}", meta.producer);
    }
    let opsets: Vec<String> = meta
        .opsets
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                if o.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &o.domain
                },
                o.version
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "ir version: {}; opsets: {}",
        model.ir_version,
        opsets.join(", ")
    );
    describe_tensors(&mut out, "inputs", meta, true);
    describe_tensors(&mut out, "outputs", meta, false);
    for name in &model.skipped_outputs {
        let _ = writeln!(
            out,
            "  {name}: not a tensor (a sequence or map): not served"
        );
    }
    let _ = writeln!(out, "operators ({} types):", model.ops.len());
    let mut domains: Vec<&str> = model.ops.iter().map(|op| op.domain.as_str()).collect();
    domains.dedup();
    for domain in domains {
        let names: Vec<&str> = model
            .ops
            .iter()
            .filter(|op| op.domain == domain)
            .map(|op| op.name.as_str())
            .collect();
        let domain = if domain.is_empty() { "ai.onnx" } else { domain };
        let _ = writeln!(out, "  {domain}: {}", names.join(", "));
    }
    out
}

fn describe_tensors(out: &mut String, title: &str, meta: &ModelMetadata, inputs: bool) {
    let _ = writeln!(out, "{title}:");
    let list = if inputs { &meta.inputs } else { &meta.outputs };
    for info in list {
        let _ = writeln!(out, "  {}: {} {}", info.name, info.dtype, info.shape_text());
    }
}

/// Whether `engine` can run the model, given the outcome of loading it (one line, then the
/// engine's notes, one per line); and whether it can.
pub fn describe_support(
    engine: &str,
    model: &OnnxModel,
    loaded: Result<&dyn Engine, &Error>,
) -> (String, bool) {
    match loaded {
        Ok(loaded) => {
            let mut text = format!(
                "engine {engine}: runs all {} operator types",
                model.ops.len()
            );
            for note in loaded.notes() {
                let _ = write!(text, "\n  {note}");
            }
            (text, true)
        }
        Err(Error::UnsupportedOperators { ops, detail, .. }) => {
            let ops: Vec<String> = ops.iter().map(|op| op.to_string()).collect();
            let detail = detail
                .as_deref()
                .map(|d| format!("\n  detail: {d}"))
                .unwrap_or_default();
            (
                format!(
                    "engine {engine}: cannot run {} operator type(s): {}{detail}",
                    ops.len(),
                    ops.join(", ")
                ),
                false,
            )
        }
        Err(e) => (
            format!("engine {engine}: cannot load the model: {e}"),
            false,
        ),
    }
}
