//! CSV (and `.tsv`) tables: a header line naming the columns, one row per record; each value
//! is parsed as its input's dtype when the row is scored (a value that does not parse is that
//! row's error). The file is scanned once at the start (records counted, each part's position
//! kept, a fingerprint taken); a part is then read from its position.

use std::fs::File;
use std::io::BufReader;
use std::ops::Range;
use std::path::{Path, PathBuf};

use csv::{Position, ReaderBuilder, StringRecord};
use serde_json::Value;

use crate::builder::{Cell, InputColumn};
use crate::job::Fnv;
use crate::table::{PartRows, Resolved};

#[derive(Debug)]
pub struct CsvTable {
    path: PathBuf,
    delimiter: u8,
    pub rows: usize,
    /// Where each part's first record starts.
    positions: Vec<Position>,
    pub fingerprint: String,
    pub columns: Vec<String>,
}

impl CsvTable {
    pub fn open(path: &Path, part_size: usize) -> Result<CsvTable, String> {
        let tsv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
        let delimiter = if tsv { b'\t' } else { b',' };
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let file = File::open(path).map_err(|e| fail(&e))?;
        let mut reader = ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(BufReader::new(file));
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| fail(&e))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut hash = Fnv::new();
        let (mut rows, mut positions) = (0, Vec::new());
        let mut record = StringRecord::new();
        while reader.read_record(&mut record).map_err(|e| fail(&e))? {
            if let Some(position) = record.position()
                && rows % part_size == 0
            {
                positions.push(position.clone());
            }
            for field in &record {
                hash.write(field.as_bytes());
                hash.write(&[0]);
            }
            hash.write(b"\n");
            rows += 1;
        }
        Ok(CsvTable {
            path: path.to_path_buf(),
            delimiter,
            rows,
            positions,
            fingerprint: hash.finish(),
            columns,
        })
    }

    pub fn read_part(
        &self,
        part: usize,
        rows: Range<usize>,
        columns: &Resolved<String>,
    ) -> Result<CsvPart, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", self.path.display());
        let position = self.positions.get(part).ok_or("no such part")?;
        let file = File::open(&self.path).map_err(|e| fail(&e))?;
        let mut reader = ReaderBuilder::new()
            .delimiter(self.delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(BufReader::new(file));
        reader.seek(position.clone()).map_err(|e| fail(&e))?;
        let mut records = Vec::with_capacity(rows.len());
        let mut record = StringRecord::new();
        while records.len() < rows.len() && reader.read_record(&mut record).map_err(|e| fail(&e))? {
            records.push(record.clone());
        }
        Ok(CsvPart {
            records,
            columns: columns.indices(&self.columns),
            names: self.columns.clone(),
        })
    }
}

#[derive(Debug)]
pub struct CsvPart {
    records: Vec<StringRecord>,
    columns: Resolved<usize>,
    names: Vec<String>,
}

impl PartRows for CsvPart {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn fill(&self, row: usize, input: usize, out: &mut InputColumn) -> Result<(), String> {
        let record = &self.records[row];
        for &column in &self.columns.inputs[input] {
            let name = self.names.get(column).map_or("?", String::as_str);
            match record.get(column) {
                None => return Err(format!("the row has no field for column `{name}`")),
                Some(field) if field.trim().is_empty() => {
                    return Err(format!("column `{name}` is empty"));
                }
                Some(field) => out.push(Cell::Str(field))?,
            }
        }
        Ok(())
    }

    fn id(&self, row: usize) -> Option<Value> {
        let column = self.columns.id?;
        let field = self.records[row].get(column);
        Some(field.map_or(Value::Null, Value::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Columns;
    use destino_core::dtype::DType;
    use destino_core::metadata::{Dim, TensorInfo};

    #[test]
    fn parts_read_from_their_positions_and_fields_parse_per_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = "name,a,b\n".to_string();
        for i in 0..5 {
            text.push_str(&format!("r{i},{i},{}\n", i * 10));
        }
        text.push_str("bad,x,1\n\"q,uoted\",7,8\n");
        std::fs::write(&path, text).unwrap();
        let table = CsvTable::open(&path, 3).unwrap();
        assert_eq!((table.rows, table.columns.len()), (7, 3));
        let inputs = ["x".to_string()];
        let columns = Columns::new(&inputs, &["x=a,b".into()], Some("name"), &table.columns)
            .unwrap()
            .resolved;
        let part = table.read_part(1, 3..6, &columns).unwrap();
        assert_eq!(part.len(), 3);
        assert_eq!(part.id(0), Some(Value::from("r3")));
        let info = TensorInfo {
            name: "x".into(),
            dtype: DType::F32,
            shape: Some(vec![Dim::Symbolic("N".into()), Dim::Fixed(2)]),
        };
        let mut column = InputColumn::new(&info, true).unwrap();
        column.begin_row();
        part.fill(0, 0, &mut column).unwrap();
        column.end_row().unwrap();
        assert!(part.fill(2, 0, &mut column).unwrap_err().contains("`x`"));
        let last = table.read_part(2, 6..7, &columns).unwrap();
        assert_eq!(last.id(0), Some(Value::from("q,uoted")));
    }
}
