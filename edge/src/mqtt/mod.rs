//! `destino-edge mqtt`: an IoT pipeline. Messages (encoded images or V2 JSON requests) arrive
//! on subscribed topics; predictions go to a topic derived from each message's topic, with
//! its MQTT 5 correlation data. The HTTP API serves beside it.

pub mod args;
pub mod bridge;
pub mod connection;
pub mod topics;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use destino_core::EngineConfig;
use destino_core::http::{AppState, serve};
use destino_core::model::loader;

pub use args::{MqttArgs, Qos};

use crate::TractEngine;
use crate::config::EDGE_DEFAULTS;

pub fn run(args: &MqttArgs, engine: EngineConfig) -> ExitCode {
    args.serve.init_logging();
    let fail = |message: String| {
        eprintln!("destino-edge: {message}");
        ExitCode::FAILURE
    };
    let options = match connection::options(args) {
        Ok(options) => options,
        Err(e) => return fail(e),
    };
    let registry = match args
        .serve
        .registry(loader::<TractEngine>(), engine, &EDGE_DEFAULTS)
    {
        Ok(registry) => registry,
        Err(e) => return fail(e.to_string()),
    };
    let state = AppState::new(Arc::new(registry), args.serve.http_options());
    let runtime = match args.serve.runtime(&EDGE_DEFAULTS) {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let serve_options = args.serve.serve_options();
    let address = serve_options.address;
    let served = runtime.block_on(async {
        let bridge = async {
            // Messages wait at the broker until the models are warm.
            while !state.registry.is_ready() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            bridge::run(state.clone(), args.clone(), options).await;
        };
        tokio::select! {
            served = serve(state.clone(), serve_options) => served,
            () = bridge => Ok(()),
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("cannot serve on {address}: {e}")),
    }
}
