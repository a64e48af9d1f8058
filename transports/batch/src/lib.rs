//! destino's batch scoring (`destino-server batch`, `destino-edge batch`): every file of a
//! folder scored by one model, the answers written as numbered part files, each committed
//! atomically, so a rerun of the same command after a crash continues where it stopped and the
//! output holds every file exactly once. `--shard I/N` (or a Kubernetes Indexed Job's index)
//! splits the parts between processes with no coordinator.

pub mod commit;
pub mod input;
pub mod job;
pub mod progress;
pub mod score;
pub mod shard;
pub mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use destino_core::engine::{EngineConfig, EngineLoader};
use destino_serving::{
    BatchPolicy, Instances, Metrics, Registry, Service, ServiceOptions, ServingDefaults,
};

use crate::commit::{commit, remove_leftovers};
use crate::input::{Input, RowShape};
use crate::job::JobSpec;
use crate::progress::Progress;
use crate::shard::Shard;
use crate::table::Columns;

#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    #[arg(long, env = "DESTINO_MODEL_REPOSITORY", default_value = "models")]
    pub model_repository: PathBuf,
    /// The model that scores the input (needed when the repository serves several).
    #[arg(long)]
    pub model: Option<String>,
    /// A folder of files (images, text, JSON bodies as `/score` takes them, `.npz` tensors keyed
    /// by input name), read recursively;
    /// or a JSON-lines table (`.jsonl`, `.ndjson`) whose rows hold the model's inputs.
    #[arg(long)]
    pub input: PathBuf,
    /// A table's column for a model input, `INPUT=COLUMN` (repeatable; default: the input's
    /// name).
    #[arg(long = "column", value_name = "INPUT=COLUMN")]
    pub columns: Vec<String>,
    /// A table's column copied to each output row as `id`.
    #[arg(long)]
    pub id_column: Option<String>,
    /// The output folder: `job.json` and one `part-NNNNN.jsonl` per part.
    #[arg(long)]
    pub output: PathBuf,
    /// Files per part file (the unit of work, commit, resumption and sharding).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub part_size: u32,
    /// This process's share of the parts, `I/N` (parts `p` with `p % N == I`); default: the
    /// Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`/`JOB_COMPLETIONS`, else all.
    #[arg(long, env = "DESTINO_SHARD")]
    pub shard: Option<Shard>,
    /// Largest batch one engine run takes (files in flight are batched dynamically).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Classes per file, for classifiers.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Largest decoded image, in pixels (checked before decoding).
    #[arg(long, default_value_t = destino_core::preprocess::DEFAULT_MAX_PIXELS)]
    pub max_image_pixels: u64,
}

/// Scores the input with a model `loader` loads; `instances` engines per model.
pub fn run(
    args: &BatchArgs,
    loader: EngineLoader,
    engine: EngineConfig,
    instances: Instances,
) -> ExitCode {
    match try_run(args, loader, engine, instances) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("batch: {message}");
            ExitCode::FAILURE
        }
    }
}

fn try_run(
    args: &BatchArgs,
    loader: EngineLoader,
    engine: EngineConfig,
    instances: Instances,
) -> Result<(), String> {
    let shard = match args.shard {
        Some(shard) => shard,
        None => Shard::from_env(|name| std::env::var(name).ok())?.unwrap_or(Shard::WHOLE),
    };
    let part_size = args.part_size as usize;
    let input = Input::open(&args.input, part_size)?;
    let batch_size = args.batch_size as usize;
    let defaults = ServingDefaults {
        policy: BatchPolicy {
            max_batch_size: batch_size,
            max_queue_delay: Duration::from_millis(2),
            max_queue_size: 4 * batch_size,
        },
        instances,
    };
    let registry = Registry::new(
        args.model_repository.clone(),
        loader,
        engine,
        defaults,
        Metrics::new(),
    );
    registry.load_all().map_err(|e| e.to_string())?;
    let model = registry.pick(args.model.as_deref(), "--model")?;
    let shape = row_shape(&input, &model, args)?;
    let job = JobSpec::new(&model.name, model.version, &input, part_size);
    job.claim(&args.output)?;
    let options = ServiceOptions {
        max_image_pixels: args.max_image_pixels,
        ..ServiceOptions::default()
    };
    let service = Service::new(Arc::new(registry), options);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let in_flight = 2 * batch_size * model.instance_count.max(1);
    let todo: Vec<usize> = (0..job.parts())
        .filter(|&part| shard.owns(part) && !args.output.join(job.part_name(part)).exists())
        .collect();
    println!(
        "batch: {} items in {} parts; shard {shard} has {} left to score with {} v{}",
        input.len(),
        job.parts(),
        todo.len(),
        model.name,
        model.version
    );
    let mut progress = Progress::new(todo.iter().map(|&p| job.range(p).len()).sum());
    for part in todo {
        let name = job.part_name(part);
        remove_leftovers(&args.output, &name).map_err(|e| format!("{name}: {e}"))?;
        let work = input.work(part, job.range(part), shape.as_ref())?;
        let scored = runtime.block_on(score::score_part(
            &service,
            &model,
            &work,
            args.top_k,
            in_flight,
            &|| progress.row_scored(),
        ))?;
        let errors = scored.iter().filter(|row| !row["error"].is_null()).count();
        commit(&args.output, &name, &score::json_lines(&scored))
            .map_err(|e| format!("{}: {e}", args.output.join(&name).display()))?;
        progress.part_done(&name, scored.len(), errors);
    }
    progress.finish(&args.output);
    Ok(())
}

/// For a table: which columns feed the model's inputs, checked against the table's first row
/// before any work.
fn row_shape(
    input: &Input,
    model: &destino_serving::ServedModel,
    args: &BatchArgs,
) -> Result<Option<RowShape>, String> {
    let Input::Table(table) = input else {
        if !args.columns.is_empty() || args.id_column.is_some() {
            return Err("--column and --id-column are for tables; the input is a folder".into());
        }
        return Ok(None);
    };
    let inputs: Vec<String> = model
        .metadata
        .inputs
        .iter()
        .map(|i| i.name.clone())
        .collect();
    let columns = Columns::new(&inputs, &args.columns, &table.columns)?;
    if let Some(id) = &args.id_column
        && !table.columns.contains(id)
    {
        return Err(format!("the table has no id column `{id}`"));
    }
    Ok(Some(RowShape {
        columns,
        id_column: args.id_column.clone(),
    }))
}
