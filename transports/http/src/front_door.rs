//! The per-route checks as one tower service: counts every response by matched route and
//! status, refuses requests without the API key, and reads the body before the handler runs.
//! Written by hand rather than with `from_fn`, which boxes a future and its inner service for
//! every request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::BoxError;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Collected, Limited};
use pin_project_lite::pin_project;
use tokio::time::Timeout;
use tokio::time::error::Elapsed;
use tower::{Layer, Service};

use destino_serving::{ApiError, ErrorKind};

use crate::body::body_too_large;
use crate::error::HttpError;
use crate::middleware::{api_key_refusal, is_length_limit};
use crate::state::AppState;

/// Puts [`FrontDoor`] around the routes.
#[derive(Debug, Clone)]
pub struct FrontDoorLayer {
    state: AppState,
}

impl FrontDoorLayer {
    pub fn new(state: AppState) -> FrontDoorLayer {
        FrontDoorLayer { state }
    }
}

impl<S> Layer<S> for FrontDoorLayer {
    type Service = FrontDoor<S>;

    fn layer(&self, inner: S) -> FrontDoor<S> {
        FrontDoor {
            state: self.state.clone(),
            inner,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct FrontDoor<S> {
    state: AppState,
    inner: S,
}

impl<S> Service<Request> for FrontDoor<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = FrontDoorFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let counted = Counted {
            state: self.state.clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
        };
        let stage = if let Some(refusal) = api_key_refusal(&self.state, &request) {
            Stage::Refused {
                response: Some(refusal),
            }
        } else if let Some(deadline) = self.state.options.body_read_timeout {
            // The handler runs once the body is in: the service made ready goes with the
            // future, a clone stays for the next request.
            let ready = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, ready);
            let (parts, body) = request.into_parts();
            let limited = Limited::new(body, self.state.options.max_body_bytes);
            Stage::Reading {
                body: tokio::time::timeout(deadline, limited.collect()),
                parts: Some(parts),
                inner,
                deadline,
            }
        } else {
            Stage::Running {
                future: self.inner.call(request),
            }
        };
        FrontDoorFuture {
            counted: Some(counted),
            stage,
        }
    }
}

pin_project! {
    /// The response of [`FrontDoor`]: the body being read, then the handler running.
    pub struct FrontDoorFuture<S>
    where
        S: Service<Request>,
    {
        counted: Option<Counted>,
        #[pin]
        stage: Stage<S>,
    }
}

pin_project! {
    #[project = StageProjection]
    enum Stage<S>
    where
        S: Service<Request>,
    {
        Refused { response: Option<Response> },
        Reading {
            #[pin]
            body: Timeout<Collect<Limited<Body>>>,
            parts: Option<Parts>,
            inner: S,
            deadline: Duration,
        },
        Running {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S> Future for FrontDoorFuture<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = loop {
            match this.stage.as_mut().project() {
                StageProjection::Refused { response } => {
                    break response.take().unwrap_or_else(polled_after_completion);
                }
                StageProjection::Reading {
                    body,
                    parts,
                    inner,
                    deadline,
                } => {
                    let read = ready!(body.poll(cx));
                    let Some(parts) = parts.take() else {
                        break polled_after_completion();
                    };
                    match read_body(read, *deadline) {
                        BodyRead::Complete(bytes) => {
                            let future = inner.call(Request::from_parts(parts, Body::from(bytes)));
                            this.stage.set(Stage::Running { future });
                        }
                        BodyRead::Refused(refusal) => break refusal,
                    }
                }
                StageProjection::Running { future } => match ready!(future.poll(cx)) {
                    Ok(response) => break response,
                    Err(never) => match never {},
                },
            }
        };
        // Done: a poll after this one answers an internal error instead of panicking.
        this.stage.set(Stage::Refused { response: None });
        if let Some(counted) = this.counted.take() {
            counted.count(&response);
        }
        Poll::Ready(Ok(response))
    }
}

/// The body, or the answer to a body that was too large, broken, or too slow to arrive
/// (within `--body-read-timeout-ms` and `--max-body-bytes` of the decompressed body: a client
/// that trickles its body gets 408 instead of holding a handler).
fn read_body(
    read: Result<Result<Collected<Bytes>, BoxError>, Elapsed>,
    deadline: Duration,
) -> BodyRead {
    let refusal = match read {
        Ok(Ok(collected)) => return BodyRead::Complete(collected.to_bytes()),
        Ok(Err(e)) if is_length_limit(e.as_ref()) => body_too_large(),
        Ok(Err(e)) => HttpError(ApiError::invalid(format!(
            "cannot read the request body: {e}"
        ))),
        Err(_) => HttpError::new(
            ErrorKind::ClientTimeout,
            "timeout",
            format!(
                "the request body did not arrive within {} ms (--body-read-timeout-ms)",
                deadline.as_millis()
            ),
        ),
    };
    BodyRead::Refused(refusal.into_response())
}

/// A request body, read whole or refused.
enum BodyRead {
    Complete(Bytes),
    Refused(Response),
}

fn polled_after_completion() -> Response {
    HttpError(ApiError::internal(
        "the front door was polled after it answered",
    ))
    .into_response()
}

/// What a response is counted under, once it is known.
#[derive(Debug)]
struct Counted {
    state: AppState,
    route: Option<MatchedPath>,
}

impl Counted {
    fn count(self, response: &Response) {
        self.state.service.metrics().count_response(
            self.route.as_ref().map_or("unmatched", MatchedPath::as_str),
            response.status().as_str(),
        );
    }
}
