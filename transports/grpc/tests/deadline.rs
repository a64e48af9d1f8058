//! The gRPC front door over a socket, with the fake engine: a call whose `grpc-timeout`
//! passes while it waits for the engine is answered DEADLINE_EXCEEDED by the server itself
//! (the client here sends the header but runs no timer of its own).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::sync::Arc;
use std::time::Duration;

use destino_grpc::GrpcOptions;
use destino_grpc::proto::ModelInferRequest;
use destino_grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use destino_grpc::proto::model_infer_request::InferInputTensor;
use destino_serving::testing::{FakeControl, fake_registry};
use destino_serving::{Service, ServiceOptions};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tonic::Code;

const PATIENCE: Duration = Duration::from_secs(10);

/// A repository with one model, `fake` (the fake engine ignores the file).
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("fake");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.onnx"), b"fake").unwrap();
    dir
}

fn service(root: &std::path::Path, control: &Arc<FakeControl>) -> Service {
    let registry = fake_registry(root, control.clone());
    Service::new(Arc::new(registry), ServiceOptions::default())
}

fn infer_request() -> ModelInferRequest {
    let x: Vec<u8> = [1.0f32, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    ModelInferRequest {
        model_name: "fake".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1, 2],
            ..Default::default()
        }],
        raw_input_contents: vec![x.into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passes_in_the_queue_is_deadline_exceeded() {
    let dir = repository();
    let control = FakeControl::new();
    let service = service(dir.path(), &control);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let options = GrpcOptions {
        address,
        max_message_bytes: 1 << 20,
        api_key: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(destino_grpc::serve_on(
        listener,
        service,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    // A plain HTTP/2 client: tonic's own channel would run the deadline's timer itself.
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<tonic::body::Body>();
    let origin = format!("http://{address}").parse().unwrap();
    let mut client = GrpcInferenceServiceClient::with_origin(http2, origin);

    // The engine holds the first call; the second waits in the queue past its deadline.
    let before = control.runs().len();
    control.close();
    let holding = tokio::spawn({
        let mut client = client.clone();
        async move { client.model_infer(infer_request()).await }
    });
    assert!(control.wait_for_runs(before + 1, PATIENCE));
    let mut late = tonic::Request::new(infer_request());
    late.set_timeout(Duration::from_millis(100));
    let answer = tokio::time::timeout(PATIENCE, client.model_infer(late)).await;
    let status = answer.expect("the server answers").unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    control.open();
    let first = holding.await.unwrap().unwrap().into_inner();
    assert_eq!(first.outputs.len(), 1);
    assert_eq!(
        control.runs().len(),
        before + 1,
        "the expired call was never computed"
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
