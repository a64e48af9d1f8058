//! Parsing a V2 inference request: the JSON object, or Triton's binary form where a JSON
//! header of `Inference-Header-Content-Length` bytes is followed by raw tensor data.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::v2::datatype::from_v2;
use crate::v2::depth::check_depth;
use crate::v2::request_json::read_request;
use destino_core::dtype::DType;
use destino_core::tensor::TensorData;

/// An inference request whose inputs are not yet tensors.
#[derive(Debug)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<RequestInput>,
    /// Requested outputs; empty means all.
    pub outputs: Vec<RequestedOutput>,
    /// `binary_data_output`: send every output as binary unless it says otherwise.
    pub binary_outputs: bool,
}

#[derive(Debug)]
pub struct RequestInput {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: DType,
    pub data: InputData,
}

/// Where an input's elements are.
#[derive(Debug)]
pub enum InputData {
    /// `data` read into typed elements while the request was parsed.
    Decoded(TensorData),
    /// `data`, flat or nested, not yet typed: the body is Azure's, whose shapes come from
    /// the nesting.
    Json(Value),
    /// Raw little-endian elements from the binary part of the body.
    Binary(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedOutput {
    pub name: String,
    pub binary: Option<bool>,
    /// Classification extension: answer the top `k` classes instead of the tensor.
    pub classification: Option<usize>,
}

fn bool_parameter(parameters: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match parameters.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::invalid(format!(
            "parameter `{key}` must be a boolean, got {other}"
        ))),
    }
}

fn count_parameter(parameters: &Map<String, Value>, key: &str) -> Result<Option<usize>, ApiError> {
    match parameters.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "parameter `{key}` must be a non-negative integer, got {value}"
                ))
            }),
    }
}

/// The datatype and shape input `name` declares, checked as every protocol carries them; a
/// name already among `earlier` is refused.
pub fn input_header(
    earlier: &[RequestInput],
    name: &str,
    datatype: &str,
    shape: &[i64],
) -> Result<(DType, Vec<usize>), ApiError> {
    if earlier.iter().any(|i| i.name == name) {
        return Err(ApiError::invalid(format!("input `{name}` appears twice")));
    }
    let datatype = from_v2(datatype).ok_or_else(|| {
        ApiError::invalid(format!(
            "input `{name}`: unknown datatype `{datatype}` (use BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES)"
        ))
    })?;
    let shape = shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| {
            ApiError::invalid(format!(
                "input `{name}`: shape {shape:?} has a negative dimension"
            ))
        })?;
    Ok((datatype, shape))
}

