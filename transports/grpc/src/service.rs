//! `inference.GRPCInferenceService` on the serving crate: health and metadata, inference
//! (unary and streaming), configuration, statistics and model control. Every call but the
//! server's liveness and readiness needs the API key when one is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use destino_serving::registry::refuse_load_parameters;
use destino_serving::v2::metadata::{EXTENSIONS, SERVER_NAME, SERVER_VERSION};
use destino_serving::{ApiError, ModelState, Service};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::documents;
use crate::infer::infer;
use crate::proto::grpc_inference_service_server::GrpcInferenceService;
use crate::proto::*;
use crate::status::status;
use crate::stream::{ResponseStream, answer};

/// The gRPC service over `service`.
#[derive(Debug, Clone)]
pub struct Grpc {
    pub service: Service,
    pub api_key: Option<Arc<str>>,
}

/// The request's id: the client's `x-request-id`, or a new one.
fn request_id(metadata: &MetadataMap) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    metadata
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| format!("grpc-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// The client's deadline from `grpc-timeout` (`<digits><H|M|S|m|u|n>`).
pub fn deadline(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("destino does not support {what}"))
}

impl Grpc {
    fn authorize(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(key) = self.api_key.as_deref() else {
            return Ok(());
        };
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(p) if constant_time_eq(p.as_bytes(), key.as_bytes()) => Ok(()),
            _ => Err(Status::unauthenticated(
                "missing or wrong API key: send `authorization: Bearer <key>` metadata",
            )),
        }
    }

    /// Authorizes the call, then runs `work` in a span carrying the request id; errors
    /// become statuses.
    async fn call<T, R>(
        &self,
        request: Request<T>,
        method: &'static str,
        work: impl AsyncFnOnce(T, Option<Duration>) -> Result<R, ApiError>,
    ) -> Result<Response<R>, Status> {
        self.authorize(request.metadata())?;
        let id = request_id(request.metadata());
        let limit = deadline(request.metadata());
        let span = tracing::info_span!("grpc", method, request_id = %id);
        work(request.into_inner(), limit)
            .instrument(span)
            .await
            .map(Response::new)
            .map_err(|e| status(e, &id))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready = self.service.is_ready();
        Ok(Response::new(ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let registry = self.service.registry.clone();
        self.call(request, "ModelReady", async |r, _| {
            // As Triton answers: an unknown model or version is simply not ready.
            let ready = registry.get(&r.name, version(&r.version)).is_ok();
            Ok(ModelReadyResponse { ready })
        })
        .await
    }

    async fn server_metadata(
        &self,
        request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.call(request, "ServerMetadata", async |_, _| {
            Ok(ServerMetadataResponse {
                name: SERVER_NAME.to_string(),
                version: SERVER_VERSION.to_string(),
                extensions: EXTENSIONS.map(str::to_string).to_vec(),
            })
        })
        .await
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let registry = self.service.registry.clone();
        self.call(request, "ModelMetadata", async |r, _| {
            let model = registry.get(&r.name, version(&r.version))?;
            Ok(documents::metadata(&model))
        })
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let service = self.service.clone();
        self.call(request, "ModelInfer", async |r, limit| {
            infer(&service, r, limit).await
        })
        .await
    }

    type ModelStreamInferStream = ResponseStream;

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        self.authorize(request.metadata())?;
        let id = request_id(request.metadata());
        let requests = request.into_inner();
        Ok(Response::new(answer(self.service.clone(), requests, id)))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let registry = self.service.registry.clone();
        self.call(request, "ModelConfig", async |r, _| {
            let model = registry.get(&r.name, version(&r.version))?;
            Ok(ModelConfigResponse {
                config: Some(documents::config(&model)),
            })
        })
        .await
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let registry = self.service.registry.clone();
        self.call(request, "ModelStatistics", async |r, _| {
            let models = if r.name.is_empty() {
                registry.served()
            } else {
                vec![registry.get(&r.name, version(&r.version))?]
            };
            let model_stats = models
                .iter()
                .map(|m| documents::statistics(&m.name, m.version, &m.stats.snapshot()))
                .collect();
            Ok(ModelStatisticsResponse { model_stats })
        })
        .await
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        let registry = self.service.registry.clone();
        self.call(request, "RepositoryIndex", async |r, _| {
            let rows =
                destino_serving::blocking::off_executor("reading the repository", move || {
                    registry.index()
                })
                .await?;
            let models = rows
                .into_iter()
                .filter(|row| !r.ready || row.state == ModelState::Ready)
                .map(documents::index_row)
                .collect();
            Ok(RepositoryIndexResponse { models })
        })
        .await
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        let registry = self.service.registry.clone();
        self.call(request, "RepositoryModelLoad", async |r, _| {
            refuse_load_parameters(r.parameters.keys())?;
            let name = r.model_name;
            destino_serving::blocking::off_executor("loading the model", move || {
                registry.load(&name)
            })
            .await??;
            Ok(RepositoryModelLoadResponse {})
        })
        .await
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        let registry = self.service.registry.clone();
        self.call(request, "RepositoryModelUnload", async |r, _| {
            registry.unload(&r.model_name)?;
            Ok(RepositoryModelUnloadResponse {})
        })
        .await
    }

    async fn system_shared_memory_status(
        &self,
        _: Request<SystemSharedMemoryStatusRequest>,
    ) -> Result<Response<SystemSharedMemoryStatusResponse>, Status> {
        Err(unsupported("shared-memory tensors"))
    }

    async fn system_shared_memory_register(
        &self,
        _: Request<SystemSharedMemoryRegisterRequest>,
    ) -> Result<Response<SystemSharedMemoryRegisterResponse>, Status> {
        Err(unsupported("shared-memory tensors"))
    }

    async fn system_shared_memory_unregister(
        &self,
        _: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> Result<Response<SystemSharedMemoryUnregisterResponse>, Status> {
        Err(unsupported("shared-memory tensors"))
    }

    async fn cuda_shared_memory_status(
        &self,
        _: Request<CudaSharedMemoryStatusRequest>,
    ) -> Result<Response<CudaSharedMemoryStatusResponse>, Status> {
        Err(unsupported("CUDA shared-memory tensors"))
    }

    async fn cuda_shared_memory_register(
        &self,
        _: Request<CudaSharedMemoryRegisterRequest>,
    ) -> Result<Response<CudaSharedMemoryRegisterResponse>, Status> {
        Err(unsupported("CUDA shared-memory tensors"))
    }

    async fn cuda_shared_memory_unregister(
        &self,
        _: Request<CudaSharedMemoryUnregisterRequest>,
    ) -> Result<Response<CudaSharedMemoryUnregisterResponse>, Status> {
        Err(unsupported("CUDA shared-memory tensors"))
    }

    async fn trace_setting(
        &self,
        _: Request<TraceSettingRequest>,
    ) -> Result<Response<TraceSettingResponse>, Status> {
        Err(unsupported(
            "trace settings (logs carry each request's id instead)",
        ))
    }

    async fn log_settings(
        &self,
        _: Request<LogSettingsRequest>,
    ) -> Result<Response<LogSettingsResponse>, Status> {
        Err(unsupported("log settings over the API (use --log-level)"))
    }
}
