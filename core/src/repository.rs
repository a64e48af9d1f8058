//! The model repository: a directory where each model is `NAME/model.onnx` or
//! `NAME/VERSION/model.onnx` (numeric versions; the newest is served by default), with an
//! optional `model.toml` beside the model or in `NAME/` for every version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::{MANIFEST_FILE, Manifest};

pub const MODEL_FILE: &str = "model.onnx";

/// Size and modification time of a file, to notice it replaced (hot swap) since it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    /// `None` when the file cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// One servable version of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersion {
    /// `None` for an unversioned `NAME/model.onnx`, which serves as version 1.
    pub version: Option<u64>,
    pub dir: PathBuf,
}

impl ModelVersion {
    pub fn number(&self) -> u64 {
        self.version.unwrap_or(1)
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join(MODEL_FILE)
    }

    /// The manifest that applies: the version's own `model.toml`, else the model's, else the
    /// default. Returns it with the directory its relative paths resolve against.
    pub fn manifest(&self, model_dir: &Path) -> Result<(Manifest, PathBuf)> {
        for dir in [self.dir.as_path(), model_dir] {
            if dir.join(MANIFEST_FILE).is_file() {
                return Ok((Manifest::load_from_dir(dir)?, dir.to_path_buf()));
            }
        }
        Ok((Manifest::default(), self.dir.clone()))
    }
}

/// A model and its versions, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub name: String,
    pub dir: PathBuf,
    pub versions: Vec<ModelVersion>,
}

impl ModelEntry {
    pub fn newest(&self) -> Option<&ModelVersion> {
        self.versions.last()
    }

    pub fn version(&self, number: u64) -> Option<&ModelVersion> {
        self.versions.iter().find(|v| v.number() == number)
    }
}

/// The models found under a repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub root: PathBuf,
    pub models: BTreeMap<String, ModelEntry>,
    /// Directories that hold no servable model, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// True for names safe to use as a path component and in URLs.
pub fn is_valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Repository {
    pub fn scan(root: &Path) -> Result<Repository> {
        let entries = std::fs::read_dir(root)
            .map_err(|e| Error::Repository(format!("cannot read {}: {e}", root.display())))?;
        let mut models = BTreeMap::new();
        let mut skipped = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_valid_model_name(&name) {
                if !name.starts_with('.') {
                    skipped.push((
                        name,
                        "not a valid model name (use letters, digits, _ - .)".into(),
                    ));
                }
                continue;
            }
            let versions = scan_versions(&dir);
            if versions.is_empty() {
                skipped.push((
                    name,
                    format!("no {MODEL_FILE} in it or in a numeric version folder"),
                ));
                continue;
            }
            models.insert(
                name.clone(),
                ModelEntry {
                    name,
                    dir,
                    versions,
                },
            );
        }
        skipped.sort();
        Ok(Repository {
            root: root.to_path_buf(),
            models,
            skipped,
        })
    }

    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.models.get(name)
    }
}

fn scan_versions(dir: &Path) -> Vec<ModelVersion> {
    let mut versions: Vec<ModelVersion> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let number = e.file_name().to_str()?.parse::<u64>().ok()?;
            let path = e.path();
            path.join(MODEL_FILE).is_file().then_some(ModelVersion {
                version: Some(number),
                dir: path,
            })
        })
        .collect();
    versions.sort_by_key(ModelVersion::number);
    if versions.is_empty() && dir.join(MODEL_FILE).is_file() {
        versions.push(ModelVersion {
            version: None,
            dir: dir.to_path_buf(),
        });
    }
    versions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn finds_flat_and_versioned_models() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        touch(&r.join("flat/model.onnx"));
        touch(&r.join("versioned/2/model.onnx"));
        touch(&r.join("versioned/10/model.onnx"));
        touch(&r.join("versioned/notes/model.onnx"));
        touch(&r.join("empty/readme.txt"));
        touch(&r.join("bad name/model.onnx"));
        let repo = Repository::scan(r).unwrap();
        assert_eq!(
            repo.models.keys().collect::<Vec<_>>(),
            vec!["flat", "versioned"]
        );
        assert_eq!(repo.get("flat").unwrap().newest().unwrap().number(), 1);
        let versioned = repo.get("versioned").unwrap();
        assert_eq!(versioned.newest().unwrap().version, Some(10));
        assert!(versioned.version(2).is_some());
        assert!(versioned.version(3).is_none());
        let skipped: Vec<&str> = repo.skipped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(skipped, vec!["bad name", "empty"]);
    }

    #[test]
    fn version_manifest_overrides_model_manifest() {
        let root = tempfile::tempdir().unwrap();
        let model = root.path().join("m");
        touch(&model.join("3/model.onnx"));
        std::fs::write(model.join("model.toml"), "max_batch_size = 4").unwrap();
        let repo = Repository::scan(root.path()).unwrap();
        let entry = repo.get("m").unwrap();
        let version = entry.newest().unwrap();
        assert_eq!(
            version.manifest(&entry.dir).unwrap().0.max_batch_size,
            Some(4)
        );
        std::fs::write(model.join("3/model.toml"), "max_batch_size = 2").unwrap();
        assert_eq!(
            version.manifest(&entry.dir).unwrap().0.max_batch_size,
            Some(2)
        );
    }

    #[test]
    fn names_are_path_safe() {
        assert!(is_valid_model_name("efficientnet_lite0"));
        assert!(!is_valid_model_name(".."));
        assert!(!is_valid_model_name("a/b"));
        assert!(!is_valid_model_name(""));
    }
}
