//! A real HTTPS file server for update tests: a test CA made on the spot (its PEM written for
//! `--update-ca-file`), files served with range requests, a redirect to plain http, a
//! throttle, a body cut short, and a stop and restart on the same port (the server killed
//! mid-download). Every request is logged with its range.

#![allow(clippy::unwrap_used)] // test support: a panic is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// One request the server saw: its path and the start of its `Range`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub range_start: Option<u64>,
}

#[derive(Debug, Default)]
struct Controls {
    stopped: AtomicBool,
    /// Bytes per second of each body; 0 is unthrottled.
    rate: AtomicU64,
    /// When non-zero, bodies stop (the connection closes) after this many bytes.
    cut_after: AtomicU64,
    /// Body bytes sent, over all requests.
    sent: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Debug)]
pub struct FileServer {
    pub port: u16,
    root: PathBuf,
    ca_file: PathBuf,
    config: Arc<rustls::ServerConfig>,
    controls: Arc<Controls>,
    _dir: tempfile::TempDir,
}

impl FileServer {
    /// Serves the files of `root` over HTTPS on 127.0.0.1.
    pub fn start(root: &Path) -> FileServer {
        let dir = tempfile::tempdir().unwrap();
        let (config, ca_pem) = tls_config();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let port = crate::server::free_port();
        let server = FileServer {
            port,
            root: root.to_path_buf(),
            ca_file,
            config: Arc::new(config),
            controls: Arc::default(),
            _dir: dir,
        };
        server.listen();
        server
    }

    fn listen(&self) {
        self.controls.stopped.store(false, Ordering::SeqCst);
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (root, config, controls, port) = (
            self.root.clone(),
            self.config.clone(),
            self.controls.clone(),
            self.port,
        );
        std::thread::spawn(move || {
            while !controls.stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (root, config, controls) =
                            (root.clone(), config.clone(), controls.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &root, config, &controls, port);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    /// The PEM of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }

    /// Closes the listener and every connection (mid-body ones break off).
    pub fn stop(&self) {
        self.controls.stopped.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Listens again on the same port, with the same certificate.
    pub fn restart(&self) {
        self.listen();
    }

    pub fn throttle(&self, bytes_per_second: u64) {
        self.controls.rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Bodies close after `bytes` (0: never).
    pub fn cut_after(&self, bytes: u64) {
        self.controls.cut_after.store(bytes, Ordering::SeqCst);
    }

    pub fn sent(&self) -> u64 {
        self.controls.sent.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.controls.seen.lock().unwrap().clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.controls.stopped.store(true, Ordering::SeqCst);
    }
}

/// A server config whose certificate (for 127.0.0.1 and localhost) a fresh CA signed, and
/// that CA's PEM.
fn tls_config() -> (rustls::ServerConfig, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "destino test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (config, ca.pem())
}

fn serve(
    tcp: TcpStream,
    root: &Path,
    config: Arc<rustls::ServerConfig>,
    controls: &Controls,
    port: u16,
) -> std::io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    let (path, range_start) = read_request(&mut stream)?;
    controls.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        range_start,
    });
    if let Some(target) = path.strip_prefix("redirect-http/") {
        let location = format!("http://127.0.0.1:{port}/{target}");
        return answer_head(&mut stream, "302 Found", &[("Location", &location)], 0);
    }
    if let Some(target) = path.strip_prefix("redirect/") {
        let location = format!("/{target}");
        return answer_head(&mut stream, "302 Found", &[("Location", &location)], 0);
    }
    let Ok(body) = std::fs::read(root.join(&path)) else {
        return answer_head(&mut stream, "404 Not Found", &[], 0);
    };
    let start = range_start.unwrap_or(0).min(body.len() as u64) as usize;
    if range_start.is_some() {
        let range = format!(
            "bytes {start}-{}/{}",
            body.len().saturating_sub(1),
            body.len()
        );
        answer_head(
            &mut stream,
            "206 Partial Content",
            &[("Content-Range", &range)],
            body.len() - start,
        )?;
    } else {
        answer_head(&mut stream, "200 OK", &[], body.len())?;
    }
    send_body(&mut stream, &body[start..], controls)
}

fn read_request(stream: &mut impl Read) -> std::io::Result<(String, Option<u64>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let mut range_start = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range_start = value
                .trim()
                .strip_prefix("bytes=")
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse().ok());
        }
    }
    Ok((path, range_start))
}

fn answer_head(
    stream: &mut impl Write,
    status: &str,
    headers: &[(&str, &str)],
    length: usize,
) -> std::io::Result<()> {
    let mut head =
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.flush()
}

fn send_body(stream: &mut impl Write, body: &[u8], controls: &Controls) -> std::io::Result<()> {
    let mut written = 0u64;
    for chunk in body.chunks(16 << 10) {
        let cut = controls.cut_after.load(Ordering::SeqCst);
        if controls.stopped.load(Ordering::SeqCst) || (cut > 0 && written >= cut) {
            return Ok(());
        }
        stream.write_all(chunk)?;
        stream.flush()?;
        written += chunk.len() as u64;
        controls
            .sent
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
        let rate = controls.rate.load(Ordering::SeqCst);
        if rate > 0 {
            std::thread::sleep(Duration::from_secs_f64(chunk.len() as f64 / rate as f64));
        }
    }
    Ok(())
}
