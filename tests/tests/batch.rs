//! `batch` end to end on both binaries: a folder of files in, JSON-lines part files out; a rerun
//! after a kill continues where it stopped; shards join into the unsharded output.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use destino_tests::server::TestServer;
use destino_tests::{binary, bundled_models, shared_models};
use serde_json::Value;

const IMAGES: [&str; 3] = ["astronaut.png", "chelsea.png", "coffee.png"];

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn batch(binary_name: &str, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let repository = bundled_models();
    Command::new(binary(binary_name))
        .args(["batch", "--model-repository", p(&repository)])
        .args(["--input", p(input), "--output", p(output)])
        .args(extra)
        .output()
        .unwrap()
}

fn image(name: &str) -> Vec<u8> {
    std::fs::read(shared_models().join("images").join(name)).unwrap()
}

/// `count` images, cycling through the shared ones, in nested folders.
fn image_folder(count: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..count {
        let folder = dir.path().join(format!("set{}", i % 2));
        std::fs::create_dir_all(&folder).unwrap();
        let name = IMAGES[i % IMAGES.len()];
        std::fs::write(folder.join(format!("{i:03}-{name}")), image(name)).unwrap();
    }
    dir
}

/// Every row of the output folder's part files, by key (a key twice fails).
fn rows(output: &Path) -> BTreeMap<String, Value> {
    let mut rows = BTreeMap::new();
    let mut names: Vec<String> = std::fs::read_dir(output)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names.iter().filter(|n| n.starts_with("part-")) {
        for line in std::fs::read_to_string(output.join(name)).unwrap().lines() {
            let row: Value = serde_json::from_str(line).unwrap();
            let key = match row["key"].as_str() {
                Some(path) => path.to_string(),
                None => row["key"].to_string(),
            };
            assert!(rows.insert(key.clone(), row).is_none(), "{key} twice");
        }
    }
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "temporary files left: {names:?}"
    );
    rows
}

fn top_label(row: &Value) -> &str {
    row["output"]["outputs"]["logits"][0][0]["label"]
        .as_str()
        .unwrap_or_else(|| panic!("no label in {row}"))
}

