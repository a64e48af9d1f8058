//! A model version being served: what protocols need to know about it, and its scheduler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::engine::{Device, EngineConfig};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::metadata::ModelMetadata;
use crate::model::{EngineLoader, LoadedModel};
use crate::repository::{ModelEntry, ModelVersion};
use crate::serving::batch::supports_batching;
use crate::serving::metrics::Metrics;
use crate::serving::scheduler::{BatchPolicy, Scheduler};

/// Serving defaults, overridden per model by `model.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServingDefaults {
    pub policy: BatchPolicy,
    pub instances: usize,
}

/// Identifies the files a served version came from, to notice when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub version: u64,
    pub files: Vec<(String, Option<SystemTime>, u64)>,
}

impl Fingerprint {
    pub fn of(entry: &ModelEntry, version: &ModelVersion) -> Fingerprint {
        let stamp = |path: std::path::PathBuf| {
            let meta = std::fs::metadata(&path).ok();
            (
                path.display().to_string(),
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map_or(0, |m| m.len()),
            )
        };
        let manifest = crate::manifest::MANIFEST_FILE;
        Fingerprint {
            version: version.number(),
            files: vec![
                stamp(version.model_path()),
                stamp(version.dir.join(manifest)),
                stamp(entry.dir.join(manifest)),
            ],
        }
    }
}

/// A loaded, warmed model version and the queue in front of its engines.
#[derive(Debug)]
pub struct ServedModel {
    pub name: String,
    pub version: u64,
    pub metadata: ModelMetadata,
    pub manifest: Manifest,
    pub labels: BTreeMap<String, Vec<String>>,
    pub engine: &'static str,
    pub device: Device,
    pub batchable: bool,
    pub scheduler: Scheduler,
    pub fingerprint: Fingerprint,
}

impl ServedModel {
    /// Loads `instances` engines for `version` (each warmed up) and starts their scheduler.
    pub fn load(
        entry: &ModelEntry,
        version: &ModelVersion,
        loader: &EngineLoader,
        config: &EngineConfig,
        defaults: ServingDefaults,
        metrics: &Metrics,
    ) -> Result<Arc<ServedModel>> {
        let fingerprint = Fingerprint::of(entry, version);
        let first = LoadedModel::load(entry, version, loader, config)?;
        let manifest = first.manifest.clone();
        let instances = manifest.instances.unwrap_or(defaults.instances).max(1);
        let policy = BatchPolicy {
            max_batch_size: manifest
                .max_batch_size
                .unwrap_or(defaults.policy.max_batch_size),
            max_queue_delay: manifest
                .max_queue_delay_us
                .map(std::time::Duration::from_micros)
                .unwrap_or(defaults.policy.max_queue_delay),
            max_queue_size: manifest
                .max_queue_size
                .unwrap_or(defaults.policy.max_queue_size)
                .max(1),
        };
        let metadata = first.engine.metadata().clone();
        let batchable = supports_batching(&metadata);
        let engine = first.engine.name();
        let device = first.engine.device();
        let labels = first.labels;
        let mut engines = vec![first.engine];
        for _ in 1..instances {
            let more = LoadedModel::load(entry, version, loader, config)?;
            engines.push(more.engine);
        }
        if instances > 1 && engines.iter().any(|e| e.device() != device) {
            return Err(Error::Engine {
                engine,
                message: "engine instances started on different devices".into(),
            });
        }
        let scheduler = Scheduler::start(&entry.name, engines, batchable, policy, metrics.clone());
        Ok(Arc::new(ServedModel {
            name: entry.name.clone(),
            version: version.number(),
            metadata,
            manifest,
            labels,
            engine,
            device,
            batchable,
            scheduler,
            fingerprint,
        }))
    }

    /// The most rows merged into one engine run (`None`: batching off).
    pub fn max_batch_size(&self) -> Option<usize> {
        let max = self.scheduler.policy().max_batch_size;
        (self.batchable && max > 0).then_some(max)
    }
}
