//! Golden files: one container per codec id (and per option that changes the layout:
//! rotation, the zstd payload stage, the pq/opq codebook flags, a frozen `.vcb` codebook),
//! written by vectro and committed under `tests/fixtures/golden/`.
//!
//! - Writing again must give the same bytes (containers and `.vcb` files): the format and
//!   every encoder are stable.
//! - Every golden file, and the older committed ones (`v1_int8.vectro`, format 1.0), must
//!   decode to the committed rows: `MANIFEST` records, per file, the codec id, the format
//!   minor version in the header and the crc32c of the decoded rows (little-endian f32).
//!
//! Regenerate, after an intended change only, with
//! `VECTRO_BLESS=1 cargo test --release --test it golden` (the inputs `d24.npy`,
//! `d64.npy` and `d64_unit.npy` are written only when missing), and say in the commit why the bytes changed.
//!
//! Format minors covered: 1.0 (`v1_int8.vectro`, written by an early build), 1.3
//! (everything this version writes without ids), 1.4 (the `*_ids_*` files, whose
//! `MANIFEST` lines add the ids' kind and the crc32c of their text, one a line), 1.5
//! (`*_payload.vectro`, from a Parquet input, whose line adds the crc32c of the payload
//! columns' values as JSON), 1.6 (`*_tiers*`, whose line adds each search tier's codec id
//! and the crc32c of its decoded rows), and 1.1
//! and 1.2 (`minor1_*`, `minor2_*`): a file of a 1.1 or 1.2 codec and options is laid out
//! as in that minor except for the minor number (FORMAT.md, version history), so those
//! golden files are this build's 1.3 files with the minor number (and the header crc) set
//! back, exactly what the older builds wrote.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use vectro::{CodecId, Container};

use crate::helpers::vectro;

/// Set to `1` to rewrite the golden files and `MANIFEST` instead of checking them.
const BLESS_VAR: &str = "VECTRO_BLESS";

/// The modification time given to the input before compressing: `compress` records it
/// (`source_mtime`), and a checkout's own mtime would change the bytes.
const INPUT_MTIME: u64 = 1_700_000_000;

/// A `vectro train` run whose `.vcb` is a golden file too.
struct Train {
    out: &'static str,
    input: &'static str,
    codec: &'static str,
}

/// A `vectro compress` run whose container is a golden file.
struct Case {
    out: &'static str,
    input: &'static str,
    args: &'static [&'static str],
    /// The smallest acceptable mean cosine between decoded and input rows.
    min_cosine: f64,
}

const TRAINS: &[Train] = &[
    Train {
        out: "pq.vcb",
        input: "d64.npy",
        codec: "pq:m=16,nbits=4",
    },
    Train {
        out: "opq.vcb",
        input: "d64.npy",
        codec: "opq:m=8,nbits=4",
    },
    // `.vcb` minor version 3: the binary-itq block.
    Train {
        out: "itq.vcb",
        input: "d64.npy",
        codec: "binary-itq",
    },
    // `.vcb` minor version 4: the rq block (300 rows: rq needs 256 to train).
    Train {
        out: "rq.vcb",
        input: "d24.npy",
        codec: "rq:m=2,iters=3,refine=1,beam=4",
    },
    // `.vcb` minor version 6: a centred, padded sq block (layout 3, with the mean). Minor
    // 5, layout 2, is the committed input `sq1_centre.vcb`.
    Train {
        out: "sq1_centre_pad.vcb",
        input: "d24.npy",
        codec: "sq:bits=1,centre=1",
    },
    // `.vcb` minor version 7: layout 3 with a padding count other than ⌊32 / B⌋ (`extra=N`).
    Train {
        out: "sq2_centre_extra.vcb",
        input: "d24.npy",
        codec: "sq:bits=2,centre=1,extra=13",
    },
    // The same with local search after the beam (byte 7 of the rq block).
    Train {
        out: "rq_icm.vcb",
        input: "d24.npy",
        codec: "rq:m=3,iters=3,refine=1,beam=2,icm=2",
    },
];

