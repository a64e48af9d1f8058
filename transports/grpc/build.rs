//! Compiles the vendored protocol (proto/, from scripts/vendor-protos) with protox, a
//! protobuf compiler in Rust: no protoc, nothing downloaded.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/grpc_service.proto", "proto/model_config.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_transport(false)
        // Tensor bytes stay `Bytes`: slices of the received frame, not copies.
        .bytes(".")
        .compile_fds(descriptors)?;
    Ok(())
}
