//! Request bodies as bytes, with the body-size limit and read errors answered as JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::http::error::ApiError;

/// The answer to a body over `--max-body-bytes`, wherever the limit is met.
pub fn body_too_large() -> ApiError {
    ApiError::too_large("request body is larger than the server's limit (--max-body-bytes)")
}

/// The whole request body (within the configured limit).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    body_too_large()
                } else {
                    ApiError::new(status, "bad_request", rejection.body_text())
                }
            })
    }
}
