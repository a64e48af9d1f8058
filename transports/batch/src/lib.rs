//! destino's batch scoring (`destino-server batch`, `destino-edge batch`): every file of a
//! folder scored by one model, the answers written as numbered part files, each committed
//! atomically, so a rerun of the same command after a crash continues where it stopped and the
//! output holds every file exactly once. `--shard I/N` (or a Kubernetes Indexed Job's index)
//! splits the parts between processes with no coordinator.

pub mod builder;
pub mod commit;
pub mod csv_table;
pub mod input;
pub mod job;
pub mod jsonl;
pub mod output;
#[cfg(feature = "parquet")]
pub mod parquet_in;
#[cfg(feature = "parquet")]
pub mod parquet_out;
pub mod progress;
pub mod score;
pub mod shard;
pub mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use destino_core::dtype::DType;
use destino_core::engine::{EngineConfig, EngineLoader};
use destino_core::metadata::{Dim, TensorInfo};
use destino_serving::{
    BatchPolicy, Instances, Metrics, Registry, ServedModel, Service, ServiceOptions,
    ServingDefaults,
};
use tokio::sync::Semaphore;

use crate::commit::{commit, remove_leftovers};
use crate::input::Input;
use crate::job::{Format, JobSpec};
use crate::output::{KeyKind, OutputSchema, RowForm, ScoredRow};
use crate::progress::Progress;
use crate::score::{Scorer, TEXT_INPUT};
use crate::shard::Shard;
use crate::table::{Columns, Resolved, Table};

#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    #[arg(long, env = "DESTINO_MODEL_REPOSITORY", default_value = "models")]
    pub model_repository: PathBuf,
    /// The model that scores the input (needed when the repository serves several).
    #[arg(long)]
    pub model: Option<String>,
    /// A folder of files (images, text, JSON bodies as `/score` takes them, `.npz` tensors keyed
    /// by input name), read recursively; or a table whose rows hold the model's inputs
    /// (`.parquet`, `.csv`, `.tsv`, `.jsonl`, `.ndjson`).
    #[arg(long)]
    pub input: PathBuf,
    /// A table's columns for a model input (repeatable; default: the input's name):
    /// `INPUT=COLUMN` (a list column, or one value), `INPUT=A,B,C` (one value each),
    /// `INPUT=PREFIX*` (every column so named, in the table's order). A text model's input is
    /// `text`.
    #[arg(long = "column", value_name = "INPUT=COLUMN")]
    pub columns: Vec<String>,
    /// A table's column copied to each output row as `id`.
    #[arg(long)]
    pub id_column: Option<String>,
    /// The output folder: `_job.json` and one part file per part.
    #[arg(long)]
    pub output: PathBuf,
    /// The part files' format.
    #[arg(long, value_enum, default_value_t = Format::DEFAULT)]
    pub format: Format,
    /// Items per part file (the unit of work, commit, resumption and sharding); default: 1000
    /// files, or 10000 table rows.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub part_size: Option<u32>,
    /// This process's share of the parts, `I/N` (parts `p` with `p % N == I`); default: the
    /// Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`/`JOB_COMPLETIONS`, else all.
    #[arg(long, env = "DESTINO_SHARD")]
    pub shard: Option<Shard>,
    /// Largest batch one engine run takes (files in flight are batched dynamically; a table's
    /// rows run in chunks of this many).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Classes per row, for classifiers.
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
    if args.format == Format::Parquet && !cfg!(feature = "parquet") {
        return Err(format!("--format parquet: {}", table::NO_PARQUET));
    }
    let given_part_size = args.part_size.map(|n| n as usize);
    let input = Input::open(&args.input, given_part_size)?;
    let part_size = input.part_size(given_part_size);
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
    let form = match (&input, model.max_batch_size()) {
        (Input::Files(_), _) if input.all_npz() => RowForm::Whole,
        (_, Some(_)) => RowForm::Sliced,
        _ if model.text.is_some() => RowForm::Sliced,
        _ => RowForm::Whole,
    };
    let table = table_plan(&input, &model, form, args)?;
    let job = JobSpec::new(&model.name, model.version, &input, part_size, args.format);
    job.claim(&args.output)?;
    let options = ServiceOptions {
        max_image_pixels: args.max_image_pixels,
        ..ServiceOptions::default()
    };
    let scorer = Scorer {
        service: Service::new(Arc::new(registry), options),
        schema: Arc::new(OutputSchema::new(&model, form, args.top_k)),
        inputs: Arc::new(table.as_ref().map(|t| t.inputs.clone()).unwrap_or_default()),
        batched: form == RowForm::Sliced,
        batch_size: model.max_batch_size().unwrap_or(batch_size).min(batch_size),
        in_flight: 2 * model.instance_count.max(1),
        queue_slots: Arc::new(Semaphore::new(model.scheduler.policy().max_queue_size)),
        model: model.clone(),
    };
    let writer = PartWriter {
        format: args.format,
        key: match input {
            Input::Files(_) => KeyKind::Text,
            Input::Table(_) => KeyKind::Int,
        },
        id: table.as_ref().and_then(|t| t.id),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
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
    let progress = Progress::new(todo.iter().map(|&p| job.range(p).len()).sum());
    let run = Arc::new(Run {
        scorer,
        input,
        table,
        job,
        output: args.output.clone(),
        writer,
        progress,
    });
    runtime.block_on(run.clone().parts(todo))?;
    run.progress.finish(&args.output);
    Ok(())
}

