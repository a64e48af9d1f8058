//! The models being served, by name. Loading a new version is an atomic swap: it loads and
//! warms beside the serving one, which keeps serving if the load fails and finishes its
//! queued requests after the swap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use destino_core::Error;
use destino_core::engine::{EngineConfig, EngineLoader};
use destino_core::repository::{ModelEntry, ModelVersion, Repository, is_valid_model_name};

use crate::metrics::Metrics;
use crate::served::{Fingerprint, LoadContext, ServedModel, ServingDefaults, Supervision};

/// A model's state, as Triton's repository index names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    Loading,
    Ready,
    Unavailable,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Loading => "LOADING",
            ModelState::Ready => "READY",
            ModelState::Unavailable => "UNAVAILABLE",
        }
    }
}

/// One row of the repository index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub name: String,
    pub version: Option<u64>,
    pub state: ModelState,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Worded as Triton words it (its client examples match on it), then destino's detail.
    #[error("Request for unknown model: '{0}' is not found")]
    UnknownModel(String),
    #[error(
        "Request for unknown model: '{name}' version {version} is not found (serving: version {serving})"
    )]
    UnknownVersion {
        name: String,
        version: String,
        serving: String,
    },
    #[error("model `{name}` is not ready: {reason}")]
    NotReady { name: String, reason: String },
    #[error("invalid model name `{0}`: use letters, digits, `_`, `-` and `.`")]
    InvalidName(String),
    #[error("loading model `{name}` failed: {source}")]
    Load { name: String, source: Error },
}

/// `name`'s entry in the repository and its newest version.
fn newest<'r>(
    repository: &'r Repository,
    name: &str,
) -> Option<(&'r ModelEntry, &'r ModelVersion)> {
    repository
        .get(name)
        .and_then(|entry| Some((entry, entry.newest()?)))
}

/// Load parameters (Triton's `config`, `file:...`) are refused, not ignored: destino loads
/// the newest version of the model's folder as the repository holds it.
pub fn refuse_load_parameters<'a>(
    names: impl Iterator<Item = &'a String>,
) -> Result<(), crate::error::ApiError> {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        return Ok(());
    }
    Err(crate::error::ApiError::invalid(format!(
        "load parameters are not supported ({}): destino loads the newest version from the model repository; put the files there",
        names.join(", ")
    )))
}

#[derive(Debug, Default)]
struct Slot {
    served: Option<Arc<ServedModel>>,
    state: Option<ModelState>,
    reason: String,
    /// The files of the last load attempt, so `--watch` retries only when they change.
    attempted: Option<Fingerprint>,
}

/// Everything needed to (re)load models, and the models being served.
#[derive(Debug)]
pub struct Registry {
    root: PathBuf,
    loader: LoaderDebug,
    config: EngineConfig,
    defaults: ServingDefaults,
    metrics: Metrics,
    supervision: Supervision,
    slots: RwLock<BTreeMap<String, Slot>>,
    /// Loads run one at a time, so two reloads of one model cannot race.
    load_lock: Mutex<()>,
    started: AtomicBool,
}

struct LoaderDebug(EngineLoader);

impl std::fmt::Debug for LoaderDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineLoader")
    }
}

impl Registry {
    pub fn new(
        root: PathBuf,
        loader: EngineLoader,
        config: EngineConfig,
        defaults: ServingDefaults,
        metrics: Metrics,
    ) -> Registry {
        Registry {
            root,
            loader: LoaderDebug(loader),
            config,
            defaults,
            metrics,
            supervision: Supervision::default(),
            slots: RwLock::default(),
            load_lock: Mutex::default(),
            started: AtomicBool::new(false),
        }
    }

