//! Triton's model configuration of a served version, derived from the ONNX file and
//! `model.toml` (destino needs no `config.pbtxt`): name, platform, batching, inputs and
//! outputs with their dims, dynamic batching, instances. HTTP answers it as JSON
//! (`to_json`, protobuf's JSON names); gRPC maps the same struct to its message.

use std::time::Duration;

use destino_core::metadata::{Dim, TensorInfo};
use destino_core::{DType, Device};
use serde_json::{Value, json};

use crate::served::ServedModel;

/// One input or output as the configuration lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigTensor {
    pub name: String,
    /// `TYPE_FP32`, `TYPE_STRING`, ...
    pub data_type: &'static str,
    /// Without the batch dim when the model batches; -1 for a free dim.
    pub dims: Vec<i64>,
}

/// The configuration Triton's clients read.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    pub platform: &'static str,
    pub backend: &'static str,
    /// 0 when the model does not batch.
    pub max_batch_size: usize,
    pub inputs: Vec<ConfigTensor>,
    pub outputs: Vec<ConfigTensor>,
    /// The batching wait, when the model batches.
    pub dynamic_batching: Option<Duration>,
    pub instances: usize,
    pub device: Device,
    pub engine: &'static str,
}

/// Triton's configuration type name of a dtype.
pub fn config_type(dtype: DType) -> &'static str {
    match dtype {
        DType::String => "TYPE_STRING",
        DType::Bool => "TYPE_BOOL",
        DType::U8 => "TYPE_UINT8",
        DType::U16 => "TYPE_UINT16",
        DType::U32 => "TYPE_UINT32",
        DType::U64 => "TYPE_UINT64",
        DType::I8 => "TYPE_INT8",
        DType::I16 => "TYPE_INT16",
        DType::I32 => "TYPE_INT32",
        DType::I64 => "TYPE_INT64",
        DType::F16 => "TYPE_FP16",
        DType::F32 => "TYPE_FP32",
        DType::F64 => "TYPE_FP64",
    }
}

fn tensor(info: &TensorInfo, batched: bool) -> ConfigTensor {
    let dims = info.shape.as_deref().unwrap_or_default();
    let dims = if batched {
        &dims[1.min(dims.len())..]
    } else {
        dims
    };
    ConfigTensor {
        name: info.name.clone(),
        data_type: config_type(info.dtype),
        dims: dims
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => i64::try_from(*n).unwrap_or(-1),
                Dim::Symbolic(_) | Dim::Unknown => -1,
            })
            .collect(),
    }
}

impl ModelConfig {
    pub fn of(model: &ServedModel) -> ModelConfig {
        let max_batch_size = model.max_batch_size().unwrap_or(0);
        let batched = max_batch_size > 0;
        let list = |infos: &[TensorInfo]| infos.iter().map(|i| tensor(i, batched)).collect();
        ModelConfig {
            name: model.name.clone(),
            platform: "onnxruntime_onnx",
            backend: "onnxruntime",
            max_batch_size,
            inputs: list(&model.metadata.inputs),
            outputs: list(&model.metadata.outputs),
            dynamic_batching: batched.then(|| model.scheduler.policy().max_queue_delay),
            instances: model.instance_count,
            device: model.device,
            engine: model.engine,
        }
    }

    /// The instance group's kind: `KIND_GPU` on a GPU, else `KIND_CPU`.
    pub fn kind(&self) -> &'static str {
        match self.device {
            Device::Cpu => "KIND_CPU",
            Device::Cuda(_) => "KIND_GPU",
        }
    }

    /// As Triton's HTTP API answers it (protobuf's JSON mapping of `ModelConfig`).
    pub fn to_json(&self) -> Value {
        let tensors = |list: &[ConfigTensor]| -> Vec<Value> {
            list.iter()
                .map(|t| json!({ "name": t.name, "data_type": t.data_type, "dims": t.dims }))
                .collect()
        };
        let gpus: Vec<u32> = match self.device {
            Device::Cuda(id) => vec![id],
            Device::Cpu => vec![],
        };
        let mut config = json!({
            "name": self.name,
            "platform": self.platform,
            "backend": self.backend,
            "version_policy": { "latest": { "num_versions": 1 } },
            "max_batch_size": self.max_batch_size,
            "input": tensors(&self.inputs),
            "output": tensors(&self.outputs),
            "instance_group": [{
                "name": format!("{}_0", self.name),
                "kind": self.kind(),
                "count": self.instances,
                "gpus": gpus,
            }],
            "default_model_filename": "model.onnx",
            "parameters": { "engine": { "string_value": self.engine } },
        });
        if let Some(delay) = self.dynamic_batching {
            config["dynamic_batching"] = json!({
                "max_queue_delay_microseconds": u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            });
        }
        config
    }
}
