//! The staging area, inside the repository (so on its file system, and hidden from scans):
//! `.destino-updates/MODEL/VERSION/` holds `update.json` (the document, written first) and
//! `files/` (`NAME.part` while downloading, `NAME` once verified). `files/` becomes
//! `MODEL/VERSION/` by one rename. While `update.json` exists the update is unfinished: a
//! restart moves an installed but unconfirmed version back here and finishes it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use destino_serving::ApiError;
use destino_serving::ErrorKind;
use destino_serving::update::UpdateDocument;

pub const STAGING_DIR: &str = ".destino-updates";
const DOCUMENT: &str = "update.json";
const FILES: &str = "files";
const TRASH: &str = ".trash";

/// A storage failure: the device's state, not the request, is at fault.
pub fn storage(what: &str, path: &Path, e: std::io::Error) -> ApiError {
    ApiError::new(
        ErrorKind::FailedPrecondition,
        "storage",
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// Makes a folder's entries (creations, renames, removals) durable.
pub fn sync_dir(path: &Path) -> Result<(), ApiError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| storage("sync", path, e))
}

/// Removes a folder by renaming it into the trash first, so that it disappears at once
/// (a scan never sees it half removed); the trash is emptied now or at the next start.
pub fn remove_atomically(root: &Path, dir: &Path) -> Result<(), ApiError> {
    let trash = root.join(STAGING_DIR).join(TRASH);
    std::fs::create_dir_all(&trash).map_err(|e| storage("create", &trash, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let target = trash.join(format!("{nanos}"));
    std::fs::rename(dir, &target).map_err(|e| storage("remove", dir, e))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    let _ = std::fs::remove_dir_all(&target);
    Ok(())
}

/// One update's staging folder.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    fn dir_of(root: &Path, document: &UpdateDocument) -> PathBuf {
        root.join(STAGING_DIR)
            .join(&document.model)
            .join(document.version.to_string())
    }

    /// The staging of `document`: what an earlier try of the same document (same model,
    /// version and checksums) downloaded is kept; another document's is discarded.
    pub fn open(root: &Path, document: &UpdateDocument) -> Result<Staging, ApiError> {
        let dir = Staging::dir_of(root, document);
        if let Some(earlier) = read_document(&dir.join(DOCUMENT))
            && earlier.signed_message() != document.signed_message()
        {
            std::fs::remove_dir_all(&dir).map_err(|e| storage("clear", &dir, e))?;
        }
        let files = dir.join(FILES);
        std::fs::create_dir_all(&files).map_err(|e| storage("create", &files, e))?;
        let staging = Staging { dir };
        staging.write_document(document)?;
        Ok(staging)
    }

    fn write_document(&self, document: &UpdateDocument) -> Result<(), ApiError> {
        let path = self.dir.join(DOCUMENT);
        let temporary = self.dir.join(".update.json.tmp");
        let body = serde_json::to_vec_pretty(document).unwrap_or_default();
        File::create(&temporary)
            .and_then(|mut file| {
                file.write_all(&body)?;
                file.sync_all()
            })
            .map_err(|e| storage("write", &temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| storage("write", &path, e))?;
        sync_dir(&self.dir)
    }

    pub fn files(&self) -> PathBuf {
        self.dir.join(FILES)
    }

    /// Where `name` downloads to.
    pub fn part(&self, name: &str) -> PathBuf {
        self.files().join(format!("{name}.part"))
    }

    /// Where `name` is once verified.
    pub fn verified(&self, name: &str) -> PathBuf {
        self.files().join(name)
    }

    /// Marks `name` verified (its part file renamed).
    pub fn accept(&self, name: &str) -> Result<(), ApiError> {
        let part = self.part(name);
        std::fs::rename(&part, self.verified(name)).map_err(|e| storage("rename", &part, e))?;
        sync_dir(&self.files())
    }

    /// The update is done (its version serves): the document goes first, so a crash after
    /// this point leaves nothing to finish.
    pub fn commit(self) -> Result<(), ApiError> {
        let document = self.dir.join(DOCUMENT);
        std::fs::remove_file(&document).map_err(|e| storage("remove", &document, e))?;
        sync_dir(&self.dir)?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }

    /// Whatever an update of `document`'s version staged goes (nothing when none did).
    pub fn remove(root: &Path, document: &UpdateDocument) {
        let _ = std::fs::remove_dir_all(Staging::dir_of(root, document));
    }
}

fn read_document(path: &Path) -> Option<UpdateDocument> {
    UpdateDocument::parse(&std::fs::read(path).ok()?).ok()
}

/// Undoes what a crash left half done, before the repository loads: the trash is emptied,
/// folders without a document are removed, and a version installed but not confirmed goes
/// back to staging (so the version that served before loads). Returns the unfinished updates.
pub fn recover(root: &Path) -> Vec<UpdateDocument> {
    let staging = root.join(STAGING_DIR);
    let _ = std::fs::remove_dir_all(staging.join(TRASH));
    let mut pending = Vec::new();
    for version_dir in subfolders(&staging).iter().flat_map(|m| subfolders(m)) {
        let Some(document) = read_document(&version_dir.join(DOCUMENT)) else {
            tracing::warn!(dir = %version_dir.display(), "removing an update's leftovers");
            let _ = std::fs::remove_dir_all(&version_dir);
            continue;
        };
        if Staging::dir_of(root, &document) != version_dir {
            let _ = std::fs::remove_dir_all(&version_dir);
            continue;
        }
        let files = version_dir.join(FILES);
        let installed = root
            .join(&document.model)
            .join(document.version.to_string());
        if !files.is_dir() && installed.is_dir() {
            tracing::warn!(
                model = document.model,
                version = document.version,
                "taking back a version installed by an unfinished update"
            );
            if let Err(e) = std::fs::rename(&installed, &files)
                .map_err(|e| storage("move back", &installed, e))
                .and_then(|()| sync_dir(&root.join(&document.model)))
            {
                tracing::error!("{e}");
                continue;
            }
        }
        pending.push(document);
    }
    pending
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir() && !path.ends_with(TRASH))
        .collect();
    dirs.sort();
    dirs
}
