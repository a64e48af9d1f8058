//! destino on devices: the pure-Rust tract engine, shared by the edge binary and (as
//! `--engine tract`) the server.

pub mod tract_engine;

pub use tract_engine::TractEngine;
