//! JSON-lines tables: one JSON object per line, whose fields are the model's inputs (or named by
//! `--column INPUT=COLUMN`). The file is scanned once at the start (rows counted, each part's
//! byte offset kept, a fingerprint taken, the first row's columns checked), then each part is read
//! from its offset, so memory holds one part whatever the table's size.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::job::Fnv;

/// A row's fields, or why its line is not a JSON object.
pub type RowFields = Result<Map<String, Value>, String>;

#[derive(Debug)]
pub struct Table {
    path: PathBuf,
    pub rows: usize,
    /// The byte offset of each part's first row.
    offsets: Vec<u64>,
    pub fingerprint: String,
    /// The first row's fields.
    pub columns: Vec<String>,
}

impl Table {
    pub fn open(path: &Path, part_size: usize) -> Result<Table, String> {
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut reader = BufReader::new(File::open(path).map_err(fail)?);
        let (mut rows, mut offset, mut offsets) = (0, 0u64, Vec::new());
        let mut hash = Fnv::new();
        let mut columns = None;
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(fail)?;
            if read == 0 {
                break;
            }
            hash.write(line.as_bytes());
            if !line.trim().is_empty() {
                if rows % part_size == 0 {
                    offsets.push(offset);
                }
                if columns.is_none() {
                    columns = Some(first_columns(path, &line)?);
                }
                rows += 1;
            }
            offset += read as u64;
        }
        Ok(Table {
            path: path.to_path_buf(),
            rows,
            offsets,
            fingerprint: hash.finish(),
            columns: columns.unwrap_or_default(),
        })
    }

    /// The rows of part `part` (numbered `rows`), each its number and its fields, or why the
    /// line is not a JSON object.
    pub fn read_part(
        &self,
        part: usize,
        rows: std::ops::Range<usize>,
    ) -> Result<Vec<(usize, RowFields)>, String> {
        let (first, count) = (rows.start, rows.len());
        let fail = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let offset = *self.offsets.get(part).ok_or("no such part")?;
        let mut file = File::open(&self.path).map_err(fail)?;
        file.seek(SeekFrom::Start(offset)).map_err(fail)?;
        let mut rows = Vec::with_capacity(count);
        for line in BufReader::new(file).lines() {
            if rows.len() == count {
                break;
            }
            let line = line.map_err(fail)?;
            if line.trim().is_empty() {
                continue;
            }
            let fields = match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(fields)) => Ok(fields),
                Ok(_) => Err("the row is not a JSON object".to_string()),
                Err(e) => Err(format!("the row is not JSON: {e}")),
            };
            rows.push((first + rows.len(), fields));
        }
        Ok(rows)
    }
}

fn first_columns(path: &Path, line: &str) -> Result<Vec<String>, String> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => Ok(fields.keys().cloned().collect()),
        _ => Err(format!(
            "{}: the first row is not a JSON object (a JSON-lines table has one per line)",
            path.display()
        )),
    }
}

/// Which column feeds each model input.
#[derive(Debug, Clone)]
pub struct Columns(Vec<(String, String)>);

impl Columns {
    /// Each input from the column of its name, unless `mapping` (`INPUT=COLUMN`) names another;
    /// every column must be among `available` (the table's).
    pub fn new(
        inputs: &[String],
        mapping: &[String],
        available: &[String],
    ) -> Result<Columns, String> {
        let mut pairs: Vec<(String, String)> =
            inputs.iter().map(|i| (i.clone(), i.clone())).collect();
        for entry in mapping {
            let (input, column) = entry
                .split_once('=')
                .ok_or_else(|| format!("--column `{entry}`: write INPUT=COLUMN"))?;
            let pair = pairs.iter_mut().find(|(i, _)| i == input).ok_or_else(|| {
                format!(
                    "--column `{entry}`: the model has no input `{input}` (its inputs: {})",
                    inputs.join(", ")
                )
            })?;
            pair.1 = column.to_string();
        }
        for (input, column) in &pairs {
            if !available.contains(column) {
                return Err(format!(
                    "the table has no column `{column}` for input `{input}` (its columns: {}; map \
                     one with --column {input}=COLUMN)",
                    available.join(", ")
                ));
            }
        }
        Ok(Columns(pairs))
    }

    /// The `/score` body for one row: `{"<input>": <its column's value>, ...}`.
    pub fn body(&self, row: &Map<String, Value>) -> Result<Bytes, String> {
        let mut body = Map::new();
        for (input, column) in &self.0 {
            let value = row
                .get(column)
                .ok_or_else(|| format!("the row has no column `{column}`"))?;
            body.insert(input.clone(), value.clone());
        }
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_read_from_their_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut text = String::new();
        for i in 0..7 {
            text.push_str(&format!("{{\"x\": [{i}, {i}], \"id\": \"r{i}\"}}\n"));
            if i == 3 {
                text.push_str("\n[1]\n");
            }
        }
        std::fs::write(&path, text).unwrap();
        let table = Table::open(&path, 3).unwrap();
        assert_eq!(table.rows, 8);
        assert_eq!(table.columns, ["id", "x"]);
        let part = table.read_part(1, 3..6).unwrap();
        let numbers: Vec<usize> = part.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [3, 4, 5]);
        assert_eq!(part[0].1.as_ref().unwrap()["id"], "r3");
        assert!(
            part[1]
                .1
                .as_ref()
                .unwrap_err()
                .contains("not a JSON object")
        );
        let last = table.read_part(2, 6..8).unwrap();
        assert_eq!(last.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [6, 7]);

        let inputs = ["input".to_string()];
        assert!(
            Columns::new(&inputs, &[], &table.columns)
                .unwrap_err()
                .contains("no column `input`")
        );
        let columns = Columns::new(&inputs, &["input=x".into()], &table.columns).unwrap();
        let body = columns.body(part[0].1.as_ref().unwrap()).unwrap();
        assert_eq!(&body[..], br#"{"input":[3,3]}"#);
        assert!(Columns::new(&inputs, &["other=x".into()], &table.columns).is_err());
    }
}
