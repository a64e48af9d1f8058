//! Transport-neutral errors. A failed request is an [`ApiError`]: a [`ErrorKind`] that each
//! transport maps once (an HTTP status in destino-http, MQTT properties in destino-mqtt, a
//! gRPC code), the message the client reads, and the reason counted in metrics.

use std::fmt;

use destino_core::Error;

use crate::registry::RegistryError;
use crate::scheduler::ServeError;

/// What went wrong, in terms every transport has a word for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or does not fit the model.
    InvalidArgument,
    /// No such model, version or route.
    NotFound,
    /// The operation is not offered (a method a route does not take).
    Unimplemented,
    /// The body, an image or a tensor is over a configured limit.
    PayloadTooLarge,
    /// The body is of a kind the model cannot take (an image for a tensor model).
    UnsupportedMediaType,
    /// The model's queue is full.
    ResourceExhausted,
    /// The operation cannot be done in the state the repository is in (a model whose files
    /// do not load); the message says why.
    FailedPrecondition,
    /// The request's own deadline passed before it was answered.
    DeadlineExceeded,
    /// The client did not send its request in time.
    ClientTimeout,
    /// The model cannot serve now (loading, restarting, draining); retrying may succeed.
    Unavailable,
    /// A credential is missing or wrong.
    Unauthenticated,
    /// A source the server fetches from failed or sent the wrong thing (a model update's
    /// download); the message says which.
    BadGateway,
    /// The server failed; the client is told no more than that.
    Internal,
}

impl ErrorKind {
    /// A stable name for the kind, for message transports (MQTT user properties, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::ClientTimeout => "client_timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status code of the kind: what destino-http answers, and the `status` that
    /// message transports (MQTT properties, folder answers) carry, so clients read one
    /// vocabulary everywhere. The only place a kind becomes a status.
    pub fn status_code(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument | ErrorKind::FailedPrecondition => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::Unimplemented => 405,
            ErrorKind::ClientTimeout => 408,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::ResourceExhausted => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::DeadlineExceeded | ErrorKind::Unavailable => 503,
        }
    }
}

/// A failed request: its kind, the message for the client (for `Internal`, the detail for
/// the log), the reason label counted in metrics, and when to retry.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub reason: &'static str,
    pub retry_after_secs: Option<u64>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    pub fn new(kind: ErrorKind, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            reason,
            retry_after_secs: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidArgument, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::NotFound, "not_found", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::PayloadTooLarge, "too_large", message)
    }

    /// A server-side failure; `detail` goes to the log, never to the client.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, "internal", detail)
    }

    /// Cannot serve now; the client should retry after `secs`.
    pub fn unavailable(reason: &'static str, message: impl Into<String>, secs: u64) -> ApiError {
        ApiError::new(ErrorKind::Unavailable, reason, message).retry_after(secs)
    }

    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }

    /// What the client may read: internal details stay in the server's log.
    pub fn public_message(&self) -> &str {
        match self.kind {
            ErrorKind::Internal => "internal error",
            _ => &self.message,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::ModelFileChanged { .. } => {
                ApiError::unavailable("model_changed", e.to_string(), 1)
            }
            Error::ImageTooLarge(_) | Error::TextTooLong(_) => ApiError::too_large(e.to_string()),
            _ if e.is_client_error() => ApiError::invalid(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> ApiError {
        match e {
            ServeError::Model(e) => e.into(),
            ServeError::QueueFull { .. } => {
                ApiError::new(ErrorKind::ResourceExhausted, "queue_full", e.to_string())
                    .retry_after(1)
            }
            ServeError::Timeout(_) => {
                ApiError::new(ErrorKind::DeadlineExceeded, "timeout", e.to_string()).retry_after(1)
            }
            ServeError::Stopped(_) | ServeError::Lost(_) | ServeError::EngineDown { .. } => {
                ApiError::unavailable("unavailable", e.to_string(), 1)
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        match &e {
            RegistryError::UnknownModel(_) | RegistryError::UnknownVersion { .. } => {
                ApiError::not_found(e.to_string())
            }
            RegistryError::NotReady { .. } => ApiError::unavailable("not_ready", e.to_string(), 5),
            RegistryError::InvalidName(_) => ApiError::invalid(e.to_string()),
            // As Triton answers a failed load: 400 with the reason, for the operator.
            RegistryError::Load { .. } => {
                ApiError::new(ErrorKind::FailedPrecondition, "load_failed", e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_never_reach_the_client() {
        let error = ApiError::from(Error::Engine {
            engine: "ort",
            message: "/secret/path/model.onnx: bad node".into(),
        });
        assert_eq!(error.kind, ErrorKind::Internal);
        assert_eq!(error.public_message(), "internal error");
        assert!(error.message.contains("/secret/path"));
        let client = ApiError::invalid("input `x`: wrong shape");
        assert_eq!(client.public_message(), "input `x`: wrong shape");
    }

    #[test]
    fn images_over_the_pixel_limit_are_too_large_by_type() {
        let error = ApiError::from(Error::ImageTooLarge("image is 10×10 = 100 pixels".into()));
        assert_eq!(error.kind, ErrorKind::PayloadTooLarge);
    }
}
