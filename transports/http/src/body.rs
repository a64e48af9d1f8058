//! Request bodies as bytes, with the body-size limit and read errors answered as JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
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

/// The request's headers, moved out rather than copied as the `HeaderMap` extractor does, and
/// its whole body.
#[derive(Debug)]
pub struct HeadersAndBody(pub HeaderMap, pub Bytes);

impl<S: Send + Sync> FromRequest<S> for HeadersAndBody {
    type Rejection = HttpError;

    async fn from_request(mut request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = std::mem::take(request.headers_mut());
        let RawBody(body) = RawBody::from_request(request, state).await?;
        Ok(HeadersAndBody(headers, body))
    }
}