const CASES: &[Case] = &[
    Case {
        out: "int8.vectro",
        input: "d24.npy",
        args: &["--codec", "int8"],
        min_cosine: 0.999,
    },
    Case {
        out: "int8_rotate.vectro",
        input: "d24.npy",
        args: &["--codec", "int8:rotate=1"],
        min_cosine: 0.999,
    },
    Case {
        out: "int8_zstd.vectro",
        input: "d24.npy",
        args: &["--codec", "int8", "--zstd", "3"],
        min_cosine: 0.999,
    },
    Case {
        out: "int4.vectro",
        input: "d24.npy",
        args: &["--codec", "int4"],
        min_cosine: 0.95,
    },
    Case {
        out: "int4_rotate.vectro",
        input: "d24.npy",
        args: &["--codec", "int4:rotate=1"],
        min_cosine: 0.95,
    },
    Case {
        out: "binary.vectro",
        input: "d24.npy",
        args: &["--codec", "binary"],
        min_cosine: 0.6,
    },
    Case {
        out: "binary_rotate.vectro",
        input: "d24.npy",
        args: &["--codec", "binary:rotate=1"],
        min_cosine: 0.6,
    },
    Case {
        out: "sq1.vectro",
        input: "d24.npy",
        args: &["--codec", "sq:bits=1"],
        min_cosine: 0.6,
    },
    // Layout 2 (centred): from its committed `.vcb`, whose recipe is the spelling of the
    // time, and written afresh as `pad=0`.
    Case {
        out: "sq1_centre_codebook.vectro",
        input: "d24.npy",
        args: &["--codebook", "sq1_centre.vcb"],
        min_cosine: 0.6,
    },
    Case {
        out: "sq1_centre_pad0.vectro",
        input: "d24.npy",
        args: &["--codec", "sq:bits=1,centre=1,pad=0"],
        min_cosine: 0.6,
    },
    // Layout 3 (centred and padded), the default at one bit.
    Case {
        out: "sq1_centre_pad.vectro",
        input: "d24.npy",
        args: &["--codec", "sq:bits=1,centre=1"],
        min_cosine: 0.6,
    },
    Case {
        out: "sq1_centre_pad_codebook.vectro",
        input: "d24.npy",
        args: &[
            "--codebook",
            "sq1_centre_pad.vcb",
            "--codec",
            "sq:bits=1,centre=1",
        ],
        min_cosine: 0.6,
    },
    // Layout 3 with `extra=N` zero coordinates (here 13 at two bits, not the default 16).
    Case {
        out: "sq2_centre_extra.vectro",
        input: "d24.npy",
        args: &["--codec", "sq:bits=2,centre=1,extra=13"],
        min_cosine: 0.8,
    },
    Case {
        out: "sq2_centre_extra_codebook.vectro",
        input: "d24.npy",
        args: &[
            "--codebook",
            "sq2_centre_extra.vcb",
            "--codec",
            "sq:bits=2,centre=1,extra=13",
        ],
        min_cosine: 0.8,
    },
    Case {
        out: "sq3.vectro",
        input: "d24.npy",
        args: &["--codec", "sq:bits=3"],
        min_cosine: 0.9,
    },
    Case {
        out: "sq4.vectro",
        input: "d24.npy",
        args: &["--codec", "sq:bits=4"],
        min_cosine: 0.95,
    },
    Case {
        out: "sq8.vectro",
        input: "d24.npy",
        args: &["--codec", "sq:bits=8"],
        min_cosine: 0.999,
    },
    Case {
        out: "f16.vectro",
        input: "d24.npy",
        args: &["--codec", "f16"],
        min_cosine: 0.999_99,
    },
    Case {
        out: "bf16.vectro",
        input: "d24.npy",
        args: &["--codec", "bf16"],
        min_cosine: 0.999,
    },
    Case {
        out: "bf16_zstd.vectro",
        input: "d24.npy",
        args: &["--codec", "bf16", "--zstd", "1"],
        min_cosine: 0.999,
    },
    Case {
        out: "pq.vectro",
        input: "d64.npy",
        args: &["--codec", "pq:m=16,nbits=4"],
        min_cosine: 0.6,
    },
    Case {
        out: "pq_aniso1_unit.vectro",
        input: "d64_unit.npy",
        args: &["--codec", "pq:m=8,nbits=4,aniso=1,unit=1"],
        min_cosine: 0.6,
    },
    Case {
        out: "pq_aniso1.vectro",
        input: "d64.npy",
        args: &["--codec", "pq:m=16,nbits=4,aniso=1,unit=0"],
        min_cosine: 0.6,
    },
    Case {
        out: "opq.vectro",
        input: "d64.npy",
        args: &["--codec", "opq:m=8,nbits=4"],
        min_cosine: 0.6,
    },
    Case {
        out: "opq_zstd.vectro",
        input: "d64.npy",
        args: &["--codec", "opq:m=8,nbits=4", "--zstd", "3"],
        min_cosine: 0.6,
    },
    Case {
        out: "binary_itq.vectro",
        input: "d64.npy",
        args: &["--codec", "binary-itq"],
        min_cosine: 0.6,
    },
    Case {
        out: "pq_codebook.vectro",
        input: "d64.npy",
        args: &["--codebook", "pq.vcb"],
        min_cosine: 0.6,
    },
    Case {
        out: "opq_codebook.vectro",
        input: "d64.npy",
        args: &["--codebook", "opq.vcb"],
        min_cosine: 0.6,
    },
    Case {
        out: "itq_codebook.vectro",
        input: "d64.npy",
        args: &["--codebook", "itq.vcb"],
        min_cosine: 0.6,
    },
    Case {
        out: "rq.vectro",
        input: "d24.npy",
        args: &["--codec", "rq:m=2,iters=3,refine=1,beam=4"],
        min_cosine: 0.5,
    },
    Case {
        out: "rq_codebook.vectro",
        input: "d24.npy",
        args: &["--codebook", "rq.vcb"],
        min_cosine: 0.5,
    },
    Case {
        out: "rq_icm.vectro",
        input: "d24.npy",
        args: &["--codec", "rq:m=3,iters=3,refine=1,beam=2,icm=2"],
        min_cosine: 0.5,
    },
    Case {
        out: "rq_icm_codebook.vectro",
        input: "d24.npy",
        args: &["--codebook", "rq_icm.vcb"],
        min_cosine: 0.5,
    },
    // Format 1.4: ids stored per row.
    Case {
        out: "int8_ids_u64.vectro",
        input: "d24.npy",
        args: &["--codec", "int8", "--ids", "ids_u64.npy"],
        min_cosine: 0.999,
    },
    Case {
        out: "int8_ids_str.vectro",
        input: "d24.npy",
        args: &["--codec", "int8", "--ids", "ids.txt"],
        min_cosine: 0.999,
    },
    Case {
        out: "int4_zstd_ids_str.vectro",
        input: "d24.npy",
        args: &["--codec", "int4", "--zstd", "3", "--ids", "ids.txt"],
        min_cosine: 0.95,
    },
    // Format 1.5: payload columns, from a Parquet file of d24.npy's rows and ids.txt's ids.
    Case {
        out: "int8_ids_str_payload.vectro",
        input: "payload.parquet",
        args: &[
            "--codec",
            "int8",
            "--column",
            "emb",
            "--id-column",
            "id",
            "--payload-columns",
            "title,n,score,flag,tags",
        ],
        min_cosine: 0.999,
    },
    // Format 1.6: tiers, a search tier and a rescoring tier of the same rows.
    Case {
        out: "binary_rotate_int8_tiers.vectro",
        input: "d24.npy",
        args: &["--codec", "binary:rotate=1", "--rescore", "int8"],
        min_cosine: 0.999,
    },
    Case {
        out: "int4_rotate_f16_tiers_ids_u64.vectro",
        input: "d24.npy",
        args: &[
            "--codec",
            "int4:rotate=1",
            "--rescore",
            "f16",
            "--ids",
            "ids_u64.npy",
        ],
        min_cosine: 0.999,
    },
    Case {
        out: "pq_codebook_int8_tiers.vectro",
        input: "d64.npy",
        args: &["--codebook", "pq.vcb", "--rescore", "int8"],
        min_cosine: 0.999,
    },
];

