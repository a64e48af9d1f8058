//! A model input's tensor built from table rows: each row's values (a list column, several
//! scalar columns, a nested JSON array) are appended in the input's dtype, and the row's shape
//! is checked against the input's declared dims. A row that does not fit is taken back out
//! and reported; the other rows of the chunk still run.

use destino_core::dtype::DType;
use destino_core::metadata::{Dim, TensorInfo};
use destino_core::tensor::{Tensor, TensorData};
use half::f16;

/// One value of a row, as a table holds it.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    F64(f64),
    I64(i64),
    U64(u64),
    Bool(bool),
    Str(&'a str),
}

/// One input's values for a chunk of rows.
#[derive(Debug)]
pub struct InputColumn {
    pub name: String,
    dtype: DType,
    /// The dims one row fills (`None`: free); `None` when the model declares no rank.
    row_dims: Option<Vec<Option<usize>>>,
    /// Whether rows stack on a batch axis (else one row is the whole tensor).
    batched: bool,
    data: TensorData,
    rows: usize,
    /// The shape of this chunk's rows, fixed by its first row.
    row_shape: Option<Vec<usize>>,
    /// Where the current row started: values, rows.
    row_start: (usize, usize),
}

impl InputColumn {
    /// The column of input `info`; `batched`: the model stacks rows on axis 0. Refuses an
    /// input whose row shape a flat list of values cannot give (two free dims).
    pub fn new(info: &TensorInfo, batched: bool) -> Result<InputColumn, String> {
        let row_dims = info.shape.as_ref().map(|dims| {
            let dims = if batched { &dims[1..] } else { &dims[..] };
            dims.iter()
                .map(|d| match d {
                    Dim::Fixed(n) => Some(*n),
                    _ => None,
                })
                .collect::<Vec<_>>()
        });
        if let Some(dims) = &row_dims
            && dims.iter().filter(|d| d.is_none()).count() > 1
        {
            return Err(format!(
                "input `{}` {} has more than one free dim in a row: a table's values cannot give \
                 its shape",
                info.name,
                info.shape_text()
            ));
        }
        Ok(InputColumn {
            name: info.name.clone(),
            dtype: info.dtype,
            row_dims,
            batched,
            data: TensorData::with_capacity(info.dtype, 0),
            rows: 0,
            row_shape: None,
            row_start: (0, 0),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Makes room for `rows` rows when the row shape is fixed.
    pub fn reserve_rows(&mut self, rows: usize) {
        let Some(dims) = &self.row_dims else { return };
        if let Some(len) = dims.iter().copied().product::<Option<usize>>() {
            let more = rows.saturating_mul(len).min(1 << 26);
            destino_core::map_tensor_data!(&mut self.data, v => v.reserve(more));
        }
    }

    pub fn begin_row(&mut self) {
        self.row_start = (self.data.len(), self.rows);
    }

    /// Takes the current row back out (ended or not).
    pub fn cancel_row(&mut self) {
        let (values, rows) = self.row_start;
        destino_core::map_tensor_data!(&mut self.data, v => v.truncate(values));
        self.rows = rows;
        if rows == 0 {
            self.row_shape = None;
        }
    }

    /// Ends the current row: its values must fill the input's row shape (and, for a free
    /// dim, match the chunk's first row).
    pub fn end_row(&mut self) -> Result<(), String> {
        let count = self.data.len() - self.row_start.0;
        let shape = self.shape_of(count)?;
        match &self.row_shape {
            Some(first) if *first != shape => {
                return Err(format!(
                    "input `{}`: {count} values, where the chunk's first row had {}",
                    self.name,
                    first.iter().product::<usize>()
                ));
            }
            Some(_) => {}
            None => self.row_shape = Some(shape),
        }
        self.rows += 1;
        Ok(())
    }

    fn shape_of(&self, count: usize) -> Result<Vec<usize>, String> {
        let Some(dims) = &self.row_dims else {
            return Ok(vec![count]);
        };
        let fixed: usize = dims.iter().flatten().product();
        let fits = |free: usize| dims.iter().map(|d| d.unwrap_or(free)).collect();
        let has_free = dims.iter().any(Option::is_none);
        match (has_free, fixed) {
            (false, _) if count == fixed => Ok(fits(0)),
            (true, 0) if count == 0 => Ok(fits(0)),
            (true, f) if f > 0 && count.is_multiple_of(f) => Ok(fits(count / f)),
            _ => Err(format!(
                "input `{}` takes {} per row; the row has {count} values",
                self.name,
                match (dims.is_empty(), has_free) {
                    (true, _) => "one value".to_string(),
                    (false, false) => format!("{fixed} values (dims {dims:?})"),
                    (false, true) => format!("a multiple of {fixed} values"),
                }
            )),
        }
    }

    /// The chunk's tensor: `[rows, row dims..]` (or the one row's dims for a model without
    /// a batch axis).
    pub fn finish(self) -> Result<Tensor, String> {
        let row = self.row_shape.unwrap_or_default();
        let shape = if self.batched {
            std::iter::once(self.rows).chain(row).collect()
        } else {
            row
        };
        Tensor::new(shape, self.data).map_err(|e| e.to_string())
    }

    /// Appends f32 values (the common case, a list of f32 into an f32 input, in one step).
    pub fn extend_f32(&mut self, values: &[f32]) -> Result<(), String> {
        if let TensorData::F32(v) = &mut self.data {
            v.extend_from_slice(values);
            return Ok(());
        }
        values
            .iter()
            .try_for_each(|&x| self.push(Cell::F64(f64::from(x))))
    }

    /// Appends one value, converted to the input's dtype.
    pub fn push(&mut self, cell: Cell) -> Result<(), String> {
        let name = &self.name;
        match &mut self.data {
            TensorData::F32(v) => v.push(float(cell, name)? as f32),
            TensorData::F64(v) => v.push(float(cell, name)?),
            TensorData::F16(v) => v.push(f16::from_f64(float(cell, name)?)),
            TensorData::I64(v) => v.push(integer(cell, name)?),
            TensorData::I32(v) => v.push(integer(cell, name)?),
            TensorData::I16(v) => v.push(integer(cell, name)?),
            TensorData::I8(v) => v.push(integer(cell, name)?),
            TensorData::U64(v) => v.push(integer(cell, name)?),
            TensorData::U32(v) => v.push(integer(cell, name)?),
            TensorData::U16(v) => v.push(integer(cell, name)?),
            TensorData::U8(v) => v.push(integer(cell, name)?),
            TensorData::Bool(v) => v.push(boolean(cell, name)?),
            TensorData::String(v) => match cell {
                Cell::Str(s) => v.push(s.to_string()),
                _ => {
                    return Err(format!(
                        "input `{name}` takes strings; the row has a number"
                    ));
                }
            },
        }
        Ok(())
    }
}

fn float(cell: Cell, input: &str) -> Result<f64, String> {
    match cell {
        Cell::F64(x) => Ok(x),
        Cell::I64(x) => Ok(x as f64),
        Cell::U64(x) => Ok(x as f64),
        Cell::Bool(x) => Ok(f64::from(u8::from(x))),
        Cell::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("input `{input}` takes numbers; the row has `{}`", clip(s))),
    }
}

fn integer<T: TryFrom<i64> + TryFrom<u64>>(cell: Cell, input: &str) -> Result<T, String> {
    let out_of_range = |x: &dyn std::fmt::Display| {
        format!("input `{input}`: {x} is not an integer its dtype holds")
    };
    match cell {
        Cell::I64(x) => T::try_from(x).map_err(|_| out_of_range(&x)),
        Cell::U64(x) => T::try_from(x).map_err(|_| out_of_range(&x)),
        Cell::Bool(x) => T::try_from(i64::from(x)).map_err(|_| out_of_range(&x)),
        Cell::F64(x) if x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 => {
            T::try_from(x as i64).map_err(|_| out_of_range(&x))
        }
        Cell::F64(x) => Err(out_of_range(&x)),
        Cell::Str(s) => match s.trim().parse::<i64>() {
            Ok(x) => T::try_from(x).map_err(|_| out_of_range(&x)),
            Err(_) => Err(format!(
                "input `{input}` takes integers; the row has `{}`",
                clip(s)
            )),
        },
    }
}

fn boolean(cell: Cell, input: &str) -> Result<bool, String> {
    match cell {
        Cell::Bool(x) => Ok(x),
        Cell::I64(0) | Cell::U64(0) => Ok(false),
        Cell::I64(1) | Cell::U64(1) => Ok(true),
        Cell::Str(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Cell::Str(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(format!(
            "input `{input}` takes booleans; the row has {cell:?}"
        )),
    }
}

/// The start of a long text, for a message.
fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(dtype: DType, dims: Vec<Dim>) -> TensorInfo {
        TensorInfo {
            name: "x".into(),
            dtype,
            shape: Some(dims),
        }
    }

    fn row(column: &mut InputColumn, cells: &[Cell]) -> Result<(), String> {
        column.begin_row();
        let filled = cells
            .iter()
            .try_for_each(|c| column.push(*c))
            .and_then(|()| column.end_row());
        if filled.is_err() {
            column.cancel_row();
        }
        filled
    }

    #[test]
    fn rows_stack_on_the_batch_axis_and_bad_rows_leave_no_trace() {
        let batch = Dim::Symbolic("N".into());
        let mut column =
            InputColumn::new(&info(DType::F32, vec![batch, Dim::Fixed(2)]), true).unwrap();
        row(&mut column, &[Cell::F64(1.5), Cell::I64(2)]).unwrap();
        let short = row(&mut column, &[Cell::F64(1.0)]).unwrap_err();
        assert!(short.contains("2 values"), "{short}");
        let text = row(&mut column, &[Cell::F64(1.0), Cell::Str("a")]).unwrap_err();
        assert!(text.contains("takes numbers"), "{text}");
        row(&mut column, &[Cell::Str(" 3 "), Cell::U64(4)]).unwrap();
        let tensor = column.finish().unwrap();
        assert_eq!(tensor.shape(), [2, 2]);
        assert_eq!(tensor.as_f32().unwrap(), [1.5, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_free_dim_takes_the_first_rows_length_and_integers_are_checked() {
        let dims = vec![Dim::Symbolic("N".into()), Dim::Unknown];
        let mut column = InputColumn::new(&info(DType::I32, dims), true).unwrap();
        row(
            &mut column,
            &[Cell::I64(1), Cell::F64(2.0), Cell::Bool(true)],
        )
        .unwrap();
        assert!(row(&mut column, &[Cell::I64(1)]).is_err());
        assert!(row(&mut column, &[Cell::F64(0.5), Cell::I64(1), Cell::I64(1)]).is_err());
        assert!(
            row(
                &mut column,
                &[Cell::I64(1 << 40), Cell::I64(1), Cell::I64(1)]
            )
            .is_err()
        );
        let tensor = column.finish().unwrap();
        assert_eq!(tensor.shape(), [1, 3]);
        let free2 = vec![Dim::Symbolic("N".into()), Dim::Unknown, Dim::Unknown];
        assert!(InputColumn::new(&info(DType::F32, free2), true).is_err());
    }

    #[test]
    fn a_scalar_row_and_strings() {
        let mut column =
            InputColumn::new(&info(DType::String, vec![Dim::Symbolic("N".into())]), true).unwrap();
        row(&mut column, &[Cell::Str("a")]).unwrap();
        assert!(row(&mut column, &[Cell::Str("a"), Cell::Str("b")]).is_err());
        assert!(row(&mut column, &[Cell::I64(1)]).is_err());
        let tensor = column.finish().unwrap();
        assert_eq!(tensor.shape(), [1]);
    }
}
