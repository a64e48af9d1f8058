//! JSON-lines tables: one JSON object per line, whose fields are the model's inputs (or named by
//! `--column`). The file is scanned once at the start (rows counted, each part's byte offset
//! kept, a fingerprint taken, the first row's columns checked), then each part is read from its
//! offset, so memory holds one part whatever the table's size.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::builder::{Cell, InputColumn};
use crate::job::Fnv;
use crate::table::{PartRows, Resolved};

/// A row's fields, or why its line is not a JSON object.
pub type RowFields = Result<Map<String, Value>, String>;

#[derive(Debug)]
pub struct JsonLines {
    path: PathBuf,
    pub rows: usize,
    /// The byte offset of each part's first row.
    offsets: Vec<u64>,
    pub fingerprint: String,
    /// The first row's fields.
    pub columns: Vec<String>,
    first: Map<String, Value>,
}

impl JsonLines {
    pub fn open(path: &Path, part_size: usize) -> Result<JsonLines, String> {
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut reader = BufReader::new(File::open(path).map_err(fail)?);
        let (mut rows, mut offset, mut offsets) = (0, 0u64, Vec::new());
        let mut hash = Fnv::new();
        let mut first = None;
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
                if first.is_none() {
                    first = Some(first_row(path, &line)?);
                }
                rows += 1;
            }
            offset += read as u64;
        }
        Ok(JsonLines {
            path: path.to_path_buf(),
            rows,
            offsets,
            fingerprint: hash.finish(),
            columns: first.iter().flat_map(|f| f.keys().cloned()).collect(),
            first: first.unwrap_or_default(),
        })
    }

    /// The first row's value of `column`.
    pub fn first_value(&self, column: &str) -> Option<&Value> {
        self.first.get(column)
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

fn first_row(path: &Path, line: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(format!(
            "{}: the first row is not a JSON object (a JSON-lines table has one per line)",
            path.display()
        )),
    }
}

/// A part of a JSON-lines table, as the tensor builder reads it.
#[derive(Debug)]
pub struct JsonPart {
    pub rows: Vec<RowFields>,
    pub columns: Resolved<String>,
}

impl PartRows for JsonPart {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn fill(&self, row: usize, input: usize, out: &mut InputColumn) -> Result<(), String> {
        let fields = self.rows[row].as_ref().map_err(Clone::clone)?;
        for column in &self.columns.inputs[input] {
            let value = fields
                .get(column)
                .ok_or_else(|| format!("the row has no column `{column}`"))?;
            push_json(value, column, out)?;
        }
        Ok(())
    }

    fn id(&self, row: usize) -> Option<Value> {
        let column = self.columns.id.as_ref()?;
        let fields = self.rows[row].as_ref().ok();
        Some(
            fields
                .and_then(|f| f.get(column))
                .cloned()
                .unwrap_or(Value::Null),
        )
    }
}

/// Appends a JSON value's numbers (nested arrays flattened in row-major order).
fn push_json(value: &Value, column: &str, out: &mut InputColumn) -> Result<(), String> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| push_json(v, column, out)),
        Value::Number(n) => out.push(match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cell::I64(i),
            (None, Some(u)) => Cell::U64(u),
            _ => Cell::F64(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => out.push(Cell::Str(s)),
        Value::Bool(b) => out.push(Cell::Bool(*b)),
        Value::Null => Err(format!("column `{column}` is null")),
        Value::Object(_) => Err(format!("column `{column}` holds an object, not values")),
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
        let table = JsonLines::open(&path, 3).unwrap();
        assert_eq!(table.rows, 8);
        assert_eq!(table.columns, ["id", "x"]);
        let part = table.read_part(1, 3..6).unwrap();
        let numbers: Vec<usize> = part.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [3, 4, 5]);
        assert_eq!(part[0].1.as_ref().unwrap()["id"], "r3");
        let not_object = part[1].1.as_ref().unwrap_err();
        assert!(not_object.contains("not a JSON object"), "{not_object}");
        let last = table.read_part(2, 6..8).unwrap();
        assert_eq!(last.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [6, 7]);
    }
}
