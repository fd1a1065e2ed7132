#![no_main]
//! A `.vcb` codebook file parsed, written back and used to encode and decode rows.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vectro::fuzzing::vcb(data));
