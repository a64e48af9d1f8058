//! Reads what destino needs from an `.onnx` file without any inference runtime: declared
//! inputs and outputs, opsets, every operator (subgraphs included), and external-data
//! references. Only the fields used here are declared; prost skips the rest (weights included).

use std::collections::BTreeSet;
use std::path::{Component, Path};

use prost::Message;

use crate::dtype::{DType, onnx_type_name};
use crate::error::{Error, OpType, Result};
use crate::metadata::{Dim, ModelMetadata, Opset, TensorInfo};

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(string, tag = "2")]
    producer_name: String,
    #[prost(string, tag = "3")]
    producer_version: String,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
    #[prost(string, tag = "7")]
    domain: String,
}

#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    strings: Vec<Vec<u8>>,
    #[prost(message, optional, tag = "6")]
    g: Option<GraphProto>,
    #[prost(message, repeated, tag = "11")]
    graphs: Vec<GraphProto>,
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(string, tag = "8")]
    name: String,
    #[prost(message, repeated, tag = "13")]
    external_data: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<DimensionProto>,
}

#[derive(Clone, PartialEq, Message)]
struct DimensionProto {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    dim_param: Option<String>,
}

/// What a model file declares, read without an inference runtime.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    pub metadata: ModelMetadata,
    /// Every operator type the model uses, in any (sub)graph.
    pub ops: BTreeSet<OpType>,
    /// Outputs that are not tensors (sequences, maps), which destino does not serve.
    pub skipped_outputs: Vec<String>,
    /// Outputs a `ZipMap` makes (a sequence of class → probability maps): served as the
    /// probability tensor it zips, `[rows, classes]` in label order, on every engine.
    pub zipmaps: Vec<ZipMapOutput>,
    pub ir_version: i64,
}

