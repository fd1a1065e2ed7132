//! Bit-exact parity with `shared/reference/int8_reference.py`, through committed fixtures
//! that script produced (`scripts/make_int8_fixtures.py`), ties and zero rows included.

use crate::helpers::{bits, fixture, read_npy, vectro};
use vectro::Codec;
use vectro::codec::Int8;

#[test]
fn codes_and_scales_match_the_reference() {
    let (shape, input) = read_npy::<f32>(&fixture("int8_input.npy"));
    let (_, codes) = read_npy::<i8>(&fixture("int8_codes.npy"));
    let (_, scales) = read_npy::<f32>(&fixture("int8_scales.npy"));
    let (rows, dims) = (shape[0] as usize, shape[1] as usize);
    let codec = Int8::new(dims);
    let mut payload = vec![0u8; codec.encoded_len(rows)];
    codec.encode(&input, &mut payload).unwrap();
    let got_codes: Vec<i8> = payload[..rows * dims].iter().map(|&b| b as i8).collect();
    assert_eq!(got_codes, codes);
    let got_scales: Vec<u32> = payload[rows * dims..]
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got_scales, bits(&scales));
}

#[test]
fn cli_reconstruction_is_bit_identical_for_every_source_dtype() {
    let (_, want) = read_npy::<f32>(&fixture("int8_recon.npy"));
    for input in ["int8_input.npy", "int8_input_f64.npy", "int8_input_be.npy"] {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("x.vectro");
        let back = dir.path().join("back.npy");
        vectro()
            .args(["compress", "--quiet", "--chunk-rows", "5", "--in"])
            .arg(fixture(input))
            .arg("--out")
            .arg(&c)
            .assert()
            .success();
        vectro()
            .args(["decompress", "--quiet", "--in"])
            .arg(&c)
            .arg("--out")
            .arg(&back)
            .assert()
            .success();
        let (_, got) = read_npy::<f32>(&back);
        assert_eq!(bits(&got), bits(&want), "{input}");
    }
}
