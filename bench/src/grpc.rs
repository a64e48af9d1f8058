//! The gRPC rows: `concurrency` clients, each on its own HTTP/2 connection, sending the
//! request with raw contents (as tritonclient.grpc does) in a closed loop.

use std::time::{Duration, Instant};

use anyhow::Result;
use destino_bench::{Stats, stats};
use destino_core::Tensors;
use destino_grpc::proto::ModelInferRequest;
use destino_grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use destino_grpc::proto::model_infer_request::InferInputTensor;
use destino_serving::v2::datatype::to_v2;
use destino_serving::v2::response::binary_bytes;
use tonic::transport::Channel;

/// `inputs` as a ModelInferRequest for `model`, every input in raw contents.
pub fn request(model: &str, inputs: &Tensors) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.to_string(),
        inputs: inputs
            .iter()
            .map(|(name, t)| InferInputTensor {
                name: name.clone(),
                datatype: to_v2(t.dtype()).to_string(),
                shape: t.shape().iter().map(|&d| d as i64).collect(),
                ..Default::default()
            })
            .collect(),
        raw_input_contents: inputs
            .values()
            .map(|t| bytes::Bytes::from(binary_bytes(t.data())))
            .collect(),
        ..Default::default()
    }
}

/// Closed-loop load on `address` (`host:port`) for `seconds`. Like the HTTP rows' blocking
/// clients, each client is one thread (here with its own single-threaded runtime), so the
/// load generator costs the same per client on both protocols.
pub fn load(
    address: &str,
    request: &ModelInferRequest,
    concurrency: usize,
    seconds: f64,
) -> Result<Stats> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (address, request) = (format!("http://{address}"), request.clone());
            std::thread::spawn(move || one_client(address, request, deadline))
        })
        .collect();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for client in clients {
        let (l, e) = client
            .join()
            .map_err(|_| anyhow::anyhow!("a gRPC client thread panicked"))??;
        latencies.extend(l);
        errors += e;
    }
    Ok(stats(latencies, start.elapsed(), errors))
}

/// One connection sending `request` until `deadline`: its latencies and its error count.
fn one_client(
    address: String,
    request: ModelInferRequest,
    deadline: Instant,
) -> Result<(Vec<Duration>, usize)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let channel = Channel::from_shared(address)?.connect().await?;
        let mut client = GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let (mut latencies, mut errors) = (Vec::new(), 0);
        while Instant::now() < deadline {
            let t = Instant::now();
            match client.model_infer(request.clone()).await {
                Ok(_) => latencies.push(t.elapsed()),
                Err(_) => errors += 1,
            }
        }
        Ok((latencies, errors))
    })
}
