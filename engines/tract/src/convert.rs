//! destino tensors to tract's and back.

use destino_core::{DType, Error, Result, Tensor, TensorData};
use tract_onnx::prelude::*;

use crate::engine_error;

pub(crate) fn datum_type(dtype: DType) -> DatumType {
    match dtype {
        DType::Bool => DatumType::Bool,
        DType::U8 => DatumType::U8,
        DType::U16 => DatumType::U16,
        DType::U32 => DatumType::U32,
        DType::U64 => DatumType::U64,
        DType::I8 => DatumType::I8,
        DType::I16 => DatumType::I16,
        DType::I32 => DatumType::I32,
        DType::I64 => DatumType::I64,
        DType::F16 => DatumType::F16,
        DType::F32 => DatumType::F32,
        DType::F64 => DatumType::F64,
        DType::String => DatumType::String,
    }
}

/// The values a plan takes, in order: every input but those it baked in as constants.
pub(crate) fn plan_values(inputs: &[&Tensor], baked: &[usize]) -> Result<TVec<TValue>> {
    inputs
        .iter()
        .enumerate()
        .filter(|(index, _)| !baked.contains(index))
        .map(|(_, t)| Ok(to_tract(t)?.into_tvalue()))
        .collect()
}

pub(crate) fn to_tract(tensor: &Tensor) -> Result<tract_onnx::prelude::Tensor> {
    fn array<T: Datum + Clone>(shape: &[usize], v: &[T]) -> Result<tract_onnx::prelude::Tensor> {
        tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), v.to_vec())
            .map(IntoTensor::into_tensor)
            .map_err(engine_error)
    }
    let shape = tensor.shape();
    match tensor.data() {
        TensorData::Bool(v) => array(shape, v),
        TensorData::U8(v) => array(shape, v),
        TensorData::U16(v) => array(shape, v),
        TensorData::U32(v) => array(shape, v),
        TensorData::U64(v) => array(shape, v),
        TensorData::I8(v) => array(shape, v),
        TensorData::I16(v) => array(shape, v),
        TensorData::I32(v) => array(shape, v),
        TensorData::I64(v) => array(shape, v),
        TensorData::F16(v) => array(shape, v),
        TensorData::F32(v) => array(shape, v),
        TensorData::F64(v) => array(shape, v),
        TensorData::String(v) => array(shape, v),
    }
}

pub(crate) fn from_tract(name: &str, value: &tract_onnx::prelude::Tensor) -> Result<Tensor> {
    fn elements<T: Datum + Clone>(value: &tract_onnx::prelude::Tensor) -> Result<Vec<T>> {
        Ok(value
            .to_plain_array_view::<T>()
            .map_err(engine_error)?
            .iter()
            .cloned()
            .collect())
    }
    let data: TensorData = match value.datum_type() {
        DatumType::Bool => elements::<bool>(value)?.into(),
        DatumType::U8 => elements::<u8>(value)?.into(),
        DatumType::U16 => elements::<u16>(value)?.into(),
        DatumType::U32 => elements::<u32>(value)?.into(),
        DatumType::U64 => elements::<u64>(value)?.into(),
        DatumType::I8 => elements::<i8>(value)?.into(),
        DatumType::I16 => elements::<i16>(value)?.into(),
        DatumType::I32 => elements::<i32>(value)?.into(),
        DatumType::I64 => elements::<i64>(value)?.into(),
        DatumType::F16 => elements::<f16>(value)?.into(),
        DatumType::F32 => elements::<f32>(value)?.into(),
        DatumType::F64 => elements::<f64>(value)?.into(),
        DatumType::String => elements::<String>(value)?.into(),
        DatumType::TDim => elements::<TDim>(value)?
            .iter()
            .map(|d| d.to_i64().map_err(engine_error))
            .collect::<Result<Vec<i64>>>()?
            .into(),
        other => {
            return Err(Error::UnsupportedDType {
                what: "output",
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    Tensor::new(value.shape().to_vec(), data)
}
