//! Between the protocol's messages and the V2 request the serving crate runs: inputs from
//! typed `contents` or `raw_input_contents` (Triton's binary layout, BYTES elements with a
//! 4-byte length), outputs to `raw_output_contents` (as Triton answers) or, when the request
//! says `binary_data_output: false`, typed contents.

use std::collections::HashMap;

use destino_core::{DType, TensorData};
use destino_serving::ApiError;
use destino_serving::v2::datatype::to_v2;
use destino_serving::v2::decode::text_elements;
use destino_serving::v2::request::{
    InferRequest, InputData, RequestInput, RequestedOutput, input_header,
};
use destino_serving::v2::response::{ResponseOutput, binary_bytes};

use crate::proto::infer_parameter::ParameterChoice;
use crate::proto::model_infer_request::InferInputTensor;
use crate::proto::model_infer_response::InferOutputTensor;
use crate::proto::{InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse};

type Parameters = HashMap<String, InferParameter>;

fn bool_parameter(parameters: &Parameters, key: &str) -> Result<Option<bool>, ApiError> {
    match parameters
        .get(key)
        .and_then(|p| p.parameter_choice.as_ref())
    {
        None => Ok(None),
        Some(ParameterChoice::BoolParam(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(format!(
            "parameter `{key}` must be a bool"
        ))),
    }
}

fn count_parameter(parameters: &Parameters, key: &str) -> Result<Option<usize>, ApiError> {
    let count = match parameters
        .get(key)
        .and_then(|p| p.parameter_choice.as_ref())
    {
        None => return Ok(None),
        Some(ParameterChoice::Int64Param(n)) => usize::try_from(*n).ok(),
        Some(ParameterChoice::Uint64Param(n)) => usize::try_from(*n).ok(),
        Some(_) => None,
    };
    count
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| ApiError::invalid(format!("parameter `{key}` must be a positive integer")))
}

