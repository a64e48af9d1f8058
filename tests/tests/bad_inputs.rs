//! The bad-input matrix: every class of malformed request gets a 4xx with a JSON `error` —
//! never a 5xx, a panic or a hang — and the server keeps answering good requests meanwhile.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use destino_tests::server::{Client, Reply, TestServer, read_raw_reply, test_repository};
use destino_tests::{reference_case, shared_models, v2::json_request};
use serde_json::{Value, json};

/// One malformed request.
struct Case {
    what: String,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn post(what: &str, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        what: what.to_string(),
        method: "POST",
        path: path.to_string(),
        headers: vec![("content-type", content_type.to_string())],
        body: body.into(),
    }
}

fn json_case(what: &str, path: &str, body: Value) -> Case {
    post(what, path, "application/json", body.to_string())
}

fn get(what: &str, path: &str) -> Case {
    Case {
        what: what.to_string(),
        method: "GET",
        path: path.to_string(),
        headers: vec![],
        body: vec![],
    }
}

fn with_header(mut case: Case, name: &'static str, value: &str) -> Case {
    case.headers.push((name, value.to_string()));
    case
}

const INFER: &str = "/v2/models/sklearn_digits_rf/infer";

fn x(shape: Value, datatype: &str, data: Value) -> Value {
    json!({"inputs": [{"name": "X", "shape": shape, "datatype": datatype, "data": data}]})
}

