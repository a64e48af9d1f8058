//! Parquet tables: a column per input (a list column: one row's values; several scalar
//! columns: one value each), read a part at a time (only the columns the job uses, only the
//! part's rows), so memory holds one part whatever the file's size. The footer is read once at
//! the start: rows, columns and their types are checked before any work.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType::{LargeUtf8, Utf8, Utf8View};
use arrow_schema::{DataType, SchemaRef};
use destino_core::dtype::DType;
use destino_core::metadata::TensorInfo;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::PageIndexPolicy;
use serde_json::Value;

use crate::builder::{Cell, InputColumn};
use crate::job::Fnv;
use crate::output::KeyKind;
use crate::table::{PartRows, Resolved};

#[derive(Debug)]
pub struct ParquetTable {
    path: PathBuf,
    schema: SchemaRef,
    pub rows: usize,
    pub fingerprint: String,
    pub columns: Vec<String>,
    /// The reader the last part left off with: parts are read in order, and a reader that
    /// starts inside a row group must decode every row before its start (pages are skipped
    /// only where the file has an offset index).
    cursor: Mutex<Option<Box<Cursor>>>,
}

/// A reader positioned at `next_row`, with the columns `projection`.
#[derive(Debug)]
struct Cursor {
    next_row: usize,
    projection: Vec<usize>,
    reader: ParquetRecordBatchReader,
    /// Rows read past the last part's end (the next part's first).
    leftover: Option<RecordBatch>,
}

impl ParquetTable {
    pub fn open(path: &Path) -> Result<ParquetTable, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let file = File::open(path).map_err(|e| fail(&e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| fail(&format!("not a readable Parquet file: {e}")))?;
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows())
            .map_err(|_| fail(&"a negative row count"))?;
        let schema = builder.schema().clone();
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        // One row read now: a codec this build lacks, or a broken first page, fails here.
        let mut first = builder
            .with_limit(1)
            .with_batch_size(1)
            .build()
            .map_err(|e| fail(&format!("cannot read the table: {e}")))?;
        if let Some(Err(e)) = first.next() {
            return Err(fail(&format!("cannot read the table: {e}")));
        }
        Ok(ParquetTable {
            path: path.to_path_buf(),
            schema,
            rows,
            fingerprint: footer_fingerprint(path).map_err(|e| fail(&e))?,
            columns,
            cursor: Mutex::new(None),
        })
    }

    /// Each column the job reads must hold numbers, booleans or strings, or lists of them,
    /// as its input takes them (`inputs`, in the order of `columns`).
    pub fn check(&self, columns: &Resolved<String>, inputs: &[TensorInfo]) -> Result<(), String> {
        for (info, names) in inputs.iter().zip(&columns.inputs) {
            for name in names {
                let Ok(field) = self.schema.field_with_name(name) else {
                    continue;
                };
                let leaf = leaf_type(field.data_type());
                let fits = scalar(leaf)
                    && (info.dtype == DType::String) == matches!(leaf, Utf8 | LargeUtf8 | Utf8View);
                if !fits {
                    return Err(format!(
                        "column `{name}` is {}: input `{}` takes {:?} values (a column feeding an \
                         input holds numbers, booleans or strings, or lists of them)",
                        field.data_type(),
                        info.name,
                        info.dtype
                    ));
                }
            }
        }
        if let Some(name) = &columns.id
            && let Ok(field) = self.schema.field_with_name(name)
            && !scalar(field.data_type())
        {
            return Err(format!(
                "column `{name}` is {}: an id column holds numbers or strings",
                field.data_type()
            ));
        }
        Ok(())
    }

    /// The output type of an id column: its own, as a number, boolean or text.
    pub fn id_kind(&self, column: &str) -> KeyKind {
        let Ok(field) = self.schema.field_with_name(column) else {
            return KeyKind::Text;
        };
        match field.data_type() {
            t if t.is_integer() => KeyKind::Int,
            t if t.is_floating() => KeyKind::Float,
            DataType::Boolean => KeyKind::Bool,
            _ => KeyKind::Text,
        }
    }

    /// Rows `rows`, only the columns the job reads.
    pub fn read_part(
        &self,
        rows: Range<usize>,
        columns: &Resolved<String>,
    ) -> Result<ParquetPart, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", self.path.display());
        let indices = columns.indices(&self.columns);
        let mut projection: Vec<usize> = indices
            .inputs
            .into_iter()
            .flatten()
            .chain(indices.id)
            .collect();
        projection.sort_unstable();
        projection.dedup();
        let mut cursor = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        let mut at = match cursor.take() {
            Some(c) if c.next_row == rows.start && c.projection == projection => *c,
            _ => self
                .reader_at(rows.start, rows.len(), projection)
                .map_err(|e| fail(&e))?,
        };
        let mut batches = Vec::new();
        let mut wanted = rows.len();
        while wanted > 0 {
            let batch = match at.leftover.take() {
                Some(batch) => batch,
                None => match at.reader.next() {
                    Some(batch) => batch.map_err(|e| fail(&e))?,
                    None => break,
                },
            };
            if batch.num_rows() > wanted {
                at.leftover = Some(batch.slice(wanted, batch.num_rows() - wanted));
                batches.push(batch.slice(0, wanted));
                wanted = 0;
            } else {
                wanted -= batch.num_rows();
                batches.push(batch);
            }
        }
        at.next_row = rows.end;
        *cursor = Some(Box::new(at));
        drop(cursor);
        let names: Vec<String> = match batches.first() {
            Some(batch) => batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            None => Vec::new(),
        };
        let mut starts = Vec::with_capacity(batches.len());
        let mut total = 0;
        for batch in &batches {
            starts.push(total);
            total += batch.num_rows();
        }
        Ok(ParquetPart {
            columns: columns.indices(&names),
            names,
            batches,
            starts,
            rows: total,
        })
    }
}

