//! What a batch writes per input row: its key, its id, each model output's value for that row
//! (the top classes where `model.toml` describes the output, the row's tensor otherwise) or why
//! it failed. The columns are fixed from the model before any work, so every part file of a
//! job has one schema.

use std::sync::Arc;

use destino_core::dtype::DType;
use destino_core::manifest::OutputSpec;
use destino_core::metadata::Tensors;
use destino_core::postprocess::{Class, classify};
use destino_core::tensor::{Tensor, TensorData};
use destino_serving::ServedModel;
use destino_serving::v2::response::NestedData;
use serde_json::{Map, Value, json};

/// How one input row's outputs are cut from a run's outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowForm {
    /// Row `i` is index `i` of axis 0 (a batching model's rows, one image, one text).
    Sliced,
    /// A row is a run's whole outputs (an `.npz` file; a model without a batch axis).
    Whole,
}

/// The type of the `key` and `id` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Int,
    Float,
    Bool,
    Text,
}

impl KeyKind {
    /// The kind of a JSON value (text for anything but a number or a boolean).
    pub fn of(value: &Value) -> KeyKind {
        match value {
            Value::Number(n) if n.is_i64() => KeyKind::Int,
            Value::Number(_) => KeyKind::Float,
            Value::Bool(_) => KeyKind::Bool,
            _ => KeyKind::Text,
        }
    }
}

/// One scored row.
#[derive(Debug, Clone)]
pub struct ScoredRow {
    /// A file's path under the input folder, or a table row's number.
    pub key: Value,
    /// The row's id column, when the job has one.
    pub id: Option<Value>,
    /// The row's outputs, or why the row failed.
    pub outcome: Result<RowOutputs, String>,
}

/// One row's outputs: a row of a run's outputs (in `OutputSchema` order), shared by the rows
/// of that run rather than copied per row.
#[derive(Debug, Clone)]
pub struct RowOutputs {
    run: Arc<Vec<Tensor>>,
    /// The row on axis 0; `None`: the whole tensors.
    row: Option<usize>,
}

impl RowOutputs {
    /// Output `column`'s shape for this row.
    pub fn shape(&self, column: usize) -> &[usize] {
        let shape = self.run[column].shape();
        match self.row {
            Some(_) => &shape[1..],
            None => shape,
        }
    }

    pub fn dtype(&self, column: usize) -> DType {
        self.run[column].dtype()
    }

    /// Output `column`'s values for this row: where they start and how many.
    fn range(&self, column: usize) -> std::ops::Range<usize> {
        let tensor = &self.run[column];
        match self.row {
            Some(row) => {
                let len = tensor.shape()[1..].iter().product::<usize>();
                row * len..(row + 1) * len
            }
            None => 0..tensor.len(),
        }
    }

    /// The number of values output `column` has for this row.
    pub fn len(&self, column: usize) -> usize {
        self.range(column).len()
    }

    /// Appends output `column`'s values for this row to `data` (of its dtype).
    pub fn extend(&self, column: usize, data: &mut TensorData) {
        extend_range(data, self.run[column].data(), self.range(column));
    }

    /// Output `column`'s tensor for this row (a copy).
    pub fn tensor(&self, column: usize) -> Result<Tensor, String> {
        let mut data = TensorData::with_capacity(self.dtype(column), self.len(column));
        self.extend(column, &mut data);
        Tensor::new(self.shape(column).to_vec(), data).map_err(|e| e.to_string())
    }
}

/// Appends `from[range]` to `data` (nothing when their dtypes differ).
pub fn extend_range(data: &mut TensorData, from: &TensorData, range: std::ops::Range<usize>) {
    macro_rules! same {
        ($($variant:ident),*) => {
            match (data, from) {
                $((TensorData::$variant(d), TensorData::$variant(f)) => {
                    d.extend_from_slice(&f[range])
                })*
                (TensorData::String(d), TensorData::String(f)) => d.extend(f[range].iter().cloned()),
                _ => {}
            }
        };
    }
    same!(Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, F32, F64);
}

#[derive(Debug, Clone)]
pub struct OutputColumn {
    /// The model's output name.
    pub output: String,
    /// Its column name (prefixed when it would clash with `key`, `id` or `error`).
    pub column: String,
    pub kind: OutputKind,
}

#[derive(Debug, Clone)]
pub enum OutputKind {
    /// The top classes per row: index, label, score.
    Classes {
        spec: OutputSpec,
        labels: Option<Vec<String>>,
    },
    /// The row's tensor: a value (rank 0), a list (rank 1), or a flat list and its shape.
    Tensor { dtype: DType, rank: Option<usize> },
}

#[derive(Debug, Clone)]
pub struct OutputSchema {
    pub form: RowForm,
    pub columns: Vec<OutputColumn>,
}

