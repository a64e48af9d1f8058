//! Every error answers `{"error": ...}`: responses that are not JSON yet (a path or query
//! rejection, an unsupported `Content-Encoding`) get it with their text, and internal errors
//! (a handler's, or a panic's) say only "internal error" and the request id, which the log
//! line with the details carries too. A tower service written by hand: `from_fn` would box a
//! future and clone the whole stack inside it for every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::error::InternalError;
use crate::middleware::REQUEST_ID;

/// Puts [`ErrorBodies`] around a service. It must sit outside the layer that copies the
/// request id onto the response, which is where internal errors read it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorBodiesLayer;

impl<S> Layer<S> for ErrorBodiesLayer {
    type Service = ErrorBodies<S>;

    fn layer(&self, inner: S) -> ErrorBodies<S> {
        ErrorBodies { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ErrorBodies<S> {
    inner: S,
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for ErrorBodies<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    ResponseBody: HttpBody<Data = Bytes> + Send + 'static,
    ResponseBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ErrorBodiesFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        ErrorBodiesFuture {
            inner: self.inner.call(request),
            rewriting: None,
        }
    }
}

pin_project! {
    /// The inner service's response, then (for an error without a JSON body) its text read
    /// into one.
    pub struct ErrorBodiesFuture<F> {
        #[pin]
        inner: F,
        rewriting: Option<Pin<Box<dyn Future<Output = Response> + Send>>>,
    }
}

impl<F, ResponseBody, E> Future for ErrorBodiesFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
    ResponseBody: HttpBody<Data = Bytes> + Send + 'static,
    ResponseBody::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(rewriting) = this.rewriting {
            return rewriting.as_mut().poll(cx).map(Ok);
        }
        let response = ready!(this.inner.poll(cx))?.map(Body::new);
        match checked(response) {
            Checked::Final(response) => Poll::Ready(Ok(response)),
            Checked::TextError(text_error) => {
                let mut rewriting = Box::pin(with_json_body(text_error));
                let polled = rewriting.as_mut().poll(cx);
                *this.rewriting = Some(rewriting);
                polled.map(Ok)
            }
        }
    }
}

/// What an error response still needs.
enum Checked {
    /// Nothing: it goes out as it is.
    Final(Response),
    /// Its text, read, must become a JSON body.
    TextError(Response),
}

fn checked(response: Response) -> Checked {
    let status = response.status();
    if response.extensions().get::<InternalError>().is_some()
        || status == StatusCode::INTERNAL_SERVER_ERROR
    {
        let request_id = response
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let message = format!("internal error (request id {request_id})");
        return Checked::Final(replace_body(response, &message));
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return Checked::Final(response);
    }
    Checked::TextError(response)
}

/// An error response whose body is text: the same response with `{"error": text}`.
async fn with_json_body(response: Response) -> Response {
    let status = response.status();
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