    /// How engine threads are started and restarted (tests refuse threads on demand).
    pub fn with_supervision(mut self, supervision: Supervision) -> Registry {
        self.supervision = supervision;
        self
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Loads every model of the repository; a model that fails is reported and skipped.
    /// Readiness turns on afterwards.
    pub fn load_all(&self) -> Result<(), Error> {
        let repository = Repository::scan(&self.root)?;
        for (name, reason) in &repository.skipped {
            tracing::warn!(model = name, "skipped: {reason}");
        }
        for name in repository.models.keys() {
            // Failures are recorded in the model's slot and logged by `load`.
            let _ = self.load(name);
        }
        self.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Ready once startup loading finished, at least one model serves, and every model that
    /// serves has an engine running; otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.started.load(Ordering::Acquire) {
            return Err("models are still loading".into());
        }
        let served = self.served();
        if served.is_empty() {
            return Err("no model is loaded".into());
        }
        for model in &served {
            let status = model.instances();
            if status.live == 0 {
                let reason = status.problem.unwrap_or_default();
                return Err(format!(
                    "model `{}` has no engine running: {reason}",
                    model.name
                ));
            }
        }
        Ok(())
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Whether startup loading has finished (whatever it loaded).
    pub fn startup_done(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// The serving version of `name`, or the requested `version` when it is the one loaded.
    pub fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<ServedModel>, RegistryError> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        let slot = slots
            .get(name)
            .ok_or_else(|| RegistryError::UnknownModel(name.to_string()))?;
        let Some(served) = &slot.served else {
            let reason = match slot.state {
                Some(ModelState::Loading) => "loading".to_string(),
                _ => slot.reason.clone(),
            };
            return Err(RegistryError::NotReady {
                name: name.to_string(),
                reason,
            });
        };
        match version {
            Some(v) if v.parse::<u64>().ok() != Some(served.version) => {
                Err(RegistryError::UnknownVersion {
                    name: name.to_string(),
                    version: v.to_string(),
                    serving: served.version.to_string(),
                })
            }
            // Checked without a lock first: this runs on every request.
            _ if served.scheduler.live() > 0 => Ok(served.clone()),
            _ => {
                let status = served.instances();
                if status.live > 0 {
                    return Ok(served.clone());
                }
                Err(RegistryError::NotReady {
                    name: name.to_string(),
                    reason: format!(
                        "no engine running ({}); restarting",
                        status.problem.unwrap_or_default()
                    ),
                })
            }
        }
    }

    /// Every model serving now.
    pub fn served(&self) -> Vec<Arc<ServedModel>> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots.values().filter_map(|s| s.served.clone()).collect()
    }

    /// The only model serving now; otherwise how many serve (0, or several) for the caller
    /// to say why it cannot pick one.
    pub fn only_served(&self) -> Result<Arc<ServedModel>, usize> {
        let mut served = self.served();
        if served.len() == 1 {
            Ok(served.remove(0))
        } else {
            Err(served.len())
        }
    }

    /// The model a command that scores with one model uses: `name`'s newest version, or the
    /// only one serving when no name is given (`flag` is the option that names one).
    pub fn pick(&self, name: Option<&str>, flag: &str) -> Result<Arc<ServedModel>, String> {
        if let Some(name) = name {
            return self.get(name, None).map_err(|e| e.to_string());
        }
        self.only_served().map_err(|count| match count {
            0 => "no model could be loaded".into(),
            _ => format!("several models are served: name one with {flag}"),
        })
    }

    /// (Re)loads the newest version of `name` from the repository and swaps it in. Blocks for
    /// the load; the version serving meanwhile keeps serving, also when the load fails.
    pub fn load(&self, name: &str) -> Result<Arc<ServedModel>, RegistryError> {
        if !is_valid_model_name(name) {
            return Err(RegistryError::InvalidName(name.to_string()));
        }
        let _one_at_a_time = self
            .load_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let repository = Repository::scan(&self.root).map_err(|source| RegistryError::Load {
            name: name.to_string(),
            source,
        })?;
        let Some((entry, version)) = newest(&repository, name) else {
            return Err(RegistryError::UnknownModel(name.to_string()));
        };
        self.set_state(name, ModelState::Loading, Fingerprint::of(entry, version));
        tracing::info!(model = name, version = version.number(), "loading");
        let context = LoadContext {
            loader: &self.loader.0,
            config: &self.config,
            defaults: self.defaults,
            metrics: &self.metrics,
            supervision: &self.supervision,
        };
        let loaded = ServedModel::load(entry, version, &context);
        match loaded {
            Ok(served) => {
                tracing::info!(
                    model = name,
                    version = served.version,
                    engine = served.engine,
                    device = %served.device,
                    batching = served.max_batch_size().is_some(),
                    "ready"
                );
                self.swap_in(served.clone());
                Ok(served)
            }
            Err(source) => {
                tracing::error!(
                    model = name,
                    version = version.number(),
                    "load failed: {source}"
                );
                let reason = source.to_string();
                let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
                let slot = slots.entry(name.to_string()).or_default();
                slot.state = Some(if slot.served.is_some() {
                    ModelState::Ready
                } else {
                    ModelState::Unavailable
                });
                slot.reason = format!("last load failed: {reason}");
                Err(RegistryError::Load {
                    name: name.to_string(),
                    source,
                })
            }
        }
    }

