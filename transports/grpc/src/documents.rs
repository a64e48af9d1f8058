//! The protocol's documents, from the serving crate's: model metadata, configuration,
//! statistics and the repository index.

use std::collections::HashMap;

use destino_core::TensorInfo;
use destino_serving::config::{ConfigTensor, ModelConfig};
use destino_serving::stats::{Statistics, Tally};
use destino_serving::v2::datatype::to_v2;
use destino_serving::v2::metadata::{PLATFORM, shape_json};
use destino_serving::{IndexEntry, ServedModel};

use crate::proto::model_metadata_response::TensorMetadata;
use crate::proto::model_version_policy::{Latest, PolicyChoice};
use crate::proto::repository_index_response::ModelIndex;
use crate::proto::{self, model_config, model_instance_group};

pub fn metadata(model: &ServedModel) -> proto::ModelMetadataResponse {
    let tensors = |infos: &[TensorInfo]| {
        infos
            .iter()
            .map(|i| TensorMetadata {
                name: i.name.clone(),
                datatype: to_v2(i.dtype).to_string(),
                shape: shape_json(i),
            })
            .collect()
    };
    proto::ModelMetadataResponse {
        name: model.name.clone(),
        versions: vec![model.version.to_string()],
        platform: PLATFORM.into(),
        inputs: tensors(&model.metadata.inputs),
        outputs: tensors(&model.metadata.outputs),
    }
}

fn data_type(tensor: &ConfigTensor) -> i32 {
    proto::DataType::from_str_name(tensor.data_type).map_or(0, |t| t as i32)
}

pub fn config(model: &ServedModel) -> proto::ModelConfig {
    let config = ModelConfig::of(model);
    let input = config
        .inputs
        .iter()
        .map(|t| proto::ModelInput {
            name: t.name.clone(),
            data_type: data_type(t),
            dims: t.dims.clone(),
            ..Default::default()
        })
        .collect();
    let output = config
        .outputs
        .iter()
        .map(|t| proto::ModelOutput {
            name: t.name.clone(),
            data_type: data_type(t),
            dims: t.dims.clone(),
            ..Default::default()
        })
        .collect();
    let kind = model_instance_group::Kind::from_str_name(config.kind()).map_or(0, |k| k as i32);
    let gpus = match config.device {
        destino_core::Device::Cuda(id) => vec![i32::try_from(id).unwrap_or(0)],
        destino_core::Device::Cpu => vec![],
    };
    let parameters = HashMap::from([(
        "engine".to_string(),
        proto::ModelParameter {
            string_value: config.engine.to_string(),
        },
    )]);
    proto::ModelConfig {
        name: config.name.clone(),
        platform: config.platform.into(),
        backend: config.backend.into(),
        version_policy: Some(proto::ModelVersionPolicy {
            policy_choice: Some(PolicyChoice::Latest(Latest { num_versions: 1 })),
        }),
        max_batch_size: i32::try_from(config.max_batch_size).unwrap_or(i32::MAX),
        input,
        output,
        instance_group: vec![proto::ModelInstanceGroup {
            name: format!("{}_0", config.name),
            kind,
            count: i32::try_from(config.instances).unwrap_or(i32::MAX),
            gpus,
            ..Default::default()
        }],
        default_model_filename: "model.onnx".into(),
        parameters,
        scheduling_choice: config.dynamic_batching.map(|delay| {
            model_config::SchedulingChoice::DynamicBatching(proto::ModelDynamicBatching {
                max_queue_delay_microseconds: u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
                ..Default::default()
            })
        }),
        ..Default::default()
    }
}

fn duration(t: Tally) -> Option<proto::StatisticDuration> {
    Some(proto::StatisticDuration {
        count: t.count,
        ns: t.ns,
    })
}

pub fn statistics(name: &str, version: u64, s: &Statistics) -> proto::ModelStatistics {
    proto::ModelStatistics {
        name: name.to_string(),
        version: version.to_string(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(proto::InferStatistics {
            success: duration(s.success),
            fail: duration(s.fail),
            queue: duration(s.queue),
            compute_input: duration(s.compute_input),
            compute_infer: duration(s.compute_infer),
            compute_output: duration(s.compute_output),
            cache_hit: duration(Tally::default()),
            cache_miss: duration(Tally::default()),
        }),
        batch_stats: s
            .batches
            .iter()
            .map(|(size, b)| proto::InferBatchStatistics {
                batch_size: *size as u64,
                compute_input: duration(b.compute_input),
                compute_infer: duration(b.compute_infer),
                compute_output: duration(b.compute_output),
            })
            .collect(),
        memory_usage: Vec::new(),
        response_stats: HashMap::new(),
    }
}

pub fn index_row(row: IndexEntry) -> ModelIndex {
    ModelIndex {
        name: row.name,
        version: row.version.map(|v| v.to_string()).unwrap_or_default(),
        state: row.state.as_str().into(),
        reason: row.reason,
    }
}
