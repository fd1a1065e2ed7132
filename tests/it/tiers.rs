//! Tiers (format 1.6): a search tier and a rescoring tier of the same rows in one file.
//! Each tier decodes to exactly what an untiered file of its codec decodes to; the file
//! is the same for any thread count, and its rows the same for any chunk size; a corrupt
//! tier is named; shards, merge and resume give the single run's bytes; a search of a
//! tiered file is the search of the two separate containers with `--rescore-with`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use vectro::output::Durability;
use vectro::search::{SearchOptions, search, search_rescored};
use vectro::{CompressOptions, Container, NoProgress, compress};

use crate::helpers::{assert_fails, random_rows, run, write_npy};

const DIMS: usize = 44;
const ROWS: usize = 500;

fn input(dir: &Path) -> PathBuf {
    let p = dir.join("x.npy");
    if !p.exists() {
        write_npy(&p, ROWS as u64, DIMS as u64, &random_rows(ROWS, DIMS, 7));
    }
    p
}

fn write(
    dir: &Path,
    name: &str,
    codec: &str,
    rescore: Option<&str>,
    chunk_rows: u32,
    threads: usize,
) -> PathBuf {
    let out = dir.join(name);
    let opts = CompressOptions {
        codec: Some(codec.parse().unwrap()),
        rescore: rescore.map(|r| r.parse().unwrap()),
        chunk_rows: Some(chunk_rows),
        threads,
        durability: Durability::None,
        overwrite: true,
        ..CompressOptions::default()
    };
    compress(
        &input(dir),
        &out,
        &opts,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    out
}

fn rows_of(c: &Container) -> Vec<u32> {
    let mut out = vec![0f32; c.rows() as usize * c.dims()];
    c.get_range(0..c.rows(), &mut out).unwrap();
    out.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn each_tier_decodes_as_an_untiered_file_of_its_codec() {
    let dir = tempfile::tempdir().unwrap();
    for (coarse, fine) in [
        ("binary:rotate=1", "int8"),
        ("int4:rotate=1", "f16"),
        ("pq:m=11,nbits=4", "int8"),
        ("binary-itq", "sq:bits=4"),
    ] {
        let t = Container::open(write(dir.path(), "t.vectro", coarse, Some(fine), 64, 2)).unwrap();
        let a = Container::open(write(dir.path(), "a.vectro", coarse, None, 64, 2)).unwrap();
        let b = Container::open(write(dir.path(), "b.vectro", fine, None, 64, 2)).unwrap();
        assert_eq!(t.header().tiers, vec![a.header().codec.clone()], "{coarse}");
        assert_eq!(t.tier_count(), 2);
        assert_eq!(
            u16::from_le_bytes([t.bytes()[6], t.bytes()[7]]),
            6,
            "minor 6"
        );
        assert_eq!(rows_of(&t.tier(0).unwrap()), rows_of(&a), "{coarse} tier 0");
        assert_eq!(rows_of(&t.tier(1).unwrap()), rows_of(&b), "{fine} tier 1");
        // Rows decode from the finest tier, through every reader.
        assert_eq!(rows_of(&t), rows_of(&b), "{coarse}+{fine} rows");
        let whole = crate::helpers::decompressed(t.path());
        let fine_rows: Vec<u32> = whole.iter().map(|x| x.to_bits()).collect();
        assert_eq!(fine_rows, rows_of(&b), "decompress of {coarse}+{fine}");
        // The file is exactly the two payloads, each with its crc, per chunk: beside the
        // two files it saves one chunk framing (40 bytes) a chunk less the tier crcs (8),
        // one index header (16) and one trailer (40).
        let n = t.chunks().len() as u64;
        assert_eq!(
            t.file_len() + a.header_len() as u64 + b.header_len() as u64 + 32 * n + 56 + 32 * n,
            a.file_len() + b.file_len() + t.header_len() as u64,
            "{coarse}+{fine}: file size"
        );
        let v = vectro::format::verify(t.path()).unwrap();
        assert!(v.ok, "{v:?}");
    }
}

#[test]
fn the_file_is_the_same_for_any_thread_count_and_its_rows_for_any_chunk_size() {
    let dir = tempfile::tempdir().unwrap();
    let one = std::fs::read(write(
        dir.path(),
        "1.vectro",
        "binary:rotate=1",
        Some("int8"),
        50,
        1,
    ))
    .unwrap();
    let three = std::fs::read(write(
        dir.path(),
        "3.vectro",
        "binary:rotate=1",
        Some("int8"),
        50,
        3,
    ))
    .unwrap();
    assert!(one == three, "threads change the bytes");
    let a = Container::open(dir.path().join("1.vectro")).unwrap();
    for chunk_rows in [1, 7, 128, 1000] {
        let b = Container::open(write(
            dir.path(),
            "c.vectro",
            "binary:rotate=1",
            Some("int8"),
            chunk_rows,
            2,
        ))
        .unwrap();
        for t in 0..2 {
            assert_eq!(
                rows_of(&a.tier(t).unwrap()),
                rows_of(&b.tier(t).unwrap()),
                "chunk rows {chunk_rows}, tier {t}"
            );
        }
    }
}

#[test]
fn a_corrupt_tier_is_found_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.vectro",
        "binary:rotate=1",
        Some("int8"),
        100,
        2,
    );
    let c = Container::open(&path).unwrap();
    let e = c.chunks()[2];
    let coarse = c.tier(0).unwrap().codec().encoded_len(100);
    for (tier, at, name) in [(0, 5, "binary:rotate=1"), (1, coarse + 4 + 9, "int8")] {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[e.offset as usize + 36 + at] ^= 0x10;
        let bad = dir.path().join(format!("bad{tier}.vectro"));
        std::fs::write(&bad, &bytes).unwrap();
        let o = run(&["verify", bad.to_str().unwrap()]);
        assert_fails(
            &o,
            3,
            &[&format!("tier {tier} ({name}) fails its own crc32c")],
        );
        let c = Container::open(&bad).unwrap();
        // The view of the tier names it; the other tier reads on.
        let err = rows_of_err(&c.tier(tier).unwrap());
        assert!(
            err.contains(&format!("tier {tier} ({name}) fails")),
            "{err}"
        );
        let other = c.tier(1 - tier).unwrap();
        let mut out = vec![0f32; other.rows() as usize * DIMS];
        other.get_range(0..other.rows(), &mut out).unwrap();
        // Rows (the finest tier) read through the whole chunk's crc, naming the tier.
        let err = rows_of_err(&c);
        assert!(
            err.contains(&format!("(tier {tier}, {name}, fails its own)")),
            "{err}"
        );
    }
}

