//! What every handler shares: the registry of served models and the HTTP options.

use std::sync::Arc;
use std::time::Duration;

use crate::serving::Registry;

/// Limits and switches of the HTTP front door, the same at every destination.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest decoded image accepted, in pixels (checked before decoding).
    pub max_image_pixels: u64,
    /// Longest a request may wait for its outputs (queue and compute).
    pub request_timeout: Option<Duration>,
    /// Longest a client may take to send its body (slow clients get 408).
    pub body_read_timeout: Option<Duration>,
    /// When set, every route but health needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Origins allowed by CORS; `*` allows any. Empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// The model `POST /score` uses when several are served.
    pub score_model: Option<String>,
    /// Answers classes instead of tensors on the image routes, at most this many per image.
    pub default_top_k: Option<usize>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_body_bytes: 64 << 20,
            max_image_pixels: crate::preprocess::DEFAULT_MAX_PIXELS,
            request_timeout: Some(Duration::from_secs(60)),
            body_read_timeout: Some(Duration::from_secs(60)),
            api_key: None,
            cors_origins: Vec::new(),
            score_model: None,
            default_top_k: None,
        }
    }
}

/// The state handed to every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub options: Arc<HttpOptions>,
    /// Cleared when shutdown starts, so readiness fails while requests drain.
    pub accepting: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    pub fn new(registry: Arc<Registry>, options: HttpOptions) -> AppState {
        AppState {
            registry,
            options: Arc::new(options),
            accepting: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.accepting.load(std::sync::atomic::Ordering::Acquire) && self.registry.is_ready()
    }
}
