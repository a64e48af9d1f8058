//! A KServe V2 JSON request body: parse, then decode every input into a tensor.
#![no_main]

use bytes::Bytes;
use destino_serving::v2::{decode::to_tensor, request::parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = parse(Bytes::copy_from_slice(data), None) {
        for input in request.inputs {
            let _ = to_tensor(input);
        }
    }
});