    /// Takes the repository's newest version of `name` as the last one tried, so `--watch`
    /// does not reload what serves after a failed version was taken back out of the folder.
    pub fn settle(&self, name: &str) {
        let Ok(repository) = Repository::scan(&self.root) else {
            return;
        };
        let Some((entry, version)) = newest(&repository, name) else {
            return;
        };
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get_mut(name) {
            slot.attempted = Some(Fingerprint::of(entry, version));
        }
    }

    fn set_state(&self, name: &str, state: ModelState, attempted: Fingerprint) {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        let slot = slots.entry(name.to_string()).or_default();
        slot.attempted = Some(attempted);
        if slot.served.is_none() {
            slot.state = Some(state);
            slot.reason.clear();
        }
    }

    fn swap_in(&self, served: Arc<ServedModel>) {
        let name = served.name.clone();
        let old = {
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            let slot = slots.entry(name.clone()).or_default();
            slot.state = Some(ModelState::Ready);
            slot.reason.clear();
            slot.served.replace(served.clone())
        };
        if let Some(old) = old {
            self.set_info(&old, false);
        }
        self.set_info(&served, true);
        self.metrics.set_model_ready(&name, true);
    }

    fn set_info(&self, model: &ServedModel, serving: bool) {
        let device = model.device.to_string();
        self.metrics.set_model_info(
            &model.name,
            model.version,
            model.engine,
            &device,
            model.nodes_on_cpu,
            serving,
        );
    }

    /// Stops serving `name`; requests already queued still finish.
    pub fn unload(&self, name: &str) -> Result<(), RegistryError> {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        let slot = slots
            .get_mut(name)
            .ok_or_else(|| RegistryError::UnknownModel(name.to_string()))?;
        let old = slot.served.take();
        slot.state = Some(ModelState::Unavailable);
        slot.reason = "unloaded".into();
        drop(slots);
        if let Some(old) = old {
            self.set_info(&old, false);
            tracing::info!(model = name, version = old.version, "unloaded");
        }
        self.metrics.set_model_ready(name, false);
        Ok(())
    }

    /// Every model of the repository and every model known here, with its state.
    pub fn index(&self) -> Vec<IndexEntry> {
        let mut rows: BTreeMap<String, IndexEntry> = BTreeMap::new();
        if let Ok(repository) = Repository::scan(&self.root) {
            for entry in repository.models.values() {
                rows.insert(
                    entry.name.clone(),
                    IndexEntry {
                        name: entry.name.clone(),
                        version: entry.newest().map(|v| v.number()),
                        state: ModelState::Unavailable,
                        reason: "not loaded".into(),
                    },
                );
            }
        }
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        for (name, slot) in slots.iter() {
            let row = rows.entry(name.clone()).or_insert_with(|| IndexEntry {
                name: name.clone(),
                version: None,
                state: ModelState::Unavailable,
                reason: String::new(),
            });
            row.state = slot.state.unwrap_or(ModelState::Unavailable);
            row.reason = slot.reason.clone();
            if let Some(served) = &slot.served {
                row.version = Some(served.version);
                let status = served.instances();
                if status.live == 0 {
                    row.state = ModelState::Unavailable;
                    row.reason = format!(
                        "no engine running ({}); restarting",
                        status.problem.unwrap_or_default()
                    );
                } else if let Some(note) = &served.warmup
                    && row.reason.is_empty()
                {
                    row.reason = note.clone();
                }
            }
        }
        rows.into_values().collect()
    }

    /// Brings the served models in line with the repository: loads new models and changed
    /// files, unloads models whose folder is gone. Used by `--watch`.
    pub fn sync_with_repository(&self) {
        let Ok(repository) = Repository::scan(&self.root) else {
            tracing::warn!(root = %self.root.display(), "cannot read the model repository");
            return;
        };
        let attempted: BTreeMap<String, (Option<Fingerprint>, bool)> = {
            let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
            slots
                .iter()
                .map(|(name, s)| (name.clone(), (s.attempted.clone(), s.served.is_some())))
                .collect()
        };
        for entry in repository.models.values() {
            let Some(newest) = entry.newest() else {
                continue;
            };
            let current = Fingerprint::of(entry, newest);
            let last = attempted
                .get(&entry.name)
                .and_then(|(print, _)| print.as_ref());
            if last != Some(&current) {
                let _ = self.load(&entry.name);
            }
        }
        for (name, (_, serving)) in &attempted {
            // Only a removed folder unloads: a model file deleted or mid-replacement leaves
            // the loaded model serving.
            if *serving && repository.get(name).is_none() && !self.root.join(name).is_dir() {
                let _ = self.unload(name);
            }
        }
    }
}
