//! The rows a filtered search may return: a bitset over the container's rows.

use std::ops::Range;

/// An allow-list of rows, one bit per row of the container (`rows / 8` bytes: 125 MB for
/// a billion rows).
#[derive(Debug, Clone)]
pub struct RowFilter {
    bits: Vec<u64>,
    /// Allowed rows, sorted, for [`RowFilter::any_in`].
    sorted: Vec<u64>,
}

impl RowFilter {
    /// The filter allowing exactly `rows_allowed` (each below `rows`; duplicates are fine).
    ///
    /// # Panics
    /// If a row is not below `rows`.
    pub fn new(rows_allowed: &[u64], rows: u64) -> RowFilter {
        let mut bits = vec![0u64; rows.div_ceil(64) as usize];
        for &r in rows_allowed {
            assert!(r < rows, "RowFilter: row {r} of {rows}");
            bits[(r / 64) as usize] |= 1 << (r % 64);
        }
        let mut sorted = rows_allowed.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        RowFilter { bits, sorted }
    }

    /// Whether `row` may be returned.
    #[inline]
    pub fn allows(&self, row: u64) -> bool {
        self.bits
            .get((row / 64) as usize)
            .is_some_and(|w| (w >> (row % 64)) & 1 == 1)
    }

    /// Whether any row of `range` may be returned (a chunk without one is not read).
    pub fn any_in(&self, range: Range<u64>) -> bool {
        let i = self.sorted.partition_point(|&r| r < range.start);
        self.sorted.get(i).is_some_and(|&r| r < range.end)
    }

    /// Number of rows allowed.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether no row is allowed.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_exactly_the_listed_rows() {
        let f = RowFilter::new(&[3, 64, 3, 130], 200);
        let allowed: Vec<u64> = (0..200).filter(|&r| f.allows(r)).collect();
        assert_eq!(allowed, [3, 64, 130]);
        assert!(!f.allows(5000));
        assert!(f.any_in(0..4) && !f.any_in(4..64) && f.any_in(64..65) && !f.any_in(131..200));
        assert_eq!(f.len(), 3);
    }
}
