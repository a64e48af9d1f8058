//! destino's folder transport (`destino-edge watch DIR`): score each file dropped into a
//! folder. The answer goes next
//! to the file as `<file>.json` (written atomically), or as one line of a JSON-lines file.
//! A file is scored once it has stopped growing between two polls; files already answered
//! (a `.json` beside them, or a line in the JSON-lines file) are not scored again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use clap::Args;
use destino_core::engine::{EngineConfig, EngineLoader};
use destino_serving::message::{error_json, score_message};
use destino_serving::{
    BatchPolicy, Metrics, Registry, ServedModel, Service, ServiceOptions, ServingDefaults,
};
use serde_json::Value;

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// The folder whose image files are scored.
    pub dir: PathBuf,
    #[arg(long, env = "DESTINO_MODEL_REPOSITORY", default_value = "models")]
    pub model_repository: PathBuf,
    /// The model that scores the files (needed when the repository serves several).
    #[arg(long, env = "DESTINO_WATCH_MODEL")]
    pub model: Option<String>,
    /// Append answers to this JSON-lines file instead of writing `<file>.json` beside each file.
    #[arg(long)]
    pub jsonl: Option<PathBuf>,
    /// How often the folder is listed, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Classes per image.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Largest decoded image, in pixels (checked before decoding).
    #[arg(long, default_value_t = destino_core::preprocess::DEFAULT_MAX_PIXELS)]
    pub max_image_pixels: u64,
    /// Score the files present now, then exit.
    #[arg(long)]
    pub once: bool,
}

/// Scores the folder's files with models `loader` loads, until stopped (or once).
pub fn run(args: &WatchArgs, loader: EngineLoader, engine: EngineConfig) -> ExitCode {
    let fail = |message: String| {
        eprintln!("destino-edge: {message}");
        ExitCode::FAILURE
    };
    if !args.dir.is_dir() {
        return fail(format!("{} is not a folder", args.dir.display()));
    }
    let defaults = ServingDefaults {
        policy: BatchPolicy {
            max_batch_size: 1,
            max_queue_delay: Duration::ZERO,
            max_queue_size: 16,
        },
        instances: destino_serving::Instances::Fixed(1),
    };
    let registry = Registry::new(
        args.model_repository.clone(),
        loader,
        engine,
        defaults,
        Metrics::new(),
    );
    if let Err(e) = registry.load_all() {
        return fail(e.to_string());
    }
    let model = match registry.pick(args.model.as_deref(), "--model") {
        Ok(model) => model,
        Err(e) => return fail(e),
    };
    let options = ServiceOptions {
        max_image_pixels: args.max_image_pixels,
        ..ServiceOptions::default()
    };
    let service = Service::new(Arc::new(registry), options);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let mut watcher = Watcher::new(args);
    println!(
        "watching {} with {} v{}",
        args.dir.display(),
        model.name,
        model.version
    );
    loop {
        let ready = watcher.ready_files(args.once);
        for path in ready {
            let answer = runtime.block_on(score_file(&service, &model, &path, args.top_k));
            if let Err(e) = watcher.record(&path, answer) {
                return fail(e);
            }
        }
        if args.once {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms.max(10)));
    }
}

/// The answer for one file: the prediction, or the error, with the file's name.
async fn score_file(
    service: &Service,
    model: &Arc<ServedModel>,
    path: &Path,
    top_k: Option<usize>,
) -> Value {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut answer = match std::fs::read(path) {
        Ok(bytes) => match score_message(service, model, Bytes::from(bytes), top_k).await {
            Ok(encoded) => serde_json::from_slice(&encoded.body).unwrap_or(Value::Null),
            Err(e) => error_json(&e, None),
        },
        Err(e) => serde_json::json!({ "error": format!("cannot read the file: {e}") }),
    };
    answer["file"] = Value::from(name);
    answer
}

/// What the folder held at the last poll, and what has been answered.
struct Watcher {
    dir: PathBuf,
    jsonl: Option<PathBuf>,
    answered: BTreeSet<PathBuf>,
    last_seen: BTreeMap<PathBuf, (u64, Option<SystemTime>)>,
}

impl Watcher {
    fn new(args: &WatchArgs) -> Watcher {
        let mut answered = BTreeSet::new();
        if let Some(jsonl) = &args.jsonl {
            // Files named in an existing JSON-lines file were answered by an earlier run.
            for line in std::fs::read_to_string(jsonl).unwrap_or_default().lines() {
                if let Some(file) = serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|v| v["file"].as_str().map(str::to_string))
                {
                    answered.insert(args.dir.join(file));
                }
            }
        }
        Watcher {
            dir: args.dir.clone(),
            jsonl: args.jsonl.clone(),
            answered,
            last_seen: BTreeMap::new(),
        }
    }

    /// Unanswered files whose size and modification time did not change since the last poll
    /// (all unanswered files when `now`).
    fn ready_files(&mut self, now: bool) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut current = BTreeMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || !is_candidate(&path) || self.is_answered(&path) {
                continue;
            }
            current.insert(path, (meta.len(), meta.modified().ok()));
        }
        let ready = current
            .iter()
            .filter(|(path, stamp)| now || self.last_seen.get(*path) == Some(stamp))
            .map(|(path, _)| path.clone())
            .collect();
        self.last_seen = current;
        ready
    }

    fn is_answered(&self, path: &Path) -> bool {
        match &self.jsonl {
            Some(_) => self.answered.contains(path),
            None => sidecar(path).exists(),
        }
    }

    fn record(&mut self, path: &Path, answer: Value) -> Result<(), String> {
        let outcome = match answer.get("error").and_then(Value::as_str) {
            Some(error) => format!("error: {error}"),
            None => "scored".to_string(),
        };
        match &self.jsonl {
            Some(jsonl) => {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(jsonl)
                    .map_err(|e| format!("cannot open {}: {e}", jsonl.display()))?;
                writeln!(file, "{answer}")
                    .map_err(|e| format!("cannot write {}: {e}", jsonl.display()))?;
            }
            None => {
                let target = sidecar(path);
                let partial = target.with_extension("json.partial");
                std::fs::write(&partial, format!("{answer}\n"))
                    .and_then(|()| std::fs::rename(&partial, &target))
                    .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
            }
        }
        self.answered.insert(path.to_path_buf());
        println!("{}: {outcome}", path.display());
        Ok(())
    }
}

/// `<file>.json` beside `path`.
fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Files that may be images: not hidden, not our own answers.
fn is_candidate(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    !(name.starts_with('.')
        || name.ends_with(".json")
        || name.ends_with(".jsonl")
        || name.ends_with(".partial"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_hidden_files_are_not_candidates() {
        assert!(is_candidate(Path::new("/in/cat.jpg")));
        assert!(!is_candidate(Path::new("/in/cat.jpg.json")));
        assert!(!is_candidate(Path::new("/in/.cat.jpg.swp")));
        assert!(!is_candidate(Path::new("/in/x.json.partial")));
        assert_eq!(
            sidecar(Path::new("/in/cat.jpg")),
            Path::new("/in/cat.jpg.json")
        );
    }
}