/// Parts scored and written at once; the next part of a table is read meanwhile.
const PARTS_IN_FLIGHT: usize = 2;

/// A part ready to score: its number and, for a table, its rows.
type ReadPart = (usize, Option<Arc<dyn table::PartRows>>);

/// A job while it runs: what every part shares.
struct Run {
    scorer: Scorer,
    input: Input,
    table: Option<TablePlan>,
    job: JobSpec,
    output: PathBuf,
    writer: PartWriter,
    progress: Progress,
}

impl Run {
    /// Scores and commits `todo`, `PARTS_IN_FLIGHT` at a time; the first failure stops it.
    /// A table's parts are read by one task, one after another in part order, at most two
    /// parts ahead of those in flight (one queued, one waiting to be), so a Parquet reader
    /// goes on from where the last part stopped and the engines never wait for a read.
    async fn parts(self: Arc<Self>, todo: Vec<usize>) -> Result<(), String> {
        let (ready, mut next) = tokio::sync::mpsc::channel::<Result<ReadPart, String>>(1);
        let reader = tokio::spawn(self.clone().read_parts(todo, ready));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.len() >= PARTS_IN_FLIGHT {
                join_part(&mut tasks).await?;
            }
            let Some(read) = next.recv().await else { break };
            let (part, rows) = read?;
            tasks.spawn(self.clone().part(part, rows));
        }
        while !tasks.is_empty() {
            join_part(&mut tasks).await?;
        }
        reader
            .await
            .map_err(|e| format!("reading the parts failed: {e}"))
    }

    /// Reads `todo`'s parts in order into `ready` (for files there is nothing to read); stops
    /// at the first failure or when nobody waits for more.
    async fn read_parts(
        self: Arc<Self>,
        todo: Vec<usize>,
        ready: tokio::sync::mpsc::Sender<Result<ReadPart, String>>,
    ) {
        for part in todo {
            let read = match self.table {
                Some(_) => {
                    let this = self.clone();
                    match tokio::task::spawn_blocking(move || this.read_part(part)).await {
                        Ok(Ok(rows)) => Ok((part, Some(rows))),
                        Ok(Err(why)) => Err(why),
                        Err(e) => Err(format!("reading a part failed: {e}")),
                    }
                }
                None => Ok((part, None)),
            };
            let failed = read.is_err();
            if ready.send(read).await.is_err() || failed {
                return;
            }
        }
    }

    /// Scores and commits a part: a table's `rows`, already read, or the part's files.
    async fn part(
        self: Arc<Self>,
        part: usize,
        rows: Option<Arc<dyn table::PartRows>>,
    ) -> Result<(), String> {
        let range = self.job.range(part);
        let scored = |n: usize| self.progress.rows_scored(n);
        let rows = match (&self.input, rows) {
            (Input::Files(items), _) => self.scorer.files(&items[range], &scored).await?,
            (Input::Table(_), Some(rows)) => self.scorer.rows(rows, range.start, &scored).await?,
            (Input::Table(_), None) => return Err("a table needs its columns".into()),
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.commit_part(part, &rows))
            .await
            .map_err(|e| format!("writing a part failed: {e}"))?
    }

    fn read_part(&self, part: usize) -> Result<Arc<dyn table::PartRows>, String> {
        match (&self.input, &self.table) {
            (Input::Table(source), Some(plan)) => {
                let range = self.job.range(part);
                Ok(Arc::from(source.read_part(part, range, &plan.columns)?))
            }
            _ => Err("a table needs its columns".into()),
        }
    }

    fn commit_part(&self, part: usize, rows: &[ScoredRow]) -> Result<(), String> {
        let name = self.job.part_name(part);
        let errors = rows.iter().filter(|row| row.outcome.is_err()).count();
        let bytes = self.writer.bytes(&self.scorer.schema, rows)?;
        remove_leftovers(&self.output, &name).map_err(|e| format!("{name}: {e}"))?;
        commit(&self.output, &name, &bytes)
            .map_err(|e| format!("{}: {e}", self.output.join(&name).display()))?;
        self.progress.part_done(&name, rows.len(), errors);
        Ok(())
    }
}

