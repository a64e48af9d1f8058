//! The model-update flags both binaries share, and the updater they describe: on unless
//! `--http-updates false` turns the HTTP route off and no transport takes updates (the edge's
//! MQTT update topic).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use destino_serving::Registry;
use destino_update::{FetchOptions, PublicKey, UpdateConfig, Updater};

#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// Take update documents on `POST /v2/repository/models/{name}/update` (behind
    /// --api-key when one is set); `--http-updates false` turns the route off.
    #[arg(
        long,
        env = "DESTINO_HTTP_UPDATES",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub http_updates: bool,
    /// Take only updates signed with this ed25519 public key (PEM, or base64 of its 32 bytes).
    #[arg(long, env = "DESTINO_UPDATE_PUBLIC_KEY")]
    pub update_public_key: Option<PathBuf>,
    /// Numbered versions of a model kept after an update, the serving one included.
    #[arg(long, env = "DESTINO_KEEP_VERSIONS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_versions: u64,
    /// Largest file an update may download, in bytes.
    #[arg(long, env = "DESTINO_UPDATE_MAX_BYTES", default_value_t = 2 << 30)]
    pub update_max_bytes: u64,
    /// PEM CA certificates that sign update servers (instead of the system's).
    #[arg(long, env = "DESTINO_UPDATE_CA_FILE")]
    pub update_ca_file: Option<PathBuf>,
    /// Tries after the first when a download's connection fails (each resumes).
    #[arg(long, env = "DESTINO_UPDATE_RETRIES", default_value_t = 5)]
    pub update_retries: u32,
    /// A download that receives nothing for this long fails (and is retried), in seconds.
    #[arg(long, env = "DESTINO_UPDATE_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub update_idle_timeout_secs: u64,
    /// Set by a binary whose transport takes updates (not a flag).
    #[arg(skip)]
    pub by_transport: bool,
}

impl UpdateArgs {
    pub fn enabled(&self) -> bool {
        self.http_updates || self.by_transport
    }

    /// The updater, with what a crash left half done already undone (call it before the
    /// repository loads); the interrupted updates finish once startup loading is done.
    pub fn updater(&self, registry: Arc<Registry>) -> Result<Arc<Updater>, String> {
        let public_key = self
            .update_public_key
            .as_deref()
            .map(PublicKey::read)
            .transpose()?;
        let config = UpdateConfig {
            public_key,
            keep_versions: usize::try_from(self.keep_versions).unwrap_or(usize::MAX),
            fetch: FetchOptions {
                max_bytes: self.update_max_bytes,
                retries: self.update_retries,
                idle_timeout: Duration::from_secs(self.update_idle_timeout_secs.max(1)),
                ca_file: self.update_ca_file.clone(),
            },
        };
        let updater = Arc::new(Updater::new(registry, config)?);
        let pending = updater.recover();
        updater.finish_in_background(pending);
        Ok(updater)
    }
}
