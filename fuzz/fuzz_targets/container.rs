#![no_main]
//! The container reader and verifier on arbitrary bytes (first byte odd: checksums fixed up).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vectro::fuzzing::container(data));