fn rows_of_err(c: &Container) -> String {
    let mut out = vec![0f32; c.rows() as usize * c.dims()];
    c.get_range(0..c.rows(), &mut out).unwrap_err().to_string()
}

#[test]
fn shards_merge_and_resume_give_the_single_runs_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let x = input(dir.path());
    let single = dir.path().join("single.vectro");
    let base = [
        "compress",
        "-q",
        "--codec",
        "binary-itq",
        "--rescore",
        "int8",
        "--chunk-rows",
        "40",
        "--ids",
    ];
    let ids = dir.path().join("ids.txt");
    std::fs::write(
        &ids,
        (0..ROWS).map(|i| format!("row-{i}\n")).collect::<String>(),
    )
    .unwrap();
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        a.push(ids.display().to_string());
        a.extend([
            "--in".into(),
            x.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let go = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = run(&a);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    go(args(&single, &[]));
    let want = std::fs::read(&single).unwrap();
    let s0 = dir.path().join("s0.vectro");
    let s1 = dir.path().join("s1.vectro");
    go(args(&s0, &["--shard", "0/2"]));
    go(args(&s1, &["--shard", "1/2"]));
    let merged = dir.path().join("merged.vectro");
    let o = run(&[
        "merge",
        "-q",
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(&merged).unwrap() == want,
        "merge of tiered shards"
    );
    // A partial output of the first chunks (what a killed run leaves) is resumed.
    let c = Container::open(&single).unwrap();
    let cut = c.chunks()[4].offset as usize + 17;
    let resumed = dir.path().join("resumed.vectro");
    std::fs::write(vectro::output::partial_path(&resumed), &want[..cut]).unwrap();
    let o = {
        let a = args(&resumed, &["--resume"]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&a)
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(&resumed).unwrap() == want,
        "resumed tiered file"
    );
    // Shards of other tiers do not merge.
    let f16 = dir.path().join("s1f16.vectro");
    let mut a = args(&f16, &["--shard", "1/2"]);
    let at = a.iter().position(|s| s == "int8").unwrap();
    a[at] = "f16".into();
    go(a);
    let o = run(&[
        "merge",
        s0.to_str().unwrap(),
        f16.to_str().unwrap(),
        "--out",
        dir.path().join("m2.vectro").to_str().unwrap(),
    ]);
    assert_fails(
        &o,
        3,
        &["differ in tiers (binary-itq+int8 and binary-itq+f16"],
    );
}

#[test]
fn search_of_a_tiered_file_is_the_two_container_search_with_rescore_with() {
    let dir = tempfile::tempdir().unwrap();
    let t = Container::open(write(
        dir.path(),
        "t.vectro",
        "binary:rotate=1",
        Some("int8"),
        64,
        2,
    ))
    .unwrap();
    let a = Container::open(write(
        dir.path(),
        "a.vectro",
        "binary:rotate=1",
        None,
        64,
        2,
    ))
    .unwrap();
    let b = Container::open(write(dir.path(), "b.vectro", "int8", None, 64, 2)).unwrap();
    let q = random_rows(9, DIMS, 99);
    let never = AtomicBool::new(false);
    for (rescore, hamming) in [(0, false), (30, false), (50, true)] {
        let opts = SearchOptions {
            k: 7,
            rescore,
            hamming,
            ..Default::default()
        };
        let two = SearchOptions {
            rescore: if rescore == 0 { 100 } else { rescore },
            ..opts.clone()
        };
        let got = search(&t, &q, &opts, &never).unwrap();
        let want = search_rescored(&a, &b, &q, &two, &never).unwrap();
        assert_eq!(got, want, "rescore {rescore}, hamming {hamming}");
    }
    // The CLI: --rescore needs no --rescore-with on a tiered file.
    let qp = dir.path().join("q.npy");
    write_npy(&qp, 9, DIMS as u64, &q);
    let tier = run(&[
        "search",
        t.path().to_str().unwrap(),
        "--queries",
        qp.to_str().unwrap(),
        "--rescore",
        "40",
    ]);
    let two = run(&[
        "search",
        a.path().to_str().unwrap(),
        "--queries",
        qp.to_str().unwrap(),
        "--rescore",
        "40",
        "--rescore-with",
        b.path().to_str().unwrap(),
    ]);
    assert!(
        tier.status.success(),
        "{}",
        String::from_utf8_lossy(&tier.stderr)
    );
    assert_eq!(tier.stdout, two.stdout);
}

#[test]
fn bad_tier_settings_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let x = input(dir.path());
    let out = dir.path().join("o.vectro");
    let go = |extra: &[&str]| {
        let mut a = vec![
            "compress",
            "--in",
            x.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    assert_fails(
        &go(&["--codec", "int8", "--rescore", "binary"]),
        2,
        &["--rescore binary (10 bytes a row) is not finer than --codec int8 (48 bytes a row)"],
    );
    assert_fails(
        &go(&["--codec", "int8", "--rescore", "int8"]),
        2,
        &["--rescore int8 is the --codec itself"],
    );
    assert_fails(
        &go(&["--codec", "binary", "--rescore", "pq:m=4"]),
        2,
        &["--rescore pq", "must be a codec built without training"],
    );
    assert_fails(
        &go(&["--codec", "binary", "--rescore", "int8", "--zstd", "3"]),
        2,
        &["--zstd and --rescore together are not supported"],
    );
    assert!(!out.exists(), "nothing written");
    // A coarse codec that is trained is checked once trained.
    assert_fails(
        &go(&["--codec", "pq:m=44,nbits=8", "--rescore", "binary"]),
        2,
        &["is not finer than --codec pq"],
    );
}

#[test]
fn the_streaming_compressor_writes_the_same_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let t = Container::open(write(
        dir.path(),
        "t.vectro",
        "binary:rotate=1",
        Some("int8"),
        64,
        2,
    ))
    .unwrap();
    let mut out = Vec::new();
    vectro::stream::Compressor::new()
        .codec("binary:rotate=1")
        .rescore("int8")
        .chunk_rows(64)
        .compress_f32(&random_rows(ROWS, DIMS, 7), DIMS, &mut out)
        .unwrap();
    let s = Container::from_bytes("stream", &out).unwrap();
    assert_eq!(s.header().tiers, t.header().tiers);
    for i in 0..t.chunks().len() {
        assert_eq!(
            s.chunk_payload(i).unwrap(),
            t.chunk_payload(i).unwrap(),
            "chunk {i}"
        );
    }
}
