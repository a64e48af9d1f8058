//! A part file in Parquet: one row per input row, the columns `key`, `id` (with
//! `--id-column`), one per model output and `error`; a failed row has null outputs and its
//! reason in `error`. Classes are a list of `{index, label, score}`; a tensor of rank 0 per
//! row is a value, rank 1 a list, higher ranks a flat list and a `<name>_shape` list. Every
//! part of a job has this schema, so the folder reads as one data set (pandas, Spark, DuckDB).

use std::sync::Arc;

use arrow_array::builder::{
    Float32Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
};
use arrow_array::{
    ArrayRef, BooleanArray, Float16Array, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray, UInt8Array, UInt16Array,
    UInt32Array, UInt64Array, make_array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};
use destino_core::dtype::DType;
use destino_core::tensor::TensorData;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde_json::Value;

use crate::output::{
    KeyKind, OutputKind, OutputSchema, RowOutputs, ScoredRow, extend_range, row_classes,
};

fn key_type(kind: KeyKind) -> DataType {
    match kind {
        KeyKind::Int => DataType::Int64,
        KeyKind::Float => DataType::Float64,
        KeyKind::Bool => DataType::Boolean,
        KeyKind::Text => DataType::Utf8,
    }
}

/// The Parquet bytes of one part.
pub fn parquet_part(
    schema: &OutputSchema,
    key: KeyKind,
    id: Option<KeyKind>,
    rows: &[ScoredRow],
) -> Result<Vec<u8>, String> {
    let mut fields = vec![Field::new("key", key_type(key), false)];
    let mut columns = vec![key_array(key, rows.iter().map(|r| &r.key))];
    if let Some(kind) = id {
        fields.push(Field::new("id", key_type(kind), true));
        let ids = rows.iter().map(|r| r.id.as_ref().unwrap_or(&Value::Null));
        columns.push(key_array(kind, ids));
    }
    let outputs: Vec<Option<&RowOutputs>> = rows.iter().map(|r| r.outcome.as_ref().ok()).collect();
    for (index, column) in schema.columns.iter().enumerate() {
        let name = &column.column;
        match &column.kind {
            OutputKind::Classes { spec, labels } => {
                let array = classes_array(&outputs, index, spec, labels.as_deref())?;
                fields.push(Field::new(name, array.data_type().clone(), true));
                columns.push(array);
            }
            OutputKind::Tensor { dtype, rank } => {
                let (array, shape) = tensor_arrays(&outputs, index, *dtype, *rank)?;
                fields.push(Field::new(name, array.data_type().clone(), true));
                columns.push(array);
                if let Some(shape) = shape {
                    fields.push(Field::new(
                        format!("{name}_shape"),
                        shape.data_type().clone(),
                        true,
                    ));
                    columns.push(shape);
                }
            }
        }
    }
    fields.push(Field::new("error", DataType::Utf8, true));
    let errors: StringArray = rows.iter().map(|r| r.outcome.as_ref().err()).collect();
    columns.push(Arc::new(errors));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| format!("cannot assemble the part: {e}"))?;
    // Model outputs are mostly distinct floats: dictionaries and page statistics cost more
    // than they save.
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    let mut bytes = Vec::with_capacity(batch.get_array_memory_size() / 2);
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))
        .map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn key_array<'a>(kind: KeyKind, values: impl Iterator<Item = &'a Value>) -> ArrayRef {
    match kind {
        KeyKind::Int => Arc::new(values.map(Value::as_i64).collect::<Int64Array>()),
        KeyKind::Float => Arc::new(values.map(Value::as_f64).collect::<Float64Array>()),
        KeyKind::Bool => Arc::new(values.map(Value::as_bool).collect::<BooleanArray>()),
        KeyKind::Text => Arc::new(
            values
                .map(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect::<StringArray>(),
        ),
    }
}

/// A list of `{index, label, score}` per row.
fn classes_array(
    values: &[Option<&RowOutputs>],
    column: usize,
    spec: &destino_core::manifest::OutputSpec,
    labels: Option<&[String]>,
) -> Result<ArrayRef, String> {
    let fields = Fields::from(vec![
        Field::new("index", DataType::Int64, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("score", DataType::Float32, false),
    ]);
    let item = StructBuilder::new(
        fields.clone(),
        vec![
            Box::new(Int64Builder::new()),
            Box::new(StringBuilder::new()),
            Box::new(Float32Builder::new()),
        ],
    );
    let mut list =
        ListBuilder::new(item).with_field(Field::new("item", DataType::Struct(fields), false));
    for value in values {
        let Some(outputs) = value else {
            list.append(false);
            continue;
        };
        for class in row_classes(&outputs.tensor(column)?, spec, labels)? {
            let item = list.values();
            let index = i64::try_from(class.index).unwrap_or(i64::MAX);
            append::<Int64Builder>(item, 0)?.append_value(index);
            append::<StringBuilder>(item, 1)?.append_option(class.label);
            append::<Float32Builder>(item, 2)?.append_value(class.score);
            item.append(true);
        }
        list.append(true);
    }
    Ok(Arc::new(list.finish()))
}

fn append<T: arrow_array::builder::ArrayBuilder>(
    item: &mut StructBuilder,
    field: usize,
) -> Result<&mut T, String> {
    item.field_builder::<T>(field)
        .ok_or_else(|| "a classes column's builder has another type".to_string())
}

/// A tensor column: values (rank 0), a list per row, or a flat list and a shape list.
fn tensor_arrays(
    values: &[Option<&RowOutputs>],
    column: usize,
    dtype: DType,
    rank: Option<usize>,
) -> Result<(ArrayRef, Option<ArrayRef>), String> {
    let valid: Vec<bool> = values.iter().map(Option::is_some).collect();
    let total = values
        .iter()
        .flatten()
        .map(|o| o.len(column))
        .sum::<usize>();
    let mut data = TensorData::with_capacity(dtype, total.max(values.len()));
    let mut lengths = Vec::with_capacity(values.len());
    for value in values {
        match value {
            Some(outputs) => {
                if outputs.dtype(column) != dtype {
                    return Err(format!(
                        "an output is {:?} where the model declares {dtype:?}",
                        outputs.dtype(column)
                    ));
                }
                let len = outputs.len(column);
                if rank == Some(0) && len != 1 {
                    return Err(format!(
                        "an output row has shape {:?} where the model declares one value",
                        outputs.shape(column)
                    ));
                }
                outputs.extend(column, &mut data);
                lengths.push(len);
            }
            None if rank == Some(0) => {
                let zero = TensorData::zeros(dtype, 1);
                extend_range(&mut data, &zero, 0..1);
                lengths.push(1);
            }
            None => lengths.push(0),
        }
    }
    let nulls = NullBuffer::from(valid);
    let flat = values_array(data);
    if rank == Some(0) {
        let with_nulls = flat
            .to_data()
            .into_builder()
            .nulls(Some(nulls))
            .build()
            .map_err(|e| e.to_string())?;
        return Ok((make_array(with_nulls), None));
    }
    let item = Arc::new(Field::new("item", flat.data_type().clone(), false));
    let list = ListArray::try_new(
        item,
        OffsetBuffer::from_lengths(lengths),
        flat,
        Some(nulls.clone()),
    )
    .map_err(|e| e.to_string())?;
    if matches!(rank, Some(1)) {
        return Ok((Arc::new(list), None));
    }
    let mut shapes = ListBuilder::new(Int64Builder::new());
    for value in values {
        match value {
            Some(outputs) => {
                for &dim in outputs.shape(column) {
                    shapes.values().append_value(dim as i64);
                }
                shapes.append(true);
            }
            None => shapes.append(false),
        }
    }
    Ok((Arc::new(list), Some(Arc::new(shapes.finish()))))
}

fn values_array(data: TensorData) -> ArrayRef {
    match data {
        TensorData::Bool(v) => Arc::new(BooleanArray::from(v)),
        TensorData::U8(v) => Arc::new(UInt8Array::from(v)),
        TensorData::U16(v) => Arc::new(UInt16Array::from(v)),
        TensorData::U32(v) => Arc::new(UInt32Array::from(v)),
        TensorData::U64(v) => Arc::new(UInt64Array::from(v)),
        TensorData::I8(v) => Arc::new(Int8Array::from(v)),
        TensorData::I16(v) => Arc::new(Int16Array::from(v)),
        TensorData::I32(v) => Arc::new(Int32Array::from(v)),
        TensorData::I64(v) => Arc::new(Int64Array::from(v)),
        TensorData::F16(v) => Arc::new(Float16Array::from(v)),
        TensorData::F32(v) => Arc::new(Float32Array::from(v)),
        TensorData::F64(v) => Arc::new(Float64Array::from(v)),
        TensorData::String(v) => Arc::new(StringArray::from(v)),
    }
}
