//! Request bodies as bytes, with the body-size limit and read errors answered as JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use destino_serving::ApiError;

use crate::error::HttpError;

/// The answer to a body over `--max-body-bytes`, wherever the limit is met.
pub fn body_too_large() -> HttpError {
    HttpError(ApiError::too_large(
        "request body is larger than the server's limit (--max-body-bytes)",
    ))
}

/// The whole request body (within the configured limit).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| HttpError::rejection(rejection.status(), rejection.body_text()))
    }
}
