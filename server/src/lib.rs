//! destino on hosts: the server binary's configuration and commands. Engines, transports
//! and the launch sequence come from their crates; this one picks them.

pub mod commands;
pub mod config;
pub mod serve;
