//! What a batch reads: a folder of files (each one `/score` body: an image, text, JSON; or an
//! `.npz` of tensors) or a table (JSON lines, CSV, Parquet) whose rows hold the model's inputs.

use std::path::Path;

use crate::job::{Item, files_fingerprint, list_files};
use crate::table::Table;

#[derive(Debug)]
pub enum Input {
    Files(Vec<Item>),
    Table(Table),
}

/// Files per part when `--part-size` is not given.
pub const FILES_PER_PART: usize = 1000;
/// Table rows per part when `--part-size` is not given.
pub const ROWS_PER_PART: usize = 10_000;

impl Input {
    /// A folder (read recursively) or a table, by its extension.
    pub fn open(path: &Path, part_size: Option<usize>) -> Result<Input, String> {
        if path.is_dir() {
            return list_files(path).map(Input::Files);
        }
        match Table::open(path, part_size.unwrap_or(ROWS_PER_PART)) {
            Some(table) => table.map(Input::Table),
            None if !path.exists() => Err(format!("{}: no such file or folder", path.display())),
            None => Err(format!(
                "{}: --input takes a folder of files or a table (.parquet, .csv, .tsv, .jsonl, \
                 .ndjson)",
                path.display()
            )),
        }
    }

    /// Items per part: `--part-size`, or the default for this kind of input.
    pub fn part_size(&self, given: Option<usize>) -> usize {
        given.unwrap_or(match self {
            Input::Files(_) => FILES_PER_PART,
            Input::Table(_) => ROWS_PER_PART,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Input::Files(items) => items.len(),
            Input::Table(table) => table.rows(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fingerprint(&self) -> String {
        match self {
            Input::Files(items) => files_fingerprint(items),
            Input::Table(table) => table.fingerprint(),
        }
    }

    /// Whether every file is an `.npz` (each then scores as one whole batch).
    pub fn all_npz(&self) -> bool {
        match self {
            Input::Files(items) => {
                !items.is_empty()
                    && items.iter().all(|i| {
                        i.path
                            .extension()
                            .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
                    })
            }
            Input::Table(_) => false,
        }
    }
}
