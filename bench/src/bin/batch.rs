//! `destino-server batch` against the engine alone, in one run: a folder of images, and a
//! table of digits rows as Parquet and as JSON lines, each scored by the release binary
//! (Parquet out) and compared with the in-process engine (one per core, the same batch size,
//! inputs already decoded), measured just before and just after the job.
//!   bench/batch        (builds the release binaries, then runs this)

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Parser;
use destino_bench::in_process;
use destino_core::manifest::Manifest;
use destino_core::preprocess::DEFAULT_MAX_PIXELS;
use destino_core::{Tensor, Tensors};
use destino_tests::{bundled_models, digits_reference, shared_models};

#[derive(Debug, Parser)]
struct Args {
    /// The release server binary.
    #[arg(long, default_value = "target/release/destino-server")]
    server: PathBuf,
    /// Images in the folder (copies of the shared ones).
    #[arg(long, default_value_t = 512)]
    images: usize,
    /// Rows in the digits table.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// `batch --batch-size` for the images; the engine alone runs the batches the job runs
    /// (this, or the model's max_batch_size if smaller).
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// `batch --batch-size` for the table, and the engine's batch.
    #[arg(long, default_value_t = 256)]
    table_batch_size: usize,
    /// Seconds per engine-alone measurement.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Runs of each job, the engine alone measured between them; the row is the run with the
    /// median ratio.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

const IMAGES: [&str; 3] = ["astronaut.png", "chelsea.png", "coffee.png"];

fn main() -> Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work = tempfile_dir()?;
    let repository = work.join("models");
    let effnet = repository.join("efficientnet_lite0");
    std::fs::create_dir_all(&effnet)?;
    for file in ["model.toml", "labels.txt"] {
        std::fs::copy(
            bundled_models().join("efficientnet_lite0").join(file),
            effnet.join(file),
        )?;
    }
    let effnet_model = shared_models().join("efficientnet_lite0.onnx");
    std::fs::copy(&effnet_model, effnet.join("model.onnx"))?;
    let digits = repository.join("digits");
    std::fs::create_dir_all(&digits)?;
    let digits_model = shared_models().join("sklearn_digits_rf.onnx");
    std::fs::copy(&digits_model, digits.join("model.onnx"))?;

    // The folder, and the engine alone on the same images decoded once.
    let folder = work.join("images");
    std::fs::create_dir_all(&folder)?;
    let manifest = Manifest::load_from_dir(&effnet)?;
    let (input, spec) = manifest
        .inputs
        .iter()
        .find_map(|(name, spec)| Some((name.clone(), spec.image.clone()?)))
        .context("no image input")?;
    // The job's batches are at most the model's own limit (model.toml's max_batch_size).
    let image_batch_size = manifest
        .max_batch_size
        .map_or(args.batch_size, |limit| limit.min(args.batch_size));
    let mut decoded = Vec::new();
    for (i, name) in IMAGES.iter().cycle().take(args.images).enumerate() {
        let bytes = std::fs::read(shared_models().join("images").join(name))?;
        std::fs::write(folder.join(format!("{i:05}-{name}")), &bytes)?;
        if decoded.len() < image_batch_size {
            decoded.push(spec.tensor_from_bytes(&bytes, DEFAULT_MAX_PIXELS)?);
        }
    }
    let image_batch = Tensors::from([(input, Tensor::concat_batch(&decoded)?)]);
    let image_batches = [image_batch];
    let image_runs = bracketed(
        args.rounds,
        || in_process(&effnet_model, &image_batches, 1, cores, args.seconds),
        || {
            let model = "efficientnet_lite0";
            batch(&args, &repository, model, &folder, &work, args.batch_size)
        },
    )?;
    let (images_alone, images_batch) = median_run(
        "images",
        image_runs
            .iter()
            .map(|&(alone, rate)| (alone * image_batch_size as f64, rate)),
    );

