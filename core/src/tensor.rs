//! Dtype-generic, owned tensors: the currency between protocols, pre/postprocessing and engines.

use half::f16;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// The elements of a tensor, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    String(Vec<String>),
}

/// Applies `$body` to the vector inside any `TensorData` variant, binding it as `$v`.
#[macro_export]
macro_rules! map_tensor_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::TensorData::Bool($v) => $body,
            $crate::TensorData::U8($v) => $body,
            $crate::TensorData::U16($v) => $body,
            $crate::TensorData::U32($v) => $body,
            $crate::TensorData::U64($v) => $body,
            $crate::TensorData::I8($v) => $body,
            $crate::TensorData::I16($v) => $body,
            $crate::TensorData::I32($v) => $body,
            $crate::TensorData::I64($v) => $body,
            $crate::TensorData::F16($v) => $body,
            $crate::TensorData::F32($v) => $body,
            $crate::TensorData::F64($v) => $body,
            $crate::TensorData::String($v) => $body,
        }
    };
}

/// Like `map_tensor_data!`, but rewraps the result in the same variant.
macro_rules! rewrap_tensor_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::U8($v) => TensorData::U8($body),
            TensorData::U16($v) => TensorData::U16($body),
            TensorData::U32($v) => TensorData::U32($body),
            TensorData::U64($v) => TensorData::U64($body),
            TensorData::I8($v) => TensorData::I8($body),
            TensorData::I16($v) => TensorData::I16($body),
            TensorData::I32($v) => TensorData::I32($body),
            TensorData::I64($v) => TensorData::I64($body),
            TensorData::F16($v) => TensorData::F16($body),
            TensorData::F32($v) => TensorData::F32($body),
            TensorData::F64($v) => TensorData::F64($body),
            TensorData::String($v) => TensorData::String($body),
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::Bool(_) => DType::Bool,
            TensorData::U8(_) => DType::U8,
            TensorData::U16(_) => DType::U16,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::I8(_) => DType::I8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::F16(_) => DType::F16,
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::String(_) => DType::String,
        }
    }

    pub fn len(&self) -> usize {
        map_tensor_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements of `dtype` packed little-endian in `bytes` (V2 binary data, ONNX `raw_data`);
    /// a trailing partial element is dropped. `None` for strings, which have no fixed width.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<TensorData> {
        // Generic over the conversion (not a `fn` pointer): inlined, the loop is a copy.
        fn fixed<const N: usize, T>(bytes: &[u8], from: impl Fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|c| from(c.try_into().unwrap_or([0; N])))
                .collect()
        }
        Some(match dtype {
            DType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
            DType::U8 => TensorData::U8(bytes.to_vec()),
            DType::U16 => TensorData::U16(fixed(bytes, u16::from_le_bytes)),
            DType::U32 => TensorData::U32(fixed(bytes, u32::from_le_bytes)),
            DType::U64 => TensorData::U64(fixed(bytes, u64::from_le_bytes)),
            DType::I8 => TensorData::I8(fixed(bytes, i8::from_le_bytes)),
            DType::I16 => TensorData::I16(fixed(bytes, i16::from_le_bytes)),
            DType::I32 => TensorData::I32(fixed(bytes, i32::from_le_bytes)),
            DType::I64 => TensorData::I64(fixed(bytes, i64::from_le_bytes)),
            DType::F16 => TensorData::F16(fixed(bytes, f16::from_le_bytes)),
            DType::F32 => TensorData::F32(fixed(bytes, f32::from_le_bytes)),
            DType::F64 => TensorData::F64(fixed(bytes, f64::from_le_bytes)),
            DType::String => return None,
        })
    }

    /// An empty vector of `dtype` with room for `capacity` elements.
    pub fn with_capacity(dtype: DType, capacity: usize) -> TensorData {
        match dtype {
            DType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DType::U8 => TensorData::U8(Vec::with_capacity(capacity)),
            DType::U16 => TensorData::U16(Vec::with_capacity(capacity)),
            DType::U32 => TensorData::U32(Vec::with_capacity(capacity)),
            DType::U64 => TensorData::U64(Vec::with_capacity(capacity)),
            DType::I8 => TensorData::I8(Vec::with_capacity(capacity)),
            DType::I16 => TensorData::I16(Vec::with_capacity(capacity)),
            DType::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            DType::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            DType::F16 => TensorData::F16(Vec::with_capacity(capacity)),
            DType::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            DType::F64 => TensorData::F64(Vec::with_capacity(capacity)),
            DType::String => TensorData::String(Vec::with_capacity(capacity)),
        }
    }

    /// `len` zeros (false, empty strings) of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> TensorData {
        match dtype {
            DType::Bool => TensorData::Bool(vec![false; len]),
            DType::U8 => TensorData::U8(vec![0; len]),
            DType::U16 => TensorData::U16(vec![0; len]),
            DType::U32 => TensorData::U32(vec![0; len]),
            DType::U64 => TensorData::U64(vec![0; len]),
            DType::I8 => TensorData::I8(vec![0; len]),
            DType::I16 => TensorData::I16(vec![0; len]),
            DType::I32 => TensorData::I32(vec![0; len]),
            DType::I64 => TensorData::I64(vec![0; len]),
            DType::F16 => TensorData::F16(vec![f16::ZERO; len]),
            DType::F32 => TensorData::F32(vec![0.0; len]),
            DType::F64 => TensorData::F64(vec![0.0; len]),
            DType::String => TensorData::String(vec![String::new(); len]),
        }
    }

    /// Elements `range` as a new vector of the same dtype.
    fn slice(&self, range: std::ops::Range<usize>) -> TensorData {
        rewrap_tensor_data!(self, v => v[range].to_vec())
    }

    /// Appends `other`'s elements; fails when the dtypes differ.
    fn extend_from(&mut self, other: &TensorData) -> Result<()> {
        let (to, from) = (self.dtype(), other.dtype());
        macro_rules! extend {
            ($($variant:ident),*) => {
                match (self, other) {
                    $((TensorData::$variant(a), TensorData::$variant(b)) => a.extend_from_slice(b),)*
                    _ => return Err(Error::InvalidTensor(format!("cannot join {from} elements to a {to} tensor"))),
                }
            };
        }
        extend!(
            Bool, U8, U16, U32, U64, I8, I16, I32, I64, F16, F32, F64, String
        );
        Ok(())
    }

    /// Every element widened to f64 (f16/f32 exactly, 64-bit integers beyond 2^53 rounded);
    /// `None` for strings.
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        Some(match self {
            TensorData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            TensorData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::U16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::U32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::U64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            TensorData::F64(v) => v.clone(),
            TensorData::String(_) => return None,
        })
    }
}

