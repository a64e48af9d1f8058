//! `.npz` archives and bare `.npy` arrays (the offline CLI's inputs and expected outputs).
#![no_main]

use std::io::Cursor;

use destino_core::npz::{read_npy, read_npz_from};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_npz_from(Cursor::new(data));
    let _ = read_npy(data);
});