fn v2_json_cases() -> Vec<Case> {
    let ok_data = json!(vec![0.0; 64]);
    let mut cases = vec![
        post("not JSON", INFER, "application/json", "hello"),
        post("empty body", INFER, "application/json", ""),
        post(
            "truncated JSON",
            INFER,
            "application/json",
            "{\"inputs\": [{\"name\"",
        ),
        post(
            "invalid UTF-8",
            INFER,
            "application/json",
            b"{\"inputs\": \"\xff\xfe\"}".to_vec(),
        ),
        json_case("top-level array", INFER, json!([1, 2])),
        json_case("inputs not a list", INFER, json!({"inputs": {"X": 1}})),
        json_case(
            "input without a name",
            INFER,
            json!({"inputs": [{"shape": [1, 64], "datatype": "FP32", "data": ok_data}]}),
        ),
        json_case(
            "name is a number",
            INFER,
            json!({"inputs": [{"name": 7, "shape": [1, 64], "datatype": "FP32", "data": ok_data}]}),
        ),
        json_case(
            "shape is a string",
            INFER,
            x(json!("1,64"), "FP32", ok_data.clone()),
        ),
        json_case(
            "fractional dim",
            INFER,
            x(json!([1.5, 64]), "FP32", ok_data.clone()),
        ),
        json_case(
            "negative dim",
            INFER,
            x(json!([-1, 64]), "FP32", ok_data.clone()),
        ),
        json_case(
            "dim beyond i64",
            INFER,
            x(json!([1e30, 64]), "FP32", ok_data.clone()),
        ),
        json_case(
            "shape product overflows u64",
            INFER,
            x(json!([4294967296u64, 4294967296u64, 64]), "FP32", json!([])),
        ),
        json_case(
            "huge shape, small data",
            INFER,
            x(json!([1_000_000_000u64, 64]), "FP32", ok_data.clone()),
        ),
        json_case(
            "fewer elements than the shape",
            INFER,
            x(json!([1, 64]), "FP32", json!(vec![0.0; 10])),
        ),
        json_case(
            "more elements than the shape",
            INFER,
            x(json!([1, 64]), "FP32", json!(vec![0.0; 65])),
        ),
        json_case(
            "ragged nested data",
            INFER,
            x(
                json!([2, 64]),
                "FP32",
                json!([vec![0.0; 64], vec![0.0; 63]]),
            ),
        ),
        json_case(
            "null elements",
            INFER,
            x(json!([1, 64]), "FP32", json!(vec![Value::Null; 64])),
        ),
        json_case(
            "strings for FP32",
            INFER,
            x(json!([1, 64]), "FP32", json!(vec!["NaN"; 64])),
        ),
        json_case(
            "unknown datatype",
            INFER,
            x(json!([1, 64]), "FP128", ok_data.clone()),
        ),
        json_case(
            "datatype of another dtype",
            INFER,
            x(json!([1, 64]), "INT64", json!(vec![0; 64])),
        ),
        json_case(
            "BYTES for a numeric input",
            INFER,
            x(json!([1, 64]), "BYTES", json!(vec!["a"; 64])),
        ),
        json_case(
            "datatype not a string",
            INFER,
            x(json!([1, 64]), "7", ok_data.clone()),
        ),
        json_case(
            "no data, no binary size",
            INFER,
            json!({"inputs": [{"name": "X", "shape": [1, 64], "datatype": "FP32"}]}),
        ),
        json_case(
            "unknown input",
            INFER,
            json!({"inputs": [{"name": "Y", "shape": [1, 64], "datatype": "FP32", "data": ok_data}]}),
        ),
        json_case(
            "unicode input name",
            INFER,
            json!({"inputs": [{"name": "𝕏\u{202e}\u{0000}", "shape": [1, 64], "datatype": "FP32", "data": ok_data}]}),
        ),
        json_case(
            "100 KB input name",
            INFER,
            json!({"inputs": [{"name": "X".repeat(100_000), "shape": [1, 64], "datatype": "FP32", "data": ok_data}]}),
        ),
        json_case(
            "duplicate input names",
            INFER,
            json!({"inputs": [
            {"name": "X", "shape": [1, 64], "datatype": "FP32", "data": ok_data},
            {"name": "X", "shape": [1, 64], "datatype": "FP32", "data": ok_data}]}),
        ),
        json_case("missing input", INFER, json!({"inputs": []})),
        json_case("unknown output", INFER, {
            let mut r = x(json!([1, 64]), "FP32", ok_data.clone());
            r["outputs"] = json!([{"name": "nope"}]);
            r
        }),
        json_case("id not a string", INFER, {
            let mut r = x(json!([1, 64]), "FP32", ok_data.clone());
            r["id"] = json!({"a": 1});
            r
        }),
        post(
            "arrays nested 100000 deep",
            INFER,
            "application/json",
            "[".repeat(100_000),
        ),
        post(
            "objects nested 100000 deep",
            INFER,
            "application/json",
            "{\"a\":".repeat(100_000),
        ),
        post(
            "a number beyond f64",
            INFER,
            "application/json",
            format!(
                "{{\"inputs\": [{{\"name\": \"X\", \"shape\": [1, 64], \"datatype\": \"FP32\", \"data\": [1e400{}]}}]}}",
                ", 0".repeat(63)
            ),
        ),
    ];
    // Integers out of their dtype's range, and NaN/Inf spellings where integers are expected.
    let int_model = "/v2/models/silero_vad/infer";
    for (what, value) in [
        ("int64 beyond range", json!(9.3e18)),
        ("int64 as 1.5", json!(1.5)),
        ("int64 as \"NaN\"", json!("NaN")),
        ("int64 as \"inf\"", json!("inf")),
        ("int64 as true", json!(true)),
    ] {
        cases.push(json_case(
            what,
            int_model,
            json!({"inputs": [{"name": "sr", "shape": [], "datatype": "INT64", "data": [value]}]}),
        ));
    }
    cases
}