impl ParquetTable {
    /// A reader of the columns `projection` from row `first` on, in batches of `batch` rows:
    /// it reads from the row group holding `first` and skips the rows before it.
    fn reader_at(
        &self,
        first: usize,
        batch: usize,
        projection: Vec<usize>,
    ) -> parquet::errors::Result<Cursor> {
        let file = File::open(&self.path)?;
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)?;
        let mut group_start = 0;
        let mut groups = Vec::new();
        let mut skip = 0;
        for (index, group) in builder.metadata().row_groups().iter().enumerate() {
            let group_rows = usize::try_from(group.num_rows()).unwrap_or(0);
            if group_start + group_rows > first {
                if groups.is_empty() {
                    skip = first - group_start;
                }
                groups.push(index);
            }
            group_start += group_rows;
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), projection.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_row_groups(groups)
            .with_offset(skip)
            .with_batch_size(batch.max(1))
            .build()?;
        Ok(Cursor {
            next_row: first,
            projection,
            reader,
            leftover: None,
        })
    }
}

/// A fingerprint of the file's footer (its row groups, their sizes and statistics) and length.
fn footer_fingerprint(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let length = file.seek(SeekFrom::End(0))?;
    let mut hash = Fnv::new();
    hash.write(&length.to_le_bytes());
    let tail = length.min(64 * 1024);
    file.seek(SeekFrom::Start(length - tail))?;
    let mut bytes = Vec::with_capacity(tail as usize);
    file.read_to_end(&mut bytes)?;
    hash.write(&bytes);
    Ok(hash.finish())
}

fn scalar(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float16
            | Float32
            | Float64
            | Utf8
            | LargeUtf8
            | Utf8View
    )
}

/// The type of a (nested) list's values.
fn leaf_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            leaf_type(f.data_type())
        }
        other => other,
    }
}

#[derive(Debug)]
pub struct ParquetPart {
    batches: Vec<RecordBatch>,
    /// The first row of each batch.
    starts: Vec<usize>,
    rows: usize,
    columns: Resolved<usize>,
    names: Vec<String>,
}

impl ParquetPart {
    fn locate(&self, row: usize) -> (&RecordBatch, usize) {
        let batch = self.starts.partition_point(|&start| start <= row) - 1;
        (&self.batches[batch], row - self.starts[batch])
    }
}

impl PartRows for ParquetPart {
    fn len(&self) -> usize {
        self.rows
    }

    fn fill(&self, row: usize, input: usize, out: &mut InputColumn) -> Result<(), String> {
        let (batch, at) = self.locate(row);
        for &column in &self.columns.inputs[input] {
            let name = &self.names[column];
            push_value(batch.column(column).as_ref(), at, name, out)?;
        }
        Ok(())
    }

    fn id(&self, row: usize) -> Option<Value> {
        let column = self.columns.id?;
        let (batch, at) = self.locate(row);
        Some(id_value(batch.column(column).as_ref(), at))
    }
}

/// Appends element `row` of `array`: a scalar, or every value of a list (nested lists
/// flattened).
fn push_value(
    array: &dyn Array,
    row: usize,
    name: &str,
    out: &mut InputColumn,
) -> Result<(), String> {
    if array.is_null(row) {
        return Err(format!("column `{name}` is null"));
    }
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let range = offsets[row] as usize..offsets[row + 1] as usize;
            push_range(list.values().as_ref(), range, name, out)
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets();
            let range = offsets[row] as usize..offsets[row + 1] as usize;
            push_range(list.values().as_ref(), range, name, out)
        }
        DataType::FixedSizeList(_, size) => {
            let size = *size as usize;
            let list = array.as_fixed_size_list();
            let start = list.value_offset_at(row);
            push_range(list.values().as_ref(), start..start + size, name, out)
        }
        _ => out.push(scalar_cell(array, row, name)?),
    }
}

