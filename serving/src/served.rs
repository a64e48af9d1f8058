//! A model version being served: what protocols need to know about it, and its scheduler.
//! Loading reads the manifest (checked against the model), the labels, and one engine per
//! instance, each warmed up (`warmup.rs`) before it serves.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use destino_core::engine::{Device, EngineConfig, EngineLoader};
use destino_core::manifest::{MANIFEST_FILE, Manifest};
use destino_core::metadata::ModelMetadata;
use destino_core::postprocess::load_labels;
use destino_core::repository::{FileStamp, ModelEntry, ModelVersion};
use destino_core::text::{TOKENIZER_FILE, TextModel, find_tokenizer};
use destino_core::{Engine, Error, Result};

use crate::batch::supports_batching;
use crate::instances::Instances;
use crate::metrics::{Metrics, RequestMetrics};
use crate::scheduler::{
    BatchPolicy, EngineFactory, InstanceStatus, RestartPolicy, Scheduler, SchedulerConfig, Spawn,
};
use crate::stats::Stats;
use crate::warmup::{Warmup, WarmupNote};

/// Serving defaults, overridden per model by `model.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServingDefaults {
    pub policy: BatchPolicy,
    pub instances: Instances,
}

/// Identifies the files a served version came from, to notice when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub version: u64,
    pub files: Vec<(PathBuf, Option<FileStamp>)>,
}

impl Fingerprint {
    pub fn of(entry: &ModelEntry, version: &ModelVersion) -> Fingerprint {
        let stamp = |path: PathBuf| {
            let stamp = FileStamp::of(&path);
            (path, stamp)
        };
        Fingerprint {
            version: version.number(),
            files: vec![
                stamp(version.model_path()),
                stamp(version.dir.join(MANIFEST_FILE)),
                stamp(entry.dir.join(MANIFEST_FILE)),
                stamp(version.dir.join(TOKENIZER_FILE)),
                stamp(entry.dir.join(TOKENIZER_FILE)),
            ],
        }
    }
}

/// How engine threads are started and restarted (tests replace the thread spawner).
#[derive(Clone)]
pub struct Supervision {
    pub restart: RestartPolicy,
    pub spawn: Spawn,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            restart: RestartPolicy::default(),
            spawn: crate::scheduler::std_spawn(),
        }
    }
}

impl std::fmt::Debug for Supervision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervision")
            .field("restart", &self.restart)
            .finish_non_exhaustive()
    }
}

/// Everything loading a model version needs besides the model.
#[derive(Clone)]
pub struct LoadContext<'a> {
    pub loader: &'a EngineLoader,
    pub config: &'a EngineConfig,
    pub defaults: ServingDefaults,
    pub metrics: &'a Metrics,
    pub supervision: &'a Supervision,
}

impl std::fmt::Debug for LoadContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadContext")
            .field("config", self.config)
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

/// A loaded model version and the queue in front of its engines.
#[derive(Debug)]
pub struct ServedModel {
    pub name: String,
    pub version: u64,
    pub metadata: ModelMetadata,
    pub manifest: Manifest,
    pub labels: BTreeMap<String, Vec<String>>,
    /// The tokenizer and pooling of a text model.
    pub text: Option<Arc<TextModel>>,
    pub engine: &'static str,
    pub device: Device,
    /// Computing nodes left on the CPU beside `device`, when the engine places nodes one
    /// by one and has planned the model (its warm-up did).
    pub nodes_on_cpu: Option<usize>,
    pub batchable: bool,
    pub scheduler: Scheduler,
    pub fingerprint: Fingerprint,
    /// What went wrong warming the first instance up, if anything (it serves regardless).
    pub warmup: WarmupNote,
    /// Triton's statistics of this version.
    pub stats: Arc<Stats>,
    /// Engine instances serving it.
    pub instance_count: usize,
    /// Its successful requests in the metrics.
    pub request_metrics: RequestMetrics,
}

