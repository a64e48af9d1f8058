//! The deployment files (`deploy/`): Kubernetes and KServe manifests and Azure ML YAML
//! validated offline against their schemas, and every route and port they name checked
//! against `destino-server` started as each container would start it
//! (`tests/python/check_deploy.py`).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::path::Path;
use std::process::{Command, Output};

use destino_tests::{binary, python_env, shared_models};

fn check_deploy(args: &[&std::ffi::OsStr]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_deploy.py");
    Command::new(python_env())
        .arg(script)
        .args(args)
        .output()
        .unwrap()
}

fn assert_ok(output: &Output, last_line: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with(last_line),
        "check_deploy.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn manifests_validate_and_name_routes_the_server_serves() {
    let server = binary("destino-server");
    let image = shared_models().join("images/coffee.png");
    let output = check_deploy(&[
        "--server".as_ref(),
        server.as_os_str(),
        "--image".as_ref(),
        image.as_os_str(),
    ]);
    assert_ok(&output, "OK");
}

#[test]
fn each_deployment_check_fails_on_a_broken_file() {
    let output = check_deploy(&["--self-test".as_ref()]);
    assert_ok(&output, "self-test: every check fails on a broken file");
}