impl OnnxModel {
    /// Reads and checks `path`: it must exist, decode as an ONNX model with a graph, declare
    /// only tensor inputs/outputs of servable dtypes, and keep external data inside its folder.
    pub fn read(path: &Path) -> Result<OnnxModel> {
        if !path.exists() {
            return Err(Error::ModelNotFound {
                path: path.to_path_buf(),
            });
        }
        let invalid = |reason: String| Error::ModelInvalid {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(invalid("not a file".into()));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
        OnnxModel::from_bytes(&bytes, path)
    }

    /// Checks a model file's contents as [`OnnxModel::read`] does; `path` only names the
    /// model in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<OnnxModel> {
        let invalid = |reason: String| Error::ModelInvalid {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.is_empty() {
            return Err(invalid("the file is empty".into()));
        }
        let proto =
            ModelProto::decode(bytes).map_err(|e| invalid(format!("not an ONNX model: {e}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| invalid("the model has no graph".into()))?;
        if proto.opset_import.is_empty() {
            return Err(invalid("the model imports no opset".into()));
        }

        let mut ops = BTreeSet::new();
        let mut external = Vec::new();
        collect_graph(graph, &mut ops, &mut external);
        if let Some(location) = external.iter().find(|l| !is_contained(l)) {
            return Err(invalid(format!(
                "external data location `{location}` points outside the model's folder"
            )));
        }

        let initializers: BTreeSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .map(|i| tensor_info(i, "input"))
            .collect::<Result<Vec<_>>>()?;
        // A ZipMap's sequence of maps is served as the tensor it zips; other outputs that are
        // not tensors are computed by the runtime but not served (`inspect` lists them).
        let mut outputs = Vec::new();
        let (mut skipped_outputs, mut zipmaps) = (Vec::new(), Vec::new());
        for output in &graph.output {
            let is_tensor = output
                .r#type
                .as_ref()
                .and_then(|t| t.tensor_type.as_ref())
                .is_some();
            if is_tensor {
                outputs.push(tensor_info(output, "output")?);
            } else if let Some(zipmap) = zipmap_output(graph, &output.name) {
                outputs.push(TensorInfo {
                    name: output.name.clone(),
                    dtype: DType::F32,
                    shape: Some(vec![Dim::Unknown, Dim::Fixed(zipmap.labels.len())]),
                });
                zipmaps.push(zipmap);
            } else {
                skipped_outputs.push(output.name.clone());
            }
        }
        if outputs.is_empty() {
            return Err(invalid("the model declares no tensor outputs".into()));
        }

        let mut opsets: Vec<Opset> = Vec::new();
        for import in &proto.opset_import {
            let opset = Opset {
                domain: normalise_domain(&import.domain),
                version: import.version,
            };
            if !opsets.contains(&opset) {
                opsets.push(opset);
            }
        }
        let producer = [
            proto.producer_name.as_str(),
            proto.producer_version.as_str(),
        ]
        .join(" ")
        .trim()
        .to_string();
        Ok(OnnxModel {
            metadata: ModelMetadata {
                inputs,
                outputs,
                opsets,
                producer,
            },
            ops,
            skipped_outputs,
            zipmaps,
            ir_version: proto.ir_version,
        })
    }
}

/// The class labels of a `ZipMap`, in the order its probability columns come.
#[derive(Debug, Clone, PartialEq)]
pub enum ZipMapLabels {
    Int(Vec<i64>),
    Text(Vec<String>),
}

impl ZipMapLabels {
    pub fn len(&self) -> usize {
        match self {
            ZipMapLabels::Int(v) => v.len(),
            ZipMapLabels::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A graph output made by a `ZipMap` node.
#[derive(Debug, Clone, PartialEq)]
pub struct ZipMapOutput {
    pub name: String,
    pub labels: ZipMapLabels,
}

/// The `ZipMap` (ai.onnx.ml) of the top-level graph that makes `output`, if one does.
fn zipmap_output(graph: &GraphProto, output: &str) -> Option<ZipMapOutput> {
    let node = graph.node.iter().find(|n| {
        n.op_type == "ZipMap" && n.domain == "ai.onnx.ml" && n.output.iter().any(|o| o == output)
    })?;
    let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let labels = match (
        attribute("classlabels_int64s"),
        attribute("classlabels_strings"),
    ) {
        (Some(ints), None) => ZipMapLabels::Int(ints.ints.clone()),
        (None, Some(strings)) => ZipMapLabels::Text(
            strings
                .strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        _ => return None,
    };
    Some(ZipMapOutput {
        name: output.to_string(),
        labels,
    })
}

/// The default domain is spelled both "" and "ai.onnx"; destino uses "".
fn normalise_domain(domain: &str) -> String {
    if domain == "ai.onnx" {
        String::new()
    } else {
        domain.to_string()
    }
}

fn collect_graph(graph: &GraphProto, ops: &mut BTreeSet<OpType>, external: &mut Vec<String>) {
    collect_external(&graph.initializer, external);
    for node in &graph.node {
        ops.insert(OpType {
            domain: normalise_domain(&node.domain),
            name: node.op_type.clone(),
        });
        for attribute in &node.attribute {
            collect_external(attribute.t.as_slice(), external);
            for sub in attribute.g.iter().chain(&attribute.graphs) {
                collect_graph(sub, ops, external);
            }
        }
    }
}

fn collect_external(tensors: &[TensorProto], external: &mut Vec<String>) {
    for tensor in tensors {
        for entry in &tensor.external_data {
            if entry.key == "location" {
                external.push(entry.value.clone());
            }
        }
    }
}

/// True when a relative external-data path stays inside the model's folder.
fn is_contained(location: &str) -> bool {
    let path = Path::new(location);
    !location.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn tensor_info(value: &ValueInfoProto, what: &'static str) -> Result<TensorInfo> {
    let tensor = value
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| Error::UnsupportedDType {
            what,
            name: value.name.clone(),
            dtype: "a sequence, map or optional (not a tensor)".into(),
        })?;
    let dtype = DType::from_onnx(tensor.elem_type).ok_or_else(|| Error::UnsupportedDType {
        what,
        name: value.name.clone(),
        dtype: onnx_type_name(tensor.elem_type),
    })?;
    let shape = tensor
        .shape
        .as_ref()
        .map(|s| s.dim.iter().map(dim).collect());
    Ok(TensorInfo {
        name: value.name.clone(),
        dtype,
        shape,
    })
}

fn dim(d: &DimensionProto) -> Dim {
    match (&d.dim_value, &d.dim_param) {
        (Some(v), _) if *v >= 0 => usize::try_from(*v).map_or(Dim::Unknown, Dim::Fixed),
        // Some exporters write placeholders such as "?" for every free dim: those name nothing.
        (_, Some(p)) if p.chars().any(char::is_alphanumeric) => Dim::Symbolic(p.clone()),
        _ => Dim::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_data_must_stay_in_the_model_folder() {
        assert!(is_contained("weights.bin"));
        assert!(is_contained("./data/weights.bin"));
        assert!(!is_contained("../weights.bin"));
        assert!(!is_contained("/etc/passwd"));
        assert!(!is_contained("data/../../x"));
        assert!(!is_contained(""));
    }

    #[test]
    fn rejects_files_that_are_not_models() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.onnx");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            OnnxModel::read(&empty),
            Err(Error::ModelInvalid { .. })
        ));
        let junk = dir.path().join("junk.onnx");
        std::fs::write(&junk, b"\xff\xff\xff\xff not protobuf").unwrap();
        assert!(matches!(
            OnnxModel::read(&junk),
            Err(Error::ModelInvalid { .. })
        ));
        let missing = dir.path().join("missing.onnx");
        assert!(matches!(
            OnnxModel::read(&missing),
            Err(Error::ModelNotFound { .. })
        ));
        assert!(matches!(
            OnnxModel::read(dir.path()),
            Err(Error::ModelInvalid { .. })
        ));
    }

    #[test]
    fn external_location_outside_folder_is_refused() {
        let hostile = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(GraphProto {
                initializer: vec![TensorProto {
                    name: "w".into(),
                    external_data: vec![StringStringEntryProto {
                        key: "location".into(),
                        value: "../../secret".into(),
                    }],
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.onnx");
        std::fs::write(&path, hostile.encode_to_vec()).unwrap();
        let err = OnnxModel::read(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("points outside the model's folder"),
            "{err}"
        );
    }
}