/// Containers committed by earlier versions, decoded but never rewritten (relative to
/// `tests/fixtures/`), with the source they were written from.
const OLDER: &[(&str, &str)] = &[("v1_int8.vectro", "v1_int8_source.npy")];

/// Golden containers that this build no longer writes from their spelling (its default
/// or its encoder changed), decoded but never rewritten, with their input:
/// `sq1_centre.vectro` is `sq:bits=1,centre=1` before it meant the padded layout, byte for
/// byte the `sq1_centre_codebook.vectro` that is still written (from the committed `.vcb`);
/// `sq{1,3,4,8}_enc1.vectro` are `sq:bits=1,3,4,8` (uncentred) as the first encoder wrote
/// them, whose sums were f64 in one sequential order and whose step search scored six
/// candidates (the decoder reads them as before).
const RETIRED: &[(&str, &str)] = &[
    ("sq1_centre.vectro", "d24.npy"),
    ("sq1_enc1.vectro", "d24.npy"),
    ("sq3_enc1.vectro", "d24.npy"),
    ("sq4_enc1.vectro", "d24.npy"),
    ("sq8_enc1.vectro", "d24.npy"),
];

/// Files of older minors: (name, the 1.3 golden file it is laid out as, its minor).
const EARLIER: &[(&str, &str, u16)] = &[
    // 1.1: the quantizer parameter block with a rotation; the zstd payload stage.
    ("minor1_int4_rotate.vectro", "int4_rotate.vectro", 1),
    ("minor1_bf16_zstd.vectro", "bf16_zstd.vectro", 1),
    // 1.2: a pq codebook section without the 1.3 flags; binary-itq.
    ("minor2_pq_aniso1.vectro", "pq_aniso1.vectro", 2),
    ("minor2_binary_itq.vectro", "binary_itq.vectro", 2),
];

