//! The one routing table every destination serves: KServe V2, Triton's repository extension,
//! Azure ML routes, image scoring, OpenAI embeddings, metrics. The OpenAPI document is
//! generated from it.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use destino_serving::{ApiError, ErrorKind};

use crate::error::{HttpError, InternalError};
use crate::error_bodies::ErrorBodiesLayer;
use crate::front_door::FrontDoorLayer;
use crate::middleware::REQUEST_ID;
use crate::request_id::MakeCountedUuid;
use crate::state::AppState;
use crate::{azure, openai, openapi, repository, v2};

/// What the OpenAPI document says about a route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Request body schema name, for POST routes.
    pub body: Option<&'static str>,
}

const fn doc(method: &'static str, path: &'static str, summary: &'static str) -> RouteDoc {
    RouteDoc {
        method,
        path,
        summary,
        body: None,
    }
}

const fn with_body(mut d: RouteDoc, body: &'static str) -> RouteDoc {
    d.body = Some(body);
    d
}

/// Every route with its documentation.
pub fn table() -> Vec<(RouteDoc, MethodRouter<AppState>)> {
    let infer = "InferenceRequest";
    let score = "ScoreRequest";
    let image = "Image";
    vec![
        (
            doc("get", "/v2/health/live", "Server liveness"),
            get(v2::live),
        ),
        (
            doc(
                "get",
                "/v2/health/ready",
                "Server readiness: 200 once models are loaded and warmed",
            ),
            get(v2::ready),
        ),
        (
            doc("get", "/v2", "Server metadata"),
            get(v2::server_metadata),
        ),
        (
            doc("get", "/v2/models/{model}", "Model metadata"),
            get(v2::model_metadata),
        ),
        (
            doc(
                "get",
                "/v2/models/{model}/versions/{version}",
                "Model version metadata",
            ),
            get(v2::model_metadata),
        ),
        (
            doc("get", "/v2/models/{model}/ready", "Model readiness"),
            get(v2::model_ready),
        ),
        (
            doc(
                "get",
                "/v2/models/{model}/versions/{version}/ready",
                "Model version readiness",
            ),
            get(v2::model_ready),
        ),
        (
            doc(
                "get",
                "/v2/models/stats",
                "Statistics of every model served",
            ),
            get(v2::all_statistics),
        ),
        (
            doc(
                "get",
                "/v2/models/{model}/stats",
                "Model statistics (Triton's extension)",
            ),
            get(v2::model_statistics),
        ),
        (
            doc(
                "get",
                "/v2/models/{model}/versions/{version}/stats",
                "Model version statistics",
            ),
            get(v2::model_statistics),
        ),
        (
            doc(
                "get",
                "/v2/models/{model}/config",
                "Model configuration (Triton's)",
            ),
            get(v2::model_config),
        ),
        (
            doc(
                "get",
                "/v2/models/{model}/versions/{version}/config",
                "Model version configuration",
            ),
            get(v2::model_config),
        ),
        (
            with_body(
                doc(
                    "post",
                    "/v2/models/{model}/infer",
                    "Inference (JSON or Triton binary tensors)",
                ),
                infer,
            ),
            post(v2::infer),
        ),
        (
            with_body(
                doc(
                    "post",
                    "/v2/models/{model}/versions/{version}/infer",
                    "Inference on a version",
                ),
                infer,
            ),
            post(v2::infer),
        ),
        (
            doc(
                "post",
                "/v2/repository/index",
                "Models of the repository and their states",
            ),
            post(repository::index).get(repository::index),
        ),
        (
            doc(
                "post",
                "/v2/repository/models/{model}/load",
                "Load or hot-swap to the newest version",
            ),
            post(repository::load),
        ),
        (
            doc(
                "post",
                "/v2/repository/models/{model}/unload",
                "Stop serving a model",
            ),
            post(repository::unload),
        ),
        (
            with_body(
                doc(
                    "post",
                    "/v2/repository/models/{model}/update",
                    "Install a new version from an update document, answered once it serves or failed (GET: the last update's status)",
                ),
                "UpdateDocument",
            ),
            post(repository::update).get(repository::update_status),
        ),
        (
            with_body(
                doc(
                    "post",
                    "/models/{model}/predict",
                    "Score an encoded image (raw or multipart): classes out",
                ),
                image,
            ),
            post(azure::predict_route),
        ),
        (
            with_body(
                doc(
                    "post",
                    "/models/{model}/versions/{version}/predict",
                    "Score an image on a version",
                ),
                image,
            ),
            post(azure::predict_route),
        ),
        (
            doc("get", "/", "Azure ML liveness: \"Healthy\""),
            get(azure::healthy),
        ),
        (
            doc(
                "get",
                "/ready",
                "Azure ML readiness: 200 once models are loaded and warmed",
            ),
            get(azure::ready),
        ),
        (
            with_body(
                doc(
                    "post",
                    "/score",
                    "Azure ML scoring: {\"data\": ...}, {\"<input>\": ...} or an image",
                ),
                score,
            ),
            post(azure::score),
        ),
        (
            with_body(
                doc(
                    "post",
                    "/v1/embeddings",
                    "OpenAI embeddings: text (or token ids) in, one vector per input out",
                ),
                "EmbeddingsRequest",
            ),
            post(openai::embeddings),
        ),
        (
            doc("get", "/v1/models", "OpenAI model list: the models served"),
            get(openai::models),
        ),
        (
            doc("get", "/v1/models/{model}", "One OpenAI model object"),
            get(openai::model),
        ),
        (
            doc("get", "/swagger.json", "This OpenAPI document"),
            get(openapi::document),
        ),
        (doc("get", "/metrics", "Prometheus metrics"), get(metrics)),
    ]
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> ([(HeaderName, HeaderValue); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.service.registry.metrics().render(),
    )
}

/// A router serving only `/metrics`, for a separate metrics port.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn not_found() -> HttpError {
    HttpError(ApiError::not_found("no such route; see GET /swagger.json"))
}

