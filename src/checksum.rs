//! CRC-32C, the checksum of every part of a container and of a codebook file.

/// CRC-32C (Castagnoli) of `bytes`, the checksum of every part of a container.
///
/// `crc-fast` folds with carry-less multiplies (VPCLMULQDQ on AVX-512): 64 GB/s a core here
/// against 32 for the `crc32c` crate's three-way `crc32` instruction loop, which the tests
/// keep as an independent check.
pub fn crc(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// CRC-32C of the concatenation of the bytes `prefix` summed to `prefix_crc` and `bytes`.
pub fn crc_append(prefix_crc: u32, bytes: &[u8]) -> u32 {
    // The running state is the finished CRC with its final inversion undone.
    let mut d = crc_fast::Digest::new_with_init_state(
        crc_fast::CrcAlgorithm::Crc32Iscsi,
        u64::from(!prefix_crc),
    );
    d.update(bytes);
    d.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_crc32c_and_appends() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 + 7) as u8).collect();
        assert_eq!(crc(b"123456789"), 0xe306_9283);
        assert_eq!(crc(&data), crc32c::crc32c(&data));
        for cut in [0, 1, 17, 500, 1000] {
            assert_eq!(crc_append(crc(&data[..cut]), &data[cut..]), crc(&data));
        }
    }
}