/// `container` as the format minor `minor` lays it out: the minor number, and the header
/// crc over it.
fn as_minor(container: &[u8], minor: u16) -> Vec<u8> {
    let mut b = container.to_vec();
    b[6..8].copy_from_slice(&minor.to_le_bytes());
    let h = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c(&b[..h - 4]);
    b[h - 4..h].copy_from_slice(&crc.to_le_bytes());
    b
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn golden_dir() -> PathBuf {
    fixtures().join("golden")
}

fn blessing() -> bool {
    std::env::var(BLESS_VAR).is_ok_and(|v| v == "1")
}

/// The inputs of the golden files, committed beside them. `payload.parquet` was written by
/// pyarrow 26 from `d24.npy` and `ids.txt` (columns `id`, `emb` as
/// `fixed_size_list<float>[24]`, and for row `k`: `title` = `title {k} ü, "q"` or null when
/// `k % 7 == 3`, `n` = `3k − 100` (int64), `score` = `k / 7` (double), `flag` = `k % 3 == 0`,
/// `tags` = `["t0", .., "t{k % 4 − 1}"]`; row groups of 100 rows) and is never rewritten.
/// `sq1_centre.vcb` is a layout-2 `sq:bits=1,centre=1` codebook of `d24.npy` (`.vcb` minor
/// 5), written before that spelling meant the padded layout and never rewritten.
const INPUTS: [&str; 7] = [
    "d24.npy",
    "d64.npy",
    "d64_unit.npy",
    "ids_u64.npy",
    "ids.txt",
    "payload.parquet",
    "sq1_centre.vcb",
];

/// Writes the inputs with `vectro generate` if they are missing (blessing only).
fn ensure_inputs() {
    let pq = golden_dir().join("payload.parquet");
    assert!(pq.exists(), "{} is missing: see INPUTS", pq.display());
    for (name, rows, dims) in [("d24.npy", "300", "24"), ("d64.npy", "200", "64")] {
        let path = golden_dir().join(name);
        if path.exists() {
            continue;
        }
        assert!(blessing(), "{} is missing", path.display());
        vectro()
            .args([
                "generate",
                "--rows",
                rows,
                "--dims",
                dims,
                "--clusters",
                "8",
            ])
            .args(["--seed", "19", "-q", "--out"])
            .arg(&path)
            .assert()
            .success();
    }
    // `unit=1` codebooks take unit-length rows only.
    let unit = golden_dir().join("d64_unit.npy");
    if !unit.exists() {
        assert!(blessing(), "{} is missing", unit.display());
        let (shape, mut rows) = crate::helpers::read_npy::<f32>(&golden_dir().join("d64.npy"));
        for row in rows.chunks_mut(shape[1] as usize) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        crate::helpers::write_npy(&unit, shape[0], shape[1], &rows);
    }
    // Ids of d24.npy's 300 rows: u64 (large, not row numbers) and strings (non-ASCII,
    // varying lengths, a comma and a quote).
    let ids = golden_dir().join("ids_u64.npy");
    if !ids.exists() {
        assert!(blessing(), "{} is missing", ids.display());
        let v: Vec<u64> = (0..300u64).map(|i| (i * 0x9e37_79b9) ^ (1 << 63)).collect();
        fs::write(&ids, crate::ids::u64_npy(&v)).unwrap();
    }
    let text = golden_dir().join("ids.txt");
    if !text.exists() {
        assert!(blessing(), "{} is missing", text.display());
        let lines: String = (0..300)
            .map(|i| format!("doc-{i}{}\n", "-ü,\"".repeat(i % 4)))
            .collect();
        fs::write(&text, lines).unwrap();
    }
}

/// Copies the committed inputs into `dir` with a fixed modification time.
fn stage_inputs(dir: &Path) {
    for name in INPUTS {
        let to = dir.join(name);
        fs::copy(golden_dir().join(name), &to).unwrap();
        fs::File::options()
            .write(true)
            .open(&to)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(INPUT_MTIME))
            .unwrap();
    }
}

