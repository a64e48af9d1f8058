//! Helpers for destino's cross-crate tests: the shared real models and their reference
//! inputs and outputs (`../shared/models`).

pub mod https;
pub mod mqtt;
pub mod server;
pub mod v2;

use std::path::{Path, PathBuf};

use destino_core::npz::read_npy_file;
use destino_core::{ModelMetadata, OnnxModel, TensorData, Tensors};

/// The shared models folder: `$DESTINO_SHARED_MODELS`, else `../shared/models` beside the
/// checkout.
pub fn shared_models() -> PathBuf {
    if let Ok(dir) = std::env::var("DESTINO_SHARED_MODELS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/models")
}

pub fn model_path(name: &str) -> PathBuf {
    shared_models().join(format!("{name}.onnx"))
}

/// A model's reference case: inputs and expected outputs, keyed by the model's names.
#[derive(Debug)]
pub struct ReferenceCase {
    pub model: PathBuf,
    pub metadata: ModelMetadata,
    pub inputs: Tensors,
    pub expected: Tensors,
}

/// Reads `<model>[.<case>].input[.<name>].npy` and `.output[...]` files: a file without a
/// name belongs to the model's only input or output.
pub fn reference_case(model: &str, case: Option<&str>) -> ReferenceCase {
    let path = model_path(model);
    let metadata = OnnxModel::read(&path).expect("shared model reads").metadata;
    let prefix = match case {
        Some(case) => format!("{model}.{case}"),
        None => model.to_string(),
    };
    // File names spell `::` in tensor names as `__`; outputs without a file have no
    // reference (a model's copies of its inputs, say).
    let read = |kind: &str, names: Vec<&str>| -> Tensors {
        let mut tensors = Tensors::new();
        let only = names.len() == 1;
        for name in names {
            let spelled = name.replace("::", "__");
            let named = shared_models().join(format!("{prefix}.{kind}.{spelled}.npy"));
            let unnamed = shared_models().join(format!("{prefix}.{kind}.npy"));
            let file = match (named.exists(), only || kind == "input") {
                (true, _) => named,
                (false, true) => unnamed,
                (false, false) => continue,
            };
            let tensor =
                read_npy_file(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            tensors.insert(name.to_string(), tensor);
        }
        tensors
    };
    let inputs = read(
        "input",
        metadata.inputs.iter().map(|i| i.name.as_str()).collect(),
    );
    let expected = read(
        "output",
        metadata.outputs.iter().map(|o| o.name.as_str()).collect(),
    );
    ReferenceCase {
        model: path,
        metadata,
        inputs,
        expected,
    }
}

/// Every shared model and reference case: `<model>.onnx` with `<model>[.<case>].input*.npy`.
pub fn reference_cases() -> Vec<(String, Option<String>)> {
    let mut cases = Vec::new();
    let Ok(entries) = std::fs::read_dir(shared_models()) else {
        return cases;
    };
    let names: std::collections::BTreeSet<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for model in names.iter().filter_map(|n| n.strip_suffix(".onnx")) {
        for name in names.iter().filter(|n| n.ends_with(".npy")) {
            let Some(rest) = name.strip_prefix(&format!("{model}.")) else {
                continue;
            };
            let parts: Vec<&str> = rest.split('.').collect();
            let case = match parts.as_slice() {
                ["input", ..] => None,
                [case, "input", ..] => Some(case.to_string()),
                _ => continue,
            };
            let entry = (model.to_string(), case);
            if !cases.contains(&entry) {
                cases.push(entry);
            }
        }
    }
    cases
}

/// A file of `tests/fixtures/` (small models made by the scripts beside them).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The repository's default model folder.
pub fn bundled_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Loads ONNX Runtime for in-process tests from the copy `scripts/fetch-onnxruntime` made
/// (or `ORT_DYLIB_PATH`).
pub fn init_onnxruntime() {
    let env = std::env::var("ORT_DYLIB_PATH").ok();
    let candidates = destino_ort::runtime_path::candidates(None, env.as_deref());
    if let Err(e) = destino_ort::init_runtime(&candidates) {
        panic!("ONNX Runtime is needed for these tests (run scripts/fetch-onnxruntime): {e}");
    }
}

/// The Python of the venv `scripts/python-env` sets up (tritonclient, the deployment
/// validators); the test command runs that script first, so this is quick.
pub fn python_env() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = std::process::Command::new(root.join("scripts/python-env"))
        .output()
        .expect("running scripts/python-env");
    assert!(
        output.status.success(),
        "scripts/python-env failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default().trim();
    PathBuf::from(last)
}

/// Runs `tests/python/<script>` in the venv with `args`; panics with its output and
/// `context()` unless it succeeds.
fn run_python_script(
    script: &str,
    args: &[&std::ffi::OsStr],
    context: impl Fn() -> String,
) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let output = std::process::Command::new(python_env())
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed:\n{}\n{}\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        context()
    );
    output
}

