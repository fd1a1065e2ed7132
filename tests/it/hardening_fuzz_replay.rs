//! The fuzz targets of every parser that takes user input (`--codec` specs, `--rows`
//! lists, `.vcb` codebooks, the prototype's `.npz`), replayed on stable Rust: each seed in
//! `fuzz/seeds/<target>/`, then deterministic mutations of them (bytes flipped, set to
//! values parsers trip on, cut, repeated, inserted). A panic in the harness is a bug; the
//! harness itself asserts what a parsed input must then do.

use std::path::Path;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// `n` mutations of the seeds, the same on every run.
fn mutations(seeds: &[Vec<u8>], n: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    const INTERESTING: &[u8] = b"\x00\xff\x7f\x80=,:.-9 \n";
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n).map(move |i| {
        let mut b = seeds[i % seeds.len()].clone();
        for _ in 0..1 + next() % 3 {
            let at = if b.is_empty() {
                0
            } else {
                (next() % b.len() as u64) as usize
            };
            match next() % 6 {
                0 if !b.is_empty() => b[at] ^= 1 << (next() % 8),
                1 if !b.is_empty() => b[at] = INTERESTING[(next() % 12) as usize],
                2 => b.truncate(at),
                3 if !b.is_empty() => {
                    let end = (at + 1 + (next() % 8) as usize).min(b.len());
                    let piece = b[at..end].to_vec();
                    b.splice(at..at, piece);
                }
                4 => b.insert(at, next() as u8),
                _ if b.len() >= 4 => {
                    // A little-endian u32 set to an extreme, as a length or count.
                    let at = at.min(b.len() - 4);
                    let v = [0u32, 1, u32::MAX, 1 << 31][(next() % 4) as usize];
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                _ => {}
            }
        }
        b
    })
}

fn replay(target: &str, f: fn(&[u8]), n: usize, min_seeds: usize) {
    let seeds = seeds(target);
    assert!(
        seeds.len() >= min_seeds,
        "{target}: only {} seeds",
        seeds.len()
    );
    for s in &seeds {
        f(s);
    }
    for m in mutations(&seeds, n) {
        f(&m);
    }
}

#[test]
fn codec_spec_corpus_and_mutations() {
    replay("codec_spec", vectro::fuzzing::codec_spec, 10_000, 10);
}

#[test]
fn vcb_corpus_and_mutations() {
    replay("vcb", vectro::fuzzing::vcb, 10_000, 2);
}

#[test]
fn npz_corpus_and_mutations() {
    // Each run writes and imports a file: fewer.
    replay("npz", vectro::fuzzing::npz, 1500, 2);
}

#[test]
fn rows_corpus_and_mutations() {
    replay("rows", vectro::fuzzing::rows, 20_000, 10);
}