/// Runs every `train` and `compress` of the tables in `dir`, as the golden files were.
fn write_all(dir: &Path) {
    stage_inputs(dir);
    for t in TRAINS {
        vectro()
            .current_dir(dir)
            .args(["train", "--in", t.input, "--codec", t.codec, "--out", t.out])
            .args(["--threads", "2", "-q"])
            .assert()
            .success();
    }
    for c in CASES {
        vectro()
            .current_dir(dir)
            .args(["compress", "--in", c.input, "--out", c.out])
            .args(c.args)
            .args(["--chunk-rows", "64", "--threads", "2", "--no-fsync", "-q"])
            .assert()
            .success();
    }
}

fn written_names() -> impl Iterator<Item = &'static str> {
    TRAINS
        .iter()
        .map(|t| t.out)
        .chain(CASES.iter().map(|c| c.out))
}

/// Every row of a container, decoded.
fn decode_all(path: &Path) -> (Container, Vec<f32>) {
    let c = Container::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = vec![0f32; c.rows() as usize * c.dims()];
    let ids: Vec<u64> = (0..c.rows()).collect();
    c.get_many(&ids, &mut out).unwrap();
    (c, out)
}

fn decoded_crc(rows: &[f32]) -> u32 {
    let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
    crc32c::crc32c(&bytes)
}

/// One `MANIFEST` line: what a golden container is and what it decodes to.
fn manifest_line(file: &str, path: &Path) -> String {
    let bytes = fs::read(path).unwrap();
    let minor = u16::from_le_bytes([bytes[6], bytes[7]]);
    let (c, rows) = decode_all(path);
    let line = format!(
        "{file} codec_id={} minor={minor} rows={} dims={} decoded_crc32c={:08x}",
        c.header().codec.id.code(),
        c.rows(),
        c.dims(),
        decoded_crc(&rows)
    );
    // Tiers: each search tier's codec id and the crc32c of its decoded rows.
    let line = (0..c.tier_count() - 1).fold(line, |line, t| {
        let v = c.tier(t).unwrap();
        let mut rows = vec![0f32; v.rows() as usize * v.dims()];
        v.get_range(0..v.rows(), &mut rows).unwrap();
        format!(
            "{line} tier{t}_codec_id={} tier{t}_decoded_crc32c={:08x}",
            v.header().codec.id.code(),
            decoded_crc(&rows)
        )
    });
    // Ids: their kind and the crc32c of their text, one a line.
    let line = match c.ids(0..c.rows()).unwrap() {
        _ if c.id_kind() == vectro::format::IdKind::None => line,
        ids => {
            let text: String = (0..ids.len())
                .map(|i| format!("{}\n", ids.get(i)))
                .collect();
            format!(
                "{line} ids={} ids_crc32c={:08x}",
                c.id_kind().name(),
                crc32c::crc32c(text.as_bytes())
            )
        }
    };
    // Payload columns: the crc32c of their values as JSON, a row a line.
    match c.payload(0..c.rows()).unwrap() {
        None => line,
        Some(p) => {
            let mut text = Vec::new();
            for r in 0..p.num_rows() {
                for col in p.columns() {
                    vectro::format::payload::push_json(&mut text, col.as_ref(), r).unwrap();
                    text.push(b' ');
                }
                text.push(b'\n');
            }
            format!("{line} payload_crc32c={:08x}", crc32c::crc32c(&text))
        }
    }
}

