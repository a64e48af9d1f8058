//! A Triton binary-tensor body: a JSON header of `Inference-Header-Content-Length` bytes,
//! then raw tensor data. The header length comes from the input's first 2 bytes (u16 LE);
//! 0xFFFF escapes to a u32 LE in the next 4 bytes, so huge lengths are tried too.
#![no_main]

use bytes::Bytes;
use destino_serving::v2::{decode::to_tensor, request::parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (header_length, body) = match u16::from_le_bytes([a, b]) {
        u16::MAX => match rest.split_first_chunk::<4>() {
            Some((long, body)) => (u32::from_le_bytes(*long) as usize, body),
            None => return,
        },
        short => (usize::from(short), rest),
    };
    if let Ok(request) = parse(Bytes::copy_from_slice(body), Some(header_length)) {
        for input in request.inputs {
            let _ = to_tensor(input);
        }
    }
});
