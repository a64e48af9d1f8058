//! A batch job: the input's items (a folder's files, a table's rows) in a fixed order, cut
//! into parts of `part_size` items. The output folder holds `_job.json`, which names the job (its `_` keeps it out of Parquet readers' data sets),
//! and one file per finished part, so a rerun of the same command skips finished parts, and
//! parts from any shard split join into one data set. A folder holding another job's parts is
//! refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::commit::commit;
use crate::input::Input;

/// The file naming the job in the output folder.
pub const JOB_FILE: &str = "_job.json";

/// One input file: its key (its path under the input folder, with `/`), where it is, its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// The files under `root`, recursively, in key order; hidden names (`.x`) are skipped, and
/// links to folders are not followed.
pub fn list_files(root: &Path) -> Result<Vec<Item>, String> {
    let meta = std::fs::metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "{} is not a folder: --input takes a folder of files (images, text, JSON)",
            root.display()
        ));
    }
    let mut items = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", folder.display()))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if kind.is_dir() {
                folders.push(path);
                continue;
            }
            // A link is followed to a file, never to a folder (no cycles).
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_file() {
                items.push(Item {
                    key: key(root, &path),
                    path,
                    bytes: meta.len(),
                });
            }
        }
    }
    items.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(items)
}

fn key(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The part files' format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Parquet,
    Jsonl,
}

impl Format {
    /// Parquet where this build has it, JSON lines otherwise.
    pub const DEFAULT: Format = if cfg!(feature = "parquet") {
        Format::Parquet
    } else {
        Format::Jsonl
    };

    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
        }
    }
}

/// What makes two runs the same job: the model, the input, the cut into parts and the output
/// format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub model: String,
    pub version: u64,
    pub items: usize,
    /// The input's fingerprint (`Input::fingerprint`).
    pub fingerprint: String,
    pub part_size: usize,
    pub format: String,
}

impl JobSpec {
    pub fn new(
        model: &str,
        version: u64,
        input: &Input,
        part_size: usize,
        format: Format,
    ) -> JobSpec {
        JobSpec {
            model: model.to_string(),
            version,
            items: input.len(),
            fingerprint: input.fingerprint(),
            part_size,
            format: format.extension().to_string(),
        }
    }

    pub fn parts(&self) -> usize {
        self.items.div_ceil(self.part_size)
    }

    /// The file name of part `part`.
    pub fn part_name(&self, part: usize) -> String {
        format!("part-{part:05}.{}", self.format)
    }

    /// Part `part`'s range of items.
    pub fn range(&self, part: usize) -> std::ops::Range<usize> {
        let start = part * self.part_size;
        start..(start + self.part_size).min(self.items)
    }

    /// Makes `dir` this job's output folder: creates it and its job file, or checks that the
    /// job file there names this job.
    pub fn claim(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(JOB_FILE);
        let mut text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        text.push('\n');
        match std::fs::read_to_string(&path) {
            Ok(existing) => {
                let theirs: JobSpec = serde_json::from_str(&existing)
                    .map_err(|e| format!("{}: not a destino job file: {e}", path.display()))?;
                if theirs != *self {
                    return Err(format!(
                        "{} holds the output of another job (its {JOB_FILE} differs: \
                         another model, input, part size or format); use an empty folder",
                        dir.display()
                    ));
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let stray = std::fs::read_dir(dir)
                    .map_err(|e| format!("{}: {e}", dir.display()))?
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    // Another shard of this job may have just written the job file.
                    .any(|name| !name.starts_with('.') && name != JOB_FILE);
                if stray {
                    return Err(format!(
                        "{} is not empty and holds no {JOB_FILE}: use an empty folder",
                        dir.display()
                    ));
                }
                commit(dir, JOB_FILE, text.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

/// FNV-1a, 64 bits: a fingerprint of the input (not a defence against anyone).
#[derive(Debug)]
pub struct Fnv(u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> String {
        format!("fnv1a64:{:016x}", self.0)
    }
}

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv::new()
    }
}

/// The fingerprint of a folder: every file's key and size, in order.
pub fn files_fingerprint(items: &[Item]) -> String {
    let mut hash = Fnv::new();
    for item in items {
        hash.write(item.key.as_bytes());
        hash.write(&[0]);
        hash.write(&item.bytes.to_le_bytes());
    }
    hash.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("z.jpg"), "zz").unwrap();
        std::fs::write(dir.path().join("b/c/a.png"), "a").unwrap();
        std::fs::write(dir.path().join("b/x.txt"), "xyz").unwrap();
        std::fs::write(dir.path().join(".hidden"), "").unwrap();
        dir
    }

    #[test]
    fn files_are_listed_recursively_in_key_order() {
        let dir = tree();
        let items = list_files(dir.path()).unwrap();
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["b/c/a.png", "b/x.txt", "z.jpg"]);
        assert_eq!(items[1].bytes, 3);
        assert!(list_files(&dir.path().join("z.jpg")).is_err());
    }

    #[test]
    fn parts_cut_the_items_and_a_folder_belongs_to_one_job() {
        let dir = tree();
        let items = list_files(dir.path()).unwrap();
        let job = JobSpec::new("m", 1, &Input::Files(items.clone()), 2, Format::Jsonl);
        assert_eq!(job.parts(), 2);
        assert_eq!(job.range(1), 2..3);
        assert_eq!(job.part_name(1), "part-00001.jsonl");
        let out = tempfile::tempdir().unwrap();
        job.claim(out.path()).unwrap();
        job.claim(out.path()).unwrap();
        let other = JobSpec::new("m", 2, &Input::Files(items), 2, Format::Jsonl);
        assert!(other.claim(out.path()).unwrap_err().contains("another job"));
        std::fs::write(dir.path().join("z.jpg"), "changed").unwrap();
        let changed = JobSpec::new(
            "m",
            1,
            &Input::Files(list_files(dir.path()).unwrap()),
            2,
            Format::Jsonl,
        );
        assert!(changed.claim(out.path()).is_err());
        let busy = tempfile::tempdir().unwrap();
        std::fs::write(busy.path().join("notes.txt"), "mine").unwrap();
        assert!(job.claim(busy.path()).unwrap_err().contains("not empty"));
    }
}
