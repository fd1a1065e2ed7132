//! The row lists of `get --rows` and `search --rows`: `5,17,100..110,7..=9`.
//!
//! One parser, in the library so that a fuzz target drives it (`fuzzing::rows`).

use std::ops::Range;

use crate::error::{Error, Result};

/// Parses `5,17,100..110,7..=9` into ranges, in the order given: each `A..B` has
/// `A ≤ B`, and at least one is not empty.
///
/// # Errors
/// [`Error::Config`] naming the first bad item: not a number or range, reversed, past
/// `u64`, or a list that selects no rows.
pub fn parse(spec: &str) -> Result<Vec<Range<u64>>> {
    let bad = |item: &str, why: &str| {
        Error::Config(format!(
            "--rows: '{item}' {why}; expected a comma-separated list of N, A..B (B excluded) or A..=B"
        ))
    };
    let num = |item: &str, s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| bad(item, "is not a row number or range"))
    };
    let mut out = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        let r = if let Some((a, b)) = item.split_once("..=") {
            let (a, b) = (num(item, a)?, num(item, b)?);
            a..b.checked_add(1).ok_or_else(|| bad(item, "is too large"))?
        } else if let Some((a, b)) = item.split_once("..") {
            num(item, a)?..num(item, b)?
        } else {
            let n = num(item, item)?;
            n..n.checked_add(1).ok_or_else(|| bad(item, "is too large"))?
        };
        if r.start > r.end {
            return Err(bad(item, "is reversed"));
        }
        out.push(r);
    }
    if out.iter().all(|r| r.is_empty()) {
        return Err(bad(spec, "selects no rows"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_lists_and_ranges_in_order() {
        let r = parse("5, 17,100..103,7..=8,5").unwrap();
        assert_eq!(r, vec![5..6, 17..18, 100..103, 7..9, 5..6]);
    }

    #[test]
    fn rejects_bad_items_with_the_item_named() {
        for (spec, want) in [
            ("5,x", "'x'"),
            ("10..5", "reversed"),
            ("1..", "'1..'"),
            ("3..3", "selects no rows"),
            ("", "''"),
            ("18446744073709551615", "too large"),
            ("18446744073709551615..=18446744073709551615", "too large"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
