#![no_main]
//! The `.npy` header parser on arbitrary bytes.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vectro::fuzzing::npy_header(data));