#[test]
fn a_folder_of_images_scores_as_predict_does_with_bad_files_as_rows() {
    let input = image_folder(5);
    let bytes = image("coffee.png");
    std::fs::write(
        input.path().join("truncated.png"),
        &bytes[..bytes.len() / 3],
    )
    .unwrap();
    std::fs::write(input.path().join("notes.jpg"), "not an image").unwrap();
    let server = TestServer::start(&bundled_models(), &[]);
    let predict = |name: &str| -> String {
        let reply = server.client.post(
            "/models/efficientnet_lite0/predict",
            &[("content-type", "image/png")],
            &image(name),
        );
        reply.json()["outputs"]["logits"][0][0]["label"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let expected: BTreeMap<&str, String> = IMAGES.iter().map(|&n| (n, predict(n))).collect();
    for program in ["destino-server", "destino-edge"] {
        let output = tempfile::tempdir().unwrap();
        let out = batch(program, input.path(), output.path(), &["--part-size", "3"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{program}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = rows(output.path());
        assert_eq!(rows.len(), 7, "{program}: {rows:?}");
        for (key, row) in &rows {
            match IMAGES.iter().find(|&&name| key.ends_with(name)) {
                Some(name) => {
                    assert!(row["error"].is_null(), "{program} {key}: {row}");
                    assert_eq!(top_label(row), expected[name], "{program} {key}");
                }
                None => {
                    assert!(row["output"].is_null(), "{program} {key}: {row}");
                    assert!(row["error"].as_str().unwrap().contains("image"), "{row}");
                }
            }
        }
        assert!(stdout.contains("scored 7 rows (2 errors)"), "{stdout}");
        assert!(output.path().join("job.json").is_file());
    }
}

#[test]
fn shards_join_into_the_whole_and_a_rerun_scores_only_what_is_missing() {
    let input = image_folder(12);
    let whole = tempfile::tempdir().unwrap();
    let out = batch(
        "destino-server",
        input.path(),
        whole.path(),
        &["--part-size", "2"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = rows(whole.path());
    assert_eq!(all.len(), 12);

    let sharded = tempfile::tempdir().unwrap();
    for shard in ["0/3", "1/3", "2/3"] {
        let out = batch(
            "destino-server",
            input.path(),
            sharded.path(),
            &["--part-size", "2", "--shard", shard],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let joined = rows(sharded.path());
    let labels = |rows: &BTreeMap<String, Value>| -> Vec<(String, String)> {
        rows.iter()
            .map(|(k, r)| (k.clone(), top_label(r).to_string()))
            .collect()
    };
    assert_eq!(labels(&joined), labels(&all));

    // Two parts lost and one half-written: the rerun scores those two only.
    std::fs::remove_file(whole.path().join("part-00002.jsonl")).unwrap();
    std::fs::remove_file(whole.path().join("part-00004.jsonl")).unwrap();
    std::fs::write(whole.path().join(".part-00002.jsonl.99999.tmp"), "{\"key\"").unwrap();
    let out = batch(
        "destino-server",
        input.path(),
        whole.path(),
        &["--part-size", "2"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("has 2 left"), "{stdout}");
    assert_eq!(labels(&rows(whole.path())), labels(&all));

    // The folder belongs to this job: another cut of the input is refused, nothing written.
    let out = batch(
        "destino-server",
        input.path(),
        whole.path(),
        &["--part-size", "3"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another job"));
    assert_eq!(labels(&rows(whole.path())), labels(&all));
}

#[test]
fn a_run_killed_halfway_resumes_with_every_file_once() {
    let input = image_folder(40);
    let output = tempfile::tempdir().unwrap();
    let repository = bundled_models();
    let mut child = Command::new(binary("destino-edge"))
        .args(["batch", "--model-repository", p(&repository)])
        .args(["--input", p(input.path()), "--output", p(output.path())])
        .args(["--part-size", "1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !output.path().join("part-00003.jsonl").exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = rows(output.path()).len();
    assert!(
        before < 40,
        "the run finished before the kill ({before} rows)"
    );
    let out = batch(
        "destino-edge",
        input.path(),
        output.path(),
        &["--part-size", "1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = rows(output.path());
    assert_eq!(after.len(), 40);
    assert!(after.values().all(|row| row["error"].is_null()));
}

#[test]
fn a_bad_input_is_refused_before_any_work() {
    let output = tempfile::tempdir().unwrap();
    let target = output.path().join("out");
    let missing = output.path().join("no-such-folder");
    for program in ["destino-server", "destino-edge"] {
        let out = batch(program, &missing, &target, &[]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no-such-folder"), "{stderr}");
        let out = batch(program, output.path(), &target, &["--shard", "3/3"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "clap refuses a shard outside 0..N"
        );
        assert!(!target.exists());
    }
}

/// A repository serving the shared digits random forest as `digits`.
fn digits_repository() -> tempfile::TempDir {
    let repository = tempfile::tempdir().unwrap();
    let version = repository.path().join("digits/1");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::copy(
        shared_models().join("sklearn_digits_rf.onnx"),
        version.join("model.onnx"),
    )
    .unwrap();
    repository
}

fn batch_in(
    repository: &Path,
    program: &str,
    input: &Path,
    output: &Path,
    extra: &[&str],
) -> Output {
    Command::new(binary(program))
        .args(["batch", "--model-repository", p(repository)])
        .args(["--input", p(input), "--output", p(output)])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_json_lines_table_scores_each_row_as_onnx_runtime_labels_it() {
    let (reference, labels) = destino_tests::digits_reference();
    let repository = digits_repository();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("digits.jsonl");
    let rows = 2000;
    let mut text = String::new();
    for i in 0..rows {
        let row =
            serde_json::json!({"pixels": reference[i % reference.len()], "name": format!("d{i}")});
        text.push_str(&format!("{row}\n"));
    }
    text.push_str("{\"pixels\": \"not numbers\", \"name\": \"bad\"}\n");
    std::fs::write(&table, text).unwrap();
    for program in ["destino-server", "destino-edge"] {
        let output = dir.path().join(format!("out-{program}"));
        let args = [
            "--column",
            "X=pixels",
            "--id-column",
            "name",
            "--part-size",
            "300",
        ];
        let out = batch_in(repository.path(), program, &table, &output, &args);
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let scored = rows_by_number(&output);
        assert_eq!(scored.len(), rows + 1, "{program}");
        for (i, row) in scored.iter().take(rows).enumerate() {
            assert_eq!(row["key"], i, "{program}: {row}");
            assert_eq!(row["id"], format!("d{i}"));
            assert_eq!(
                row["output"]["outputs"]["label"][0],
                labels[i % labels.len()],
                "{program} row {i}: {row}"
            );
        }
        let bad = &scored[rows];
        assert_eq!(bad["id"], "bad");
        assert!(bad["output"].is_null(), "{bad}");
    }
}

#[test]
fn a_table_that_cannot_feed_the_model_is_refused_before_any_work() {
    let repository = digits_repository();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let table = dir.path().join("t.jsonl");
    std::fs::write(&table, "{\"pixels\": [1, 2]}\n").unwrap();
    let refused = |input: &Path, args: &[&str], reason: &str| {
        let out = batch_in(repository.path(), "destino-server", input, &output, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(!output.exists(), "{args:?} left an output folder");
    };
    refused(&table, &[], "no column `X`");
    refused(
        &table,
        &["--column", "X=pixels", "--id-column", "name"],
        "no id column `name`",
    );
    refused(&table, &["--column", "Y=pixels"], "no input `Y`");
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "PAR1 not a table\n").unwrap();
    refused(&broken, &["--column", "X=pixels"], "not a JSON object");
    let parquet = dir.path().join("t.parquet");
    std::fs::write(&parquet, "PAR1").unwrap();
    refused(&parquet, &[], "JSON-lines table");
}

/// The rows of an output folder in key order (row numbers).
fn rows_by_number(output: &Path) -> Vec<Value> {
    let mut rows: Vec<Value> = rows(output).into_values().collect();
    rows.sort_by_key(|row| row["key"].as_u64().unwrap());
    rows
}

#[test]
fn a_folder_of_npz_files_scores_each_as_one_batch() {
    let case = destino_tests::reference_case("sklearn_digits_rf", None);
    let (_, labels) = destino_tests::digits_reference();
    let repository = digits_repository();
    let input = tempfile::tempdir().unwrap();
    for name in ["a.npz", "b/c.npz"] {
        let path = input.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        destino_core::npz::write_npz(&path, &case.inputs).unwrap();
    }
    std::fs::write(input.path().join("broken.npz"), b"PK\x03\x04 truncated").unwrap();
    for program in ["destino-server", "destino-edge"] {
        let output = tempfile::tempdir().unwrap();
        let out = batch_in(repository.path(), program, input.path(), output.path(), &[]);
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = rows(output.path());
        assert_eq!(rows.len(), 3, "{program}: {rows:?}");
        for key in ["a.npz", "b/c.npz"] {
            let got = &rows[key]["output"]["outputs"]["label"];
            assert_eq!(
                got,
                &serde_json::json!(labels),
                "{program} {key}: {}",
                rows[key]
            );
        }
        assert!(
            rows["broken.npz"]["output"].is_null(),
            "{}",
            rows["broken.npz"]
        );
    }
}