impl OutputSchema {
    /// The outputs of `model` (its embedding, for a text model), classes with `top_k`.
    pub fn new(model: &ServedModel, form: RowForm, top_k: Option<usize>) -> OutputSchema {
        let infos = match &model.text {
            Some(text) => vec![(text.output().to_string(), DType::F32, Some(2))],
            None => model
                .metadata
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.dtype, o.shape.as_ref().map(Vec::len)))
                .collect(),
        };
        let columns = infos
            .into_iter()
            .map(|(output, dtype, rank)| {
                let rank = match form {
                    RowForm::Sliced => rank.map(|r| r.saturating_sub(1)),
                    RowForm::Whole => rank,
                };
                let classes = model
                    .manifest
                    .outputs
                    .get(&output)
                    .filter(|_| form == RowForm::Sliced && dtype != DType::String);
                let kind = match classes {
                    Some(spec) => OutputKind::Classes {
                        spec: OutputSpec {
                            top_k: top_k.unwrap_or(spec.top_k),
                            ..spec.clone()
                        },
                        labels: model.labels.get(&output).cloned(),
                    },
                    None => OutputKind::Tensor { dtype, rank },
                };
                let column = match output.as_str() {
                    "key" | "id" | "error" => format!("output.{output}"),
                    _ => output.clone(),
                };
                OutputColumn {
                    output,
                    column,
                    kind,
                }
            })
            .collect();
        OutputSchema { form, columns }
    }

    /// The rows of one run's `outputs`, which carry `rows` rows (1 for `Whole`).
    pub fn rows(&self, outputs: Tensors, rows: usize) -> Vec<Result<RowOutputs, String>> {
        match self.run(outputs, rows) {
            Ok(run) => (0..rows)
                .map(|row| {
                    Ok(RowOutputs {
                        run: run.clone(),
                        row: (self.form == RowForm::Sliced).then_some(row),
                    })
                })
                .collect(),
            Err(why) => vec![Err(why); rows],
        }
    }

    /// The run's outputs in column order, each checked to hold `rows` rows.
    fn run(&self, mut outputs: Tensors, rows: usize) -> Result<Arc<Vec<Tensor>>, String> {
        let mut run = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let tensor = outputs
                .remove(&column.output)
                .ok_or_else(|| format!("the model returned no output `{}`", column.output))?;
            if self.form == RowForm::Sliced && tensor.shape().first() != Some(&rows) {
                return Err(output_rows_error(&column.output, &tensor, rows));
            }
            run.push(tensor);
        }
        Ok(Arc::new(run))
    }
}

fn output_rows_error(output: &str, tensor: &Tensor, rows: usize) -> String {
    format!(
        "output `{output}` has shape {:?}, not {rows} rows on axis 0",
        tensor.shape()
    )
}

/// The classes of one row's scores (`Sliced`).
pub fn row_classes(
    tensor: &Tensor,
    spec: &OutputSpec,
    labels: Option<&[String]>,
) -> Result<Vec<Class>, String> {
    let (_, data) = tensor.clone().into_parts();
    let matrix = Tensor::new(vec![1, data.len()], data).map_err(|e| e.to_string())?;
    let mut rows = classify(&matrix, spec, labels).map_err(|e| e.to_string())?;
    Ok(rows.pop().unwrap_or_default())
}

/// One JSON-lines row: `{"key", "id"?, "outputs": {name: value} | null, "error": null | why}`.
pub fn json_row(schema: &OutputSchema, row: &ScoredRow) -> Value {
    let outputs = row
        .outcome
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|outputs| {
            let mut map = Map::new();
            for (index, column) in schema.columns.iter().enumerate() {
                let tensor = &outputs.tensor(index)?;
                let value = match &column.kind {
                    OutputKind::Classes { spec, labels } => {
                        let classes = row_classes(tensor, spec, labels.as_deref())?;
                        Value::from(
                        classes
                            .iter()
                            .map(|c| json!({"index": c.index, "label": c.label, "score": c.score}))
                            .collect::<Vec<_>>(),
                    )
                    }
                    OutputKind::Tensor { .. } => serde_json::to_value(NestedData {
                        shape: tensor.shape(),
                        data: tensor.data(),
                    })
                    .map_err(|e| e.to_string())?,
                };
                map.insert(column.output.clone(), value);
            }
            Ok(Value::Object(map))
        });
    let mut line = match outputs {
        Ok(outputs) => json!({"key": row.key, "outputs": outputs, "error": null}),
        Err(why) => json!({"key": row.key, "outputs": null, "error": why}),
    };
    if let Some(id) = &row.id {
        line["id"] = id.clone();
    }
    line
}

/// A JSON-lines part file's bytes.
pub fn json_lines(schema: &OutputSchema, rows: &[ScoredRow]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        out.extend_from_slice(json_row(schema, row).to_string().as_bytes());
        out.push(b'\n');
    }
    out
}