    // The table, and the engine alone on batches of its rows.
    let (reference, _) = digits_reference();
    let pixels: Vec<&Vec<f32>> = (0..args.rows)
        .map(|i| &reference[i % reference.len()])
        .collect();
    let parquet = work.join("digits.parquet");
    write_digits_parquet(&parquet, &pixels)?;
    let jsonl = work.join("digits.jsonl");
    let mut text = String::new();
    for row in &pixels {
        text.push_str(&serde_json::json!({ "X": row }).to_string());
        text.push('\n');
    }
    std::fs::write(&jsonl, text)?;
    let rows: Vec<f32> = (0..args.table_batch_size)
        .flat_map(|i| reference[i % reference.len()].clone())
        .collect();
    let row_batch = Tensors::from([(
        "X".to_string(),
        Tensor::new(vec![args.table_batch_size, 64], rows)?,
    )]);
    let row_batches = [row_batch];
    let table_batch = args.table_batch_size;
    let table_runs = bracketed(
        args.rounds,
        || in_process(&digits_model, &row_batches, 1, cores, args.seconds),
        || {
            let parquet_rows = batch(&args, &repository, "digits", &parquet, &work, table_batch)?;
            let jsonl_rows = batch(&args, &repository, "digits", &jsonl, &work, table_batch)?;
            Ok((parquet_rows, jsonl_rows))
        },
    )?;
    let rows_per_call = args.table_batch_size as f64;
    let parquet_run = median_run(
        "Parquet rows",
        table_runs
            .iter()
            .map(|&(alone, (rate, _))| (alone * rows_per_call, rate)),
    );
    let jsonl_run = median_run(
        "JSON-lines rows",
        table_runs
            .iter()
            .map(|&(alone, (_, rate))| (alone * rows_per_call, rate)),
    );

    println!(
        "| input (Parquet out) | batch size | batch items/s | engine alone items/s ({cores} engines) | ratio |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} PNG images, efficientnet_lite0 | {} | {images_batch:.1} | {images_alone:.1} | {:.2} |",
        args.images,
        image_batch_size,
        images_batch / images_alone
    );
    for (format, (rows_alone, rate)) in [("Parquet", parquet_run), ("JSON-lines", jsonl_run)] {
        println!(
            "| {} {format} rows, sklearn_digits_rf | {table_batch} | {rate:.0} | {rows_alone:.0} | {:.2} |",
            args.rows,
            rate / rows_alone
        );
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

/// `rounds` runs of `job` with the engine alone measured before the first and after each
/// (engine, job, engine, job, …, engine): each run comes with the mean of the engine's calls
/// per second either side of it, so the machine's drift during a run weighs on both alike.
fn bracketed<T>(
    rounds: usize,
    alone: impl Fn() -> Result<destino_bench::Stats>,
    mut job: impl FnMut() -> Result<T>,
) -> Result<Vec<(f64, T)>> {
    let mut before = alone()?.per_second;
    let mut runs = Vec::new();
    for _ in 0..rounds.max(1) {
        let result = job()?;
        let after = alone()?.per_second;
        eprintln!("engine alone: {before:.1} calls/s before the job, {after:.1} after");
        runs.push(((before + after) / 2.0, result));
        before = after;
    }
    Ok(runs)
}

/// Of `(engine alone, job)` rates per run, the run whose ratio is the median (the lower
/// middle of an even count); every run's ratio goes to stderr.
fn median_run(what: &str, runs: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let mut runs: Vec<(f64, f64)> = runs.collect();
    runs.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
    let ratios: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.1 / r.0)).collect();
    eprintln!("{what}: ratios of the runs, sorted: {}", ratios.join(", "));
    runs.get(runs.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or((f64::NAN, f64::NAN))
}

/// Runs `batch` into a fresh folder; the rows per second its summary reports.
fn batch(
    args: &Args,
    repository: &Path,
    model: &str,
    input: &Path,
    work: &Path,
    batch_size: usize,
) -> Result<f64> {
    let name = input.file_name().map(|n| n.to_string_lossy().into_owned());
    let output = work.join(format!("out-{}", name.unwrap_or_default()));
    // A folder left by an earlier round would be resumed, not scored again.
    if output.exists() {
        std::fs::remove_dir_all(&output)?;
    }
    let out = Command::new(&args.server)
        .args([
            "batch",
            "--model",
            model,
            "--batch-size",
            &batch_size.to_string(),
        ])
        .arg("--model-repository")
        .arg(repository)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(&output)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("batch failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let summary = stdout
        .lines()
        .find(|l| l.contains(" rows/s) into "))
        .context("no summary line")?;
    let rate = summary
        .split('(')
        .nth(2)
        .and_then(|s| s.split_whitespace().next())
        .context("no rate in the summary")?;
    Ok(rate.parse()?)
}

/// The digits rows as a Parquet table, `X` a list of f32 per row (pyarrow's layout).
fn write_digits_parquet(path: &Path, rows: &[&Vec<f32>]) -> Result<()> {
    use arrow_array::types::Float32Type;
    use arrow_array::{ArrayRef, ListArray, RecordBatch};
    let lists = rows.iter().map(|row| Some(row.iter().map(|&x| Some(x))));
    let column: ArrayRef =
        std::sync::Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(lists));
    let batch = RecordBatch::try_from_iter([("X", column)])?;
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path)?, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("destino-bench-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
