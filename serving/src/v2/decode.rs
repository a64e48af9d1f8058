//! Turning V2 request inputs into tensors: JSON `data` (flat or nested) or raw binary.

use serde::de::DeserializeSeed;

use crate::error::ApiError;
use crate::v2::datatype::to_v2;
use crate::v2::json_elements::TypedData;
use crate::v2::request::{InputData, RequestInput};
use destino_core::dtype::DType;
use destino_core::tensor::{Tensor, TensorData, element_count};

/// The tensor an input describes; its element count must match its shape.
pub fn to_tensor(input: RequestInput) -> Result<Tensor, ApiError> {
    let count = element_count(&input.shape).ok_or_else(|| {
        ApiError::invalid(format!(
            "input `{}`: shape {:?} has too many elements",
            input.name, input.shape
        ))
    })?;
    let data = match input.data {
        InputData::Decoded(data) => data,
        InputData::Json(value) => {
            let label = format!("input `{}`", input.name);
            let typed = TypedData {
                dtype: input.datatype,
                label: &label,
                claimed: count,
            };
            typed
                .deserialize(&value)
                .map_err(|e| ApiError::invalid(e.to_string()))?
        }
        InputData::Binary(bytes) => from_binary(&input.name, input.datatype, &bytes, count)?,
    };
    if data.len() != count {
        return Err(ApiError::invalid(format!(
            "input `{}`: shape {:?} needs {count} elements, data has {}",
            input.name,
            input.shape,
            data.len()
        )));
    }
    Tensor::new(input.shape, data).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Splits Triton's serialized BYTES: each element is a 4-byte little-endian length, then
/// that many bytes.
pub fn split_bytes_elements<'a>(
    name: &str,
    mut bytes: &'a [u8],
) -> Result<Vec<&'a [u8]>, ApiError> {
    let mut elements = Vec::new();
    while !bytes.is_empty() {
        let truncated = || {
            ApiError::invalid(format!(
                "input `{name}`: BYTES element {} is truncated",
                elements.len()
            ))
        };
        let (prefix, rest) = bytes.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > rest.len() {
            return Err(truncated());
        }
        let (element, rest) = rest.split_at(len);
        elements.push(element);
        bytes = rest;
    }
    Ok(elements)
}

fn from_binary(
    name: &str,
    dtype: DType,
    bytes: &[u8],
    count: usize,
) -> Result<TensorData, ApiError> {
    if let Some(size) = dtype.size_of() {
        let expected = count.saturating_mul(size);
        if bytes.len() != expected {
            return Err(ApiError::invalid(format!(
                "input `{name}`: {count} {} elements need {expected} bytes, binary_data_size is {}",
                to_v2(dtype),
                bytes.len()
            )));
        }
    }
    match TensorData::from_le_bytes(dtype, bytes) {
        Some(data) => Ok(data),
        None => Ok(TensorData::String(text_elements(
            name,
            split_bytes_elements(name, bytes)?,
        )?)),
    }
}

/// BYTES elements of input `name` as the text the engines hold; non-UTF-8 is refused.
pub fn text_elements<'a>(
    name: &str,
    elements: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<String>, ApiError> {
    elements
        .into_iter()
        .enumerate()
        .map(|(i, element)| {
            String::from_utf8(element.to_vec()).map_err(|_| {
                ApiError::invalid(format!(
                    "input `{name}`: BYTES element {i} is not UTF-8 text"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn input(shape: Vec<usize>, datatype: DType, data: InputData) -> RequestInput {
        RequestInput {
            name: "x".into(),
            shape,
            datatype,
            data,
        }
    }

    #[test]
    fn nested_and_flat_json_give_the_same_tensor() {
        let nested = input(
            vec![2, 2],
            DType::I64,
            InputData::Json(serde_json::json!([[1, 2], [3, 4]])),
        );
        let flat = input(
            vec![2, 2],
            DType::I64,
            InputData::Json(serde_json::json!([1, 2, 3, 4])),
        );
        assert_eq!(to_tensor(nested).unwrap(), to_tensor(flat).unwrap());
        let short = input(
            vec![2, 2],
            DType::I64,
            InputData::Json(serde_json::json!([1, 2, 3])),
        );
        assert!(
            to_tensor(short)
                .unwrap_err()
                .message
                .contains("needs 4 elements")
        );
        let overflow = input(
            vec![1],
            DType::U8,
            InputData::Json(serde_json::json!([300])),
        );
        assert!(
            to_tensor(overflow)
                .unwrap_err()
                .message
                .contains("not a valid UINT8")
        );
        let text = input(
            vec![1],
            DType::F32,
            InputData::Json(serde_json::json!(["1.0"])),
        );
        assert!(to_tensor(text).is_err());
    }

    #[test]
    fn binary_elements_are_little_endian() {
        let bytes = Bytes::from([1.5f32.to_le_bytes(), (-2f32).to_le_bytes()].concat());
        let t = to_tensor(input(vec![2], DType::F32, InputData::Binary(bytes))).unwrap();
        assert_eq!(t.as_f32(), Some(&[1.5f32, -2.0][..]));
        let strings = Bytes::from_static(b"\x02\x00\x00\x00hi\x00\x00\x00\x00");
        let t = to_tensor(input(vec![2], DType::String, InputData::Binary(strings))).unwrap();
        assert_eq!(
            t.data(),
            &TensorData::String(vec!["hi".into(), String::new()])
        );
        let truncated = Bytes::from_static(b"\x09\x00\x00\x00hi");
        assert!(to_tensor(input(vec![1], DType::String, InputData::Binary(truncated))).is_err());
        let short = Bytes::from_static(&[0, 0, 0]);
        assert!(to_tensor(input(vec![1], DType::F32, InputData::Binary(short))).is_err());
    }
}