/// Parses `body`; `header_length` is `Inference-Header-Content-Length` when present.
pub fn parse(body: Bytes, header_length: Option<usize>) -> Result<InferRequest, ApiError> {
    let json_end = header_length.unwrap_or(body.len());
    if json_end > body.len() {
        return Err(ApiError::invalid(format!(
            "Inference-Header-Content-Length is {json_end} but the body has only {} bytes",
            body.len()
        )));
    }
    // The reader holds the body to Triton's nesting limit as it goes; a body both too deep
    // and malformed is refused for its depth, as when the whole body was checked first.
    let request = read_request(&body[..json_end]).map_err(|e| {
        check_depth(&body[..json_end])
            .err()
            .unwrap_or_else(|| ApiError::invalid(format!("malformed inference request: {e}")))
    })?;
    let mut binary = body.slice(json_end..);
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let (datatype, shape) = input_header(&inputs, &input.name, &input.datatype, &input.shape)?;
        let data = match (
            count_parameter(&input.parameters, "binary_data_size")?,
            input.data,
        ) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(format!(
                    "input `{}` has both `data` and `binary_data_size`",
                    input.name
                )));
            }
            (Some(size), None) => {
                if size > binary.len() {
                    return Err(ApiError::invalid(format!(
                        "input `{}`: binary_data_size {size} exceeds the {} bytes of binary data left",
                        input.name,
                        binary.len()
                    )));
                }
                InputData::Binary(binary.split_to(size))
            }
            (None, Some(data)) => InputData::Decoded(data),
            (None, None) => {
                return Err(ApiError::invalid(format!(
                    "input `{}` has neither `data` nor `binary_data_size`",
                    input.name
                )));
            }
        };
        inputs.push(RequestInput {
            name: input.name,
            shape,
            datatype,
            data,
        });
    }
    if !binary.is_empty() {
        return Err(ApiError::invalid(format!(
            "{} bytes of binary data follow the header but no input claims them",
            binary.len()
        )));
    }
    let outputs = request
        .outputs
        .into_iter()
        .map(|o| {
            Ok(RequestedOutput {
                binary: bool_parameter(&o.parameters, "binary_data")?,
                classification: count_parameter(&o.parameters, "classification")?,
                name: o.name,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(InferRequest {
        id: request.id,
        inputs,
        outputs,
        binary_outputs: bool_parameter(&request.parameters, "binary_data_output")?.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_and_binary_inputs() {
        let header = br#"{"id":"7","inputs":[{"name":"a","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8}},{"name":"b","shape":[1],"datatype":"BOOL","data":[true]}],"outputs":[{"name":"y","parameters":{"binary_data":true,"classification":3}}]}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        let request = parse(Bytes::from(body), Some(header.len())).unwrap();
        assert_eq!(request.id.as_deref(), Some("7"));
        assert!(matches!(&request.inputs[0].data, InputData::Binary(b) if b.len() == 8));
        assert!(matches!(
            &request.inputs[1].data,
            InputData::Decoded(TensorData::Bool(b)) if b == &[true]
        ));
        assert_eq!(request.outputs[0].classification, Some(3));
        assert_eq!(request.outputs[0].binary, Some(true));
    }

    #[test]
    fn refuses_inconsistent_bodies() {
        let bad = |body: &str, header: Option<usize>| {
            parse(Bytes::from(body.to_string()), header)
                .unwrap_err()
                .message
        };
        assert!(bad("{", None).contains("malformed"));
        assert!(bad(r#"{"inputs":[]}"#, Some(99)).contains("Inference-Header-Content-Length"));
        let negative = r#"{"inputs":[{"name":"a","shape":[-1],"datatype":"FP32","data":[]}]}"#;
        assert!(bad(negative, None).contains("negative"));
        let twice = r#"{"inputs":[{"name":"a","shape":[0],"datatype":"FP32","data":[]},{"name":"a","shape":[0],"datatype":"FP32","data":[]}]}"#;
        assert!(bad(twice, None).contains("twice"));
        let leftover = r#"{"inputs":[]}xyz"#;
        assert!(bad(leftover, Some(13)).contains("no input claims"));
        let unknown = r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP8","data":[1]}]}"#;
        assert!(bad(unknown, None).contains("unknown datatype"));
    }

    /// The reader counts levels as it goes instead of scanning the body first: a body is
    /// refused for its depth exactly when the whole-body scan refuses it, wherever the deep
    /// part is (numeric data in either member order, strings, parameters, outputs, unknown
    /// members), and a malformed deep body still gets the depth refusal.
    #[test]
    fn refuses_for_depth_exactly_when_the_whole_body_scan_does() {
        let nest = |levels: usize, inner: &str, open: &str, close: &str| {
            format!("{}{inner}{}", open.repeat(levels), close.repeat(levels))
        };
        let mut refused = 0;
        for levels in 90..=102 {
            let arrays = |inner: &str| nest(levels, inner, "[", "]");
            let objects = nest(levels, "1", "{\"k\": ", "}");
            let bodies = [
                format!(
                    r#"{{"inputs":[{{"name":"a","shape":[1],"datatype":"FP32","data":{}}}]}}"#,
                    arrays("0.5")
                ),
                format!(
                    r#"{{"inputs":[{{"data":{},"name":"a","shape":[1],"datatype":"INT8"}}]}}"#,
                    arrays("-3")
                ),
                format!(
                    r#"{{"inputs":[{{"name":"s","shape":[1],"datatype":"BYTES","data":{}}}]}}"#,
                    arrays("\"[[{{\"")
                ),
                format!(r#"{{"parameters":{objects},"inputs":[]}}"#),
                format!(
                    r#"{{"inputs":[],"outputs":[{{"name":"y","parameters":{{"p":{}}}}}]}}"#,
                    arrays("true")
                ),
                format!(r#"{{"x-extra":{},"inputs":[]}}"#, arrays("null")),
                format!(r#"{{"inputs":[{{"name":"a","parameters":{objects}}}]}}"#),
                // Malformed after the deep part, and malformed before it.
                format!(r#"{{"x":{},"inputs":[],}}"#, arrays("1")),
                format!(r#"{{"inputs":[}}, "x":{}}}"#, arrays("1")),
            ];
            for body in bodies {
                let scan_refuses = check_depth(body.as_bytes()).is_err();
                let result = parse(Bytes::from(body.clone()), None);
                let depth_refused = result
                    .as_ref()
                    .is_err_and(|e| e.message.contains("nested deeper than 100"));
                assert_eq!(depth_refused, scan_refuses, "{body}");
                refused += usize::from(depth_refused);
            }
        }
        assert!(refused > 20, "{refused}");
    }
}
