//! Fleet updates: a document names a model version by URL and checksum; the version is
//! downloaded (resuming), verified (sha256, optionally an ed25519 signature), installed into
//! `MODEL/VERSION/` by one rename, loaded and warmed beside the serving version, switched to
//! atomically, and old versions pruned. Any failure leaves the serving version serving; a
//! crash at any step leaves the old or the new version complete, and the next start
//! finishes the update ([`staging`]).

pub mod fetch;
pub mod install;
pub mod staging;
mod stall;
pub mod verify;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use destino_serving::update::{
    ModelUpdates, StatusListener, UpdateDocument, UpdateState, UpdateStatus,
};
use destino_serving::{ApiError, ErrorKind, Registry};

pub use fetch::FetchOptions;
pub use verify::PublicKey;

use crate::fetch::Fetcher;
use crate::install::Installed;
use crate::staging::Staging;
use crate::verify::sha256_file;

/// How updates are checked and kept.
#[derive(Debug, Clone)]
pub struct UpdateConfig {
    /// When set, only documents signed with this key are taken.
    pub public_key: Option<PublicKey>,
    /// Numbered versions kept per model after an update (the serving one included).
    pub keep_versions: usize,
    pub fetch: FetchOptions,
}

/// Applies update documents to one registry's repository, one at a time.
#[derive(Debug)]
pub struct Updater {
    registry: Arc<Registry>,
    config: UpdateConfig,
    fetcher: Fetcher,
    one_at_a_time: Mutex<()>,
    listeners: Mutex<Vec<Listener>>,
    /// The last status of each model, for listeners that come later.
    last: Mutex<BTreeMap<String, UpdateStatus>>,
}

struct Listener(StatusListener);

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

/// How an update ended badly: the state it ends in and why.
type Failure = (UpdateState, ApiError);

impl Updater {
    pub fn new(registry: Arc<Registry>, config: UpdateConfig) -> Result<Updater, String> {
        let fetcher = Fetcher::new(config.fetch.clone())?;
        Ok(Updater {
            registry,
            config,
            fetcher,
            one_at_a_time: Mutex::default(),
            listeners: Mutex::default(),
            last: Mutex::default(),
        })
    }

    fn root(&self) -> &Path {
        self.registry.root()
    }

    /// Before the repository loads: undoes what a crash left half done. The updates it
    /// interrupted are finished by [`Updater::finish_in_background`].
    pub fn recover(&self) -> Vec<UpdateDocument> {
        staging::recover(self.root())
    }

