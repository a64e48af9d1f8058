//! Downloads one file into a part file: `https` (rustls; redirects followed only to https,
//! a part file's bytes kept and the rest asked for with a range request) or `file`. Network
//! failures are retried with backoff; every size is checked against the limit.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use destino_serving::{ApiError, ErrorKind};

use crate::staging::storage;
use ureq::Agent;
use ureq::http::StatusCode;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

const MAX_REDIRECTS: usize = 5;

/// How downloads are made.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Attempts after the first when the network fails (each resumes).
    pub retries: u32,
    /// A connection that sends nothing for this long fails (and is retried).
    pub idle_timeout: Duration,
    /// PEM CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

/// Downloads files (one agent, its TLS roots read once).
pub struct Fetcher {
    /// Why https cannot be used, when the system has no CA certificates.
    agent: Result<Agent, String>,
    options: FetchOptions,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("options", &self.options)
            .finish()
    }
}

/// How a download went: whether it continued bytes already in the part file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    pub resumed: bool,
}

/// The source refused or sent something unusable.
fn bad_gateway(message: String) -> ApiError {
    ApiError::new(ErrorKind::BadGateway, "source", message)
}

/// The network failed: a later try may resume.
pub const NETWORK: &str = "network";

fn broken(message: String) -> ApiError {
    ApiError::new(ErrorKind::BadGateway, NETWORK, message)
}

impl Fetcher {
    /// Fails on an unusable `--update-ca-file`; without system CA certificates, only https
    /// downloads fail (each saying why).
    pub fn new(options: FetchOptions) -> Result<Fetcher, String> {
        let agent = match roots(options.ca_file.as_deref()) {
            Ok(roots) => Ok(agent(roots, &options)),
            Err(e) if options.ca_file.is_some() => return Err(e),
            Err(e) => {
                tracing::warn!("https updates will fail: {e}");
                Err(e)
            }
        };
        Ok(Fetcher { agent, options })
    }

    /// Brings `url`'s bytes into `part` (keeping what it holds, for https), retrying network
    /// failures with backoff.
    pub fn fetch(&self, url: &str, part: &Path) -> Result<Fetched, ApiError> {
        if let Some(path) = url.strip_prefix("file://") {
            return self.copy_local(path, part);
        }
        let mut attempt = 0;
        let mut resumed = false;
        loop {
            match self.download(url, part) {
                Ok(fetched) => {
                    return Ok(Fetched {
                        resumed: resumed || fetched.resumed,
                    });
                }
                Err(Failure::Retry(e)) if attempt < self.options.retries => {
                    attempt += 1;
                    let delay = Duration::from_secs(1 << attempt.min(5));
                    tracing::warn!(url, attempt, "download failed, retrying in {delay:?}: {e}");
                    std::thread::sleep(delay);
                    resumed = true;
                }
                Err(Failure::Retry(e) | Failure::Final(e)) => return Err(e),
            }
        }
    }

    /// One attempt: follows https redirects, resumes from the part file's length.
    fn download(&self, url: &str, part: &Path) -> Result<Fetched, Failure> {
        let agent = self
            .agent
            .as_ref()
            .map_err(|e| Failure::Final(bad_gateway(format!("cannot fetch {url}: {e}"))))?;
        let have = std::fs::metadata(part).map_or(0, |m| m.len());
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = agent.get(&url);
            if have > 0 {
                request = request.header("Range", format!("bytes={have}-"));
            }
            let response = request.call().map_err(|e| network(&url, &e))?;
            let status = response.status();
            if status.is_redirection() {
                url = redirect(&url, &response)?;
                continue;
            }
            let offset = match status {
                StatusCode::PARTIAL_CONTENT if have > 0 && resumes_at(&response, have) => have,
                StatusCode::OK => 0,
                StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                    // The part file is longer than the file: start it again.
                    truncate(part)?;
                    return self.download(&url, part);
                }
                _ if status.is_server_error() => {
                    return Err(Failure::Retry(broken(format!(
                        "GET {url} answered {status}"
                    ))));
                }
                _ => {
                    return Err(Failure::Final(bad_gateway(format!(
                        "GET {url} answered {status}"
                    ))));
                }
            };
            let length = response
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if let Some(length) = length {
                self.check_size(offset + length, &url)?;
            }
            let (_, body) = response.into_parts();
            let limit = self.options.max_bytes.saturating_sub(offset) + 1;
            let reader = body.into_with_config().limit(limit).reader();
            self.write_part(reader, part, offset, &url)?;
            return Ok(Fetched {
                resumed: offset > 0,
            });
        }
        Err(Failure::Final(bad_gateway(format!(
            "more than {MAX_REDIRECTS} redirects from {url}"
        ))))
    }

    fn check_size(&self, size: u64, url: &str) -> Result<(), Failure> {
        if size > self.options.max_bytes {
            return Err(Failure::Final(ApiError::too_large(format!(
                "{url} is {size} bytes, over the update limit of {} bytes",
                self.options.max_bytes
            ))));
        }
        Ok(())
    }

    /// Writes the body from `offset` of the part file on; what arrived stays on a failure.
    fn write_part(
        &self,
        mut body: impl Read,
        part: &Path,
        offset: u64,
        url: &str,
    ) -> Result<(), Failure> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .append(offset > 0)
            .open(part)
            .map_err(|e| Failure::Final(storage("write", part, e)))?;
        let mut written = offset;
        let mut buffer = vec![0u8; 256 << 10];
        loop {
            let n = match body.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = file.sync_data();
                    if written >= self.options.max_bytes {
                        self.check_size(written + 1, url)?;
                    }
                    return Err(Failure::Retry(broken(format!(
                        "download of {url} broke off after {written} bytes: {e}"
                    ))));
                }
            };
            written += n as u64;
            self.check_size(written, url)?;
            file.write_all(&buffer[..n])
                .map_err(|e| Failure::Final(storage("write", part, e)))?;
            crate::stall::at_download(written);
        }
        file.sync_all()
            .map_err(|e| Failure::Final(storage("sync", part, e)))
    }

    fn copy_local(&self, path: &str, part: &Path) -> Result<Fetched, ApiError> {
        let path = file_url_path(path)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| bad_gateway(format!("cannot read {}: {e}", path.display())))?
            .len();
        self.check_size(size, &path.display().to_string())
            .map_err(Failure::into_error)?;
        let source = File::open(&path)
            .map_err(|e| bad_gateway(format!("cannot read {}: {e}", path.display())))?;
        self.write_part(source, part, 0, &path.display().to_string())
            .map_err(Failure::into_error)?;
        Ok(Fetched { resumed: false })
    }
}