fn manifest_path() -> PathBuf {
    golden_dir().join("MANIFEST")
}

/// The golden containers and `.vcb` files are what this build writes, byte for byte.
#[test]
fn golden_files_are_rewritten_byte_for_byte() {
    ensure_inputs();
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path());
    if blessing() {
        for name in written_names() {
            fs::copy(dir.path().join(name), golden_dir().join(name)).unwrap();
        }
        for (name, from, minor) in EARLIER {
            let bytes = as_minor(&fs::read(golden_dir().join(from)).unwrap(), *minor);
            fs::write(golden_dir().join(name), bytes).unwrap();
        }
        let mut lines: Vec<String> = OLDER
            .iter()
            .map(|(f, _)| manifest_line(&format!("../{f}"), &fixtures().join(f)))
            .collect();
        lines.extend(
            CASES
                .iter()
                .map(|c| manifest_line(c.out, &golden_dir().join(c.out))),
        );
        lines.extend(
            RETIRED
                .iter()
                .map(|(f, _)| manifest_line(f, &golden_dir().join(f))),
        );
        lines.extend(
            EARLIER
                .iter()
                .map(|(f, _, _)| manifest_line(f, &golden_dir().join(f))),
        );
        fs::write(manifest_path(), lines.join("\n") + "\n").unwrap();
        return;
    }
    let mut differ = Vec::new();
    for name in written_names() {
        let golden = fs::read(golden_dir().join(name))
            .unwrap_or_else(|e| panic!("golden {name}: {e}; bless with {BLESS_VAR}=1"));
        if fs::read(dir.path().join(name)).unwrap() != golden {
            differ.push(name);
        }
    }
    // An older minor's file is the 1.3 file with the older number.
    for (name, from, minor) in EARLIER {
        let golden = fs::read(golden_dir().join(name))
            .unwrap_or_else(|e| panic!("golden {name}: {e}; bless with {BLESS_VAR}=1"));
        if as_minor(&fs::read(dir.path().join(from)).unwrap(), *minor) != golden {
            differ.push(name);
        }
    }
    assert!(
        differ.is_empty(),
        "this build writes different bytes than the golden files {differ:?}; if the change \
         is intended (a format change, a version bump: the header records `tool`), rerun \
         with {BLESS_VAR}=1 and commit the new files"
    );
}

/// Every golden file, the older ones included, decodes to the rows `MANIFEST` records,
/// close to its input.
#[test]
fn golden_files_decode_to_the_committed_rows() {
    if blessing() {
        return; // MANIFEST is being rewritten: check it in the next, normal run.
    }
    let manifest = fs::read_to_string(manifest_path()).unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    assert_eq!(
        lines.len(),
        OLDER.len() + CASES.len() + RETIRED.len() + EARLIER.len(),
        "MANIFEST lines"
    );
    for line in &lines {
        let file = line.split(' ').next().unwrap();
        assert_eq!(
            &manifest_line(file, &golden_dir().join(file)),
            line,
            "{file} no longer decodes to the committed rows (or its header changed)"
        );
    }
    // A file of an older minor decodes exactly as the file of this minor it is laid out as.
    for (name, from, minor) in EARLIER {
        let crc = |f: &str| {
            let line = lines
                .iter()
                .find(|l| l.starts_with(&format!("{f} ")))
                .unwrap();
            line.rsplit(' ').next().unwrap().to_string()
        };
        assert_eq!(crc(name), crc(from), "{name} decodes otherwise than {from}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{name} "))
                    && l.contains(&format!(" minor={minor} "))),
            "{name}"
        );
        crate::helpers::vectro()
            .arg("verify")
            .arg(golden_dir().join(name))
            .assert()
            .success();
    }
    // Decoded rows are near the input: the manifest cannot have blessed garbage.
    // payload.parquet holds d24.npy's rows.
    fn npy(input: &'static str) -> &'static str {
        match input {
            "payload.parquet" => "d24.npy",
            other => other,
        }
    }
    let sources = CASES
        .iter()
        .map(|c| {
            let src = golden_dir().join(npy(c.input));
            (c.out.to_string(), src, c.min_cosine)
        })
        .chain(
            OLDER
                .iter()
                .map(|(f, src)| (format!("../{f}"), fixtures().join(src), 0.999)),
        )
        .chain(
            RETIRED
                .iter()
                .map(|(f, src)| (f.to_string(), golden_dir().join(src), 0.6)),
        );
    for (file, src, min_cosine) in sources {
        let (c, decoded) = decode_all(&golden_dir().join(&file));
        let (shape, input) = crate::helpers::read_npy::<f32>(&src);
        assert_eq!(shape, [c.rows(), c.dims() as u64], "{file}: input shape");
        let cos = mean_cosine(&input, &decoded, c.dims());
        assert!(
            cos >= min_cosine,
            "{file}: mean cosine {cos} < {min_cosine}"
        );
    }
}