/// Runs `tests/python/<script>` in the venv with `args`; what it printed on stdout (it must
/// succeed).
pub fn python_output(script: &str, args: &[&str]) -> String {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let output = run_python_script(script, &args, String::new);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs the client suite `tests/python/<script>` in the venv with `args` and `--shared` (the
/// shared models); panics with its output and `server_logs()` unless it succeeds. Returns
/// what it printed on stderr (unittest's report).
pub fn run_client_suite(script: &str, args: &[&str], server_logs: impl Fn() -> String) -> String {
    let shared = shared_models();
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend(["--shared".as_ref(), shared.as_os_str()]);
    let output = run_python_script(script, &all, || format!("server:\n{}", server_logs()));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `tests/python/<script>` in the venv to write generated models into `root`; returns
/// the names it prints, one per line.
pub fn generated_models(script: &str, root: &Path) -> Vec<String> {
    let output = run_python_script(script, &[root.as_os_str()], String::new);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Loads a model on one engine, boxed so tests can treat both engines alike.
pub type Loader = fn(&Path) -> destino_core::Result<Box<dyn destino_core::Engine>>;

/// Loads a model on ONNX Runtime (default config).
pub fn load_ort(path: &Path) -> destino_core::Result<Box<dyn destino_core::Engine>> {
    use destino_core::Engine as _;
    init_onnxruntime();
    let config = destino_core::EngineConfig::default();
    Ok(Box::new(destino_ort::OrtEngine::load(path, &config)?))
}

/// Loads a model on tract (default config).
pub fn load_tract(path: &Path) -> destino_core::Result<Box<dyn destino_core::Engine>> {
    use destino_core::Engine as _;
    let config = destino_core::EngineConfig::default();
    Ok(Box::new(destino_tract::TractEngine::load(path, &config)?))
}

/// Both engines, by name.
pub const ENGINES: [(&str, Loader); 2] = [("ort", load_ort), ("tract", load_tract)];

/// Path of a workspace binary (`destino-server`, `destino-edge`), built on first use with the
/// same profile as the running test.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        // The test's own CARGO_* variables (set by `cargo test`) would change what build
        // scripts see and rebuild their crates every time.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
                build.env_remove(key.as_ref());
            }
        }
        // destino-edge with tract's CUDA runtime, so the device tests see it refuse and
        // fall back (it only loads CUDA when asked: the other suites run it on the CPU);
        // the same features as this crate's, so tract is built once.
        build.args(["build", "-p", "destino-server", "-p", "destino-edge"]);
        build.args(["--features", "destino-edge/cuda"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    profile_dir.join(name)
}

/// Three values of every dtype, extremes included; `finite` replaces the float infinities
/// (which JSON cannot carry) with 2.5.
pub fn dtype_samples(finite: bool) -> Vec<TensorData> {
    use half::f16;
    let special = if finite { 2.5f32 } else { f32::NEG_INFINITY };
    vec![
        vec![true, false, true].into(),
        vec![0u8, 7, u8::MAX].into(),
        vec![0u16, 7, u16::MAX].into(),
        vec![0u32, 7, u32::MAX].into(),
        vec![0u64, 7, u64::MAX].into(),
        vec![i8::MIN, -1, i8::MAX].into(),
        vec![i16::MIN, -1, i16::MAX].into(),
        vec![i32::MIN, -1, i32::MAX].into(),
        vec![i64::MIN, -1, i64::MAX].into(),
        vec![f16::MIN, f16::from_f32(-0.5), f16::from_f32(special)].into(),
        vec![f32::MIN_POSITIVE, -1.5, special].into(),
        vec![f64::MAX, 1e-300, -0.0].into(),
        vec!["".to_string(), "ascii".into(), "ünïcödé ✓".into()].into(),
    ]
}

/// The sklearn_digits_rf reference: its input rows and expected labels.
pub fn digits_reference() -> (Vec<Vec<f32>>, Vec<i64>) {
    let case = reference_case("sklearn_digits_rf", None);
    let rows = case.inputs["X"]
        .as_f32()
        .expect("f32 input")
        .chunks(64)
        .map(<[f32]>::to_vec)
        .collect();
    let labels = match case.expected["label"].data() {
        TensorData::I64(v) => v.clone(),
        other => panic!("labels are {other:?}"),
    };
    (rows, labels)
}
