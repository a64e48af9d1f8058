//! `destino-edge mqtt` against a real mosquitto broker: images, V2 requests and text in,
//! predictions out with their correlation data; errors on the error topic; a broker restart
//! mid-stream loses nothing; credentials and TLS.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use destino_tests::mqtt::{Broker, Device, Message, bridge_args};
use destino_tests::server::{TestServer, add_model};
use destino_tests::v2::json_request;
use destino_tests::{
    bundled_models, digits_reference, generated_models, reference_case, shared_models,
};

const WAIT: Duration = Duration::from_secs(60);

/// A repository with the bundled image classifier and the digits model.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let image_model = dir.path().join("efficientnet_lite0");
    std::fs::create_dir_all(&image_model).unwrap();
    for file in ["model.onnx", "model.toml", "labels.txt"] {
        let source = bundled_models().join("efficientnet_lite0").join(file);
        std::os::unix::fs::symlink(source.canonicalize().unwrap(), image_model.join(file)).unwrap();
    }
    add_model(dir.path(), "sklearn_digits_rf", None);
    dir
}

/// Starts the bridge and waits until it has subscribed.
fn start_bridge(repository: &Path, port: &str, extra: &[&str]) -> TestServer {
    let bridge = spawn_bridge(repository, port, extra);
    wait_for(&bridge, "mqtt: subscribed");
    bridge
}

