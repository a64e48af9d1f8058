//! What each `destino-server` subcommand does.

use std::path::Path;
use std::process::ExitCode;

use destino_batch::BatchArgs;
use destino_cli::machine::this_machine;
use destino_cli::offline::{InspectArgs, RunArgs, run_command};
use destino_core::npz::read_npz;
use destino_core::offline::{describe, describe_support};
use destino_core::parity::{Comparison, compare_all};
use destino_core::{Engine, EngineConfig, EngineLoader, OnnxModel, Result, Tensors, loader};
use destino_ort::runtime_path::candidates;
use destino_ort::{OrtEngine, init_runtime};
use destino_serving::Instances;
use destino_tract::TractEngine;

use crate::config::{EngineKind, ParityArgs, RuntimeArgs};

/// Loads ONNX Runtime from the configured candidates.
pub fn load_onnxruntime(runtime: &RuntimeArgs) -> Result<String> {
    let env = std::env::var("ORT_DYLIB_PATH").ok();
    init_runtime(&candidates(runtime.onnxruntime.as_deref(), env.as_deref()))
}

pub fn engine_loader(runtime: &RuntimeArgs, kind: EngineKind) -> Result<EngineLoader> {
    Ok(match kind {
        EngineKind::Ort => {
            load_onnxruntime(runtime)?;
            loader::<OrtEngine>()
        }
        EngineKind::Tract => loader::<TractEngine>(),
    })
}

fn kind_name(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Ort => "ort",
        EngineKind::Tract => "tract",
    }
}

pub fn run(runtime: &RuntimeArgs, args: &RunArgs) -> Result<ExitCode> {
    let load = engine_loader(runtime, runtime.engine)?;
    let mut engine = load(&args.model, &runtime.engine_config())?;
    run_command(engine.as_mut(), args)
}

/// `batch`: the folder scored by the chosen engine, an instance per core (as `serve --instances auto`).
pub fn batch(runtime: &RuntimeArgs, args: &BatchArgs) -> Result<ExitCode> {
    let load = engine_loader(runtime, runtime.engine)?;
    let instances = Instances::Auto(this_machine(None));
    Ok(destino_batch::run(
        args,
        load,
        runtime.engine_config(),
        instances,
    ))
}

pub fn inspect(runtime: &RuntimeArgs, args: &InspectArgs) -> Result<ExitCode> {
    let model = OnnxModel::read(&args.model)?;
    print!("{}", describe(&args.model, &model));
    let config = runtime.engine_config();
    let loaded = engine_loader(runtime, runtime.engine).and_then(|load| load(&args.model, &config));
    let (line, ok) = describe_support(kind_name(runtime.engine), &model, loaded.as_deref());
    println!("{line}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs both engines on the same inputs; compares them with each other and the reference.
pub fn parity(runtime: &RuntimeArgs, args: &ParityArgs) -> Result<ExitCode> {
    let inputs = read_npz(&args.inputs)?;
    let tolerance = args.tolerance.tolerance();
    let config = runtime.engine_config();
    load_onnxruntime(runtime)?;
    let ort = run_engine::<OrtEngine>(&args.model, &config, &inputs)?;
    let tract = run_engine::<TractEngine>(&args.model, &config, &inputs)?;
    let mut all_ok = report("ort vs tract", &compare_all(&tract, &ort, tolerance));
    if let Some(path) = &args.expected {
        let expected = read_npz(path)?;
        all_ok &= report("ort vs expected", &compare_all(&ort, &expected, tolerance));
        all_ok &= report(
            "tract vs expected",
            &compare_all(&tract, &expected, tolerance),
        );
    }
    println!(
        "{} (atol {}, rtol {})",
        if all_ok {
            "parity: ok"
        } else {
            "parity: FAILED"
        },
        tolerance.atol,
        tolerance.rtol
    );
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_engine<E: Engine>(model: &Path, config: &EngineConfig, inputs: &Tensors) -> Result<Tensors> {
    E::load(model, config)?.run(inputs)
}

fn report(title: &str, comparisons: &[Comparison]) -> bool {
    println!("{title}:");
    for comparison in comparisons {
        println!("  {comparison}");
    }
    comparisons.iter().all(|c| c.within)
}
