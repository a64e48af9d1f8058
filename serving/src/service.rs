//! What every transport serves through: the registry, and the limits that apply to a request
//! whatever carries it.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::update::ModelUpdates;

/// Limits and defaults of the protocols, the same on every transport.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Largest decoded image accepted, in pixels (checked before decoding).
    pub max_image_pixels: u64,
    /// Longest a request may wait for its outputs (queue and compute).
    pub request_timeout: Option<Duration>,
    /// The model `/score` (and a message without one) uses when several are served.
    pub score_model: Option<String>,
    /// Answers classes instead of tensors on the image routes, at most this many per image.
    pub default_top_k: Option<usize>,
    /// Limits of text requests (strings per request, bytes per string, tokens per run).
    pub text: destino_core::text::TextLimits,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            max_image_pixels: destino_core::preprocess::DEFAULT_MAX_PIXELS,
            request_timeout: Some(Duration::from_secs(60)),
            score_model: None,
            default_top_k: None,
            text: destino_core::text::TextLimits::default(),
        }
    }
}

/// The served models and the options every transport shares; cheap to clone (one shared
/// set, read through `Deref`).
#[derive(Debug, Clone)]
pub struct Service(Arc<ServiceParts>);

/// What every clone of a `Service` shares.
#[derive(Debug)]
pub struct ServiceParts {
    pub registry: Arc<Registry>,
    pub options: Arc<ServiceOptions>,
    /// Cleared when shutdown starts, so readiness fails while requests drain.
    accepting: Arc<AtomicBool>,
    /// Installs new model versions, when the binary offers updates.
    pub updates: Option<Arc<dyn ModelUpdates>>,
}

impl Deref for Service {
    type Target = ServiceParts;

    fn deref(&self) -> &ServiceParts {
        &self.0
    }
}

impl Service {
    pub fn new(registry: Arc<Registry>, options: ServiceOptions) -> Service {
        Service(Arc::new(ServiceParts {
            registry,
            options: Arc::new(options),
            accepting: Arc::new(AtomicBool::new(true)),
            updates: None,
        }))
    }

    /// The service with model updates offered (HTTP's update route, MQTT's update topic).
    pub fn with_updates(self, updates: Arc<dyn ModelUpdates>) -> Service {
        Service(Arc::new(ServiceParts {
            registry: self.registry.clone(),
            options: self.options.clone(),
            accepting: self.accepting.clone(),
            updates: Some(updates),
        }))
    }

    pub fn metrics(&self) -> &Metrics {
        self.registry.metrics()
    }

    /// Stops answering ready: shutdown has begun and in-flight requests drain.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }

    /// Ready to serve, or why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err("shutting down".into());
        }
        self.registry.readiness()
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }
}
