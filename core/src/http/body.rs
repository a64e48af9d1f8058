//! Request bodies as bytes, with the body-size limit and read errors answered as JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::http::error::ApiError;

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
                    ApiError::too_large(
                        "request body is larger than the server's limit (--max-body-bytes)",
                    )
                } else {
                    ApiError::new(status, "bad_request", rejection.body_text())
                }
            })
    }
}
