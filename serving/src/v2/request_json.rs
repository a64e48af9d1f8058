//! The JSON of a V2 inference request, read in one pass: members in any order, each value
//! read where it stands, and an input's numeric `data` read straight into typed elements
//! when its `datatype` came first (as clients send it), with no parse tree and no second
//! pass over the largest part of the body.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::v2::datatype::from_v2;
use crate::v2::json_cursor::Cursor;
use crate::v2::json_elements::{TypedData, read_in_place, read_raw_with_serde};
use destino_core::dtype::DType;
use destino_core::tensor::{TensorData, element_count};

pub(crate) struct RequestJson<'a> {
    pub id: Option<String>,
    pub parameters: Map<String, Value>,
    pub inputs: Vec<InputJson<'a>>,
    pub outputs: Vec<OutputJson>,
}

pub(crate) struct InputJson<'a> {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    pub parameters: Map<String, Value>,
    pub data: Option<DataJson<'a>>,
}

/// An input's `data`: elements already, or its text when it came before its datatype.
pub(crate) enum DataJson<'a> {
    Read(TensorData),
    Text(&'a RawValue),
}

#[derive(Deserialize)]
pub(crate) struct OutputJson {
    pub name: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// Reads the request object that is the whole of `text`.
pub(crate) fn read_request(text: &[u8]) -> Result<RequestJson<'_>, String> {
    let mut cursor = Cursor::new(text);
    let mut id: Option<Option<String>> = None;
    let mut parameters: Option<Map<String, Value>> = None;
    let mut inputs: Option<Vec<InputJson>> = None;
    let mut outputs: Option<Vec<OutputJson>> = None;
    cursor.object(|cursor, key| match key {
        "id" => once(&mut id, "id", cursor.value()?),
        "parameters" => once(&mut parameters, "parameters", cursor.value()?),
        "inputs" => {
            let mut read = Vec::new();
            cursor.array(|cursor| {
                read.push(read_input(cursor)?);
                Ok(())
            })?;
            once(&mut inputs, "inputs", read)
        }
        "outputs" => once(&mut outputs, "outputs", cursor.value()?),
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    cursor.end()?;
    Ok(RequestJson {
        id: id.flatten(),
        parameters: parameters.unwrap_or_default(),
        inputs: inputs.ok_or("missing field `inputs`")?,
        outputs: outputs.unwrap_or_default(),
    })
}

fn read_input<'a>(cursor: &mut Cursor<'a>) -> Result<InputJson<'a>, String> {
    let (mut name, mut shape, mut datatype) = (None::<String>, None::<Vec<i64>>, None::<String>);
    let (mut parameters, mut data) = (None::<Map<String, Value>>, None);
    cursor.object(|cursor, key| match key {
        "name" => once(&mut name, "name", cursor.value()?),
        "shape" => once(&mut shape, "shape", cursor.value()?),
        "datatype" => once(&mut datatype, "datatype", cursor.value()?),
        "parameters" => once(&mut parameters, "parameters", cursor.value()?),
        "data" => {
            let dtype = datatype.as_deref().and_then(from_v2);
            let read = read_data(cursor, dtype, name.as_deref(), shape.as_deref())?;
            once(&mut data, "data", read)
        }
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    Ok(InputJson {
        name: name.ok_or("missing field `name`")?,
        shape: shape.ok_or("missing field `shape`")?,
        datatype: datatype.ok_or("missing field `datatype`")?,
        parameters: parameters.unwrap_or_default(),
        data,
    })
}

/// Reads `data` at the cursor: as `dtype` elements when the datatype is known (in place when
/// they are numbers, through serde otherwise), else as text for later.
fn read_data<'a>(
    cursor: &mut Cursor<'a>,
    dtype: Option<DType>,
    name: Option<&str>,
    shape: Option<&[i64]>,
) -> Result<DataJson<'a>, String> {
    let Some(dtype) = dtype else {
        return Ok(DataJson::Text(cursor.value()?));
    };
    let label = match name {
        Some(name) => format!("input `{name}`"),
        None => "input data".to_string(),
    };
    let claimed = shape
        .and_then(|s| s.iter().map(|&d| usize::try_from(d).ok()).collect())
        .and_then(|s: Vec<usize>| element_count(&s))
        .unwrap_or(0);
    let typed = TypedData {
        dtype,
        label: &label,
        claimed,
    };
    cursor.peek();
    let start = cursor.position();
    if let Some((data, end)) = read_in_place(cursor.text(), start, typed) {
        cursor.advance_to(end);
        return Ok(DataJson::Read(data));
    }
    let text: &RawValue = cursor.value()?;
    read_raw_with_serde(text.get(), typed)
        .map(DataJson::Read)
        .map_err(|e| cursor.serde_error_at(start, &e))
}