fn binary_cases() -> Vec<Case> {
    let header = |json: Value| json.to_string().into_bytes();
    let x_binary = header(
        json!({"inputs": [{"name": "X", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": 256}}]}),
    );
    let mut short = x_binary.clone();
    short.extend(vec![0u8; 100]);
    let mut long = x_binary.clone();
    long.extend(vec![0u8; 300]);
    let length = |body: &[u8]| body.len().to_string();
    let bad_length = header(
        json!({"inputs": [{"name": "X", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": -5}}]}),
    );
    let bytes_header = header(
        json!({"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}]}),
    );
    let mut bytes_body = bytes_header.clone();
    bytes_body.extend([0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4]); // element length 2^31 in 4 bytes of data
    let octet = "application/octet-stream";
    let with_length = |what: &str, body: Vec<u8>, value: String| {
        with_header(
            post(what, INFER, octet, body),
            "inference-header-content-length",
            &value,
        )
    };
    vec![
        with_length(
            "binary data shorter than declared",
            short,
            length(&x_binary),
        ),
        with_length("binary data longer than declared", long, length(&x_binary)),
        with_length(
            "header length beyond the body",
            x_binary.clone(),
            "99999".into(),
        ),
        with_length(
            "header length u64::MAX",
            x_binary.clone(),
            u64::MAX.to_string(),
        ),
        with_length(
            "header length 2^64",
            x_binary.clone(),
            "18446744073709551616".into(),
        ),
        with_length("header length negative", x_binary.clone(), "-1".into()),
        with_length(
            "header length not a number",
            x_binary.clone(),
            "12abc".into(),
        ),
        with_length("header length zero", x_binary.clone(), "0".into()),
        with_length(
            "negative binary_data_size",
            bad_length.clone(),
            length(&bad_length),
        ),
        with_header(
            post(
                "BYTES element longer than the data",
                "/v2/models/efficientnet_lite0/infer",
                octet,
                bytes_body,
            ),
            "inference-header-content-length",
            &length(&bytes_header),
        ),
    ]
}

fn route_cases() -> Vec<Case> {
    let body = x(json!([1, 64]), "FP32", json!(vec![0.0; 64]));
    let mut cases = vec![];
    for model in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "..",
        "sklearn_digits_rf%00",
        "%F0%9F%92%A5",
        "%ff%fe",
        &"a".repeat(10_000),
    ] {
        cases.push(json_case(
            &format!("model name {model:.40}"),
            &format!("/v2/models/{model}/infer"),
            body.clone(),
        ));
        cases.push(get(
            &format!("model metadata {model:.40}"),
            &format!("/v2/models/{model}"),
        ));
        cases.push(post(
            &format!("load {model:.40}"),
            &format!("/v2/repository/models/{model}/load"),
            "application/json",
            "",
        ));
    }
    for version in ["..%2F1", "-1", "99999999999999999999999", "1.0", "%00", "0"] {
        cases.push(json_case(
            &format!("version {version}"),
            &format!("/v2/models/sklearn_digits_rf/versions/{version}/infer"),
            body.clone(),
        ));
    }
    cases.push(get("GET on an infer route", INFER));
    cases.push(post("unknown route", "/v2/nope", "application/json", "{}"));
    cases
}

fn azure_and_image_cases() -> Vec<Case> {
    let png = std::fs::read(shared_models().join("images/coffee.png")).unwrap();
    let score = "/score?model=sklearn_digits_rf";
    let predict = "/models/efficientnet_lite0/predict";
    let mut header_only = png[..64].to_vec();
    header_only.extend(vec![0u8; 64]);
    vec![
        post("score: not JSON", score, "application/json", "data=1"),
        json_case("score: data is a string", score, json!({"data": "zero"})),
        json_case("score: data is null", score, json!({"data": null})),
        json_case("score: data is empty", score, json!({"data": []})),
        json_case(
            "score: ragged data",
            score,
            json!({"data": [vec![0.0; 64], vec![0.0; 3]]}),
        ),
        json_case(
            "score: wrong width",
            score,
            json!({"data": [vec![0.0; 63]]}),
        ),
        json_case("score: unknown input", score, json!({"Y": [vec![0.0; 64]]})),
        json_case(
            "score: strings for floats",
            score,
            json!({"data": [vec!["a"; 64]]}),
        ),
        post(
            "score: nested 100000 deep",
            score,
            "application/json",
            format!("{{\"data\": {}", "[".repeat(100_000)),
        ),
        json_case(
            "score: unknown model",
            "/score?model=..%2Fsecret",
            json!({"data": [vec![0.0; 64]]}),
        ),
        post("predict: empty body", predict, "image/png", Vec::new()),
        post("predict: text", predict, "image/png", "not an image"),
        post(
            "predict: truncated PNG",
            predict,
            "image/png",
            png[..png.len() / 2].to_vec(),
        ),
        post(
            "predict: PNG header, zero pixels",
            predict,
            "image/png",
            header_only,
        ),
        post(
            "predict: multipart without a file",
            predict,
            "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--XyZ--\r\n",
        ),
        post(
            "predict: broken multipart",
            predict,
            "multipart/form-data; boundary=XyZ",
            "--XyZ\r\nContent-Dispo",
        ),
        with_header(
            post("gzip that is not gzip", INFER, "application/json", "{}"),
            "content-encoding",
            "gzip",
        ),
        with_header(
            post("unknown content encoding", INFER, "application/json", "{}"),
            "content-encoding",
            "zstd",
        ),
        post(
            "predict on a model without preprocessing",
            "/models/sklearn_digits_rf/predict",
            "image/png",
            png,
        ),
    ]
}

/// Sends a request over a raw socket (no client-side path normalisation) and reads it whole.
fn send(base: &str, case: &Case) -> Reply {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        case.method,
        case.path,
        case.body.len()
    );
    for (name, value) in &case.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&case.body);
    read_raw_reply(&mut stream, &case.what)
}

/// A 4xx with a JSON `error` string, or a panic naming the case.
fn assert_refused(case: &Case, reply: &Reply) {
    assert!(
        (400..500).contains(&reply.status),
        "{}: expected a 4xx, got {}: {}",
        case.what,
        reply.status,
        reply.text()
    );
    let json: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
        panic!(
            "{}: {} body is not JSON ({e}): {}",
            case.what,
            reply.status,
            reply.text()
        )
    });
    assert!(
        json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}: no `error` in {json}",
        case.what
    );
}

fn good_request_succeeds(client: &Client) {
    let case = reference_case("sklearn_digits_rf", None);
    let reply = client.post_json(INFER, &json_request(&case.inputs));
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn every_malformed_request_class_gets_a_4xx_json_error_and_others_keep_being_served() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &["--max-body-bytes", "4000000"]);
    let base = server.client.base.clone();
    let mut cases = v2_json_cases();
    cases.extend(binary_cases());
    cases.extend(route_cases());
    cases.extend(azure_and_image_cases());
    let count = cases.len();

    // Good requests go on, from another thread, the whole time the bad ones arrive.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let good = {
        let client = server.client.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut served = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                good_request_succeeds(&client);
                served += 1;
            }
            served
        })
    };
    for case in &cases {
        let started = Instant::now();
        let reply = send(&base, case);
        assert_refused(case, &reply);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}: took {:?}",
            case.what,
            started.elapsed()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served = good.join().unwrap();
    assert!(
        served > 0,
        "no good request was served during {count} bad ones"
    );
    good_request_succeeds(&server.client);
    assert_eq!(
        server.metric("destino_http_responses_total", "status=\"500\""),
        0.0,
        "{}",
        server.output()
    );
    assert!(!server.output().contains("panicked"), "{}", server.output());
}

