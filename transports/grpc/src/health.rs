//! The standard `grpc.health.v1.Health` service: the server (service name "" or
//! `inference.GRPCInferenceService`) serves when it is ready; a model, by its name, when it
//! serves; any other name is unknown.

use std::pin::Pin;
use std::time::Duration;

use destino_serving::{RegistryError, Service};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::proto::grpc_inference_service_server::SERVICE_NAME;

/// How often a `Watch` looks for a change.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Health {
    pub service: Service,
}

impl Health {
    /// The status of `name`; `None` for a name that is neither the server nor a model.
    fn status(&self, name: &str) -> Option<ServingStatus> {
        let serving = |yes: bool| {
            if yes {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        match name {
            "" | SERVICE_NAME => Some(serving(self.service.is_ready())),
            model => match self.service.registry.get(model, None) {
                Ok(_) => Some(ServingStatus::Serving),
                Err(RegistryError::NotReady { .. }) => Some(ServingStatus::NotServing),
                Err(_) => None,
            },
        }
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let name = request.into_inner().service;
        match self.status(&name) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!("unknown service `{name}`"))),
        }
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    /// Sends the status now and at every change, until the client leaves.
    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let name = request.into_inner().service;
        let health = self.clone();
        let (out, statuses) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let now = health
                    .status(&name)
                    .unwrap_or(ServingStatus::ServiceUnknown);
                if last != Some(now) {
                    if out.send(Ok(response(now))).await.is_err() {
                        return;
                    }
                    last = Some(now);
                }
                tokio::select! {
                    () = tokio::time::sleep(WATCH_INTERVAL) => {}
                    () = out.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(statuses))))
    }
}