fn once<T>(slot: &mut Option<T>, field: &str, value: T) -> Result<(), String> {
    match slot.replace(value) {
        Some(_) => Err(format!("duplicate field `{field}`")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements<'i>(input: &'i InputJson) -> &'i TensorData {
        match &input.data {
            Some(DataJson::Read(data)) => data,
            _ => panic!("data not read"),
        }
    }

    #[test]
    fn reads_members_in_any_order() {
        let text = br#"{"outputs": [{"name": "y"}], "x-extra": {"a": [1]},
            "inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [0.5, -1]},
                       {"data": [[1, 2]], "datatype": "INT8", "shape": [1, 2], "name": "b"},
                       {"name": "c", "shape": [1], "datatype": "BOOL", "data": [true]}],
            "id": "7", "parameters": {"binary_data_output": true}}"#;
        let request = read_request(text).unwrap();
        assert_eq!(request.id.as_deref(), Some("7"));
        assert_eq!(request.outputs[0].name, "y");
        assert_eq!(request.parameters["binary_data_output"], true);
        assert_eq!(
            elements(&request.inputs[0]),
            &TensorData::F32(vec![0.5, -1.0])
        );
        assert!(
            matches!(&request.inputs[1].data, Some(DataJson::Text(t)) if t.get() == "[[1, 2]]")
        );
        assert_eq!(elements(&request.inputs[2]), &TensorData::Bool(vec![true]));
    }

    /// Truncated and corrupted bodies get an error or a reading, never a panic; whatever
    /// serde_json refuses as JSON, the reader refuses too.
    #[test]
    fn mangled_bodies_are_refused_without_panics() {
        let body = br#"{"id": "x", "inputs": [{"name": "a", "shape": [2, 2], "datatype": "FP32",
            "data": [[1.5, -0.25e-3], [7, 0.1000000014901161]]}, {"datatype": "INT64",
            "data": [9223372036854775807, -1], "name": "b", "shape": [2]}],
            "outputs": [{"name": "y", "parameters": {"binary_data": false}}]}"#;
        assert!(read_request(body).is_ok());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        let noise = b"[]{},:\"-.0123456789eE+ \nabtrunlfx\\";
        for _ in 0..20_000 {
            let mut mangled = body.to_vec();
            for _ in 0..1 + next() % 3 {
                let at = next() % mangled.len();
                match next() % 3 {
                    0 => mangled[at] = noise[next() % noise.len()],
                    1 => drop(mangled.remove(at)),
                    _ => mangled.truncate(at),
                }
                if mangled.is_empty() {
                    break;
                }
            }
            let ours = read_request(&mangled);
            if serde_json::from_slice::<serde::de::IgnoredAny>(&mangled).is_err() {
                assert!(ours.is_err(), "{}", String::from_utf8_lossy(&mangled));
            }
        }
    }

    #[test]
    fn errors_name_the_field_and_place() {
        let err = |text: &str| read_request(text.as_bytes()).err().unwrap_or_default();
        assert_eq!(
            err(r#"{"inputs": "X"}"#),
            "expected an array at line 1 column 12"
        );
        assert_eq!(
            err(r#"{"inputs": [], "inputs": []}"#),
            "duplicate field `inputs`"
        );
        assert_eq!(err(r#"{"id": "1"}"#), "missing field `inputs`");
        assert_eq!(
            err(r#"{"inputs": [{"name": "a"}]}"#),
            "missing field `shape`"
        );
        let wrong =
            r#"{"inputs": [{"name": "a", "shape": [2], "datatype": "UINT8", "data": [1, 300]}]}"#;
        assert_eq!(
            err(wrong),
            "input `a`: element 1 is 300, not a valid UINT8 at line 1 column 76"
        );
        assert!(
            err(r#"{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1,]}]}"#)
                .starts_with("expected value")
        );
        assert_eq!(
            err(r#"{"inputs": []} {}"#),
            "trailing characters at line 1 column 16"
        );
    }
}
