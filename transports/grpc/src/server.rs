//! Running the gRPC front door: one listener with the inference and health services, the
//! body limit as the message limit, gzip both ways, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use destino_serving::Service;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_server::HealthServer;
use tower::util::MapResponseLayer;

use crate::health::Health;
use crate::proto::grpc_inference_service_server::GrpcInferenceServiceServer;
use crate::service::Grpc;

/// tonic refuses a message over the limit with OUT_OF_RANGE; gRPC's own implementations (and
/// its clients' expectations) say RESOURCE_EXHAUSTED.
fn too_large_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let too_large = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

/// Where and how to serve gRPC.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    pub address: SocketAddr,
    /// Largest message received or sent (`--max-body-bytes`).
    pub max_message_bytes: usize,
    /// When set, calls but liveness, readiness and health need `authorization: Bearer <key>`.
    pub api_key: Option<String>,
}

/// Serves until `shutdown` completes; calls in flight then finish.
pub async fn serve(
    service: Service,
    options: GrpcOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(options.address).await?;
    let address = listener.local_addr()?;
    // Scripts and tests read this line to find the port (useful with --grpc-port 0).
    println!("destino gRPC listening on {address}");
    tracing::info!(%address, "gRPC listening");
    let inference = GrpcInferenceServiceServer::new(Grpc {
        service: service.clone(),
        api_key: options.api_key.map(Arc::from),
    })
    .max_decoding_message_size(options.max_message_bytes)
    .max_encoding_message_size(options.max_message_bytes)
    .accept_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Gzip);
    let health = HealthServer::new(Health { service });
    // The builder's TCP settings apply only to listeners it binds itself; without NODELAY a
    // response's frames wait for a delayed ACK (about 40 ms per call on large messages).
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .layer(MapResponseLayer::new(too_large_is_resource_exhausted))
        .add_service(inference)
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(std::io::Error::other)
}
