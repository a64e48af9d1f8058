//! Fleet updates against real processes: destino-edge (and destino-server) taking update
//! documents over HTTP and MQTT (a real mosquitto), downloading from a real HTTPS server with
//! a test CA. Each failure injected leaves the old version serving; a download cut off
//! resumes; a `kill -9` at each step of an update ends, after a restart, with a complete
//! version serving and the update finished.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use destino_tests::https::FileServer;
use destino_tests::mqtt::{Broker, Device, bridge_args};
use destino_tests::server::{TestServer, digits_repository};
use destino_tests::shared_models;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn sha256(path: &Path) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &std::fs::read(path).unwrap());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the HTTPS server offers: the digits model, a notes file, and a file that is no model.
fn served_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let digits = shared_models().join("sklearn_digits_rf.onnx");
    std::fs::copy(digits, dir.path().join("digits.onnx")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"retrained on 2026-12-06\n").unwrap();
    std::fs::write(dir.path().join("garbage.onnx"), vec![0x5a; 4096]).unwrap();
    dir
}

fn document(files: &Path, https: &FileServer, version: u64, file: &str) -> Value {
    json!({
        "model": "digits",
        "version": version,
        "url": https.url(file),
        "sha256": sha256(&files.join(file)),
        "id": format!("update-{version}"),
    })
}

fn serve_args<'a>(repository: &'a Path, https: &'a FileServer, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "serve",
        "--http-address",
        "127.0.0.1",
        "--http-port",
        "0",
        "--model-repository",
        repository.to_str().unwrap(),
        "--update-ca-file",
        https.ca_file().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

fn start(program: &str, repository: &Path, https: &FileServer, extra: &[&str]) -> TestServer {
    let server = TestServer::spawn_program(program, &serve_args(repository, https, extra));
    server.wait_ready();
    server
}

/// The version that answers an inference of the digits model, or the failed status.
fn infer(server: &TestServer) -> Result<String, u16> {
    let request = json!({"inputs": [{"name": "X", "shape": [1, 64], "datatype": "FP32",
        "data": vec![0.0f32; 64]}]});
    let reply = server.client.post_json("/v2/models/digits/infer", &request);
    if reply.status != 200 {
        return Err(reply.status);
    }
    Ok(reply.json()["model_version"].as_str().unwrap().to_string())
}

fn update(server: &TestServer, document: &Value) -> (u16, Value) {
    let reply = server
        .client
        .post_json("/v2/repository/models/digits/update", document);
    (reply.status, reply.json())
}