fn push_range(
    values: &dyn Array,
    range: Range<usize>,
    name: &str,
    out: &mut InputColumn,
) -> Result<(), String> {
    if let (DataType::Float32, 0) = (values.data_type(), values.null_count()) {
        return out.extend_f32(&values.as_primitive::<Float32Type>().values()[range]);
    }
    range
        .into_iter()
        .try_for_each(|i| push_value(values, i, name, out))
}

fn scalar_cell<'a>(array: &'a dyn Array, i: usize, name: &str) -> Result<Cell<'a>, String> {
    Ok(match array.data_type() {
        DataType::Float32 => Cell::F64(f64::from(array.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => Cell::F64(array.as_primitive::<Float64Type>().value(i)),
        DataType::Float16 => Cell::F64(array.as_primitive::<Float16Type>().value(i).to_f64()),
        DataType::Int8 => Cell::I64(array.as_primitive::<Int8Type>().value(i).into()),
        DataType::Int16 => Cell::I64(array.as_primitive::<Int16Type>().value(i).into()),
        DataType::Int32 => Cell::I64(array.as_primitive::<Int32Type>().value(i).into()),
        DataType::Int64 => Cell::I64(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Cell::U64(array.as_primitive::<UInt8Type>().value(i).into()),
        DataType::UInt16 => Cell::U64(array.as_primitive::<UInt16Type>().value(i).into()),
        DataType::UInt32 => Cell::U64(array.as_primitive::<UInt32Type>().value(i).into()),
        DataType::UInt64 => Cell::U64(array.as_primitive::<UInt64Type>().value(i)),
        DataType::Boolean => Cell::Bool(array.as_boolean().value(i)),
        DataType::Utf8 => Cell::Str(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Cell::Str(array.as_string::<i64>().value(i)),
        DataType::Utf8View => Cell::Str(array.as_string_view().value(i)),
        other => return Err(format!("column `{name}` holds {other}")),
    })
}

fn id_value(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match scalar_cell(array, row, "") {
        Ok(Cell::I64(x)) => Value::from(x),
        Ok(Cell::U64(x)) => Value::from(x),
        Ok(Cell::F64(x)) => Value::from(x),
        Ok(Cell::Bool(x)) => Value::from(x),
        Ok(Cell::Str(s)) => Value::from(s),
        Err(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// 21 rows in row groups of 7: `n` = the row number, `name` = "r{n}".
    fn table(dir: &Path) -> ParquetTable {
        let path = dir.join("t.parquet");
        let n: ArrayRef = Arc::new(Int64Array::from_iter_values(0..21));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..21).map(|i| format!("r{i}")),
        ));
        let batch = RecordBatch::try_from_iter([("n", n), ("name", names)]).unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(7))
            .build();
        let file = File::create(&path).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        ParquetTable::open(&path).unwrap()
    }

    fn ids(table: &ParquetTable, rows: Range<usize>, id: &str) -> Vec<Value> {
        let columns = Resolved {
            inputs: vec![],
            id: Some(id.to_string()),
        };
        let part = table.read_part(rows, &columns).unwrap();
        (0..part.len()).map(|row| part.id(row).unwrap()).collect()
    }

    #[test]
    fn parts_read_in_order_out_of_order_and_across_row_groups_hold_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        let expect =
            |rows: Range<usize>| -> Vec<Value> { rows.map(|i| Value::from(i as i64)).collect() };
        // In order: the reader goes on from the last part (its batches are the first part's
        // 5 rows, so a shorter part leaves rows over; parts cross row groups of 7).
        for rows in [0..5, 5..8, 8..10, 10..21] {
            assert_eq!(ids(&table, rows.clone(), "n"), expect(rows));
        }
        // Out of order (a shard's parts), and another column: a fresh reader each time.
        assert_eq!(ids(&table, 15..20, "n"), expect(15..20));
        assert_eq!(ids(&table, 3..9, "n"), expect(3..9));
        assert_eq!(
            ids(&table, 9..14, "name"),
            (9..14)
                .map(|i| Value::from(format!("r{i}")))
                .collect::<Vec<_>>()
        );
        assert_eq!(ids(&table, 14..21, "n"), expect(14..21));
    }
}
