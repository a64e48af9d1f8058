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

pub(crate) struct RequestJson {
    pub id: Option<String>,
    pub parameters: Map<String, Value>,
    pub inputs: Vec<InputJson>,
    pub outputs: Vec<OutputJson>,
}

pub(crate) struct InputJson {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    pub parameters: Map<String, Value>,
    /// `data` as the datatype's elements; `None` without `data`, and when the datatype is
    /// not one destino reads (the request is refused for that before its data matters).
    pub data: Option<TensorData>,
}

/// An input's `data` while its object is read: elements, or where its text stands (start
/// and end) when it came before the datatype.
enum Data {
    Read(TensorData),
    Later(usize, usize),
}

#[derive(Deserialize)]
pub(crate) struct OutputJson {
    pub name: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// Reads the request object that is the whole of `text`.
pub(crate) fn read_request(text: &[u8]) -> Result<RequestJson, String> {
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

fn read_input(cursor: &mut Cursor<'_>) -> Result<InputJson, String> {
    let (mut name, mut shape, mut datatype) = (None::<String>, None::<Vec<i64>>, None::<String>);
    let (mut parameters, mut data) = (None::<Map<String, Value>>, None);
    cursor.object(|cursor, key| match key {
        "name" => once(&mut name, "name", cursor.value()?),
        "shape" => once(&mut shape, "shape", cursor.value()?),
        "datatype" => once(&mut datatype, "datatype", cursor.value()?),
        "parameters" => once(&mut parameters, "parameters", cursor.value()?),
        "data" => {
            let read = match datatype.as_deref().and_then(from_v2) {
                Some(dtype) => {
                    let label = label(name.as_deref());
                    Data::Read(read_data(cursor, typed(dtype, &label, shape.as_deref()))?)
                }
                None => {
                    let (start, end) = cursor.skip()?;
                    Data::Later(start, end)
                }
            };
            once(&mut data, "data", read)
        }
        _ => cursor.value::<IgnoredAny>().map(drop),
    })?;
    let name = name.ok_or("missing field `name`")?;
    let shape = shape.ok_or("missing field `shape`")?;
    let datatype = datatype.ok_or("missing field `datatype`")?;
    let data = match (data, from_v2(&datatype)) {
        (Some(Data::Read(elements)), _) => Some(elements),
        (Some(Data::Later(start, end)), Some(dtype)) => {
            let label = label(Some(&name));
            Some(read_data_at(
                cursor,
                start,
                end,
                typed(dtype, &label, Some(&shape)),
            )?)
        }
        // Not read, but still JSON or refused.
        (Some(Data::Later(start, end)), None) => {
            serde_json::from_slice::<IgnoredAny>(&cursor.text()[start..end])
                .map_err(|e| cursor.serde_error_at(start, &e))?;
            None
        }
        (None, _) => None,
    };
    Ok(InputJson {
        name,
        shape,
        datatype,
        parameters: parameters.unwrap_or_default(),
        data,
    })
}

/// How errors in an input's data name it.
fn label(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("input `{name}`"),
        None => "input data".to_string(),
    }
}

/// The reading of `dtype` elements for an input of `shape` (when known and valid: the
/// count it claims, a capacity hint).
fn typed<'l>(dtype: DType, label: &'l str, shape: Option<&[i64]>) -> TypedData<'l> {
    let claimed = shape
        .and_then(|s| s.iter().map(|&d| usize::try_from(d).ok()).collect())
        .and_then(|s: Vec<usize>| element_count(&s))
        .unwrap_or(0);
    TypedData {
        dtype,
        label,
        claimed,
    }
}

/// Reads `data` at the cursor as `typed` elements: in place when they are numbers,
/// through serde otherwise.
fn read_data(cursor: &mut Cursor<'_>, typed: TypedData<'_>) -> Result<TensorData, String> {
    cursor.peek();
    let start = cursor.position();
    if let Some((data, end)) = read_in_place(cursor.text(), start, cursor.levels_left(), typed) {
        cursor.advance_to(end);
        return Ok(data);
    }
    let text: &RawValue = cursor.value()?;
    read_with_serde(cursor, start, text.get().as_bytes(), typed)
}

/// Reads `data` whose text (from `start` to `end` of the body, its nesting checked) came
/// before its datatype.
fn read_data_at(
    cursor: &Cursor<'_>,
    start: usize,
    end: usize,
    typed: TypedData<'_>,
) -> Result<TensorData, String> {
    match read_in_place(cursor.text(), start, usize::MAX, typed) {
        Some((data, read_to)) if read_to == end => Ok(data),
        _ => read_with_serde(cursor, start, &cursor.text()[start..end], typed),
    }
}

/// serde's reading of `text`, its errors placed in the whole body.
fn read_with_serde(
    cursor: &Cursor<'_>,
    start: usize,
    text: &[u8],
    typed: TypedData<'_>,
) -> Result<TensorData, String> {
    read_raw_with_serde(text, typed).map_err(|e| cursor.serde_error_at(start, &e))
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

    fn elements(input: &InputJson) -> &TensorData {
        input.data.as_ref().expect("data read")
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
        assert_eq!(elements(&request.inputs[1]), &TensorData::I8(vec![1, 2]));
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
        let mut random = crate::v2::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut next = move || random() as usize;
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

    #[test]
    fn data_before_its_datatype_is_read_at_the_end_of_its_input() {
        let sorted =
            r#"{"inputs": [{"data": [1, 300], "datatype": "UINT8", "name": "a", "shape": [2]}]}"#;
        assert_eq!(
            read_request(sorted.as_bytes()).err().unwrap_or_default(),
            "input `a`: element 1 is 300, not a valid UINT8 at line 1 column 28"
        );
        let twice = r#"{"inputs": [{"data": [1], "datatype": "FP32", "data": [2], "name": "a", "shape": [1]}]}"#;
        assert_eq!(
            read_request(twice.as_bytes()).err().unwrap_or_default(),
            "duplicate field `data`"
        );
        let strings =
            r#"{"inputs": [{"data": ["x", "y"], "shape": [2], "name": "s", "datatype": "BYTES"}]}"#;
        let request = read_request(strings.as_bytes()).unwrap();
        assert_eq!(
            elements(&request.inputs[0]),
            &TensorData::String(vec!["x".into(), "y".into()])
        );
        // Skipped by a scan for its end, the text is still read to JSON's grammar.
        for (data, error) in [
            ("[1, x]", "expected value at line 1 column 26"),
            ("[1, 2}", "expected `,` or `]` at line 1 column 27"),
            ("[[1], 2", "expected `,` or `]` at line 1 column 41"),
            (
                "[1, \"]\"]",
                "input `a`: element 1 is \"]\", not a valid FP32 at line 1 column 28",
            ),
        ] {
            let body = format!(
                r#"{{"inputs": [{{"data": {data}, "datatype": "FP32", "name": "a", "shape": [2]}}]}}"#
            );
            let err = read_request(body.as_bytes()).err().unwrap_or_default();
            assert!(err.starts_with(error), "{body}: {err}");
        }
        let unknown_and_broken =
            r#"{"inputs": [{"data": [1, x], "datatype": "FP8", "name": "a", "shape": [1]}]}"#;
        assert!(read_request(unknown_and_broken.as_bytes()).is_err());
        // An unknown datatype: no elements (the request is refused for the datatype).
        let unknown =
            r#"{"inputs": [{"data": [1], "datatype": "FP8", "name": "a", "shape": [1]}]}"#;
        assert!(
            read_request(unknown.as_bytes()).unwrap().inputs[0]
                .data
                .is_none()
        );
    }
}
