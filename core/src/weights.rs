//! The main graph's large initializers (the weights), read as tensors so an engine can
//! hand one copy to every instance of a model instead of each instance loading its own.
//! Only weights stored inline as `raw_data` are read: external-data and typed-field
//! initializers stay with the engine's own loader, and so do convolution weights, which
//! engines rewrite into their own layout (a shared copy would be one more, not one less).

use std::collections::HashSet;
use std::path::Path;

use prost::Message;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorData};

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
}

/// Operators whose weights engines reorder into a layout of their own at load.
const REWRITTEN_WEIGHTS: [&str; 6] = [
    "Conv",
    "ConvTranspose",
    "ConvInteger",
    "QLinearConv",
    "BatchNormalization",
    "InstanceNormalization",
];

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
    /// 1: EXTERNAL.
    #[prost(int32, tag = "14")]
    data_location: i32,
}

/// The initializers of `path`'s main graph whose inline data is at least `min_bytes`, in
/// the numeric types engines take from memory; anything malformed is left to the engine.
pub fn shareable_initializers(path: &Path, min_bytes: usize) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| Error::ModelInvalid {
        path: path.to_path_buf(),
        reason: format!("not an ONNX model: {e}"),
    })?;
    drop(bytes);
    let GraphProto { node, initializer } = model.graph.unwrap_or_default();
    let rewritten: HashSet<&str> = node
        .iter()
        .filter(|n| REWRITTEN_WEIGHTS.contains(&n.op_type.as_str()))
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let shared = initializer.into_iter().filter(|t| {
        t.data_location != 1
            && t.raw_data.len() >= min_bytes
            && !rewritten.contains(t.name.as_str())
    });
    Ok(shared
        .filter_map(|t| Some((t.name.clone(), to_tensor(t)?)))
        .collect())
}

/// The element types engines take weights in from memory.
const SHARED_DTYPES: [DType; 7] = [
    DType::F32,
    DType::F64,
    DType::F16,
    DType::I64,
    DType::I32,
    DType::I8,
    DType::U8,
];

fn to_tensor(proto: TensorProto) -> Option<Tensor> {
    let shape = proto
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<usize>>>()?;
    let dtype = DType::from_onnx(proto.data_type).filter(|d| SHARED_DTYPES.contains(d))?;
    let data = TensorData::from_le_bytes(dtype, &proto.raw_data)?;
    // A length that does not match the shape is the engine's to report.
    Tensor::new(shape, data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_with(initializers: Vec<TensorProto>) -> std::path::PathBuf {
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![NodeProto {
                    input: vec!["x".into(), "conv_w".into()],
                    op_type: "Conv".into(),
                }],
                initializer: initializers,
            }),
        };
        let path = std::env::temp_dir().join(format!(
            "destino-weights-{}-{:?}.onnx",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        path
    }

    fn proto(name: &str, data_type: i32, dims: Vec<i64>, raw_data: Vec<u8>) -> TensorProto {
        TensorProto {
            dims,
            data_type,
            name: name.into(),
            raw_data,
            data_location: 0,
        }
    }

    #[test]
    fn reads_large_inline_weights_engines_keep_as_they_are() {
        let weights: Vec<u8> = [1.5f32, -2.0, 3.25, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut external = proto("external", 1, vec![4], weights.clone());
        external.data_location = 1;
        let path = model_with(vec![
            proto("w", 1, vec![2, 2], weights.clone()),
            proto("small", 1, vec![1], 7f32.to_le_bytes().to_vec()),
            proto("short", 1, vec![8], weights.clone()),
            proto("strings", 8, vec![4], weights.clone()),
            proto("conv_w", 1, vec![2, 2], weights.clone()),
            external,
        ]);
        let read = shareable_initializers(&path, 16).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read.len(), 1, "{read:?}");
        assert_eq!(read[0].0, "w");
        assert_eq!(read[0].1.shape(), &[2, 2]);
        assert_eq!(
            read[0].1.data(),
            &TensorData::F32(vec![1.5, -2.0, 3.25, 4.0])
        );
    }
}
