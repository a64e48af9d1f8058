//! The offline commands' flags and output: `run` (npz in, npz out, optionally compared with
//! a reference) and `inspect`.

use std::path::PathBuf;
use std::process::ExitCode;

use destino_core::npz::read_npz;
use destino_core::offline::run_npz;
use destino_core::parity::{Tolerance, compare_all};
use destino_core::{Engine, Result};

/// `run`: score the tensors of an `.npz` file and write the outputs to another.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The `.onnx` model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs: an `.npz` whose keys are the model's input names.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Where to write the outputs as `.npz` (keys are the output names).
    #[arg(long)]
    pub outputs: PathBuf,
    /// Reference outputs (`.npz`) to compare with; a mismatch fails the command.
    #[arg(long)]
    pub expected: Option<PathBuf>,
    #[command(flatten)]
    pub tolerance: ToleranceArgs,
}

/// How close float outputs must be to a reference (numpy `allclose`).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ToleranceArgs {
    /// Absolute tolerance for float outputs.
    #[arg(long, default_value_t = 1e-4)]
    pub atol: f64,
    /// Relative tolerance for float outputs.
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
}

impl ToleranceArgs {
    pub fn tolerance(&self) -> Tolerance {
        Tolerance {
            atol: self.atol,
            rtol: self.rtol,
        }
    }
}

/// `profile`: where an engine spends its time on a model, per operator.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// The `.onnx` model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs: an `.npz` whose keys are the model's input names.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Timed runs (after one untimed run); the table shows the mean per run.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// How many of the slowest nodes to list after the per-operator table.
    #[arg(long, default_value_t = 10)]
    pub nodes: usize,
}

/// `inspect`: inputs, outputs, opsets and operator coverage of a model.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The `.onnx` model file.
    pub model: PathBuf,
}

/// `run`: scores, writes, prints what was written and, with `--expected`, how each output
/// compares; fails when one does not match.
pub fn run_command(engine: &mut dyn Engine, args: &RunArgs) -> Result<ExitCode> {
    let outputs = run_npz(engine, &args.inputs, &args.outputs)?;
    let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
    println!("wrote {} ({})", args.outputs.display(), names.join(", "));
    let Some(expected) = &args.expected else {
        return Ok(ExitCode::SUCCESS);
    };
    let comparisons = compare_all(&outputs, &read_npz(expected)?, args.tolerance.tolerance());
    for comparison in &comparisons {
        println!("{comparison}");
    }
    Ok(if comparisons.iter().all(|c| c.within) {
        println!("expected: ok");
        ExitCode::SUCCESS
    } else {
        println!("expected: MISMATCH");
        ExitCode::FAILURE
    })
}
