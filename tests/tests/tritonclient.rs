//! The client people already use: the real `tritonclient[http]` Python package, JSON and
//! binary tensors, against a running server (`tests/python/test_tritonclient.py`).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use destino_tests::run_client_suite;
use destino_tests::server::{TestServer, test_repository};

#[test]
fn tritonclient_http_json_and_binary() {
    let repository = test_repository();
    let server = TestServer::start(repository.path(), &[]);
    let url = server.client.base.trim_start_matches("http://").to_string();
    let report = run_client_suite("test_tritonclient.py", &["--url", &url], || server.output());
    assert!(report.contains("OK"), "{report}");
}
