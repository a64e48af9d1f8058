//! Tables (JSON lines, CSV, Parquet): which columns feed each model input, and a part's rows
//! as the tensor builder reads them. Each format is scanned or its footer read once at the
//! start (rows counted, columns checked, a fingerprint taken); then a part is read on its own,
//! so memory holds one part whatever the table's size.

use std::ops::Range;
use std::path::Path;

use destino_core::metadata::TensorInfo;
use serde_json::Value;

use crate::builder::InputColumn;
use crate::csv_table::CsvTable;
use crate::jsonl::JsonLines;
#[cfg(feature = "parquet")]
use crate::parquet_in::ParquetTable;

/// A part's rows: each row's values for an input appended to that input's column.
pub trait PartRows: Send + Sync {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends row `row`'s values for input `input` (in the order of `Columns`) to `out`.
    fn fill(&self, row: usize, input: usize, out: &mut InputColumn) -> Result<(), String>;

    /// Row `row`'s id column, when the job has one.
    fn id(&self, row: usize) -> Option<Value>;
}

/// Each input's columns and the id column, named (`String`) or as a format's indices.
#[derive(Debug, Clone)]
pub struct Resolved<T> {
    pub inputs: Vec<Vec<T>>,
    pub id: Option<T>,
}

impl Resolved<String> {
    /// The same columns as positions in `names` (every one is there: `Columns::new` checked).
    pub fn indices(&self, names: &[String]) -> Resolved<usize> {
        let index = |c: &String| names.iter().position(|n| n == c).unwrap_or(usize::MAX);
        Resolved {
            inputs: self
                .inputs
                .iter()
                .map(|cols| cols.iter().map(index).collect())
                .collect(),
            id: self.id.as_ref().map(index),
        }
    }
}

/// Why a build without the `parquet` feature refuses Parquet.
pub const NO_PARQUET: &str = "this build reads and writes no Parquet (built without the \
    `parquet` feature); use CSV or JSON lines, or destino-server";

#[derive(Debug)]
pub enum Table {
    JsonLines(JsonLines),
    Csv(CsvTable),
    #[cfg(feature = "parquet")]
    Parquet(ParquetTable),
}

impl Table {
    /// The table at `path`, by its extension; `None` when the extension names no table.
    pub fn open(path: &Path, part_size: usize) -> Option<Result<Table, String>> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match extension.as_str() {
            "jsonl" | "ndjson" => JsonLines::open(path, part_size).map(Table::JsonLines),
            "csv" | "tsv" => CsvTable::open(path, part_size).map(Table::Csv),
            #[cfg(feature = "parquet")]
            "parquet" | "pq" => ParquetTable::open(path).map(Table::Parquet),
            #[cfg(not(feature = "parquet"))]
            "parquet" | "pq" => Err(format!("{}: {NO_PARQUET}", path.display())),
            _ => return None,
        })
    }

    pub fn rows(&self) -> usize {
        match self {
            Table::JsonLines(t) => t.rows,
            Table::Csv(t) => t.rows,
            #[cfg(feature = "parquet")]
            Table::Parquet(t) => t.rows,
        }
    }

    pub fn fingerprint(&self) -> String {
        match self {
            Table::JsonLines(t) => t.fingerprint.clone(),
            Table::Csv(t) => t.fingerprint.clone(),
            #[cfg(feature = "parquet")]
            Table::Parquet(t) => t.fingerprint.clone(),
        }
    }

    /// The table's columns, in its order.
    pub fn columns(&self) -> &[String] {
        match self {
            Table::JsonLines(t) => &t.columns,
            Table::Csv(t) => &t.columns,
            #[cfg(feature = "parquet")]
            Table::Parquet(t) => &t.columns,
        }
    }

    /// Checks, before any work, that the columns can feed their inputs (a format that knows
    /// its column types checks them).
    pub fn check(&self, columns: &Resolved<String>, inputs: &[TensorInfo]) -> Result<(), String> {
        #[cfg(feature = "parquet")]
        if let Table::Parquet(t) = self {
            return t.check(columns, inputs);
        }
        let _ = (columns, inputs);
        Ok(())
    }

    /// Part `part` (rows `rows`).
    pub fn read_part(
        &self,
        part: usize,
        rows: Range<usize>,
        columns: &Resolved<String>,
    ) -> Result<Box<dyn PartRows>, String> {
        Ok(match self {
            Table::JsonLines(t) => Box::new(crate::jsonl::JsonPart {
                rows: t
                    .read_part(part, rows)?
                    .into_iter()
                    .map(|(_, f)| f)
                    .collect(),
                columns: columns.clone(),
            }),
            Table::Csv(t) => Box::new(t.read_part(part, rows, columns)?),
            #[cfg(feature = "parquet")]
            Table::Parquet(t) => Box::new(t.read_part(rows, columns)?),
        })
    }
}

