//! Replays the fuzz seed corpus and every input the fuzzers ever found a bug with, on
//! stable Rust, through the same harness the `cargo fuzz` targets run.

use std::path::Path;

fn replay(dirs: &[&str], target: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                continue;
            }
            target(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    n
}

#[test]
fn npy_header_inputs_replay() {
    let n = replay(
        &["fuzz/seeds/npy_header", "tests/fixtures/fuzz/npy_header"],
        vectro::fuzzing::npy_header,
    );
    assert!(n >= 9, "only {n} inputs found");
}

#[test]
fn container_inputs_replay() {
    let n = replay(
        &["fuzz/seeds/container", "tests/fixtures/fuzz/container"],
        vectro::fuzzing::container,
    );
    assert!(n >= 5, "only {n} inputs found");
}

#[test]
fn every_single_byte_flip_of_the_seeds_is_harmless() {
    // A cheap, deterministic stand-in for fuzzing on stable: mutate every byte of each
    // container seed (plain and with checksums fixed up) through the harness.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/container");
    for e in std::fs::read_dir(root).unwrap() {
        let seed = std::fs::read(e.unwrap().path()).unwrap();
        for i in 1..seed.len() {
            for mode in [0u8, 1] {
                let mut b = seed.clone();
                b[0] = mode;
                b[i] = b[i].wrapping_add(0x55);
                vectro::fuzzing::container(&b);
            }
        }
    }
}
