#![no_main]
//! A `--codec` spec (first byte: the dims) parsed, then encoding and decoding a few rows.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vectro::fuzzing::codec_spec(data));
