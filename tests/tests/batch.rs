//! `batch` end to end on both binaries: a folder of files or a table (Parquet, CSV, JSON lines)
//! in, Parquet (read back with pyarrow, as one data set) or JSON-lines part files out; a rerun
//! after a kill continues where it stopped; shards join into the unsharded output.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Float32Array, RecordBatch, StringArray};
use destino_tests::server::{TestServer, digits_repository};
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

/// Every row of the output folder's part files, by key (a key twice fails), as JSON lines
/// hold them: `{"key", "id"?, "outputs": {..} | null, "error"}`. Parquet parts are read with
/// pyarrow as one data set.
fn rows(output: &Path) -> BTreeMap<String, Value> {
    let mut names: Vec<String> = std::fs::read_dir(output)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "temporary files left: {names:?}"
    );
    let mut lines: Vec<Value> = Vec::new();
    if names.iter().any(|n| n.ends_with(".parquet")) {
        let text = destino_tests::python_output("batch_tables.py", &["rows", p(output)]);
        lines.extend(
            text.lines()
                .map(|l| json_lines_row(serde_json::from_str(l).unwrap())),
        );
    }
    for name in names.iter().filter(|n| n.ends_with(".jsonl")) {
        let text = std::fs::read_to_string(output.join(name)).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    let mut rows = BTreeMap::new();
    for row in lines {
        let key = match row["key"].as_str() {
            Some(path) => path.to_string(),
            None => row["key"].to_string(),
        };
        assert!(rows.insert(key.clone(), row).is_none(), "{key} twice");
    }
    rows
}

/// A Parquet row (`key`, `id`, a column per output, `error`) as a JSON-lines row.
fn json_lines_row(row: Value) -> Value {
    let Value::Object(mut fields) = row else {
        panic!("a row is not an object: {row}");
    };
    let mut line = serde_json::Map::new();
    for column in ["key", "id", "error"] {
        if let Some(value) = fields.remove(column) {
            line.insert(column.to_string(), value);
        }
    }
    let outputs = match line["error"].is_null() {
        true => Value::Object(fields),
        false => Value::Null,
    };
    line.insert("outputs".to_string(), outputs);
    Value::Object(line)
}

fn top_label(row: &Value) -> &str {
    row["outputs"]["logits"][0]["label"]
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
                    assert!(row["outputs"].is_null(), "{program} {key}: {row}");
                    assert!(row["error"].as_str().unwrap().contains("image"), "{row}");
                }
            }
        }
        assert!(stdout.contains("scored 7 rows (2 errors)"), "{stdout}");
        assert!(output.path().join("_job.json").is_file());
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
    std::fs::remove_file(whole.path().join("part-00002.parquet")).unwrap();
    std::fs::remove_file(whole.path().join("part-00004.parquet")).unwrap();
    std::fs::write(
        whole.path().join(".part-00002.parquet.99999.tmp"),
        "{\"key\"",
    )
    .unwrap();
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
    while !output.path().join("part-00003.parquet").exists() {
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
    let args = [
        "--column",
        "X=pixels",
        "--id-column",
        "name",
        "--part-size",
        "300",
        "--format",
        "jsonl",
    ];
    for (program, scored) in table_rows_on_both(repository.path(), &table, &args) {
        assert_eq!(scored.len(), rows + 1, "{program}");
        for (i, row) in scored.iter().take(rows).enumerate() {
            assert_eq!(row["key"], i, "{program}: {row}");
            assert_eq!(row["id"], format!("d{i}"));
            assert_eq!(
                row["outputs"]["label"],
                labels[i % labels.len()],
                "{program} row {i}: {row}"
            );
            assert_eq!(
                row["outputs"]["probabilities"].as_array().unwrap().len(),
                10
            );
        }
        let bad = &scored[rows];
        assert_eq!(bad["id"], "bad");
        assert!(bad["outputs"].is_null(), "{bad}");
        assert!(
            bad["error"].as_str().unwrap().contains("takes numbers"),
            "{bad}"
        );
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
    refused(&parquet, &[], "not a readable Parquet file");
    let unknown = dir.path().join("t.xlsx");
    std::fs::write(&unknown, "x").unwrap();
    refused(&unknown, &[], "takes a folder of files or a table");
    let strings = dir.path().join("strings.parquet");
    let texts: ArrayRef = Arc::new(StringArray::from(vec!["1, 2", "3"]));
    let numbers: ArrayRef = Arc::new(Float32Array::from(vec![1.0, 2.0]));
    write_parquet(&strings, vec![("pixels", texts), ("n", numbers)]);
    refused(
        &strings,
        &["--column", "X=pixels"],
        "column `pixels` is Utf8",
    );
    refused(&strings, &[], "no column `X`");
    refused(
        &strings,
        &["--column", "X=n", "--id-column", "name"],
        "no id column `name`",
    );
    refused(
        &strings,
        &["--column", "X=q*"],
        "no column of the table matches",
    );
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn digits_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--column", "X=pixels", "--id-column", "name"];
    args.extend_from_slice(extra);
    args
}

/// Runs `program batch` under `batch_tables.py max-rss`; its peak resident memory in KiB.
fn batch_rss(program: &str, repository: &Path, input: &Path, output: &Path, extra: &[&str]) -> u64 {
    let exe = binary(program);
    let mut args = vec![
        "max-rss",
        p(&exe),
        "batch",
        "--model-repository",
        p(repository),
    ];
    args.extend(["--input", p(input), "--output", p(output)]);
    args.extend_from_slice(extra);
    let text = destino_tests::python_output("batch_tables.py", &args);
    let last = text.lines().last().unwrap_or_default();
    last.strip_prefix("max_rss_kib ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no max_rss_kib line in {text}"))
}