fn versions(repository: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(repository.join("digits"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

/// The staging area holds no update (an update that ended took its files away).
fn staging_is_empty(repository: &Path) -> bool {
    let staging = repository.join(".destino-updates");
    std::fs::read_dir(&staging).map_or(true, |entries| {
        entries.flatten().all(|e| {
            e.file_name() == ".trash" || std::fs::read_dir(e.path()).unwrap().next().is_none()
        })
    })
}

/// Waits until the staging of `repository` is empty; fails with `what` and the output of
/// `server` (which clears it) if it stays otherwise.
fn wait_for_empty_staging(repository: &Path, server: &TestServer, what: &str) {
    let start = Instant::now();
    while !staging_is_empty(repository) {
        assert!(start.elapsed() < WAIT, "{what}:\n{}", server.output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn updates_install_switch_prune_and_repeat_idempotently() {
    let files = served_files();
    let https = FileServer::start(files.path());
    for program in ["destino-edge", "destino-server"] {
        let repo = digits_repository();
        let server = start(program, repo.path(), &https, &["--keep-versions", "2"]);
        assert_eq!(infer(&server).unwrap(), "1");
        // On by default, and said to be open without a key.
        assert!(
            server
                .output()
                .contains("open to anyone who reaches this port"),
            "{}",
            server.output()
        );

        let mut v2 = document(files.path(), &https, 2, "digits.onnx");
        v2["files"] = json!({"notes.txt": {"url": https.url("notes.txt"),
            "sha256": sha256(&files.path().join("notes.txt"))}});
        let (status, body) = update(&server, &v2);
        assert_eq!(status, 200, "{program}: {body}");
        assert_eq!(body["state"], "ready");
        assert_eq!(body["id"], "update-2");
        assert_eq!(infer(&server).unwrap(), "2");
        assert!(repo.path().join("digits/2/notes.txt").is_file());

        // A redirect to https on the same server is followed.
        let mut v3 = document(files.path(), &https, 3, "digits.onnx");
        v3["url"] = json!(https.url("redirect/digits.onnx"));
        let (status, body) = update(&server, &v3);
        assert_eq!(status, 200, "{body}");
        assert_eq!(infer(&server).unwrap(), "3");
        assert_eq!(versions(repo.path()), ["2", "3"], "version 1 pruned");

        // The same document again (a retained message delivered twice) downloads nothing.
        let requests = https.seen().len();
        let (status, body) = update(&server, &v3);
        assert_eq!(
            (status, body["reason"].as_str()),
            (200, Some("already serving"))
        );
        assert_eq!(https.seen().len(), requests);

        let (status, body) = update(&server, &document(files.path(), &https, 2, "digits.onnx"));
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().contains("older"), "{body}");
        assert!(staging_is_empty(repo.path()));
        let counted = |state: &str| {
            server.metric(
                "destino_model_updates_total",
                &format!("model=\"digits\",state=\"{state}\""),
            )
        };
        assert_eq!((counted("ready"), counted("failed")), (3.0, 1.0));
        // The last update's status, for a client whose POST did not wait for the end.
        let last = server.client.get("/v2/repository/models/digits/update");
        assert_eq!(last.status, 200);
        assert_eq!(last.json()["state"], "failed", "{}", last.text());
        let none = server.client.get("/v2/repository/models/other/update");
        assert_eq!(none.status, 404, "{}", none.text());
    }
}

#[test]
fn refused_updates_leave_the_serving_version_serving() {
    let files = served_files();
    let https = FileServer::start(files.path());
    let repo = digits_repository();
    let server = start(
        "destino-edge",
        repo.path(),
        &https,
        &["--update-retries", "0"],
    );
    let digits_sha = sha256(&files.path().join("digits.onnx"));
    let mut cases: Vec<(&str, Value, u16, &str, &str)> = Vec::new();

    let mut wrong_checksum = document(files.path(), &https, 2, "digits.onnx");
    wrong_checksum["sha256"] = json!("0".repeat(64));
    cases.push(("wrong checksum", wrong_checksum, 502, "failed", "sha256"));
    let not_a_model = document(files.path(), &https, 2, "garbage.onnx");
    cases.push((
        "a model that does not load",
        not_a_model,
        400,
        "rolled_back",
        "loading",
    ));
    let mut to_http = document(files.path(), &https, 2, "digits.onnx");
    to_http["url"] = json!(https.url("redirect-http/digits.onnx"));
    cases.push(("redirect to http", to_http, 502, "failed", "only https"));
    let mut missing = document(files.path(), &https, 2, "digits.onnx");
    missing["url"] = json!(https.url("nowhere.onnx"));
    cases.push(("missing file", missing, 502, "failed", "404"));
    let mut plain_http = document(files.path(), &https, 2, "digits.onnx");
    plain_http["url"] = json!(format!("http://127.0.0.1:{}/digits.onnx", https.port));
    cases.push(("http URL", plain_http, 400, "", "https://"));
    let mut traversal = document(files.path(), &https, 2, "digits.onnx");
    traversal["files"] =
        json!({"../../etc/cron.d/x": {"url": https.url("notes.txt"), "sha256": digits_sha}});
    cases.push((
        "path traversal in a file name",
        traversal,
        400,
        "",
        "invalid file name",
    ));
    let mut traversal_model = document(files.path(), &https, 2, "digits.onnx");
    traversal_model["model"] = json!("../digits");
    cases.push((
        "path traversal in the model name",
        traversal_model,
        400,
        "",
        "invalid model name",
    ));

    for (what, doc, status, state, reason) in cases {
        let (got, body) = update(&server, &doc);
        assert_eq!(got, status, "{what}: {body}");
        if !state.is_empty() {
            assert_eq!(body["state"], state, "{what}: {body}");
        }
        assert!(
            body["error"].as_str().unwrap().contains(reason),
            "{what}: {body}"
        );
        assert_eq!(infer(&server).unwrap(), "1", "{what}: version 1 serves");
        assert_eq!(versions(repo.path()), ["1"], "{what}");
        assert!(staging_is_empty(repo.path()), "{what}: staging left behind");
    }

    // A download cut short with no retries left fails and keeps its bytes for the next try,
    // which resumes them.
    https.cut_after(256 << 10);
    let v2 = document(files.path(), &https, 2, "digits.onnx");
    let (status, body) = update(&server, &v2);
    assert_eq!(
        (status, body["state"].as_str()),
        (502, Some("failed")),
        "{body}"
    );
    assert_eq!(infer(&server).unwrap(), "1");
    https.cut_after(0);
    let (status, body) = update(&server, &v2);
    assert_eq!(status, 200, "{body}");
    assert!(
        https
            .seen()
            .iter()
            .any(|s| s.range_start.is_some_and(|start| start > 0)),
        "the second try resumed: {:?}",
        https.seen()
    );
    assert_eq!(infer(&server).unwrap(), "2");
}

#[test]
fn signed_updates_only_when_a_key_is_given() {
    let files = served_files();
    let https = FileServer::start(files.path());
    let repo = digits_repository();
    let random = SystemRandom::new();
    let pair = |_| {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&random).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    };
    let (trusted, other) = (pair(0), pair(1));
    // The PEM `openssl pkey -pubout` writes: an RFC 8410 SubjectPublicKeyInfo.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(trusted.public_key().as_ref());
    let key_file = repo.path().join("../update-key.pem");
    let key_file = key_file.to_str().unwrap().to_string();
    std::fs::write(
        &key_file,
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(spki)
        ),
    )
    .unwrap();
    let server = start(
        "destino-edge",
        repo.path(),
        &https,
        &["--update-public-key", &key_file],
    );
    assert!(
        !server.output().contains("open to anyone"),
        "{}",
        server.output()
    );
    let mut doc = document(files.path(), &https, 2, "digits.onnx");
    let message = format!(
        "destino-update/1\nmodel digits\nversion 2\nfile model.onnx {}\n",
        doc["sha256"].as_str().unwrap()
    );
    let (status, body) = update(&server, &doc);
    assert_eq!(status, 401, "unsigned: {body}");
    doc["signature"] = json!(STANDARD.encode(other.sign(message.as_bytes())));
    let (status, body) = update(&server, &doc);
    assert_eq!(status, 401, "signed by another key: {body}");
    assert_eq!(infer(&server).unwrap(), "1");
    assert!(
        https.seen().is_empty(),
        "nothing downloaded before the signature verified"
    );
    doc["signature"] = json!(STANDARD.encode(trusted.sign(message.as_bytes())));
    let (status, body) = update(&server, &doc);
    assert_eq!(status, 200, "{body}");
    assert_eq!(infer(&server).unwrap(), "2");
    let _ = std::fs::remove_file(key_file);
}

#[test]
fn an_update_under_load_fails_no_request_and_never_goes_back() {
    let files = served_files();
    let https = FileServer::start(files.path());
    let repo = digits_repository();
    let server = Arc::new(start("destino-edge", repo.path(), &https, &[]));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    answers.push(infer(&server));
                }
                answers
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = update(&server, &document(files.path(), &https, 2, "digits.onnx"));
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        let answers: Vec<String> = client
            .join()
            .unwrap()
            .into_iter()
            .map(|a| a.unwrap_or_else(|status| panic!("a request failed with {status}")))
            .collect();
        assert_eq!(answers.first().map(String::as_str), Some("1"));
        assert_eq!(answers.last().map(String::as_str), Some("2"));
        let switch = answers.iter().position(|v| v == "2").unwrap();
        assert!(answers[switch..].iter().all(|v| v == "2"), "went back to 1");
    }
}

#[test]
fn a_download_cut_off_by_the_server_resumes_where_it_stopped() {
    let files = served_files();
    let https = Arc::new(FileServer::start(files.path()));
    let repo = digits_repository();
    let server = Arc::new(start(
        "destino-edge",
        repo.path(),
        &https,
        &["--update-retries", "5"],
    ));
    https.throttle(300_000);
    let doc = document(files.path(), &https, 2, "digits.onnx");
    let updating = {
        let server = server.clone();
        std::thread::spawn(move || update(&server, &doc))
    };
    let start = Instant::now();
    while https.sent() < 300_000 {
        assert!(start.elapsed() < WAIT, "the download did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    https.stop();
    assert_eq!(
        infer(&server).unwrap(),
        "1",
        "serving while the server is away"
    );
    std::thread::sleep(Duration::from_millis(1500));
    https.throttle(0);
    https.restart();
    let (status, body) = updating.join().unwrap();
    assert_eq!(status, 200, "{body}\n{}", server.output());
    let resumed: Vec<u64> = https.seen().iter().filter_map(|s| s.range_start).collect();
    assert!(
        resumed.iter().any(|&start| start >= 300_000 - (16 << 10)),
        "resumed with a range request: {:?}",
        https.seen()
    );
    assert_eq!(infer(&server).unwrap(), "2");
    assert_eq!(
        sha256(&repo.path().join("digits/2/model.onnx")),
        sha256(&files.path().join("digits.onnx"))
    );
}

/// Waits until `server` answers with `version`.
fn wait_for_version(server: &TestServer, version: &str) {
    let start = Instant::now();
    while infer(server).ok().as_deref() != Some(version) {
        assert!(
            start.elapsed() < WAIT,
            "version {version} never served:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_kill_at_each_step_ends_with_a_complete_version_after_restart() {
    let files = served_files();
    let https = FileServer::start(files.path());
    let expected = sha256(&files.path().join("digits.onnx"));
    for step in ["downloading", "verifying", "loading", "committing"] {
        let repo = digits_repository();
        let args = serve_args(repo.path(), &https, &[]);
        let stalled = TestServer::spawn_program_with_env(
            "destino-edge",
            &args,
            &[("DESTINO_TEST_UPDATE_STALL", step)],
        );
        stalled.wait_ready();
        let client = stalled.client.clone();
        let doc = document(files.path(), &https, 2, "digits.onnx");
        std::thread::spawn(move || client.post_json("/v2/repository/models/digits/update", &doc));
        let start = Instant::now();
        while !stalled
            .output()
            .contains(&format!("update: stalled at {step}"))
        {
            assert!(
                start.elapsed() < WAIT,
                "{step}: never stalled:\n{}",
                stalled.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        stalled.kill();

        // Every version folder there is complete, before anything else runs.
        for version in versions(repo.path()) {
            let model = repo.path().join("digits").join(&version).join("model.onnx");
            assert_eq!(
                sha256(&model),
                expected,
                "{step}: version {version} is incomplete"
            );
        }
        let restarted = TestServer::spawn_program("destino-edge", &args);
        restarted.wait_ready();
        wait_for_version(&restarted, "2");
        assert_eq!(
            sha256(&repo.path().join("digits/2/model.onnx")),
            expected,
            "{step}"
        );
        // The staging is cleared just after the version starts serving.
        wait_for_empty_staging(
            repo.path(),
            &restarted,
            &format!("{step}: staging left behind"),
        );
    }
}

/// `destino-edge mqtt` as device `client_id`, once it has subscribed to its update topic
/// (`subscribed`, the template filled in).
fn start_mqtt_edge(
    broker: &Broker,
    client_id: &str,
    repository: &Path,
    extra: &[&str],
    subscribed: &str,
) -> TestServer {
    let mut args = bridge_args(broker.port, repository);
    args.extend(
        ["--client-id", client_id]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let edge = TestServer::spawn_program("destino-edge", &args);
    let start = Instant::now();
    while !edge.output().contains(subscribed) {
        assert!(start.elapsed() < WAIT, "not subscribed:\n{}", edge.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    edge
}

#[test]
fn mqtt_updates_report_each_state_retained() {
    let files = served_files();
    let https = FileServer::start(files.path());
    let repo = digits_repository();
    let broker = Broker::start("");
    let edge = start_mqtt_edge(
        &broker,
        "pi-7",
        repo.path(),
        &[
            "--model",
            "digits",
            "--update-topic",
            "devices/{client_id}/models/update",
            "--update-ca-file",
            https.ca_file().to_str().unwrap(),
            "--update-retries",
            "0",
        ],
        "devices/pi-7/models/update",
    );
    let status_topic = "devices/pi-7/models/update/status";
    let operator = Device::connect(broker.port, "operator", &[status_topic], None);
    std::thread::sleep(Duration::from_millis(300));
    let doc = document(files.path(), &https, 2, "digits.onnx");
    let publish = |doc: &Value| {
        operator.publish(
            "devices/pi-7/models/update",
            doc.to_string().as_bytes(),
            "u",
            &[],
            None,
        );
    };
    publish(&doc);
    let states: Vec<Value> = operator
        .collect(4, WAIT)
        .iter()
        .map(|m| {
            assert_eq!(m.topic, status_topic);
            m.json()
        })
        .collect();
    let names: Vec<&str> = states
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["downloading", "verifying", "loading", "ready"],
        "{states:?}"
    );
    assert!(
        states
            .iter()
            .all(|s| s["id"] == "update-2" && s["version"] == 2)
    );
    wait_for_version(&edge, "2");

    let mut bad = document(files.path(), &https, 3, "digits.onnx");
    bad["sha256"] = json!("f".repeat(64));
    publish(&bad);
    let last = operator
        .collect(3, WAIT)
        .into_iter()
        .map(|m| m.json())
        .find(|s| s["state"] == "failed")
        .expect("a failed status");
    assert_eq!(last["kind"], "bad_gateway", "{last}");
    publish(&json!({"model": "digits", "version": "x"}));
    let refused = operator
        .next(WAIT)
        .expect("a status for a malformed document")
        .json();
    assert_eq!(
        (refused["state"].as_str(), refused["model"].as_str()),
        (Some("failed"), Some("digits"))
    );
    assert_eq!(infer(&edge).unwrap(), "2");

    // Whoever subscribes later reads the last state, retained.
    let late = Device::connect(broker.port, "dashboard", &[status_topic], None);
    let retained = late.next(WAIT).expect("the retained status").json();
    assert_eq!(retained["state"], "failed");
}

#[test]
fn a_device_with_no_model_gets_its_first_over_mqtt_from_a_file_url() {
    let files = served_files();
    let repo = tempfile::tempdir().unwrap();
    let broker = Broker::start("");
    let edge = start_mqtt_edge(
        &broker,
        "pi-8",
        repo.path(),
        &[
            "--update-topic",
            "fleet/{client_id}/update",
            "--update-status-topic",
            "fleet/{client_id}/status",
            "--http-updates",
            "false",
        ],
        "fleet/pi-8/update",
    );
    assert_eq!(infer(&edge), Err(404), "no model yet");
    let operator = Device::connect(broker.port, "operator-8", &["fleet/pi-8/status"], None);
    std::thread::sleep(Duration::from_millis(300));
    let model = files.path().join("digits.onnx");
    let doc = json!({"model": "digits", "version": 1, "url": format!("file://{}", model.display()),
        "sha256": sha256(&model)});
    operator.publish(
        "fleet/pi-8/update",
        doc.to_string().as_bytes(),
        "u",
        &[],
        None,
    );
    let last = operator.collect(4, WAIT).pop().expect("statuses").json();
    assert_eq!(last["state"], "ready", "{last}");
    assert_eq!(infer(&edge).unwrap(), "1");

    // Updates come over MQTT only: the HTTP route is off.
    let (status, body) = update(&edge, &doc);
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--http-updates false"),
        "{body}"
    );
}

#[test]
fn an_unfinished_update_overtaken_by_a_newer_one_is_dropped_at_the_next_start() {
    let files = served_files();
    let https = FileServer::start(files.path());
    let repo = digits_repository();
    let args = serve_args(repo.path(), &https, &["--update-retries", "0"]);
    let server = TestServer::spawn_program("destino-edge", &args);
    server.wait_ready();
    https.cut_after(256 << 10);
    let (status, _) = update(&server, &document(files.path(), &https, 2, "digits.onnx"));
    assert_eq!(status, 502);
    https.cut_after(0);
    let (status, body) = update(&server, &document(files.path(), &https, 3, "digits.onnx"));
    assert_eq!(status, 200, "{body}");
    assert!(
        !staging_is_empty(repo.path()),
        "version 2's bytes are kept for a retry"
    );
    server.kill();

    let restarted = TestServer::spawn_program("destino-edge", &args);
    restarted.wait_ready();
    wait_for_empty_staging(repo.path(), &restarted, "version 2 stays staged");
    assert_eq!(infer(&restarted).unwrap(), "3");
    assert_eq!(versions(repo.path()), ["1", "3"]);
}

#[test]
fn unusable_update_keys_and_cas_stop_the_start() {
    let repo = digits_repository();
    let garbage = repo.path().join("digits/1/model.onnx");
    for (flag, value, says) in [
        (
            "--update-public-key",
            "/nonexistent/key.pem",
            "cannot read the public key",
        ),
        (
            "--update-public-key",
            garbage.to_str().unwrap(),
            "not usable",
        ),
        (
            "--update-ca-file",
            garbage.to_str().unwrap(),
            "no CA certificate",
        ),
    ] {
        let out = std::process::Command::new(destino_tests::binary("destino-edge"))
            .args([
                "serve",
                "--http-port",
                "0",
                "--grpc-port",
                "0",
                "--http-updates",
            ])
            .arg("--model-repository")
            .arg(repo.path())
            .args([flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value}: started");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
}
