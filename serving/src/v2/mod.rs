//! KServe V2 (Open Inference Protocol) with Triton's binary tensor and classification
//! extensions: parsing requests, typed JSON elements, tensors from inputs, encoding
//! responses and metadata.

pub mod datatype;
pub mod decode;
pub mod depth;
mod infer;
mod json_cursor;
pub mod json_elements;
mod json_numbers;
pub mod metadata;
pub mod request;
mod request_json;
pub mod response;

pub use infer::{encode_outputs, infer_encoded, infer_request};

/// The header that gives the JSON part's length in Triton's binary form.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The tests' pseudo-random numbers (xorshift64, from `seed`): reproducible cases.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
