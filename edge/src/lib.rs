//! destino on devices: the edge binary's configuration. The tract engine, the transports
//! (HTTP, MQTT, folders) and the launch sequence come from their crates; this one picks them.

pub mod config;
