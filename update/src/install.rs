//! The repository side of an update: what is installed already, moving a verified version
//! into `MODEL/VERSION/` in one rename, taking it back out, and pruning old versions.

use std::path::{Path, PathBuf};

use destino_core::repository::Repository;
use destino_serving::update::UpdateDocument;
use destino_serving::{ApiError, ErrorKind};

use crate::staging::{Staging, remove_atomically, storage, sync_dir};
use crate::verify::sha256_file;

/// What the repository holds of an update's version.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// Not there: install it.
    No,
    /// There with exactly the document's files.
    Same,
}

fn refused(message: String) -> ApiError {
    ApiError::new(ErrorKind::FailedPrecondition, "version", message)
}

/// Checks the document against the repository: its version must be new (above every
/// installed one) or installed with the same files.
pub fn installed(root: &Path, document: &UpdateDocument) -> Result<Installed, ApiError> {
    let repository = Repository::scan(root).map_err(|e| refused(e.to_string()))?;
    let Some(entry) = repository.get(&document.model) else {
        return Ok(Installed::No);
    };
    let newest = entry.newest().map_or(0, |v| v.number());
    if newest > document.version {
        return Err(refused(format!(
            "version {} of `{}` is older than the installed version {newest}",
            document.version, document.model
        )));
    }
    let Some(version) = entry.version(document.version) else {
        return Ok(Installed::No);
    };
    let same = document.sources().iter().all(|(name, source)| {
        sha256_file(&version.dir.join(name)).is_ok_and(|sha| sha == source.sha256)
    });
    if same {
        Ok(Installed::Same)
    } else {
        Err(refused(format!(
            "version {} of `{}` is installed with other files: publish the update as a new version",
            document.version, document.model
        )))
    }
}

/// The folder a document's version is installed in.
pub fn version_dir(root: &Path, document: &UpdateDocument) -> PathBuf {
    root.join(&document.model)
        .join(document.version.to_string())
}

/// Moves the staged files into `MODEL/VERSION/` (one rename on one file system).
pub fn install(root: &Path, document: &UpdateDocument, staging: &Staging) -> Result<(), ApiError> {
    let model_dir = root.join(&document.model);
    if !model_dir.is_dir() {
        std::fs::create_dir_all(&model_dir).map_err(|e| storage("create", &model_dir, e))?;
        sync_dir(root)?;
    }
    let target = version_dir(root, document);
    std::fs::rename(staging.files(), &target).map_err(|e| storage("install", &target, e))?;
    sync_dir(&model_dir)
}

/// Takes a version that did not load back out of the repository (and its model folder, when
/// the update brought the model).
pub fn uninstall(root: &Path, document: &UpdateDocument) -> Result<(), ApiError> {
    remove_atomically(root, &version_dir(root, document))?;
    let model_dir = root.join(&document.model);
    if std::fs::read_dir(&model_dir).is_ok_and(|mut entries| entries.next().is_none()) {
        let _ = std::fs::remove_dir(&model_dir);
    }
    Ok(())
}

/// Removes all but the newest `keep` numbered versions of `model`.
pub fn prune(root: &Path, model: &str, keep: usize) -> Result<Vec<u64>, ApiError> {
    let repository = Repository::scan(root).map_err(|e| refused(e.to_string()))?;
    let Some(entry) = repository.get(model) else {
        return Ok(Vec::new());
    };
    let numbered: Vec<_> = entry
        .versions
        .iter()
        .filter(|v| v.version.is_some())
        .collect();
    let surplus = numbered.len().saturating_sub(keep.max(1));
    let mut pruned = Vec::new();
    for version in &numbered[..surplus] {
        remove_atomically(root, &version.dir)?;
        pruned.push(version.number());
    }
    Ok(pruned)
}
