//! A model ready to serve: its engine, manifest and labels, loaded from the repository and
//! warmed up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::engine::{Engine, EngineConfig};
use crate::error::Result;
use crate::manifest::Manifest;
use crate::postprocess::load_labels;
use crate::repository::{ModelEntry, ModelVersion};

/// A loaded model version.
pub struct LoadedModel {
    pub name: String,
    pub version: u64,
    pub engine: Box<dyn Engine>,
    pub manifest: Manifest,
    /// Labels per output name, from the manifest's `labels` files.
    pub labels: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("engine", &self.engine.name())
            .finish_non_exhaustive()
    }
}

/// Loads one engine for a model file; lets callers pick the runtime (and any fallback) at
/// run time.
pub type EngineLoader = Arc<dyn Fn(&Path, &EngineConfig) -> Result<Box<dyn Engine>> + Send + Sync>;

/// The `EngineLoader` of engine type `E`.
pub fn loader<E: Engine + 'static>() -> EngineLoader {
    Arc::new(|path, config| Ok(Box::new(E::load(path, config)?)))
}

impl LoadedModel {
    /// Loads `version` of `entry`: manifest (checked against the model), labels, engine, then
    /// one warm-up inference where the input shapes are known.
    pub fn load(
        entry: &ModelEntry,
        version: &ModelVersion,
        load: &EngineLoader,
        config: &EngineConfig,
    ) -> Result<LoadedModel> {
        let (manifest, base) = version.manifest(&entry.dir)?;
        let mut engine = load(&version.model_path(), config)?;
        manifest.check(
            engine.metadata(),
            &base.join(crate::manifest::MANIFEST_FILE),
        )?;
        let mut labels = BTreeMap::new();
        for (output, spec) in &manifest.outputs {
            if let Some(file) = &spec.labels {
                labels.insert(output.clone(), load_labels(&base.join(file))?);
            }
        }
        if let Some(inputs) = engine.metadata().example_inputs() {
            engine.run(&inputs)?;
        }
        Ok(LoadedModel {
            name: entry.name.clone(),
            version: version.number(),
            engine,
            manifest,
            labels,
        })
    }
}
