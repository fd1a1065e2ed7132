#![no_main]
//! A `--rows` list of `get` and `search` (`5,17,100..110,7..=9`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vectro::fuzzing::rows(data));