/// Which columns feed each model input: the column of the input's name, unless `--column
/// INPUT=COLUMN` names another, several (`A,B,C`: one value each, in that order), or every
/// column starting with a prefix (`PREFIX*`, in the table's order; `*` alone: every column but
/// the id column).
#[derive(Debug, Clone)]
pub struct Columns {
    pub resolved: Resolved<String>,
}

impl Columns {
    pub fn new(
        inputs: &[String],
        mapping: &[String],
        id: Option<&str>,
        available: &[String],
    ) -> Result<Columns, String> {
        let mut chosen: Vec<Vec<String>> = inputs.iter().map(|i| vec![i.clone()]).collect();
        for entry in mapping {
            let (input, spec) = entry
                .split_once('=')
                .ok_or_else(|| format!("--column `{entry}`: write INPUT=COLUMN"))?;
            let index = inputs.iter().position(|i| i == input).ok_or_else(|| {
                format!(
                    "--column `{entry}`: the model has no input `{input}` (its inputs: {})",
                    inputs.join(", ")
                )
            })?;
            chosen[index] = expand(spec, id, available)
                .ok_or_else(|| format!("--column `{entry}`: no column of the table matches"))?;
        }
        for (input, columns) in inputs.iter().zip(&chosen) {
            if let Some(missing) = columns.iter().find(|c| !available.contains(c)) {
                return Err(format!(
                    "the table has no column `{missing}` for input `{input}` (its columns: {}; \
                     map one with --column {input}=COLUMN)",
                    available.join(", ")
                ));
            }
        }
        if let Some(id) = id
            && !available.iter().any(|c| c == id)
        {
            return Err(format!("the table has no id column `{id}`"));
        }
        Ok(Columns {
            resolved: Resolved {
                inputs: chosen,
                id: id.map(str::to_string),
            },
        })
    }
}

/// The columns `spec` names: `A`, `A,B`, `PREFIX*`; `None` when a pattern matches nothing.
fn expand(spec: &str, id: Option<&str>, available: &[String]) -> Option<Vec<String>> {
    let mut columns = Vec::new();
    for part in spec.split(',').map(str::trim) {
        match part.strip_suffix('*') {
            Some(prefix) => {
                let matched: Vec<String> = available
                    .iter()
                    .filter(|c| c.starts_with(prefix) && Some(c.as_str()) != id)
                    .cloned()
                    .collect();
                if matched.is_empty() {
                    return None;
                }
                columns.extend(matched);
            }
            None => columns.push(part.to_string()),
        }
    }
    Some(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_map_by_name_list_and_prefix() {
        let available = names(&["id", "p0", "p1", "x", "y"]);
        let inputs = names(&["x", "pixels"]);
        let missing = Columns::new(&inputs, &[], None, &available).unwrap_err();
        assert!(missing.contains("no column `pixels`"), "{missing}");
        let mapped = ["pixels=p*".to_string()];
        let columns = Columns::new(&inputs, &mapped, Some("id"), &available).unwrap();
        assert_eq!(
            columns.resolved.inputs,
            [names(&["x"]), names(&["p0", "p1"])]
        );
        let resolved = columns.resolved.indices(&available);
        assert_eq!(resolved.inputs, [vec![3], vec![1, 2]]);
        assert_eq!(resolved.id, Some(0));
        let all = ["pixels=*".to_string(), "x=y,x".to_string()];
        let columns = Columns::new(&inputs, &all, Some("id"), &available).unwrap();
        assert_eq!(columns.resolved.inputs[1], names(&["p0", "p1", "x", "y"]));
        assert_eq!(columns.resolved.inputs[0], names(&["y", "x"]));
        assert!(Columns::new(&inputs, &["pixels=q*".into()], None, &available).is_err());
        assert!(Columns::new(&inputs, &["other=x".into()], None, &available).is_err());
        let no_id = Columns::new(&inputs, &mapped, Some("name"), &available).unwrap_err();
        assert!(no_id.contains("no id column `name`"), "{no_id}");
    }
}