/// The summary `batch_tables.py check-digits` prints once every row is ONNX Runtime's.
fn check_digits(output: &Path, table: &Path) -> String {
    destino_tests::python_output("batch_tables.py", &["check-digits", p(output), p(table)])
}

#[test]
fn a_parquet_table_scores_as_onnx_runtime_labels_it_in_bounded_memory() {
    let repository = digits_repository();
    let dir = tempfile::tempdir().unwrap();
    let (big, small) = (
        dir.path().join("big.parquet"),
        dir.path().join("small.parquet"),
    );
    for (table, rows) in [(&big, "100000"), (&small, "10000")] {
        destino_tests::python_output("batch_tables.py", &["digits", p(table), rows]);
    }
    let args = digits_args(&["--part-size", "5000"]);
    for program in ["destino-server", "destino-edge"] {
        let (out_small, out_big) = (dir.path().join("small-out"), dir.path().join("big-out"));
        let small_rss = batch_rss(program, repository.path(), &small, &out_small, &args);
        let big_rss = batch_rss(program, repository.path(), &big, &out_big, &args);
        assert_eq!(
            check_digits(&out_small, &small).trim(),
            "rows 10000 errors 2 parts 2"
        );
        assert_eq!(
            check_digits(&out_big, &big).trim(),
            "rows 100000 errors 2 parts 20"
        );
        // Ten times the rows, the same parts: memory does not grow with the table.
        assert!(
            big_rss < small_rss + 32 * 1024,
            "{program}: {big_rss} KiB for 100000 rows, {small_rss} KiB for 10000"
        );
        std::fs::remove_dir_all(&out_small).unwrap();
        std::fs::remove_dir_all(&out_big).unwrap();
    }
}

#[test]
fn a_table_run_killed_halfway_resumes_with_every_row_once() {
    let repository = digits_repository();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("digits.parquet");
    destino_tests::python_output("batch_tables.py", &["digits", p(&table), "100000"]);
    let output = dir.path().join("out");
    let args = digits_args(&["--part-size", "1000"]);
    let mut child = Command::new(binary("destino-server"))
        .args(["batch", "--model-repository", p(repository.path())])
        .args(["--input", p(&table), "--output", p(&output)])
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !output.join("part-00003.parquet").exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let parts = std::fs::read_dir(&output).unwrap().count();
    assert!(
        parts < 100,
        "the run finished before the kill ({parts} files)"
    );
    let out = batch_in(repository.path(), "destino-server", &table, &output, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("has 100 left"), "{stdout}");
    assert_eq!(
        check_digits(&output, &table).trim(),
        "rows 100000 errors 2 parts 100"
    );
}

#[test]
fn a_csv_table_feeds_an_input_from_many_columns() {
    let (reference, labels) = destino_tests::digits_reference();
    let repository = digits_repository();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("digits.csv");
    let header: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
    let mut text = format!("name,{}\n", header.join(","));
    for (i, row) in reference.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(f32::to_string).collect();
        text.push_str(&format!("d{i},{}\n", cells.join(",")));
    }
    text.push_str("broken,1,2\n");
    std::fs::write(&table, text).unwrap();
    let args = [
        "--column",
        "X=p*",
        "--id-column",
        "name",
        "--format",
        "jsonl",
    ];
    for (program, scored) in table_rows_on_both(repository.path(), &table, &args) {
        assert_eq!(scored.len(), reference.len() + 1);
        for (i, row) in scored.iter().take(reference.len()).enumerate() {
            assert_eq!(row["id"], format!("d{i}"), "{program}: {row}");
            assert_eq!(row["outputs"]["label"], labels[i], "{program}: {row}");
        }
        let broken = &scored[reference.len()];
        assert!(
            broken["error"].as_str().unwrap().contains("no field"),
            "{broken}"
        );
    }
}

/// Scores `table` (JSON-lines output) on both binaries: each one's rows in key order.
fn table_rows_on_both(
    repository: &Path,
    table: &Path,
    args: &[&str],
) -> Vec<(&'static str, Vec<Value>)> {
    let programs = ["destino-server", "destino-edge"];
    programs
        .into_iter()
        .map(|program| {
            let output = table.with_file_name(format!("out-{program}"));
            let out = batch_in(repository, program, table, &output, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{program}: {stderr}");
            (program, rows_by_number(&output))
        })
        .collect()
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
            let got = &rows[key]["outputs"]["label"];
            assert_eq!(
                got,
                &serde_json::json!(labels),
                "{program} {key}: {}",
                rows[key]
            );
        }
        assert!(
            rows["broken.npz"]["outputs"].is_null(),
            "{}",
            rows["broken.npz"]
        );
    }
}

