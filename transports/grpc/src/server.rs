//! Running the gRPC front door: one listener with the inference and health services, the
//! body limit as the message limit, gzip both ways, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use destino_serving::Service;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::codegen::http;
use tonic::service::Routes;
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

/// Binds `options.address` and serves until `shutdown` completes; calls in flight then finish.
pub async fn serve(
    service: Service,
    options: GrpcOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(options.address).await?;
    serve_on(listener, service, options, shutdown).await
}

/// [`serve`] on a listener already bound (`options.address` is not used).
pub async fn serve_on(
    listener: TcpListener,
    service: Service,
    options: GrpcOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    // Without NODELAY a response's frames wait for a delayed ACK (about 40 ms per call on
    // large messages).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    // Scripts and tests read this line to know gRPC is up.
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
    // The services are served by axum (HTTP/2 with prior knowledge), not by tonic's `Server`:
    // that one wraps every call in its own `grpc-timeout` timer, which races the serving
    // crate's deadline and answers CANCELLED where gRPC says DEADLINE_EXCEEDED.
    let app = Routes::new(inference)
        .add_service(health)
        .prepare()
        .into_axum_router()
        .layer(MapResponseLayer::new(too_large_is_resource_exhausted));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