async fn method_not_allowed() -> HttpError {
    HttpError::new(
        ErrorKind::Unimplemented,
        "bad_request",
        "method not allowed on this route",
    )
}

/// Marks a response that carries an inference result: the only kind compressed.
#[derive(Debug, Clone, Copy)]
pub struct InferenceResult;

fn carries_inference_result(
    status: axum::http::StatusCode,
    _: axum::http::Version,
    _: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> bool {
    status.is_success() && extensions.get::<InferenceResult>().is_some()
}

/// A handler that panicked: an internal error (details in the panic's log line).
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let mut response = HttpError(ApiError::internal("a handler panicked")).into_response();
    response.extensions_mut().insert(InternalError);
    response
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (doc, handler) in table() {
        router = router.route(doc.path, handler);
    }
    let request_id = HeaderName::from_static(REQUEST_ID);
    // One `layer` call for the whole stack: axum boxes each `Router::layer` as a route of its
    // own and clones every box inside it per request (nine calls: 143 `malloc` calls per
    // small V2 request on the HTTP thread; one call: 75). Listed outermost first.
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeCountedUuid))
        .layer(TraceLayer::new_for_http().on_failure(()).make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                let id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = id)
            },
        ))
        // Outside the id's propagation, so an internal error's body (a panic's too) reads
        // the request id from its response.
        .layer(ErrorBodiesLayer)
        .layer(PropagateRequestIdLayer::new(request_id))
        // A bug that panics in a handler answers 500 instead of dropping the connection.
        .layer(CatchPanicLayer::custom(panicked))
        // Responses are compressed as Triton does: inference results only, when the client
        // accepts it; gzip/deflate request bodies are inflated (the limit applies to the
        // decompressed size).
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .deflate(true)
                .compress_when(DefaultPredicate::new().and(carries_inference_result)),
        )
        .layer(RequestDecompressionLayer::new().gzip(true).deflate(true))
        // The inflating body as axum's, for the middleware and handlers within.
        .map_request(|request: axum::http::Request<_>| request.map(axum::body::Body::new))
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        // Innermost: bodies are read only for requests that passed the API key check.
        .layer(FrontDoorLayer::new(state.clone()));
    let mut router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(stack);
    if let Some(cors) = cors(&state.options.cors_origins) {
        router = router.layer(cors);
    }
    router.with_state(state)
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(Any)
        .expose_headers([
            HeaderName::from_static("inference-header-content-length"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(3600));
    Some(if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok());
        layer.allow_origin(AllowOrigin::list(list))
    })
}