#[test]
fn a_job_never_fills_a_small_model_queue() {
    // Two queue slots for a model whose two instances and two parts in flight would queue
    // far more: every row and file is scored, none refused with "retry later".
    let case = destino_tests::reference_case("sklearn_digits_rf", None);
    let (reference, labels) = destino_tests::digits_reference();
    let repository = digits_repository();
    std::fs::write(
        repository.path().join("digits/model.toml"),
        "max_queue_size = 2\ninstances = 2\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("digits.jsonl");
    let count = 3000;
    let text: String = (0..count)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"X": reference[i % reference.len()]})
            )
        })
        .collect();
    std::fs::write(&table, text).unwrap();
    let files = dir.path().join("npz");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..40 {
        destino_core::npz::write_npz(&files.join(format!("{i:02}.npz")), &case.inputs).unwrap();
    }
    let args = [
        "--batch-size",
        "8",
        "--part-size",
        "500",
        "--format",
        "jsonl",
    ];
    for (program, scored) in table_rows_on_both(repository.path(), &table, &args) {
        assert_eq!(scored.len(), count, "{program}");
        for (i, row) in scored.iter().enumerate() {
            assert!(row["error"].is_null(), "{program} row {i}: {row}");
            assert_eq!(row["outputs"]["label"], labels[i % labels.len()]);
        }
    }
    let args = ["--part-size", "10", "--format", "jsonl"];
    for program in ["destino-server", "destino-edge"] {
        let output = dir.path().join(format!("npz-out-{program}"));
        let out = batch_in(repository.path(), program, &files, &output, &args);
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let scored = rows(&output);
        assert_eq!(scored.len(), 40, "{program}");
        for (key, row) in scored {
            assert!(row["error"].is_null(), "{program} {key}: {row}");
            assert_eq!(row["outputs"]["label"], serde_json::json!(labels));
        }
    }
}

/// A repository serving the shared MiniLM sentence embedder (with its tokenizer) as `text`.
fn text_repository() -> tempfile::TempDir {
    let repository = tempfile::tempdir().unwrap();
    let folder = repository.path().join("text");
    std::fs::create_dir_all(folder.join("1")).unwrap();
    let shared = shared_models();
    let model = shared.join("paraphrase_minilm_l3.onnx");
    std::os::unix::fs::symlink(model, folder.join("1/model.onnx")).unwrap();
    let tokenizer = shared.join("paraphrase_minilm_l3.tokenizer.json");
    std::os::unix::fs::symlink(tokenizer, folder.join("tokenizer.json")).unwrap();
    repository
}

fn cosine(a: &[f64], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * f64::from(*y)).sum();
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(&mut a.iter().copied()) * norm(&mut b.iter().map(|&y| f64::from(y))))
}

#[test]
fn a_text_model_embeds_a_column_of_strings_and_a_folder_of_text_files() {
    let sentences =
        std::fs::read_to_string(shared_models().join("paraphrase_minilm_l3.sentences.txt"))
            .unwrap();
    let sentences: Vec<&str> = sentences.lines().collect();
    let case = destino_tests::reference_case("paraphrase_minilm_l3", None);
    let reference = case.expected["461"].as_f32().unwrap().to_vec();
    let repository = text_repository();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("sentences.csv");
    let mut csv = "n,sentence\n".to_string();
    let folder = dir.path().join("texts");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, sentence) in sentences.iter().enumerate() {
        csv.push_str(&format!("{i},\"{}\"\n", sentence.replace('"', "\"\"")));
        std::fs::write(folder.join(format!("{i}.txt")), sentence).unwrap();
    }
    std::fs::write(&table, csv).unwrap();
    let from_table = dir.path().join("out-table");
    let args = ["--column", "text=sentence", "--id-column", "n"];
    let out = batch_in(
        repository.path(),
        "destino-server",
        &table,
        &from_table,
        &args,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_folder = dir.path().join("out-folder");
    let out = batch_in(
        repository.path(),
        "destino-edge",
        &folder,
        &from_folder,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table_rows = rows_by_number(&from_table);
    let folder_rows = rows(&from_folder);
    assert_eq!(
        (table_rows.len(), folder_rows.len()),
        (sentences.len(), sentences.len())
    );
    for (i, expected) in reference.chunks(384).enumerate() {
        for row in [&table_rows[i], &folder_rows[&format!("{i}.txt")]] {
            let got: Vec<f64> = row["outputs"]["461"]
                .as_array()
                .unwrap_or_else(|| panic!("no embedding in {row}"))
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), 384);
            assert!(cosine(&got, expected) > 0.999, "sentence {i}: {row}");
        }
    }
}