/// Waits for one part in flight to be committed.
async fn join_part(tasks: &mut tokio::task::JoinSet<Result<(), String>>) -> Result<(), String> {
    match tasks.join_next().await {
        Some(done) => done.map_err(|e| format!("a part's task failed: {e}"))?,
        None => Ok(()),
    }
}

/// How a part's rows become a part file.
#[cfg_attr(not(feature = "parquet"), allow(dead_code))]
struct PartWriter {
    format: Format,
    key: KeyKind,
    id: Option<KeyKind>,
}

impl PartWriter {
    fn bytes(&self, schema: &OutputSchema, rows: &[ScoredRow]) -> Result<Vec<u8>, String> {
        match self.format {
            Format::Jsonl => Ok(output::json_lines(schema, rows)),
            #[cfg(feature = "parquet")]
            Format::Parquet => parquet_out::parquet_part(schema, self.key, self.id, rows),
            #[cfg(not(feature = "parquet"))]
            Format::Parquet => Err(table::NO_PARQUET.to_string()),
        }
    }
}

/// What a table feeds the model: the columns, the inputs they fill, the id column's type.
struct TablePlan {
    columns: Resolved<String>,
    inputs: Vec<TensorInfo>,
    id: Option<KeyKind>,
}

/// For a table: which columns feed the model's inputs (a text model's `text`), checked
/// against the table before any work; rows stack on a batch axis in the `Sliced` form.
fn table_plan(
    input: &Input,
    model: &ServedModel,
    form: RowForm,
    args: &BatchArgs,
) -> Result<Option<TablePlan>, String> {
    let Input::Table(table) = input else {
        if !args.columns.is_empty() || args.id_column.is_some() {
            return Err("--column and --id-column are for tables; the input is a folder".into());
        }
        return Ok(None);
    };
    let inputs = match model.text {
        Some(_) => vec![TensorInfo {
            name: TEXT_INPUT.to_string(),
            dtype: DType::String,
            shape: Some(vec![Dim::Symbolic("batch".into())]),
        }],
        None => model.metadata.inputs.clone(),
    };
    for info in &inputs {
        builder::InputColumn::new(info, form == RowForm::Sliced)?;
    }
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let columns = Columns::new(
        &names,
        &args.columns,
        args.id_column.as_deref(),
        table.columns(),
    )?
    .resolved;
    table.check(&columns, &inputs)?;
    let id = columns.id.as_ref().map(|column| id_kind(table, column));
    Ok(Some(TablePlan {
        columns,
        inputs,
        id,
    }))
}

/// The id column's type in the output: a Parquet column's own, text for CSV, the first
/// row's for JSON lines.
fn id_kind(table: &Table, column: &str) -> KeyKind {
    match table {
        #[cfg(feature = "parquet")]
        Table::Parquet(t) => t.id_kind(column),
        Table::Csv(_) => KeyKind::Text,
        Table::JsonLines(t) => t.first_value(column).map_or(KeyKind::Text, KeyKind::of),
    }
}
