//! V2 metadata documents: a model's inputs and outputs as the protocol lists them.

use destino_core::metadata::{Dim, TensorInfo};
use serde_json::{Value, json};

use crate::served::ServedModel;
use crate::v2::datatype::to_v2;

/// The platform model metadata names (the protocol's name for an ONNX model).
pub const PLATFORM: &str = "onnx_onnxv1";
/// The server's name in its metadata.
pub const SERVER_NAME: &str = "destino";
/// The server's version in its metadata.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The protocol extensions the server metadata lists.
pub const EXTENSIONS: [&str; 3] = ["binary_tensor_data", "classification", "model_repository"];

/// `GET /v2/models/{model}`: name, versions, platform, inputs and outputs (dynamic dims as
/// -1), and destino's engine, execution provider, batch limit and (on an accelerator that
/// places nodes one by one) the nodes left on the CPU as parameters.
pub fn model_metadata(model: &ServedModel) -> Value {
    let mut parameters = json!({
        "engine": model.engine,
        "execution_provider": model.device.to_string(),
        "max_batch_size": model.max_batch_size().unwrap_or(0),
    });
    if let Some(nodes) = model.nodes_on_cpu {
        parameters["nodes_on_cpu"] = json!(nodes);
    }
    json!({
        "name": model.name,
        "versions": [model.version.to_string()],
        "platform": PLATFORM,
        "inputs": tensors_json(&model.metadata.inputs),
        "outputs": tensors_json(&model.metadata.outputs),
        "parameters": parameters,
    })
}

/// `GET /v2`: the server's name, version and protocol extensions.
pub fn server_metadata() -> Value {
    json!({
        "name": SERVER_NAME,
        "version": SERVER_VERSION,
        "extensions": EXTENSIONS,
    })
}

/// A tensor's declared shape as the protocol lists it: -1 for a free dim.
pub fn shape_json(info: &TensorInfo) -> Vec<i64> {
    info.shape.as_ref().map_or_else(Vec::new, |dims| {
        dims.iter()
            .map(|d| match d {
                Dim::Fixed(n) => i64::try_from(*n).unwrap_or(-1),
                _ => -1,
            })
            .collect()
    })
}

fn tensors_json(infos: &[TensorInfo]) -> Vec<Value> {
    infos
        .iter()
        .map(|i| json!({ "name": i.name, "datatype": to_v2(i.dtype), "shape": shape_json(i) }))
        .collect()
}
