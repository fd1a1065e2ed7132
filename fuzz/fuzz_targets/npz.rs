#![no_main]
//! A prototype `.npz` imported into a container, which must then read back.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vectro::fuzzing::npz(data));