impl ServedModel {
    /// Loads one engine per instance for `version`, warms each up, and starts their scheduler.
    pub fn load(
        entry: &ModelEntry,
        version: &ModelVersion,
        context: &LoadContext<'_>,
    ) -> Result<Arc<ServedModel>> {
        let fingerprint = Fingerprint::of(entry, version);
        let (manifest, base) = version.manifest(&entry.dir)?;
        let path = version.model_path();
        let model_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        let instances = match manifest.instances {
            Some(n) => n.max(1),
            None => context.defaults.instances.count(
                model_bytes,
                context.config.threads,
                context.config.device != Device::Cpu,
            ),
        };
        let config = EngineConfig {
            instances,
            ..context.config.clone()
        };
        let mut first = (context.loader)(&path, &config)?;
        manifest.check(first.metadata(), &base.join(MANIFEST_FILE))?;
        let mut labels = BTreeMap::new();
        for (output, spec) in &manifest.outputs {
            if let Some(file) = &spec.labels {
                labels.insert(output.clone(), load_labels(&base.join(file))?);
            }
        }
        let metadata = first.metadata().clone();
        let text = load_text(entry, version, &manifest, &base, &metadata)?;
        let warmup = Arc::new(Warmup::for_model(
            &metadata,
            &manifest,
            &base,
            text.as_deref(),
        ));
        let note = warmup.run(first.as_mut());
        if let Some(note) = &note {
            tracing::warn!(model = entry.name, version = version.number(), "{note}");
        }
        let factory = instance_factory(context.loader.clone(), path, config, warmup);
        let (engine, device, nodes_on_cpu) = (first.name(), first.device(), first.nodes_on_cpu());
        let mut engines = vec![first];
        for _ in 1..instances {
            engines.push(factory()?);
        }
        if engines.iter().any(|e| e.device() != device) {
            return Err(Error::Engine {
                engine,
                message: "engine instances started on different devices".into(),
            });
        }
        let policy = batch_policy(&manifest, context.defaults.policy);
        // A text model's token rows are its batch, whatever names its exporter gave axis 0.
        let batchable = supports_batching(&metadata) || text.as_ref().is_some_and(|t| t.batches());
        let stats = Arc::new(Stats::default());
        let config = SchedulerConfig {
            policy,
            batchable,
            factory,
            restart: context.supervision.restart,
            spawn: context.supervision.spawn.clone(),
            metrics: context.metrics.clone(),
            stats: stats.clone(),
        };
        let scheduler = Scheduler::start(&entry.name, engines, config);
        Ok(Arc::new(ServedModel {
            name: entry.name.clone(),
            version: version.number(),
            metadata,
            manifest,
            labels,
            text,
            engine,
            device,
            nodes_on_cpu,
            batchable,
            scheduler,
            fingerprint,
            warmup: note,
            stats,
            instance_count: instances,
            request_metrics: context.metrics.requests_of(&entry.name, version.number()),
        }))
    }

    /// The most rows merged into one engine run (`None`: batching off).
    pub fn max_batch_size(&self) -> Option<usize> {
        let max = self.scheduler.policy().max_batch_size;
        (self.batchable && max > 0 && self.scheduler.batching()).then_some(max)
    }

    /// Its engine instances now.
    pub fn instances(&self) -> InstanceStatus {
        self.scheduler.status()
    }
}

/// The model's batching policy: `model.toml` where it says, the server's defaults otherwise.
fn batch_policy(manifest: &Manifest, defaults: BatchPolicy) -> BatchPolicy {
    BatchPolicy {
        max_batch_size: manifest.max_batch_size.unwrap_or(defaults.max_batch_size),
        max_queue_delay: manifest
            .max_queue_delay_us
            .map(Duration::from_micros)
            .unwrap_or(defaults.max_queue_delay),
        max_queue_size: manifest
            .max_queue_size
            .unwrap_or(defaults.max_queue_size)
            .max(1),
    }
}

/// The model's tokenizer, when it has one. A `tokenizer.json` that does not fit a model whose
/// manifest has no `[text]` section is reported, not fatal: the model still serves tensors.
fn load_text(
    entry: &ModelEntry,
    version: &ModelVersion,
    manifest: &Manifest,
    base: &std::path::Path,
    metadata: &ModelMetadata,
) -> Result<Option<Arc<TextModel>>> {
    let spec = manifest.text.as_ref();
    let Some(path) = find_tokenizer(spec, base, &[&version.dir, &entry.dir]) else {
        return match spec {
            Some(_) => Err(Error::Manifest {
                path: base.join(MANIFEST_FILE),
                reason: format!("[text] needs a tokenizer; there is no {TOKENIZER_FILE}"),
            }),
            None => Ok(None),
        };
    };
    match TextModel::load(&path, metadata, &spec.cloned().unwrap_or_default()) {
        Ok(text) => Ok(Some(Arc::new(text))),
        Err(e) if spec.is_some() => Err(e),
        Err(e) => {
            tracing::warn!(
                model = entry.name,
                version = version.number(),
                "{} is not used, the model serves tensors only: {e}",
                path.display()
            );
            Ok(None)
        }
    }
}

/// Loads and warms a further engine instance of the same file, the same way.
fn instance_factory(
    loader: EngineLoader,
    path: PathBuf,
    config: EngineConfig,
    warmup: Arc<Warmup>,
) -> EngineFactory {
    Arc::new(move || {
        let mut engine: Box<dyn Engine> = loader(&path, &config)?;
        warmup.run(engine.as_mut());
        Ok(engine)
    })
}
