//! What each `destino-server` subcommand does.

use std::path::Path;
use std::process::ExitCode;

use destino_core::model::{EngineLoader, LoadedModel, loader};
use destino_core::npz::read_npz;
use destino_core::offline::{InspectArgs, RunArgs, describe, describe_support, run_npz};
use destino_core::parity::{Comparison, Tolerance, compare_all};
use destino_core::repository::Repository;
use destino_core::{Engine, EngineConfig, Error, OnnxModel, Result, Tensors};
use destino_edge::TractEngine;

use crate::config::{EngineKind, ParityArgs, RuntimeArgs, ServeArgs};
use crate::ort_engine::{OrtEngine, init_runtime, runtime_version};
use crate::runtime_path::candidates;

/// Loads ONNX Runtime from the configured candidates.
pub fn load_onnxruntime(runtime: &RuntimeArgs) -> Result<String> {
    let env = std::env::var("ORT_DYLIB_PATH").ok();
    init_runtime(&candidates(runtime.onnxruntime.as_deref(), env.as_deref()))
}

fn engine_loader(runtime: &RuntimeArgs, kind: EngineKind) -> Result<EngineLoader> {
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

pub fn serve(runtime: &RuntimeArgs, args: &ServeArgs) -> Result<ExitCode> {
    let load = engine_loader(runtime, runtime.engine)?;
    if runtime.engine == EngineKind::Ort {
        println!("onnxruntime: {}", runtime_version());
    }
    let root = args.repository();
    let repository = Repository::scan(&root)?;
    for (name, reason) in &repository.skipped {
        eprintln!("skipping {name}: {reason}");
    }
    let config = runtime.engine_config();
    let mut models = Vec::new();
    for entry in repository.models.values() {
        let Some(version) = entry.newest() else {
            continue;
        };
        match LoadedModel::load(entry, version, load, &config) {
            Ok(model) => {
                println!(
                    "loaded {} version {} on {} ({})",
                    model.name,
                    model.version,
                    model.engine.name(),
                    model.engine.device()
                );
                models.push(model);
            }
            Err(e) => eprintln!(
                "failed to load {} version {}: {e}",
                entry.name,
                version.number()
            ),
        }
    }
    if models.is_empty() {
        return Err(Error::Repository(format!(
            "no model in {} could be loaded",
            root.display()
        )));
    }
    println!("ready: {} model(s) from {}", models.len(), root.display());
    // The HTTP front door arrives with the serving issue; until then, hold the models loaded.
    loop {
        std::thread::park();
    }
}

pub fn run(runtime: &RuntimeArgs, args: &RunArgs) -> Result<ExitCode> {
    let load = engine_loader(runtime, runtime.engine)?;
    let mut engine = load(&args.model, &runtime.engine_config())?;
    let outputs = run_npz(engine.as_mut(), &args.inputs, &args.outputs)?;
    let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
    println!("wrote {} ({})", args.outputs.display(), names.join(", "));
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(runtime: &RuntimeArgs, args: &InspectArgs) -> Result<ExitCode> {
    let model = OnnxModel::read(&args.model)?;
    print!("{}", describe(&args.model, &model));
    let config = runtime.engine_config();
    let loaded = engine_loader(runtime, runtime.engine).and_then(|load| load(&args.model, &config));
    let (line, ok) = describe_support(kind_name(runtime.engine), &model, &loaded);
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
    let tolerance = Tolerance {
        atol: args.atol,
        rtol: args.rtol,
    };
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
        args.atol,
        args.rtol
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
