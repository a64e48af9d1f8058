//! Building V2 requests from tensors and reading responses back into tensors, JSON or binary.

use destino_core::{Tensor, Tensors};
use destino_serving::v2::datatype::{from_v2, to_v2};
use destino_serving::v2::decode::to_tensor;
use destino_serving::v2::request::{InputData, RequestInput};
use destino_serving::v2::response::{FlatData, binary_bytes};
use serde_json::{Value, json};

use crate::server::Reply;

/// A JSON V2 request with flat `data`.
pub fn json_request(inputs: &Tensors) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|(name, t)| {
            json!({
                "name": name,
                "shape": t.shape(),
                "datatype": to_v2(t.dtype()),
                "data": serde_json::to_value(FlatData(t.data())).unwrap_or_default(),
            })
        })
        .collect();
    json!({ "inputs": inputs })
}

/// A JSON V2 request body with each input's members in the order tritonclient sends them
/// (name, shape, datatype, data): the server then reads `data` straight into typed elements,
/// where [`json_request`]'s sorted keys put `data` first.
pub fn json_request_in_client_order(inputs: &Tensors) -> Vec<u8> {
    let mut body = br#"{"inputs":["#.to_vec();
    for (i, (name, t)) in inputs.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let head = json!({ "name": name, "shape": t.shape() });
        let head = head.to_string();
        // `{"name":..,"shape":..}` without its closing brace, then datatype and data.
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(format!(r#","datatype":"{}","data":"#, to_v2(t.dtype())).as_bytes());
        serde_json::to_writer(&mut body, &FlatData(t.data())).unwrap_or_default();
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    body
}

/// A binary V2 request (every input binary, outputs binary): the body and its JSON header
/// length.
pub fn binary_request(inputs: &Tensors) -> (Vec<u8>, usize) {
    let mut raw = Vec::new();
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|(name, t)| {
            let bytes = binary_bytes(t.data());
            let size = bytes.len();
            raw.extend(bytes);
            json!({
                "name": name,
                "shape": t.shape(),
                "datatype": to_v2(t.dtype()),
                "parameters": { "binary_data_size": size },
            })
        })
        .collect();
    let header = json!({ "inputs": inputs, "parameters": { "binary_data_output": true } });
    let mut body = serde_json::to_vec(&header).unwrap_or_default();
    let header_length = body.len();
    body.extend(raw);
    (body, header_length)
}

/// The JSON header of a V2 response (the whole body when it carries no binary data) and
/// its length in bytes.
pub fn response_header(reply: &Reply) -> (Value, usize) {
    let header_length = reply
        .header("inference-header-content-length")
        .map(|v| v.parse::<usize>().expect("numeric header length"))
        .unwrap_or(reply.body.len());
    let header =
        serde_json::from_slice(&reply.body[..header_length]).expect("JSON response header");
    (header, header_length)
}

/// The outputs of a V2 response, whether JSON or binary, as tensors.
pub fn response_tensors(reply: &Reply) -> Tensors {
    assert_eq!(reply.status, 200, "infer failed: {}", reply.text());
    let (header, header_length) = response_header(reply);
    let mut offset = header_length;
    let mut tensors = Tensors::new();
    for output in header["outputs"].as_array().expect("outputs array") {
        let name = output["name"].as_str().expect("output name").to_string();
        let shape: Vec<usize> = serde_json::from_value(output["shape"].clone()).expect("shape");
        let datatype = from_v2(output["datatype"].as_str().expect("datatype")).expect("known");
        let data = match output["parameters"]["binary_data_size"].as_u64() {
            Some(size) => {
                let end = offset + size as usize;
                let bytes = axum::body::Bytes::copy_from_slice(&reply.body[offset..end]);
                offset = end;
                InputData::Binary(bytes)
            }
            None => InputData::Json(output["data"].clone()),
        };
        let input = RequestInput {
            name: name.clone(),
            shape,
            datatype,
            data,
        };
        let tensor: Tensor = to_tensor(input).unwrap_or_else(|e| panic!("output {name}: {e:?}"));
        tensors.insert(name, tensor);
    }
    tensors
}
