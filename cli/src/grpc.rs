//! The gRPC front door beside HTTP, when the `grpc` feature is on (the default). Without it
//! there is no `--grpc-port` flag and nothing listens for gRPC.

use std::future::Future;
use std::time::Duration;

use destino_serving::Service;
use tokio::sync::watch;

use crate::launch::ServeArgs;
#[cfg(feature = "grpc")]
use crate::launch::until;

/// Serves gRPC until `stopped`, then for at most `grace` (long streams must not hold the
/// drain); completes at once when gRPC is off.
#[cfg(feature = "grpc")]
pub(crate) fn front_door(
    args: &ServeArgs,
    service: Service,
    stopped: watch::Receiver<bool>,
    grace: Duration,
) -> impl Future<Output = std::io::Result<()>> + use<> {
    let options = (args.grpc_port != 0).then(|| destino_grpc::GrpcOptions {
        address: std::net::SocketAddr::new(args.http_address, args.grpc_port),
        max_message_bytes: args.max_body_bytes,
        api_key: args.api_key().map(str::to_string),
    });
    async move {
        let Some(options) = options else {
            return Ok(());
        };
        let serving = destino_grpc::serve(service, options, until(stopped.clone()));
        tokio::select! {
            served = serving => served,
            () = async {
                until(stopped).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "gRPC drain deadline passed; closing remaining calls");
                Ok(())
            }
        }
    }
}

/// Built without gRPC: nothing to serve.
#[cfg(not(feature = "grpc"))]
pub(crate) fn front_door(
    _: &ServeArgs,
    _: Service,
    _: watch::Receiver<bool>,
    _: Duration,
) -> impl Future<Output = std::io::Result<()>> + use<> {
    std::future::ready(Ok(()))
}
