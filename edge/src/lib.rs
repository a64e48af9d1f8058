//! destino on devices: the pure-Rust tract engine (shared with the server as `--engine
//! tract`), the edge binary's configuration and its MQTT bridge.

pub mod config;
pub mod folder;
pub mod mqtt;
pub mod tract_engine;

pub use tract_engine::TractEngine;
