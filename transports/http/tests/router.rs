//! The HTTP front door in process (axum's `oneshot`, no sockets), over the real registry and
//! scheduler with the fake engine: what clients see when the engine room fails.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use destino_http::{AppState, HttpOptions, router};
use destino_serving::testing::{FAIL, FakeControl, POISON, fake_inputs, fake_registry};
use destino_serving::{Service, ServiceOptions};
use serde_json::{Value, json};
use tower::ServiceExt;

const PATIENCE: Duration = Duration::from_secs(10);

/// A repository with one model, `fake` (the fake engine ignores the file), and `model.toml`.
fn repository(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("fake");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.onnx"), b"fake").unwrap();
    std::fs::write(model.join("model.toml"), manifest).unwrap();
    dir
}

fn app(root: &Path, control: &Arc<FakeControl>, timeout: Option<Duration>) -> (Router, Service) {
    let registry = fake_registry(root, control.clone());
    let options = ServiceOptions {
        request_timeout: timeout,
        ..ServiceOptions::default()
    };
    let service = Service::new(Arc::new(registry), options);
    let state = AppState::new(service.clone(), HttpOptions::default());
    (router(state), service)
}

fn infer_body(first: f32) -> Vec<u8> {
    let x = fake_inputs(1, first);
    let data = x["x"].as_f32().unwrap().to_vec();
    let body =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": data}]});
    body.to_string().into_bytes()
}

async fn call(app: &Router, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("x-request-id", "req-7")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn infer(app: &Router, first: f32) -> (StatusCode, Value) {
    call(app, "POST", "/v2/models/fake/infer", infer_body(first)).await
}

async fn eventually(mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !done().await {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    true
}

/// A request the engine holds (its gate closed) until `control.open()`; and the runs that
/// came before it (the warm-up's).
fn hold_the_engine(
    app: &Router,
    control: &Arc<FakeControl>,
) -> (tokio::task::JoinHandle<(StatusCode, Value)>, usize) {
    let before = control.runs().len();
    control.close();
    let holding = tokio::spawn({
        let app = app.clone();
        async move { infer(&app, 1.0).await }
    });
    assert!(control.wait_for_runs(before + 1, PATIENCE));
    (holding, before)
}

/// The value of one series of `/metrics`, 0 when absent.
async fn metric(app: &Router, series: &str) -> f64 {
    let (_, text) = call(app, "GET", "/metrics", Vec::new()).await;
    let text = text.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_failure_answers_internal_error_with_the_request_id_only() {
    let dir = repository("");
    let control = FakeControl::new();
    let (app, _) = app(dir.path(), &control, None);
    let (status, body) = infer(&app, FAIL).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"error": "internal error (request id req-7)"}));
    let (status, body) = infer(&app, 1.0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"][0]["data"], json!([2.0, 1.0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_with_no_engine_running_is_unavailable_and_says_why() {
    let dir = repository("");
    let control = FakeControl::new();
    let (app, _) = app(dir.path(), &control, None);
    control.refuse_loads.store(true, Ordering::SeqCst);
    let (status, _) = infer(&app, POISON).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The supervisor marks the instance down as the dead thread unwinds.
    let ready = async || call(&app, "GET", "/v2/models/fake/ready", Vec::new()).await;
    assert!(eventually(async || ready().await.0 == StatusCode::SERVICE_UNAVAILABLE).await);
    let (_, body) = ready().await;
    assert!(
        body["reason"].as_str().unwrap().contains("panicked"),
        "{body}"
    );
    let (status, body) = call(&app, "GET", "/v2/health/ready", Vec::new()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("no engine running"),
        "{body}"
    );
    let (_, index) = call(&app, "POST", "/v2/repository/index", Vec::new()).await;
    assert_eq!(index[0]["state"], "UNAVAILABLE", "{index}");
    let ready_metric = "destino_model_ready{model=\"fake\"}";
    assert_eq!(metric(&app, ready_metric).await, 0.0);
    assert!(
        index[0]["reason"].as_str().unwrap().contains("restarting"),
        "{index}"
    );
    // Answered at once (no timeout is set: a request waiting on a dead worker would hang).
    let (status, _) = tokio::time::timeout(PATIENCE, infer(&app, 1.0))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    control.refuse_loads.store(false, Ordering::SeqCst);
    assert!(
        eventually(
            async || call(&app, "GET", "/v2/health/ready", Vec::new()).await.0 == StatusCode::OK
        )
        .await
    );
    let (status, body) = infer(&app, 1.0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(metric(&app, ready_metric).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_times_out_is_counted_once() {
    let dir = repository("");
    let control = FakeControl::new();
    let (app, service) = app(dir.path(), &control, Some(Duration::from_millis(50)));
    let (holding, _) = hold_the_engine(&app, &control);
    let (status, _) = infer(&app, 2.0).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The held request's deadline passes while the engine still holds it: it answers
    // then, without waiting for the engine (opening the gate first would race the two).
    assert!(eventually(async || holding.is_finished()).await);
    control.open();
    assert_eq!(
        holding.await.unwrap().0,
        StatusCode::SERVICE_UNAVAILABLE,
        "it timed out too"
    );
    let model = service.registry.get("fake", None).unwrap();
    assert!(eventually(async || model.scheduler.depth() == 0).await);
    let series = |reason: &str| {
        format!(
            "destino_inference_requests_total{{model=\"fake\",outcome=\"failure\",reason=\"{reason}\",version=\"1\"}}"
        )
    };
    assert_eq!(metric(&app, &series("timeout")).await, 2.0);
    assert_eq!(metric(&app, &series("cancelled")).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_is_counted_once_as_cancelled() {
    let dir = repository("");
    let control = FakeControl::new();
    let (app, service) = app(dir.path(), &control, None);
    let (holding, warm_up) = hold_the_engine(&app, &control);
    // The client gives up while its request waits in the queue.
    let gone = tokio::time::timeout(Duration::from_millis(20), infer(&app, 2.0)).await;
    assert!(gone.is_err());
    control.open();
    assert_eq!(holding.await.unwrap().0, StatusCode::OK);
    let model = service.registry.get("fake", None).unwrap();
    assert!(eventually(async || model.scheduler.depth() == 0).await);
    assert_eq!(
        control.runs().len(),
        warm_up + 1,
        "the abandoned request is not computed"
    );
    let cancelled = "destino_inference_requests_total{model=\"fake\",outcome=\"failure\",reason=\"cancelled\",version=\"1\"}";
    assert_eq!(metric(&app, cancelled).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_up_that_fails_is_reported_and_the_model_serves() {
    let dir = repository("warmup = \"samples.npz\"\n");
    let samples = fake_inputs(1, FAIL);
    destino_core::npz::write_npz(&dir.path().join("fake/samples.npz"), &samples).unwrap();
    let control = FakeControl::new();
    let (app, _) = app(dir.path(), &control, None);
    let (_, index) = call(&app, "POST", "/v2/repository/index", Vec::new()).await;
    assert_eq!(index[0]["state"], "READY", "{index}");
    assert!(
        index[0]["reason"].as_str().unwrap().contains("warm-up"),
        "{index}"
    );
    assert_eq!(
        call(&app, "GET", "/v2/health/ready", Vec::new()).await.0,
        StatusCode::OK
    );
    let (status, body) = infer(&app, 1.0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
