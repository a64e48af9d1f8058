//! The offline CLIs end to end, as users run them: real binaries, real files.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use destino_core::npz::{read_npz, write_npz};
use destino_core::parity::{Tolerance, compare_all};
use destino_tests::server::TestServer;
use destino_tests::{
    ReferenceCase, binary, bundled_models, fixture, generated_models, reference_case, shared_models,
};

struct Files {
    _dir: tempfile::TempDir,
    inputs: PathBuf,
    expected: PathBuf,
    outputs: PathBuf,
}

fn npz_files(case: &ReferenceCase) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.npz");
    let expected = dir.path().join("expected.npz");
    write_npz(&inputs, &case.inputs).unwrap();
    write_npz(&expected, &case.expected).unwrap();
    let outputs = dir.path().join("outputs.npz");
    Files {
        _dir: dir,
        inputs,
        expected,
        outputs,
    }
}

fn run(binary_name: &str, args: &[&str]) -> Output {
    Command::new(binary(binary_name))
        .args(args)
        .output()
        .expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const MODELS: [&str; 4] = [
    "efficientnet_lite0",
    "ppocr_mobile_v2_cls",
    "silero_vad",
    "sklearn_digits_rf",
];

fn assert_run_reproduces(binary_name: &str, engine_args: &[&str]) {
    for model in MODELS {
        let case = reference_case(model, None);
        let files = npz_files(&case);
        let mut args = engine_args.to_vec();
        args.extend([
            "run",
            "--model",
            p(&case.model),
            "--inputs",
            p(&files.inputs),
            "--outputs",
            p(&files.outputs),
        ]);
        let out = run(binary_name, &args);
        assert!(
            out.status.success(),
            "{binary_name} {args:?}: {}",
            text(&out.stderr)
        );
        let outputs = read_npz(&files.outputs).unwrap();
        assert_eq!(outputs.len(), case.expected.len(), "{model}");
        for c in compare_all(&outputs, &case.expected, Tolerance::default()) {
            assert!(c.within, "{binary_name} {model}: {c}");
        }
    }
}

#[test]
fn edge_run_reproduces_the_references() {
    assert_run_reproduces("destino-edge", &[]);
}

#[test]
fn server_run_reproduces_the_references_on_both_engines() {
    assert_run_reproduces("destino-server", &["--engine", "ort"]);
    assert_run_reproduces("destino-server", &["--engine", "tract", "--threads", "2"]);
}

/// `destino-server parity` on `model` with `inputs`, against `expected`.
fn parity(model: &Path, inputs: &Path, expected: &Path) -> Output {
    let args = [
        "parity",
        "--model",
        p(model),
        "--inputs",
        p(inputs),
        "--expected",
        p(expected),
    ];
    run("destino-server", &args)
}

#[test]
fn parity_agrees_for_the_shared_models() {
    for model in ["efficientnet_lite0", "ppocr_mobile_v2_cls", "silero_vad"] {
        let case = reference_case(model, None);
        let files = npz_files(&case);
        let out = parity(&case.model, &files.inputs, &files.expected);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{model}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("ort vs tract:") && stdout.contains("tract vs expected:"),
            "{stdout}"
        );
        assert!(stdout.contains("parity: ok"), "{stdout}");
        assert!(stdout.contains("max abs diff"), "{stdout}");
    }
}

#[test]
fn parity_fails_beyond_tolerance() {
    let cat = reference_case("efficientnet_lite0", None);
    let coffee = reference_case("efficientnet_lite0", Some("coffee"));
    let files = npz_files(&cat);
    let wrong = npz_files(&coffee);
    let out = parity(&cat.model, &files.inputs, &wrong.expected);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("MISMATCH") && stdout.contains("parity: FAILED"),
        "{stdout}"
    );
}

