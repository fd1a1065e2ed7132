//! The last check on a chunk: its decoded rows are finite.
//!
//! A chunk's crc32c proves that its bytes are the ones its writer wrote, not that the writer
//! wrote sensible ones: a faulty tool can store a NaN scale or an f16 infinity with a
//! matching checksum. Compress refuses non-finite input, so a decoded value that is not
//! finite means such a file; every reader checks the rows it decodes, and `verify` decodes
//! every chunk to do the same.

use std::path::Path;

use crate::error::{Error, Result};

/// Values scanned at a time before looking for the culprit.
const BLOCK: usize = 256;

/// The index of the first value of `v` that is NaN or infinite.
pub fn first_non_finite(v: &[f32]) -> Option<usize> {
    // The SIMD scan per block; only a failing block is searched.
    for (b, block) in v.chunks(BLOCK).enumerate() {
        if crate::simd::any_non_finite(block) {
            let at = block.iter().position(|x| !x.is_finite())?;
            return Some(b * BLOCK + at);
        }
    }
    None
}

/// What is wrong when `rows` (`dims` floats each, the first being row `first_row` of the
/// container) hold a non-finite value: `None` when all are finite.
pub fn describe(rows: &[f32], dims: usize, first_row: u64) -> Option<String> {
    let at = first_non_finite(rows)?;
    Some(format!(
        "row {} decodes to {} in column {}, though its checksum matches: the file was \
         written wrongly (by a faulty tool, or edited with its checksums recomputed); its \
         rows cannot be trusted, compress again from the source",
        first_row + (at / dims.max(1)) as u64,
        rows[at],
        at % dims.max(1)
    ))
}

/// [`describe`] as an error naming `path`.
///
/// # Errors
/// [`Error::Corrupt`] for the first non-finite value.
pub fn check(path: &Path, rows: &[f32], dims: usize, first_row: u64) -> Result<()> {
    match describe(rows, dims, first_row) {
        None => Ok(()),
        Some(msg) => Err(Error::corrupt(path, msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_non_finite_value_in_any_block() {
        for n in [0usize, 1, 255, 256, 257, 1000] {
            let v = vec![0.5f32; n];
            assert_eq!(first_non_finite(&v), None, "{n}");
            for at in [0, n / 2, n.saturating_sub(1)] {
                if at >= n {
                    continue;
                }
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut w = v.clone();
                    w[at] = bad;
                    if at + 1 < n {
                        w[n - 1] = f32::NAN;
                    }
                    assert_eq!(first_non_finite(&w), Some(at), "{n} {at} {bad}");
                }
            }
        }
    }

    #[test]
    fn names_row_and_column_from_the_first_row() {
        let mut v = vec![1.0f32; 12];
        v[7] = f32::NAN;
        let msg = describe(&v, 4, 100).unwrap();
        assert!(
            msg.starts_with("row 101 decodes to NaN in column 3"),
            "{msg}"
        );
        assert!(describe(&v[..4], 4, 0).is_none());
    }
}