/// Every codec id this build knows has a golden file, and the covered minors are listed.
#[test]
fn golden_files_cover_every_codec_id_and_known_minor() {
    if blessing() {
        return; // MANIFEST is being rewritten: check it in the next, normal run.
    }
    let manifest = fs::read_to_string(manifest_path()).unwrap();
    let field = |line: &str, key: &str| -> u16 {
        line.split(' ')
            .find_map(|f| f.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("MANIFEST line without {key}: {line}"))
    };
    let ids: BTreeSet<u16> = manifest.lines().map(|l| field(l, "codec_id=")).collect();
    let known: BTreeSet<u16> = (0..=u16::MAX)
        .filter_map(CodecId::from_code)
        .map(CodecId::code)
        .collect();
    assert_eq!(ids, known, "codec ids with a golden file");
    let minors: BTreeSet<u16> = manifest.lines().map(|l| field(l, "minor=")).collect();
    assert_eq!(
        minors,
        (0..=vectro::format::MINOR).collect(),
        "format minors covered: every one up to the one this build writes"
    );
    // A frozen codebook gives the bytes of the run that trains it (metadata `train`
    // included), for every trained codec.
    for (trained, frozen) in [
        ("pq.vectro", "pq_codebook.vectro"),
        ("opq.vectro", "opq_codebook.vectro"),
        ("binary_itq.vectro", "itq_codebook.vectro"),
        ("rq.vectro", "rq_codebook.vectro"),
        ("rq_icm.vectro", "rq_icm_codebook.vectro"),
        ("sq1_centre.vectro", "sq1_centre_codebook.vectro"),
        ("sq1_centre_pad.vectro", "sq1_centre_pad_codebook.vectro"),
        (
            "sq2_centre_extra.vectro",
            "sq2_centre_extra_codebook.vectro",
        ),
    ] {
        assert_eq!(
            fs::read(golden_dir().join(trained)).unwrap(),
            fs::read(golden_dir().join(frozen)).unwrap(),
            "{frozen} differs from {trained}"
        );
    }
    // Every codebook file of `train` is among the golden files, and each is used.
    for t in TRAINS {
        assert!(golden_dir().join(t.out).exists(), "{}", t.out);
        assert!(CASES.iter().any(|c| c.args.contains(&t.out)), "{}", t.out);
    }
}

fn mean_cosine(a: &[f32], b: &[f32], dims: usize) -> f64 {
    let rows = a.len() / dims;
    let mut sum = 0.0;
    for (x, y) in a.chunks(dims).zip(b.chunks(dims)) {
        let dot: f64 = x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum();
        let nx: f64 = x.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
        let ny: f64 = y.iter().map(|q| (*q as f64).powi(2)).sum::<f64>().sqrt();
        sum += if nx == 0.0 || ny == 0.0 {
            f64::from(nx == ny)
        } else {
            dot / (nx * ny)
        };
    }
    sum / rows as f64
}
