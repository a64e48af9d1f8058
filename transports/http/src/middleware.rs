//! Cross-cutting request handling: the optional API key, reading bodies within a deadline,
//! per-route response counts, and JSON bodies for errors raised outside the handlers
//! (framework rejections, unsupported encodings).

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use destino_serving::{ApiError, ErrorKind};

use crate::body::body_too_large;
use crate::error::{HttpError, InternalError};
use crate::state::AppState;

/// The per-route checks in one layer (each `from_fn` layer clones the state and the inner
/// service and boxes a future per request): counts the response by matched route and status,
/// refuses requests without the API key, and reads the body before the handler runs.
pub async fn front_door(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = match api_key_refusal(&state, &request) {
        Some(refusal) => refusal,
        None => read_body_within_deadline(&state, request, next).await,
    };
    state.service.metrics().count_response(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_str(),
    );
    response
}

/// Reads the whole request body before the handler runs, within `--body-read-timeout-ms` and
/// `--max-body-bytes` (of the decompressed body): a client that trickles its body gets 408
/// instead of holding a handler. Handlers then read the body from memory.
async fn read_body_within_deadline(state: &AppState, request: Request, next: Next) -> Response {
    let Some(deadline) = state.options.body_read_timeout else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let limit = state.options.max_body_bytes;
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) if is_length_limit(&e) => body_too_large().into_response(),
        Ok(Err(e)) => HttpError(ApiError::invalid(format!(
            "cannot read the request body: {e}"
        )))
        .into_response(),
        Err(_) => HttpError::new(
            ErrorKind::ClientTimeout,
            "timeout",
            format!(
                "the request body did not arrive within {} ms (--body-read-timeout-ms)",
                deadline.as_millis()
            ),
        )
        .into_response(),
    }
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Routes that answer without the API key: probes must work for orchestrators.
fn is_health(path: &str) -> bool {
    matches!(
        path,
        "/" | "/ready" | "/v2/health/live" | "/v2/health/ready"
    )
}

/// The answer to a request without `Authorization: Bearer <key>` when a key is configured.
fn api_key_refusal(state: &AppState, request: &Request) -> Option<Response> {
    let key = state.options.api_key.as_deref()?;
    if is_health(request.uri().path()) {
        return None;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), key.as_bytes())) {
        return None;
    }
    let mut response = HttpError::new(
        ErrorKind::Unauthenticated,
        "unauthorized",
        "missing or wrong API key: send `Authorization: Bearer <key>`",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    Some(response)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every error answers `{"error": ...}`: responses that are not JSON yet (a path or query
/// rejection, an unsupported `Content-Encoding`) get it with their text, and internal errors
/// (a handler's, or a panic's) say only "internal error" and the request id, which the log
/// line with the details carries too.
pub async fn error_bodies(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let response = next.run(request).await;
    let status = response.status();
    if response.extensions().get::<InternalError>().is_some()
        || status == StatusCode::INTERNAL_SERVER_ERROR
    {
        let message = format!("internal error (request id {request_id})");
        return replace_body(response, &message);
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        message = status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase();
    }
    replace_body(Response::from_parts(parts, Body::empty()), &message)
}

/// The response with `{"error": message}` as its (uncompressed) body.
fn replace_body(response: Response, message: &str) -> Response {
    let (mut parts, _) = response.into_parts();
    let body = serde_json::json!({ "error": message }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_ENCODING);
    Response::from_parts(parts, Body::from(body))
}

/// The header carrying each request's id (set or generated by the router, echoed back).
pub const REQUEST_ID: &str = "x-request-id";
