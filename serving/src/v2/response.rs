//! Encoding a V2 inference response: JSON `data`, or Triton's binary form (JSON header, then
//! raw output bytes, with `Inference-Header-Content-Length`).

use serde::Serialize;
use serde::ser::Serializer;
use serde_json::{Map, Value, json};

use crate::v2::datatype::to_v2;
use destino_core::tensor::{Tensor, TensorData};

/// One output to send, and whether it goes as binary.
#[derive(Debug)]
pub struct ResponseOutput {
    pub name: String,
    pub tensor: Tensor,
    pub binary: bool,
}

/// A finished response body; `header_length` is set when binary data follows the JSON.
#[derive(Debug)]
pub struct EncodedResponse {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

/// Applies `$body` to the elements of any `TensorData`, with f16 widened to f32 (JSON has
/// no half floats).
macro_rules! with_json_elements {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::F16(h) => {
                let widened: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
                let $v = widened.as_slice();
                $body
            }
            TensorData::Bool($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::U16($v) => $body,
            TensorData::U32($v) => $body,
            TensorData::U64($v) => $body,
            TensorData::I8($v) => $body,
            TensorData::I16($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::F32($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::String($v) => $body,
        }
    };
}

/// Serializes tensor elements as one flat JSON array (f16 as numbers).
#[derive(Debug)]
pub struct FlatData<'a>(pub &'a TensorData);

impl Serialize for FlatData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        with_json_elements!(self.0, v => s.collect_seq(v.iter()))
    }
}

/// Serializes tensor elements nested by `shape` (a scalar for rank 0).
#[derive(Debug)]
pub struct NestedData<'a> {
    pub shape: &'a [usize],
    pub data: &'a TensorData,
}

impl Serialize for NestedData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let shape = self.shape;
        with_json_elements!(self.data, v => Nested { shape, items: v }.serialize(s))
    }
}

struct Nested<'a, T> {
    shape: &'a [usize],
    items: &'a [T],
}

impl<T: Serialize> Serialize for Nested<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.shape {
            [] => match self.items.first() {
                Some(item) => item.serialize(s),
                None => s.serialize_unit(),
            },
            [_] => s.collect_seq(self.items.iter()),
            [rows, inner @ ..] => {
                let row_len = inner.iter().product::<usize>();
                s.collect_seq((0..*rows).map(|r| {
                    Nested {
                        shape: inner,
                        items: self
                            .items
                            .get(r * row_len..(r + 1) * row_len)
                            .unwrap_or(&[]),
                    }
                }))
            }
        }
    }
}

/// Raw little-endian bytes of a tensor; BYTES elements each prefixed by a 4-byte length.
pub fn binary_bytes(data: &TensorData) -> Vec<u8> {
    fn le<T: Copy, const N: usize>(v: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| to(x)).collect()
    }
    match data {
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::U16(v) => le(v, u16::to_le_bytes),
        TensorData::U32(v) => le(v, u32::to_le_bytes),
        TensorData::U64(v) => le(v, u64::to_le_bytes),
        TensorData::I8(v) => le(v, i8::to_le_bytes),
        TensorData::I16(v) => le(v, i16::to_le_bytes),
        TensorData::I32(v) => le(v, i32::to_le_bytes),
        TensorData::I64(v) => le(v, i64::to_le_bytes),
        TensorData::F16(v) => le(v, half::f16::to_le_bytes),
        TensorData::F32(v) => le(v, f32::to_le_bytes),
        TensorData::F64(v) => le(v, f64::to_le_bytes),
        TensorData::String(v) => v
            .iter()
            .flat_map(|s| {
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes();
                len.into_iter().chain(s.bytes())
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct OutputJson<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<FlatData<'a>>,
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    parameters: Map<String, Value>,
    outputs: Vec<OutputJson<'a>>,
}

pub fn encode(
    model_name: &str,
    model_version: u64,
    id: Option<&str>,
    outputs: &[ResponseOutput],
) -> EncodedResponse {
    let mut binary = Vec::new();
    let json_outputs = outputs
        .iter()
        .map(|output| {
            let mut out = OutputJson {
                name: &output.name,
                datatype: to_v2(output.tensor.dtype()),
                shape: output.tensor.shape(),
                parameters: None,
                data: None,
            };
            if output.binary {
                let bytes = binary_bytes(output.tensor.data());
                out.parameters = Some(json!({ "binary_data_size": bytes.len() }));
                binary.extend_from_slice(&bytes);
            } else {
                out.data = Some(FlatData(output.tensor.data()));
            }
            out
        })
        .collect();
    let response = ResponseJson {
        model_name,
        model_version: model_version.to_string(),
        id,
        parameters: Map::new(),
        outputs: json_outputs,
    };
    // Serializing plain structs, numbers and strings into a Vec cannot fail.
    let mut body = serde_json::to_vec(&response).unwrap_or_default();
    let any_binary = outputs.iter().any(|o| o.binary);
    let header_length = any_binary.then_some(body.len());
    body.extend_from_slice(&binary);
    EncodedResponse {
        body,
        header_length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_binary_outputs() {
        let floats = Tensor::new(vec![1, 2], vec![0.5f32, 1.0]).unwrap();
        let words = Tensor::new(vec![1], vec!["ab".to_string()]).unwrap();
        let outputs = [
            ResponseOutput {
                name: "p".into(),
                tensor: floats,
                binary: false,
            },
            ResponseOutput {
                name: "w".into(),
                tensor: words,
                binary: true,
            },
        ];
        let encoded = encode("m", 1, Some("r1"), &outputs);
        let header = encoded.header_length.unwrap();
        let json: Value = serde_json::from_slice(&encoded.body[..header]).unwrap();
        assert_eq!(json["id"], "r1");
        assert_eq!(json["model_version"], "1");
        assert_eq!(json["outputs"][0]["data"], json!([0.5, 1.0]));
        assert_eq!(json["outputs"][1]["parameters"]["binary_data_size"], 6);
        assert_eq!(&encoded.body[header..], b"\x02\x00\x00\x00ab");
    }

    #[test]
    fn nested_follows_the_shape() {
        let data = TensorData::I64(vec![1, 2, 3, 4, 5, 6]);
        let nested = serde_json::to_value(NestedData {
            shape: &[2, 3],
            data: &data,
        })
        .unwrap();
        assert_eq!(nested, json!([[1, 2, 3], [4, 5, 6]]));
        let scalar = TensorData::I64(vec![7]);
        assert_eq!(
            serde_json::to_value(NestedData {
                shape: &[],
                data: &scalar
            })
            .unwrap(),
            json!(7)
        );
    }
}