    /// Once startup loading is done, finishes the interrupted updates on a thread of its own.
    pub fn finish_in_background(self: &Arc<Self>, pending: Vec<UpdateDocument>) {
        if pending.is_empty() {
            return;
        }
        let updater = self.clone();
        let spawned = std::thread::Builder::new()
            .name("model-updates".into())
            .spawn(move || {
                while !updater.registry.startup_done() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                for document in pending {
                    tracing::info!(
                        model = document.model,
                        version = document.version,
                        "finishing an interrupted update"
                    );
                    updater.apply(document, &|_| {});
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the update thread: {e}");
        }
    }

    fn emit(&self, status: &UpdateStatus, report: &(dyn Fn(&UpdateStatus) + Sync)) {
        match status.state {
            UpdateState::Failed | UpdateState::RolledBack => tracing::warn!(
                model = status.model,
                version = status.version,
                state = ?status.state,
                reason = status.reason.as_deref().unwrap_or_default(),
                "update"
            ),
            _ => {
                tracing::info!(model = status.model, version = status.version, state = ?status.state, "update")
            }
        }
        report(status);
        let listeners: Vec<StatusListener> =
            lock(&self.listeners).iter().map(|l| l.0.clone()).collect();
        for listener in listeners {
            listener(status);
        }
        lock(&self.last).insert(status.model.clone(), status.clone());
    }

    /// The update's steps; `Ok` is the `ready` status. An update that ends for any reason
    /// but the network leaves nothing staged, so no later start tries it again.
    fn run(
        &self,
        document: &UpdateDocument,
        step: &dyn Fn(UpdateState),
    ) -> Result<UpdateStatus, Failure> {
        let ended = self.steps(document, step);
        if let Err((_, e)) = &ended
            && e.reason != fetch::NETWORK
        {
            Staging::remove(self.root(), document);
        }
        ended
    }

    fn steps(
        &self,
        document: &UpdateDocument,
        step: &dyn Fn(UpdateState),
    ) -> Result<UpdateStatus, Failure> {
        let failed = |e| (UpdateState::Failed, e);
        if let Some(key) = &self.config.public_key {
            key.verify(document).map_err(failed)?;
        }
        let root = self.root();
        if install::installed(root, document).map_err(failed)? == Installed::Same {
            let serving = self.registry.get(&document.model, None).ok();
            if serving.is_some_and(|s| s.version == document.version) {
                let mut ready = UpdateStatus::new(document, UpdateState::Ready);
                ready.reason = Some("already serving".into());
                return Ok(ready);
            }
            step(UpdateState::Loading);
            return self.load(document, None);
        }
        step(UpdateState::Downloading);
        let staging = Staging::open(root, document).map_err(failed)?;
        // A broken connection keeps what arrived: the next try (or start) resumes it.
        let resumed = self.download(document, &staging).map_err(failed)?;
        step(UpdateState::Verifying);
        stall::at("verifying");
        self.verify(document, &staging, &resumed).map_err(failed)?;
        step(UpdateState::Loading);
        install::install(root, document, &staging).map_err(failed)?;
        stall::at("loading");
        self.load(document, Some(staging))
    }

    /// Downloads every file not yet verified; returns the names whose download resumed.
    fn download(
        &self,
        document: &UpdateDocument,
        staging: &Staging,
    ) -> Result<Vec<String>, ApiError> {
        let mut resumed = Vec::new();
        for (name, source) in document.sources() {
            if staging.verified(name).is_file() {
                continue;
            }
            if self
                .fetcher
                .fetch(&source.url, &staging.part(name))?
                .resumed
            {
                resumed.push(name.to_string());
            }
        }
        Ok(resumed)
    }

    /// Checks every file's checksum. A resumed file that does not match is downloaded once
    /// more from the start (its first bytes may not have survived a power cut).
    fn verify(
        &self,
        document: &UpdateDocument,
        staging: &Staging,
        resumed: &[String],
    ) -> Result<(), ApiError> {
        for (name, source) in document.sources() {
            let part = staging.part(name);
            if staging.verified(name).is_file() {
                // Verified by an earlier try; checked again, as it sat on disk since.
                let sha = sha256(&staging.verified(name))?;
                if sha == source.sha256 {
                    continue;
                }
                // Damaged since (a power cut before its blocks reached the disk): again.
                let _ = std::fs::remove_file(staging.verified(name));
                let _ = std::fs::remove_file(&part);
                self.fetcher.fetch(&source.url, &part)?;
            }
            let mut sha = sha256(&part)?;
            if sha != source.sha256 && resumed.iter().any(|r| r == name) {
                tracing::warn!(
                    file = name,
                    "a resumed download does not verify: downloading it again"
                );
                let _ = std::fs::remove_file(&part);
                self.fetcher.fetch(&source.url, &part)?;
                sha = sha256(&part)?;
            }
            if sha != source.sha256 {
                let _ = std::fs::remove_file(&part);
                return Err(ApiError::new(
                    ErrorKind::BadGateway,
                    "checksum",
                    format!(
                        "{name} from {} has sha256 {sha}, the update says {}",
                        source.url, source.sha256
                    ),
                ));
            }
            staging.accept(name)?;
        }
        Ok(())
    }

    /// Loads the installed version beside the serving one and switches; on failure takes it
    /// back out, so the serving version (if any) goes on serving.
    fn load(
        &self,
        document: &UpdateDocument,
        staging: Option<Staging>,
    ) -> Result<UpdateStatus, Failure> {
        let root = self.root();
        match self.registry.load(&document.model) {
            Ok(served) if served.version == document.version => {
                stall::at("committing");
                // The version serves; an unconfirmed one is only redone at the next start.
                if let Some(Err(e)) = staging.map(Staging::commit) {
                    tracing::warn!(model = document.model, "cannot clear the staging: {e}");
                }
                match install::prune(root, &document.model, self.config.keep_versions) {
                    Ok(pruned) if !pruned.is_empty() => {
                        tracing::info!(model = document.model, ?pruned, "pruned old versions");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(model = document.model, "cannot prune: {e}"),
                }
                Ok(UpdateStatus::new(document, UpdateState::Ready))
            }
            Ok(served) => Err((
                UpdateState::Failed,
                ApiError::new(
                    ErrorKind::FailedPrecondition,
                    "version",
                    format!(
                        "version {} is installed but version {} of `{}` serves (a newer one appeared)",
                        document.version, served.version, document.model
                    ),
                ),
            )),
            Err(e) => {
                let error = ApiError::from(e);
                if staging.is_some() {
                    if let Err(e) = install::uninstall(root, document) {
                        tracing::error!("cannot take the failed version out: {e}");
                    }
                    self.registry.settle(&document.model);
                }
                Err((UpdateState::RolledBack, error))
            }
        }
    }
}

impl ModelUpdates for Updater {
    fn apply(
        &self,
        document: UpdateDocument,
        report: &(dyn Fn(&UpdateStatus) + Sync),
    ) -> UpdateStatus {
        let _one_at_a_time = lock(&self.one_at_a_time);
        let step = |state| self.emit(&UpdateStatus::new(&document, state), report);
        let last = match self.run(&document, &step) {
            Ok(ready) => ready,
            Err((state, error)) => UpdateStatus::failed(&document, state, &error),
        };
        self.registry
            .metrics()
            .count_update(&document.model, last.state.as_str());
        self.emit(&last, report);
        last
    }

    fn listen(&self, listener: StatusListener) {
        let last: Vec<UpdateStatus> = lock(&self.last).values().cloned().collect();
        for status in &last {
            listener(status);
        }
        lock(&self.listeners).push(Listener(listener));
    }

    fn last(&self, model: &str) -> Option<UpdateStatus> {
        lock(&self.last).get(model).cloned()
    }
}

/// A staged file's sha256; a file that cannot be read is the device's storage failing.
fn sha256(path: &Path) -> Result<String, ApiError> {
    sha256_file(path).map_err(|e| staging::storage("read", path, e))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