/// An https-only agent that follows no redirect itself and gives up on idle connections.
fn agent(roots: Vec<Certificate<'static>>, options: &FetchOptions) -> Agent {
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build();
    Agent::config_builder()
        .tls_config(tls)
        .https_only(true)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(options.idle_timeout))
        .timeout_per_read(Some(options.idle_timeout))
        .user_agent(concat!("destino/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

enum Failure {
    /// The network failed: another attempt may succeed.
    Retry(ApiError),
    Final(ApiError),
}

impl Failure {
    fn into_error(self) -> ApiError {
        match self {
            Failure::Retry(e) | Failure::Final(e) => e,
        }
    }
}

fn network(url: &str, e: &ureq::Error) -> Failure {
    let message = format!("GET {url} failed: {e}");
    match e {
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_) => Failure::Retry(broken(message)),
        _ => Failure::Final(bad_gateway(message)),
    }
}

/// The next URL of a redirect; only https targets are followed.
fn redirect(from: &str, response: &ureq::http::Response<ureq::Body>) -> Result<String, Failure> {
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Failure::Final(bad_gateway(format!("{from} redirected without a Location")))
        })?;
    if location.starts_with('/') && !location.starts_with("//") {
        let origin_end = from
            .strip_prefix("https://")
            .and_then(|rest| rest.find('/'))
            .map_or(from.len(), |i| i + "https://".len());
        return Ok(format!("{}{location}", &from[..origin_end]));
    }
    if location
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Ok(location.to_string());
    }
    Err(Failure::Final(bad_gateway(format!(
        "{from} redirected to {location}: only https:// redirects are followed"
    ))))
}

/// Whether a 206 answer continues at `have` (`Content-Range: bytes HAVE-...`).
fn resumes_at(response: &ureq::http::Response<ureq::Body>, have: u64) -> bool {
    response
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split_once('-'))
        .is_some_and(|(start, _)| start.trim().parse::<u64>().ok() == Some(have))
}

fn truncate(part: &Path) -> Result<(), Failure> {
    File::create(part)
        .map(drop)
        .map_err(|e| Failure::Final(storage("truncate", part, e)))
}

/// The local path of a `file://` URL (`file:///p` or `file://localhost/p`), %-decoded.
fn file_url_path(rest: &str) -> Result<PathBuf, ApiError> {
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(ApiError::invalid(format!(
            "file://{rest}: a file URL names an absolute path on this machine"
        )));
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    Ok(PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&decoded).into_owned(),
    )))
}

/// The CA certificates https downloads trust: `ca_file`'s, or the system's.
fn roots(ca_file: Option<&Path>) -> Result<Vec<Certificate<'static>>, String> {
    let ders: Vec<Vec<u8>> = match ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert.der().to_vec()),
                    _ => None,
                })
                .collect()
        }
        None => rustls_native_certs::load_native_certs()
            .certs
            .into_iter()
            .map(|cert| cert.to_vec())
            .collect(),
    };
    if ders.is_empty() {
        return Err(match ca_file {
            Some(path) => format!("no CA certificate in {}", path.display()),
            None => "no system CA certificates found; pass --update-ca-file".into(),
        });
    }
    Ok(ders
        .iter()
        .map(|der| Certificate::from_der(der).to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn file_urls_name_absolute_local_paths() {
        assert_eq!(
            file_url_path("/a%20b/m.onnx").unwrap(),
            PathBuf::from("/a b/m.onnx")
        );
        assert_eq!(file_url_path("localhost/m").unwrap(), PathBuf::from("/m"));
        assert!(file_url_path("otherhost/m").is_err());
    }

    #[test]
    fn local_copies_respect_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("m.onnx");
        std::fs::write(&source, vec![7u8; 100]).unwrap();
        let fetcher = |max_bytes| Fetcher {
            agent: Ok(Agent::new_with_defaults()),
            options: FetchOptions {
                max_bytes,
                retries: 0,
                idle_timeout: Duration::from_secs(1),
                ca_file: None,
            },
        };
        let part = dir.path().join("m.part");
        let url = format!("file://{}", source.display());
        fetcher(100).fetch(&url, &part).unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), vec![7u8; 100]);
        let error = fetcher(99).fetch(&url, &part).unwrap_err();
        assert_eq!(error.kind, ErrorKind::PayloadTooLarge);
    }
}
