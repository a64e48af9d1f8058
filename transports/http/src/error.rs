//! Every failed HTTP request answers `{"error": "..."}` with the status of its error's kind
//! (`ErrorKind::status_code`, the one mapping) and `Retry-After` where retrying helps. An
//! internal error's detail goes to the log, in the request's span (with its id); the client
//! reads "internal error" and the request id (`error_bodies`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use destino_serving::{ApiError, ErrorKind, RegistryError, ServeError};

/// An `ApiError` on its way out over HTTP.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

/// Marks a response as an internal error, for the middleware that adds the request id.
#[derive(Debug, Clone, Copy)]
pub struct InternalError;

impl HttpError {
    pub fn new(kind: ErrorKind, reason: &'static str, message: impl Into<String>) -> HttpError {
        HttpError(ApiError::new(kind, reason, message))
    }

    /// A request the framework refused before a handler ran (a malformed path, query,
    /// multipart body, or a body over the limit), with the framework's text.
    pub fn rejection(status: StatusCode, text: String) -> HttpError {
        let kind = match status {
            StatusCode::PAYLOAD_TOO_LARGE => return crate::body::body_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::UnsupportedMediaType,
            StatusCode::METHOD_NOT_ALLOWED => ErrorKind::Unimplemented,
            _ => ErrorKind::InvalidArgument,
        };
        HttpError::new(kind, "bad_request", text)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.kind.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> HttpError {
        HttpError(e)
    }
}

impl From<RegistryError> for HttpError {
    fn from(e: RegistryError) -> HttpError {
        HttpError(e.into())
    }
}

impl From<ServeError> for HttpError {
    fn from(e: ServeError) -> HttpError {
        HttpError(e.into())
    }
}

impl From<destino_core::Error> for HttpError {
    fn from(e: destino_core::Error) -> HttpError {
        HttpError(e.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.0.public_message() });
        self.respond(body)
    }
}

impl HttpError {
    /// The error's status and headers with `body`, in a protocol's own error shape.
    pub fn respond(self, body: serde_json::Value) -> Response {
        let status = self.status();
        let error = self.0;
        if error.kind == ErrorKind::Internal {
            tracing::error!(status = %status, "{}", error.message);
        }
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = error.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if error.kind == ErrorKind::Internal {
            response.extensions_mut().insert(InternalError);
        }
        response
    }
}
