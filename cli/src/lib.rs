//! What both binaries' command lines share: the `serve` flags and start-up (`launch.rs`; the
//! gRPC front door, behind the default `grpc` feature, in `grpc.rs`),
//! the offline commands' flags (`offline.rs`), the container health probe (`probe.rs`), the
//! device policy at start (`device.rs`), and glibc allocator tuning at start (`memory.rs`). The binaries only pick engines,
//! transports and defaults.

pub mod device;
mod grpc;
pub mod launch;
pub mod machine;
pub mod memory;
pub mod offline;
pub mod probe;
pub mod updates;

pub use launch::{DestinationDefaults, LogFormat, ServeArgs, Transport};
