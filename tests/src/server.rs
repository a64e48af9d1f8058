//! A real `destino-server serve` process on a free port, a test model repository built from
//! the shared models, and a small blocking HTTP client for talking to it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{binary, bundled_models, model_path};

/// The binary whose `serve` the HTTP tests drive: `destino-server`, or the one named by
/// `DESTINO_TEST_SERVER` (scripts/test runs the HTTP suites again on `destino-edge`).
pub fn server_program() -> String {
    std::env::var("DESTINO_TEST_SERVER").unwrap_or_else(|_| "destino-server".into())
}

/// Whether the HTTP tests run against the edge binary (tract, no engine or GPU flags).
pub fn testing_edge() -> bool {
    server_program() == "destino-edge"
}

/// A TCP port free on 127.0.0.1 now (closed again, for a server to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The shared models a test repository serves, by name.
pub const SHARED_MODELS: [&str; 4] = [
    "efficientnet_lite0",
    "sklearn_digits_rf",
    "ppocr_mobile_v2_cls",
    "silero_vad",
];

/// A model repository in a temporary folder: every shared model (linked, not copied), with
/// efficientnet_lite0's bundled model.toml and labels.
pub fn test_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    for name in SHARED_MODELS {
        add_model(dir.path(), name, None);
    }
    dir
}

/// Adds shared model `name` to `root` (as `root/name/model.onnx`, or `root/name/VERSION/`).
pub fn add_model(root: &Path, name: &str, version: Option<u64>) -> PathBuf {
    let mut dir = root.join(name);
    if let Some(v) = version {
        dir = dir.join(v.to_string());
    }
    std::fs::create_dir_all(&dir).expect("model folder");
    let target = dir.join("model.onnx");
    let _ = std::fs::remove_file(&target);
    std::os::unix::fs::symlink(
        model_path(name).canonicalize().expect("shared model"),
        &target,
    )
    .expect("linking the model");
    let bundled = bundled_models().join(name);
    for file in ["model.toml", "labels.txt"] {
        if bundled.join(file).is_file() {
            std::fs::copy(bundled.join(file), root.join(name).join(file)).expect("copying");
        }
    }
    dir
}

/// A repository serving the shared digits random forest as `digits` version 1 (copied, so
/// a test may change the folder).
pub fn digits_repository() -> tempfile::TempDir {
    let repository = tempfile::tempdir().expect("temporary folder");
    let version = repository.path().join("digits/1");
    std::fs::create_dir_all(&version).expect("model folder");
    std::fs::copy(model_path("sklearn_digits_rf"), version.join("model.onnx"))
        .expect("copying the model");
    repository
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `error` of a JSON error body, after checking the status.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "unexpected status, body: {}",
            self.text()
        );
        let json = self.json();
        json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no `error` string in {json}"))
            .to_string()
    }
}

/// A blocking HTTP client that returns every status as a `Reply`.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    pub base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            agent,
            base: base.to_string(),
        }
    }

    fn read(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = result.unwrap_or_else(|e| panic!("HTTP request failed: {e}"));
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_default();
        Reply {
            status: response.status().as_u16(),
            headers,
            body,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        Client::read(self.agent.get(format!("{}{path}", self.base)).call())
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Client::read(request.call())
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Client::read(request.send(body))
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.post(path, &[("content-type", "application/json")], &bytes)
    }
}

/// A running server, killed when dropped.
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    pub client: Client,
    output: Arc<Mutex<String>>,
}

impl TestServer {
    /// Starts `destino-server serve` on `repository` with extra flags and waits until ready.
    pub fn start(repository: &Path, args: &[&str]) -> TestServer {
        let server = TestServer::spawn(repository, args);
        server.wait_ready();
        server
    }

    /// Starts the server with gRPC on a free port, waits until ready; returns it and the
    /// gRPC address (`127.0.0.1:PORT`).
    pub fn start_with_grpc(repository: &Path, args: &[&str]) -> (TestServer, String) {
        let port = free_port().to_string();
        let mut all = vec!["--grpc-port", port.as_str()];
        all.extend_from_slice(args);
        let server = TestServer::start(repository, &all);
        (server, format!("127.0.0.1:{port}"))
    }

    /// Starts the server without waiting for readiness.
    pub fn spawn(repository: &Path, args: &[&str]) -> TestServer {
        let mut command = Command::new(binary(&server_program()));
        command
            .args(["serve", "--http-address", "127.0.0.1", "--http-port", "0"])
            .arg("--model-repository")
            .arg(repository)
            .args(args)
            .env_remove("AZUREML_MODEL_DIR");
        TestServer::spawn_command(command)
    }

    /// Starts `destino-server serve` configured only by its environment, as a container
    /// platform does (e.g. `AZUREML_MODEL_DIR`, `DESTINO_HTTP_PORT`), and waits until ready.
    pub fn start_with_env(env: &[(&str, &Path)]) -> TestServer {
        let mut command = Command::new(binary(&server_program()));
        command.arg("serve").envs(env.iter().copied());
        let server = TestServer::spawn_command(command);
        server.wait_ready();
        server
    }

    /// Starts `program` (a workspace binary) with `args` and waits until it listens.
    pub fn spawn_program(program: &str, args: &[&str]) -> TestServer {
        let mut command = Command::new(binary(program));
        command.args(args).env_remove("AZUREML_MODEL_DIR");
        TestServer::spawn_command(command)
    }

    /// Starts `program` with `args` and extra environment variables, without waiting.
    pub fn spawn_program_with_env(
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> TestServer {
        let mut command = Command::new(binary(program));
        command
            .args(args)
            .envs(env.iter().copied())
            .env_remove("AZUREML_MODEL_DIR");
        TestServer::spawn_command(command)
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn_command(mut command: Command) -> TestServer {
        // gRPC only where a test asks for it (`--grpc-port`): servers run side by side.
        if !command
            .get_envs()
            .any(|(key, _)| key == "DESTINO_GRPC_PORT")
        {
            command.env("DESTINO_GRPC_PORT", "0");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the server binary");
        let output = Arc::new(Mutex::new(String::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_log = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("destino listening on ") {
                    // A wildcard bind is reached over loopback.
                    let address = address.replace("0.0.0.0", "127.0.0.1");
                    let _ = address_tx.send(address);
                }
                let mut log = stdout_log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr_log = output.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let mut log = stderr_log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let base = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start listening: {}",
                    output.lock().unwrap_or_else(|e| e.into_inner())
                );
            }
        };
        TestServer {
            child,
            client: Client::new(&base),
            output,
        }
    }

    /// Waits up to a minute for `/v2/health/ready` to answer 200.
    pub fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if self.client.get("/v2/health/ready").status == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server not ready after 60 s:\n{}", self.output());
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("waiting for the server")
    }

    /// A metric's value from `/metrics` (summed over label sets containing `labels`).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        self.client
            .get("/metrics")
            .text()
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                    && l.contains(labels)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs over a raw socket and reads the answer even when the server stops reading the body
/// early (as it does for bodies over the limit, where HTTP clients may fail on the write).
pub fn post_ignoring_early_close(base: &str, path: &str, body: &[u8]) -> Reply {
    use std::io::Write;
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    read_raw_reply(&mut stream, path)
}

/// Reads a whole HTTP/1.1 answer from a raw socket (the server closes it), chunked bodies
/// joined; `what` names the request in panics.
pub fn read_raw_reply(stream: &mut std::net::TcpStream, what: &str) -> Reply {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{what}: no HTTP answer: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
    out
}
