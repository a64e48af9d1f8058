//! What every handler shares: the service (registry and protocol limits) and the options of
//! the HTTP front door itself.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use destino_serving::Service;

/// Limits and switches of the HTTP front door.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a client may take to send its body (slow clients get 408).
    pub body_read_timeout: Option<Duration>,
    /// When set, every route but health needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Origins allowed by CORS; `*` allows any. Empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Whether `POST /v2/repository/models/{name}/update` takes update documents.
    pub updates: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_body_bytes: 64 << 20,
            body_read_timeout: Some(Duration::from_secs(60)),
            api_key: None,
            cors_origins: Vec::new(),
            updates: false,
        }
    }
}

/// The state handed to every handler; cheap to clone (one shared set, read through `Deref`),
/// as the router's layers clone it for every request.
#[derive(Debug, Clone)]
pub struct AppState(Arc<AppStateParts>);

/// What every clone of an `AppState` shares.
#[derive(Debug)]
pub struct AppStateParts {
    pub service: Service,
    pub options: HttpOptions,
}

impl Deref for AppState {
    type Target = AppStateParts;

    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}

impl AppState {
    pub fn new(service: Service, options: HttpOptions) -> AppState {
        AppState(Arc::new(AppStateParts { service, options }))
    }
}