macro_rules! impl_from_vec {
    ($($t:ty => $variant:ident),*) => {
        $(impl From<Vec<$t>> for TensorData {
            fn from(v: Vec<$t>) -> Self {
                TensorData::$variant(v)
            }
        })*
    };
}
impl_from_vec!(bool => Bool, u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8, i16 => I16,
    i32 => I32, i64 => I64, f16 => F16, f32 => F32, f64 => F64, String => String);

/// An owned n-dimensional tensor. Invariant: the product of `shape` equals the element count.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

/// Number of elements a shape holds, or `None` when the product overflows `usize`.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    /// A tensor of `shape` over `data`; fails when the element count does not match.
    pub fn new(shape: Vec<usize>, data: impl Into<TensorData>) -> Result<Tensor> {
        let data = data.into();
        match element_count(&shape) {
            Some(n) if n == data.len() => Ok(Tensor { shape, data }),
            Some(n) => Err(Error::InvalidTensor(format!(
                "shape {shape:?} holds {n} elements but {} were given",
                data.len()
            ))),
            None => Err(Error::InvalidTensor(format!(
                "shape {shape:?} overflows the addressable element count"
            ))),
        }
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar<T>(value: T) -> Tensor
    where
        TensorData: From<Vec<T>>,
    {
        Tensor {
            shape: vec![],
            data: TensorData::from(vec![value]),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, self.data)
    }

    /// The f32 elements, when this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Joins tensors along axis 0. All parts must share dtype and every dim after the first.
    pub fn concat_batch<T: std::borrow::Borrow<Tensor>>(parts: &[T]) -> Result<Tensor> {
        let first: &Tensor = parts
            .first()
            .ok_or_else(|| Error::InvalidTensor("nothing to concatenate".into()))?
            .borrow();
        if first.shape.is_empty() {
            return Err(Error::InvalidTensor("cannot batch rank-0 tensors".into()));
        }
        let inner = &first.shape[1..];
        let mut rows = 0usize;
        let total = parts.iter().map(|p| p.borrow().len()).sum();
        let mut data = TensorData::with_capacity(first.dtype(), total);
        for part in parts {
            let part: &Tensor = part.borrow();
            if part.shape.get(1..) != Some(inner) {
                return Err(Error::InvalidTensor(format!(
                    "cannot batch shape {:?} with shape {:?}",
                    part.shape, first.shape
                )));
            }
            rows += part.shape[0];
            data.extend_from(&part.data)?;
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Tensor::new(shape, data)
    }

    /// Splits along axis 0 into consecutive pieces of `rows[i]` rows each; the rows must add up
    /// to the first dim.
    pub fn split_batch(&self, rows: &[usize]) -> Result<Vec<Tensor>> {
        let total: usize = rows.iter().sum();
        match self.shape.first() {
            Some(&n) if n == total => {}
            _ => {
                return Err(Error::InvalidTensor(format!(
                    "cannot split shape {:?} into batches of {rows:?} rows",
                    self.shape
                )));
            }
        }
        let row_len = self.shape[1..].iter().product::<usize>();
        let mut start = 0;
        rows.iter()
            .map(|&r| {
                let mut shape = self.shape.clone();
                shape[0] = r;
                let piece = self.data.slice(start * row_len..(start + r) * row_len);
                start += r;
                Tensor::new(shape, piece)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_element_count() {
        assert!(Tensor::new(vec![2, 3], vec![0f32; 6]).is_ok());
        let err = Tensor::new(vec![2, 3], vec![0f32; 5]).unwrap_err();
        assert!(err.to_string().contains("holds 6 elements but 5"), "{err}");
        assert!(Tensor::new(vec![usize::MAX, 2], vec![0u8; 0]).is_err());
        assert_eq!(Tensor::scalar(16000i64).shape(), &[] as &[usize]);
    }

    #[test]
    fn concat_then_split_round_trips() {
        let a = Tensor::new(vec![1, 2], vec![1i64, 2]).unwrap();
        let b = Tensor::new(vec![2, 2], vec![3i64, 4, 5, 6]).unwrap();
        let joined = Tensor::concat_batch(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(joined.shape(), &[3, 2]);
        assert_eq!(joined.data(), &TensorData::I64(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(joined.split_batch(&[1, 2]).unwrap(), vec![a, b]);
    }

    #[test]
    fn concat_rejects_mismatched_parts() {
        let a = Tensor::new(vec![1, 2], vec![1f32, 2.0]).unwrap();
        let wider = Tensor::new(vec![1, 3], vec![1f32, 2.0, 3.0]).unwrap();
        let ints = Tensor::new(vec![1, 2], vec![1i32, 2]).unwrap();
        assert!(Tensor::concat_batch(&[a.clone(), wider]).is_err());
        assert!(Tensor::concat_batch(&[a.clone(), ints]).is_err());
        assert!(a.split_batch(&[2]).is_err());
    }

    #[test]
    fn strings_batch_like_numbers() {
        let a = Tensor::new(vec![1], vec!["a".to_string()]).unwrap();
        let b = Tensor::new(vec![1], vec!["b".to_string()]).unwrap();
        let joined = Tensor::concat_batch(&[a, b]).unwrap();
        assert_eq!(joined.dtype(), DType::String);
        assert_eq!(joined.len(), 2);
    }
}