/// The V2 request a `ModelInferRequest` describes. Raw contents, when given, hold every
/// input's bytes in order.
pub fn request(mut message: ModelInferRequest) -> Result<InferRequest, ApiError> {
    let raw = std::mem::take(&mut message.raw_input_contents);
    if !raw.is_empty() && raw.len() != message.inputs.len() {
        return Err(ApiError::invalid(format!(
            "raw_input_contents has {} entries for {} inputs: give one per input, or none",
            raw.len(),
            message.inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    let mut inputs = Vec::with_capacity(message.inputs.len());
    for input in std::mem::take(&mut message.inputs) {
        let input = request_input(&inputs, input, raw.next())?;
        inputs.push(input);
    }
    let outputs = message
        .outputs
        .iter()
        .map(|output| {
            Ok(RequestedOutput {
                name: output.name.clone(),
                binary: bool_parameter(&output.parameters, "binary_data")?,
                classification: count_parameter(&output.parameters, "classification")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(InferRequest {
        id: (!message.id.is_empty()).then_some(message.id),
        inputs,
        outputs,
        binary_outputs: bool_parameter(&message.parameters, "binary_data_output")?.unwrap_or(true),
    })
}

/// One input of the request; `earlier` are the inputs before it.
fn request_input(
    earlier: &[RequestInput],
    input: InferInputTensor,
    raw: Option<bytes::Bytes>,
) -> Result<RequestInput, ApiError> {
    let (datatype, shape) = input_header(earlier, &input.name, &input.datatype, &input.shape)?;
    let name = input.name;
    let data = match (raw, input.contents) {
        (Some(bytes), _) => InputData::Binary(bytes),
        (None, Some(contents)) => InputData::Decoded(typed(&name, datatype, contents)?),
        (None, None) => {
            return Err(ApiError::invalid(format!(
                "input `{name}` has neither contents nor raw_input_contents"
            )));
        }
    };
    Ok(RequestInput {
        name,
        shape,
        datatype,
        data,
    })
}

/// Elements of typed contents narrowed to `T`, refusing values out of its range.
fn narrow<S: Copy + std::fmt::Display, T: TryFrom<S>>(
    name: &str,
    values: Vec<S>,
    datatype: DType,
) -> Result<Vec<T>, ApiError> {
    values
        .into_iter()
        .map(|v| {
            T::try_from(v).map_err(|_| {
                ApiError::invalid(format!(
                    "input `{name}`: {v} is not a valid {}",
                    to_v2(datatype)
                ))
            })
        })
        .collect()
}

fn typed(name: &str, datatype: DType, c: InferTensorContents) -> Result<TensorData, ApiError> {
    Ok(match datatype {
        DType::Bool => TensorData::Bool(c.bool_contents),
        DType::U8 => TensorData::U8(narrow(name, c.uint_contents, datatype)?),
        DType::U16 => TensorData::U16(narrow(name, c.uint_contents, datatype)?),
        DType::U32 => TensorData::U32(c.uint_contents),
        DType::U64 => TensorData::U64(c.uint64_contents),
        DType::I8 => TensorData::I8(narrow(name, c.int_contents, datatype)?),
        DType::I16 => TensorData::I16(narrow(name, c.int_contents, datatype)?),
        DType::I32 => TensorData::I32(c.int_contents),
        DType::I64 => TensorData::I64(c.int64_contents),
        DType::F32 => TensorData::F32(c.fp32_contents),
        DType::F64 => TensorData::F64(c.fp64_contents),
        DType::F16 => {
            return Err(ApiError::invalid(format!(
                "input `{name}`: FP16 has no typed contents; send it in raw_input_contents"
            )));
        }
        DType::String => TensorData::String(text_elements(
            name,
            c.bytes_contents.iter().map(|b| b.as_ref()),
        )?),
    })
}

fn contents(data: &TensorData) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v.clone(),
        TensorData::U8(v) => c.uint_contents = v.iter().map(|&x| u32::from(x)).collect(),
        TensorData::U16(v) => c.uint_contents = v.iter().map(|&x| u32::from(x)).collect(),
        TensorData::U32(v) => c.uint_contents = v.clone(),
        TensorData::U64(v) => c.uint64_contents = v.clone(),
        TensorData::I8(v) => c.int_contents = v.iter().map(|&x| i32::from(x)).collect(),
        TensorData::I16(v) => c.int_contents = v.iter().map(|&x| i32::from(x)).collect(),
        TensorData::I32(v) => c.int_contents = v.clone(),
        TensorData::I64(v) => c.int64_contents = v.clone(),
        TensorData::F32(v) => c.fp32_contents = v.clone(),
        TensorData::F64(v) => c.fp64_contents = v.clone(),
        // No typed field holds FP16: `response` keeps such answers raw.
        TensorData::F16(_) => {}
        TensorData::String(v) => {
            c.bytes_contents = v
                .iter()
                .map(|s| bytes::Bytes::from(s.clone().into_bytes()))
                .collect();
        }
    }
    c
}

/// The `ModelInferResponse` of `outputs`: every output raw (Triton's form, which its clients
/// index by position), or every output typed when none asked for binary and none is FP16.
pub fn response(
    model: &str,
    version: u64,
    id: Option<String>,
    outputs: &[ResponseOutput],
) -> ModelInferResponse {
    let raw = outputs
        .iter()
        .any(|o| o.binary || o.tensor.dtype() == DType::F16);
    let tensors = outputs
        .iter()
        .map(|o| InferOutputTensor {
            name: o.name.clone(),
            datatype: to_v2(o.tensor.dtype()).to_string(),
            shape: o.tensor.shape().iter().map(|&d| d as i64).collect(),
            parameters: HashMap::new(),
            contents: (!raw).then(|| contents(o.tensor.data())),
        })
        .collect();
    let raw_output_contents = if raw {
        outputs
            .iter()
            .map(|o| bytes::Bytes::from(binary_bytes(o.tensor.data())))
            .collect()
    } else {
        Vec::new()
    };
    ModelInferResponse {
        model_name: model.to_string(),
        model_version: version.to_string(),
        id: id.unwrap_or_default(),
        parameters: HashMap::new(),
        outputs: tensors,
        raw_output_contents,
    }
}