#[test]
fn a_gzip_bomb_is_refused_by_the_body_limit() {
    use std::io::Write as _;
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &["--max-body-bytes", "1000000"]);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![b' '; 50_000_000]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 100_000);
    let case = with_header(
        post("gzip bomb", INFER, "application/json", bomb),
        "content-encoding",
        "gzip",
    );
    let reply = send(&server.client.base, &case);
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_refused(&case, &reply);
    good_request_succeeds(&server.client);
}

#[test]
fn slow_loris_bodies_time_out_with_408_and_do_not_block_others() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &["--body-read-timeout-ms", "3000"]);
    let address = server.client.base.trim_start_matches("http://").to_string();
    // Clients that announce a body and then trickle it, a byte every 200 ms.
    let trickles: Vec<_> = (0..8)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&address).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let head = format!(
                    "POST {INFER} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
                );
                stream.write_all(head.as_bytes()).unwrap();
                for _ in 0..40 {
                    std::thread::sleep(Duration::from_millis(200));
                    if stream.write_all(b" ").is_err() {
                        break;
                    }
                }
                read_raw_reply(&mut stream, "slow body")
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Served while every slow client is still connected and unanswered.
    good_request_succeeds(&server.client);
    assert!(
        trickles.iter().all(|t| !t.is_finished()),
        "a slow client was answered before the good request"
    );
    for trickle in trickles {
        let reply = trickle.join().unwrap();
        assert_eq!(reply.status, 408, "{}", reply.text());
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("--body-read-timeout-ms")
        );
    }
    good_request_succeeds(&server.client);
}