/// Starts the bridge (its HTTP side listening) without waiting for the broker.
fn spawn_bridge(repository: &Path, port: &str, extra: &[&str]) -> TestServer {
    let mut args = bridge_args(port.parse().unwrap(), repository);
    args.extend(
        ["--model", "efficientnet_lite0", "--max-backoff-ms", "500"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::spawn_program("destino-edge", &args)
}

fn wait_for(process: &TestServer, line: &str) {
    let start = std::time::Instant::now();
    while !process.output().contains(line) {
        assert!(
            start.elapsed() < WAIT,
            "no `{line}` after {WAIT:?}:\n{}",
            process.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn coffee() -> Vec<u8> {
    std::fs::read(shared_models().join("images/coffee.png")).unwrap()
}

fn top_label(message: &Message) -> String {
    message.json()["outputs"]["logits"][0][0]["label"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn images_and_v2_requests_round_trip_and_errors_go_to_the_error_topic() {
    let repository = repository();
    let broker = Broker::start("");
    let bridge = start_bridge(repository.path(), &broker.port.to_string(), &[]);
    let device = Device::connect(
        broker.port,
        "camera-1",
        &[
            "devices/cam1/predictions",
            "devices/cam1/errors",
            "replies/#",
        ],
        None,
    );
    std::thread::sleep(Duration::from_millis(300));

    // An image: classes, correlation data carried over, status 200.
    device.publish("devices/cam1/frames", &coffee(), "frame-1", &[], None);
    let answer = device.next(WAIT).expect("a prediction");
    assert_eq!(answer.topic, "devices/cam1/predictions");
    assert_eq!(answer.correlation.as_deref(), Some("frame-1"));
    assert_eq!(answer.user_properties["status"], "200");
    assert_eq!(
        answer.user_properties["source_topic"],
        "devices/cam1/frames"
    );
    assert!(top_label(&answer).contains("espresso"), "{answer:?}");

    // A V2 request to another model, chosen by a user property: its id is echoed.
    let case = reference_case("sklearn_digits_rf", None);
    let mut request = json_request(&case.inputs);
    request["id"] = "req-7".into();
    device.publish(
        "devices/cam1/frames",
        &serde_json::to_vec(&request).unwrap(),
        "digits-1",
        &[("model", "sklearn_digits_rf")],
        None,
    );
    let answer = device.next(WAIT).expect("a V2 response");
    assert_eq!(answer.correlation.as_deref(), Some("digits-1"));
    let body = answer.json();
    assert_eq!(body["id"], "req-7");
    assert_eq!(body["model_name"], "sklearn_digits_rf");
    let labels: Vec<i64> = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(labels, digits_reference().1);

    // Malformed payloads: an error on the error topic, with the correlation data and id.
    device.publish(
        "devices/cam1/frames",
        b"\x89PNG truncated",
        "bad-1",
        &[],
        None,
    );
    let error = device.next(WAIT).expect("an error message");
    assert_eq!(error.topic, "devices/cam1/errors");
    assert_eq!(error.correlation.as_deref(), Some("bad-1"));
    assert_eq!(error.user_properties["status"], "400");
    assert_eq!(error.json()["status"], 400);
    assert_eq!(error.json()["topic"], "devices/cam1/frames");
    let bad_request = br#"{"id": "req-8", "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 3], "data": [1]}]}"#;
    device.publish(
        "devices/cam1/frames",
        bad_request,
        "bad-2",
        &[("model", "sklearn_digits_rf")],
        None,
    );
    let error = device.next(WAIT).expect("an error message");
    assert_eq!(error.topic, "devices/cam1/errors");
    assert_eq!(error.json()["id"], "req-8");
    device.publish(
        "devices/cam1/frames",
        &coffee(),
        "bad-3",
        &[("model", "no_such_model")],
        None,
    );
    let error = device.next(WAIT).expect("an error message");
    assert_eq!(error.user_properties["status"], "404");

    // An MQTT 5 response topic takes precedence; the bridge still answers after the errors.
    device.publish(
        "devices/cam1/frames",
        &coffee(),
        "frame-2",
        &[],
        Some("replies/cam1"),
    );
    let answer = device.next(WAIT).expect("a prediction");
    assert_eq!(answer.topic, "replies/cam1");
    assert_eq!(answer.correlation.as_deref(), Some("frame-2"));
    assert!(top_label(&answer).contains("espresso"));

    // Scoring over MQTT is counted like HTTP requests.
    assert!(
        bridge.metric(
            "destino_inference_requests_total",
            "model=\"efficientnet_lite0\""
        ) >= 3.0
    );
    assert_eq!(bridge.client.get("/v2/health/ready").status, 200);
}

#[test]
fn text_messages_are_classified_like_http_text() {
    let repository = repository();
    assert_eq!(
        generated_models("text_models.py", repository.path()),
        ["intent"]
    );
    let broker = Broker::start("");
    let _bridge = start_bridge(repository.path(), &broker.port.to_string(), &[]);
    let device = Device::connect(
        broker.port,
        "phone-1",
        &["devices/phone1/predictions", "devices/phone1/errors"],
        None,
    );
    std::thread::sleep(Duration::from_millis(300));
    // Plain UTF-8 text, and a `{"data": [...]}` body of strings.
    let intent = [("model", "intent")];
    device.publish(
        "devices/phone1/frames",
        b"The dog chased the cat.",
        "t-1",
        &intent,
        None,
    );
    let answer = device.next(WAIT).expect("a prediction");
    assert_eq!(answer.correlation.as_deref(), Some("t-1"));
    assert_eq!(
        answer.json()["outputs"]["logits"][0][0]["label"],
        "animal",
        "{answer:?}"
    );
    let body = br#"{"data": ["I love pizza.", "She sings a song."]}"#;
    device.publish("devices/phone1/frames", body, "t-2", &intent, None);
    let answer = device.next(WAIT).expect("a prediction");
    let logits = &answer.json()["outputs"]["logits"];
    assert_eq!(logits[0][0]["label"], "food", "{answer:?}");
    assert_eq!(logits[1][0]["label"], "music", "{answer:?}");
    // Bytes that are not UTF-8: an error, with its status.
    device.publish("devices/phone1/frames", b"caf\xe9", "t-3", &intent, None);
    let error = device.next(WAIT).expect("an error message");
    assert_eq!(error.topic, "devices/phone1/errors");
    assert_eq!(error.user_properties["status"], "400");
}

#[test]
fn a_broker_restart_mid_stream_loses_no_message() {
    let repository = repository();
    let mut broker = Broker::start("");
    let bridge = start_bridge(
        repository.path(),
        &broker.port.to_string(),
        &["--max-in-flight", "2"],
    );
    let device = Device::connect(
        broker.port,
        "camera-2",
        &["devices/cam2/predictions", "devices/cam2/errors"],
        None,
    );
    std::thread::sleep(Duration::from_millis(300));
    let image = coffee();
    let ids: Vec<String> = (0..16).map(|i| format!("frame-{i}")).collect();
    for id in &ids[..8] {
        device.publish("devices/cam2/frames", &image, id, &[], None);
    }
    let first = device.collect(8, WAIT);
    assert_eq!(first.len(), 8, "before the restart");

    broker.restart();
    // Published while both clients reconnect: the broker's persistent sessions hold them.
    for id in &ids[8..] {
        device.publish("devices/cam2/frames", &image, id, &[], None);
    }
    // Delivery is at least once: an answer in flight when the broker went down may come
    // twice, so collect until every frame is answered (or the wait is over).
    let expected: BTreeSet<String> = ids.iter().cloned().collect();
    let answered_in = |messages: &[Message]| -> BTreeSet<String> {
        messages
            .iter()
            .filter(|m| m.topic == "devices/cam2/predictions")
            .filter_map(|m| m.correlation.clone())
            .collect()
    };
    let mut second = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while answered_in(&[first.as_slice(), second.as_slice()].concat()) != expected {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match device.next(left) {
            Some(message) => second.push(message),
            None => break,
        }
    }
    let answered = answered_in(&[first.as_slice(), second.as_slice()].concat());
    assert_eq!(
        answered,
        expected,
        "bridge log:\n{}\nbroker log:\n{}",
        bridge.output(),
        broker.log()
    );
    assert!(second.iter().all(|m| top_label(m).contains("espresso")));
    assert!(
        bridge.output().contains("reconnecting"),
        "{}",
        bridge.output()
    );
}

/// A CA and a broker certificate for 127.0.0.1, made with the openssl command, readable by
/// the broker after it drops root.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian package `openssl`)");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=destino test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "broker.pem",
    ]);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in ["ca.pem", "broker.pem", "broker.key"] {
        std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

#[test]
fn tls_and_credentials() {
    let repository = repository();
    let tls_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let passwords = certs.path().join("passwords");
    let status = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["edge", "s3cret"])
        .status()
        .expect("mosquitto_passwd");
    assert!(status.success());
    std::fs::set_permissions(&passwords, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = |name: &str| certs.path().join(name).display().to_string();
    // Plain loopback listener for the test device; TLS with passwords for the bridge.
    let broker = Broker::start(&format!(
        "password_file {}\nlistener {tls_port} 127.0.0.1\n\
         cafile {}\ncertfile {}\nkeyfile {}\n",
        c("passwords"),
        c("ca.pem"),
        c("broker.pem"),
        c("broker.key")
    ));
    // A wrong password is refused and retried, not fatal.
    let tls_port = tls_port.to_string();
    let ca = c("ca.pem");
    let refused = spawn_bridge(
        repository.path(),
        &tls_port,
        &[
            "--ca-file",
            &ca,
            "--username",
            "edge",
            "--password",
            "wrong",
            "--client-id",
            "refused",
        ],
    );
    wait_for(&refused, "refused the connection");
    drop(refused);

    let _bridge = start_bridge(
        repository.path(),
        &tls_port,
        &[
            "--ca-file",
            &ca,
            "--username",
            "edge",
            "--password",
            "s3cret",
        ],
    );
    // The test device uses the plain listener, with the same password file.
    let device = Device::connect(
        broker.port,
        "camera-3",
        &["devices/cam3/predictions"],
        Some(("edge", "s3cret")),
    );
    std::thread::sleep(Duration::from_millis(300));
    device.publish("devices/cam3/frames", &coffee(), "tls-1", &[], None);
    let answer = device.next(WAIT).expect("a prediction over TLS");
    assert_eq!(answer.correlation.as_deref(), Some("tls-1"));
    assert!(top_label(&answer).contains("espresso"));
}
