//! What a batch reads: a folder of files (each one `/score` body: an image, text, JSON) or a
//! JSON-lines table (each row the model's inputs), and the work of one part of it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

use crate::job::{Item, files_fingerprint, list_files};
use crate::table::{Columns, Table};

#[derive(Debug)]
pub enum Input {
    Files(Vec<Item>),
    Table(Table),
}

/// One thing to score: its key (a file's path, a row's number), a row's id column, and where its
/// body comes from.
#[derive(Debug, Clone)]
pub struct Work {
    pub key: Value,
    pub id: Option<Value>,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Body(Bytes),
    /// A row that cannot become a body: why.
    Bad(String),
}

/// How a table's rows become bodies.
#[derive(Debug, Clone)]
pub struct RowShape {
    pub columns: Columns,
    pub id_column: Option<String>,
}

impl Input {
    /// A folder (read recursively) or a `.jsonl`/`.ndjson` table, cut into parts of `part_size`.
    pub fn open(path: &Path, part_size: usize) -> Result<Input, String> {
        if path.is_dir() {
            return list_files(path).map(Input::Files);
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        match extension {
            "jsonl" | "ndjson" => Table::open(path, part_size).map(Input::Table),
            _ if !path.exists() => Err(format!("{}: no such file or folder", path.display())),
            _ => Err(format!(
                "{}: --input takes a folder of files or a JSON-lines table (.jsonl, .ndjson)",
                path.display()
            )),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Input::Files(items) => items.len(),
            Input::Table(table) => table.rows,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn fingerprint(&self) -> String {
        match self {
            Input::Files(items) => files_fingerprint(items),
            Input::Table(table) => table.fingerprint.clone(),
        }
    }

    /// Part `part`'s work (its items `range`).
    pub fn work(
        &self,
        part: usize,
        range: Range<usize>,
        rows: Option<&RowShape>,
    ) -> Result<Vec<Work>, String> {
        match (self, rows) {
            (Input::Files(items), _) => Ok(items[range]
                .iter()
                .map(|item| Work {
                    key: Value::from(item.key.clone()),
                    id: None,
                    source: Source::File(item.path.clone()),
                })
                .collect()),
            (Input::Table(table), Some(shape)) => Ok(table
                .read_part(part, range)?
                .into_iter()
                .map(|(number, fields)| {
                    let id = shape.id_column.as_ref().map(|column| match &fields {
                        Ok(fields) => fields.get(column).cloned().unwrap_or(Value::Null),
                        Err(_) => Value::Null,
                    });
                    let source = match fields.and_then(|f| shape.columns.body(&f)) {
                        Ok(body) => Source::Body(body),
                        Err(why) => Source::Bad(why),
                    };
                    Work {
                        key: Value::from(number),
                        id,
                        source,
                    }
                })
                .collect()),
            (Input::Table(_), None) => Err("a table needs its columns".into()),
        }
    }
}