#[test]
fn inspect_describes_the_model_and_engine_coverage() {
    let model = bundled_models().join("efficientnet_lite0/model.onnx");
    for (binary_name, engine) in [("destino-edge", "tract"), ("destino-server", "ort")] {
        let out = run(binary_name, &["inspect", p(&model)]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(
            stdout.contains("input: float32 [batch, 3, 224, 224]"),
            "{stdout}"
        );
        assert!(stdout.contains("logits: float32 [batch, 1000]"), "{stdout}");
        assert!(stdout.contains("opsets: ai.onnx 13"), "{stdout}");
        assert!(
            stdout.contains(&format!("engine {engine}: runs all")),
            "{stdout}"
        );
    }
    let unsupported = fixture("unsupported_ops.onnx");
    let out = run("destino-edge", &["inspect", p(&unsupported)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "engine tract: cannot run 2 operator type(s): CumProd (domain ai.onnx), LpPool (domain ai.onnx)"
        ),
        "{stdout}"
    );
}

#[test]
fn profile_times_each_operator_of_the_tract_plan() {
    let case = reference_case("ppocr_mobile_v2_cls", None);
    let profile = |inputs: &Path, extra: &[&str]| {
        let args = ["profile", "--model", p(&case.model), "--inputs", p(inputs)];
        run("destino-edge", &[&args[..], extra].concat())
    };
    let files = npz_files(&case);
    let out = profile(&files.inputs, &["--runs", "3", "--nodes", "2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("operator"), "{stdout}");
    // Convolutions are tract's matrix products and depthwise kernels, with their rates.
    let matmul = lines
        .iter()
        .find(|l| l.starts_with("OptMatMul "))
        .expect(&stdout);
    let rate: f64 = matmul.split_whitespace().last().unwrap().parse().unwrap();
    assert!(rate > 0.0, "{matmul}");
    let total = lines
        .iter()
        .find(|l| l.starts_with("total"))
        .expect(&stdout);
    assert!(total.ends_with("(mean of 3 runs)"), "{total}");
    let node_rows = lines.iter().skip_while(|l| !l.starts_with("node ")).skip(1);
    assert_eq!(node_rows.count(), 2, "{stdout}");
    // Inputs that do not fit the model: the validation error, no table.
    let wrong = reference_case("sklearn_digits_rf", None);
    let wrong = npz_files(&wrong);
    let out = profile(&wrong.inputs, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("destino-edge: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn clear_errors_for_missing_files() {
    let out = run(
        "destino-edge",
        &[
            "run",
            "--model",
            "/nonexistent/m.onnx",
            "--inputs",
            "x.npz",
            "--outputs",
            "y.npz",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "destino-edge: model not found: /nonexistent/m.onnx"
    );
    let case = reference_case("silero_vad", None);
    let out = run(
        "destino-server",
        &[
            "run",
            "--model",
            p(&case.model),
            "--inputs",
            "/nonexistent/in.npz",
            "--outputs",
            "y.npz",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/in.npz"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn serve_on_the_bundled_repository_classifies_an_image() {
    let server = TestServer::start(&bundled_models(), &[]);
    let reply = server.client.post(
        "/models/efficientnet_lite0/predict",
        &[("content-type", "image/png")],
        &std::fs::read(shared_models().join("images/coffee.png")).unwrap(),
    );
    assert_eq!(reply.json()["outputs"]["logits"][0][0]["label"], "espresso");
    let output = server.output();
    assert!(output.contains("ready: 1 model(s)"), "{output}");
    assert!(output.contains("onnxruntime: "), "{output}");
}

#[test]
fn run_with_expected_checks_the_outputs_on_the_edge_binary() {
    let cat = reference_case("efficientnet_lite0", None);
    let coffee = reference_case("efficientnet_lite0", Some("coffee"));
    let files = npz_files(&cat);
    let run_against = |expected: &Path| {
        run(
            "destino-edge",
            &[
                "run",
                "--model",
                p(&cat.model),
                "--inputs",
                p(&files.inputs),
                "--outputs",
                p(&files.outputs),
                "--expected",
                p(expected),
            ],
        )
    };
    let out = run_against(&files.expected);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("logits: ok"),
        "{}",
        text(&out.stdout)
    );
    let wrong = npz_files(&coffee);
    let out = run_against(&wrong.expected);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("expected: MISMATCH"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn edge_watch_scores_images_dropped_into_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let image = std::fs::read(shared_models().join("images/coffee.png")).unwrap();
    std::fs::write(dir.path().join("coffee.png"), &image).unwrap();
    std::fs::write(dir.path().join("broken.png"), &image[..100]).unwrap();
    let repository = bundled_models();
    let out = run(
        "destino-edge",
        &[
            "watch",
            p(dir.path()),
            "--model-repository",
            p(&repository),
            "--once",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let coffee = answer("coffee.png.json");
    assert_eq!(coffee["file"], "coffee.png");
    assert_eq!(coffee["outputs"]["logits"][0][0]["label"], "espresso");
    let broken = answer("broken.png.json");
    assert_eq!(broken["status"], 400, "{broken}");

    // Watching: a file dropped later is answered, into a JSON-lines file; answered files are
    // not scored again.
    let jsonl = dir.path().join("answers.jsonl");
    let mut watcher = Command::new(binary("destino-edge"))
        .args(["watch", p(dir.path()), "--model-repository", p(&repository)])
        .args(["--jsonl", p(&jsonl), "--interval-ms", "50"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(dir.path().join("later.png"), &image).unwrap();
    let start = std::time::Instant::now();
    let mut lines = Vec::new();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        let text = std::fs::read_to_string(&jsonl).unwrap_or_default();
        lines = text.lines().map(str::to_string).collect();
        if lines.iter().any(|l| l.contains("later.png")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let later: Vec<&String> = lines.iter().filter(|l| l.contains("later.png")).collect();
    assert_eq!(later.len(), 1, "{lines:?}");
    assert!(later[0].contains("espresso"));
}

#[test]
fn edge_watch_answers_text_files_with_labels() {
    let repository = tempfile::tempdir().unwrap();
    assert_eq!(
        generated_models("text_models.py", repository.path()),
        ["intent"]
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "The dog chased the cat.").unwrap();
    let batch = r#"{"data": ["I love pizza.", "She sings a song."]}"#;
    // (`.json` files are answers, never scored: a JSON body goes in any other name.)
    std::fs::write(dir.path().join("batch.txt"), batch).unwrap();
    let args = [
        "watch",
        p(dir.path()),
        "--model-repository",
        p(repository.path()),
    ];
    let out = run(
        "destino-edge",
        &[&args[..], &["--model", "intent", "--once"]].concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let note = answer("note.txt.json");
    assert_eq!(note["outputs"]["logits"][0][0]["label"], "animal", "{note}");
    let batch = answer("batch.txt.json");
    assert_eq!(batch["outputs"]["logits"][0][0]["label"], "food", "{batch}");
    assert_eq!(
        batch["outputs"]["logits"][1][0]["label"], "music",
        "{batch}"
    );
}
