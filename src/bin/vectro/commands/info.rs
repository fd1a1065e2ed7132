use serde::Serialize;
use vectro::Container;

use super::{human_bytes, print_json};
use crate::cli::InfoArgs;
use crate::exit_codes;

#[derive(Serialize)]
struct Info {
    input: String,
    format_version: String,
    codec: String,
    payload_stage: &'static str,
    codec_params_bytes: usize,
    /// The rows' stored ids: `u64`, `string` or `none` (rows are then known by their
    /// global numbers, from `first_row`).
    ids: &'static str,
    /// The number of row 0 in the whole input: a shard's first row, else 0.
    first_row: u64,
    rows: u64,
    dims: usize,
    source_dtype: &'static str,
    chunk_rows: u32,
    chunks: usize,
    header_bytes: usize,
    payload_bytes: u64,
    input_bytes: u64,
    bytes_per_vector: f64,
    ratio_vs_float32: f64,
    /// The container's metadata; `source_files` as the JSON array it holds, not as a string.
    metadata: serde_json::Map<String, serde_json::Value>,
    codec_facts: std::collections::BTreeMap<String, String>,
    /// False with --quick: chunk checksums were not read.
    chunks_verified: bool,
    /// A tiered file's tiers (format 1.6), coarsest first; absent without tiers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tiers: Vec<Tier>,
}

/// One tier of a tiered file.
#[derive(Serialize)]
struct Tier {
    /// The codec, as `--codec` names it.
    codec: String,
    /// What `search` does with it: `search` (the first), `rescore` (the last, which rows
    /// also decode from), or `middle`.
    role: &'static str,
    /// Bytes of its codes a row, its per-chunk crc aside.
    bytes_per_row: f64,
}

/// The tiers of `c`, coarsest first; empty for a file without tiers.
fn tiers(c: &Container) -> anyhow::Result<Vec<Tier>> {
    let n = c.tier_count();
    if n == 1 {
        return Ok(Vec::new());
    }
    let rows = c.chunks().first().map_or(1, |e| e.rows as usize);
    (0..n)
        .map(|t| {
            let v = c.tier(t)?;
            Ok(Tier {
                codec: v.codec().name(),
                role: match t {
                    0 => "search",
                    _ if t == n - 1 => "rescore",
                    _ => "middle",
                },
                bytes_per_row: v.codec().encoded_len(rows) as f64 / rows as f64,
            })
        })
        .collect()
}

/// Each file in turn, as `verify` takes several: one that cannot be read is reported and
/// the others are still shown; the exit code is the highest of the files'. With `--json`,
/// one file prints its object, several an array of them (an unreadable one as `{"input",
/// "error": {"message", "kind", "exit_code"}}`).
pub fn run(a: InfoArgs) -> anyhow::Result<i32> {
    let mut all = Vec::new();
    if let [file] = &a.files[..] {
        one(&a, file, &mut all)?;
        if let Some(v) = all.pop() {
            print_json(&v)?;
        }
        return Ok(exit_codes::OK);
    }
    let mut worst = exit_codes::OK;
    for (i, file) in a.files.iter().enumerate() {
        if i > 0 && !a.json {
            outln!();
        }
        if let Err(e) = one(&a, file, &mut all) {
            let code = exit_codes::for_error(&e);
            let msg = crate::escape_controls(&e.to_string());
            if a.json {
                all.push(serde_json::json!({
                    "input": file,
                    "error": {
                        "message": msg,
                        "kind": exit_codes::kind_name(code),
                        "exit_code": code,
                    },
                }));
            } else {
                errln!("vectro: error: {msg}");
            }
            worst = worst.max(code);
        }
    }
    if a.json {
        print_json(&all)?;
    }
    Ok(worst)
}

/// Shows one file: printed as text, or with `--json` its object pushed on `json`.
fn one(
    a: &InfoArgs,
    file: &std::path::Path,
    json: &mut Vec<serde_json::Value>,
) -> anyhow::Result<i32> {
    let start = std::time::Instant::now();
    let code = show(a, file, json)?;
    if let Some(serde_json::Value::Object(m)) = json.last_mut() {
        m.insert("seconds".into(), start.elapsed().as_secs_f64().into());
    }
    Ok(code)
}

/// [`one`], but the seconds.
fn show(
    a: &InfoArgs,
    file: &std::path::Path,
    json: &mut Vec<serde_json::Value>,
) -> anyhow::Result<i32> {
    if vectro::pipeline::train::is_codebook_file(file) {
        return codebook(a, file, json);
    }
    let c = Container::open(file)?;
    if !a.quick {
        // A flipped byte in a chunk must not pass unnoticed because only `info` was run.
        // Every chunk is read: a bar by chunk on a terminal.
        let bar = crate::progress::Bar::new(a.quiet || a.json, "info");
        vectro::Progress::begin(&bar, c.rows(), c.file_len());
        let checked = (0..c.chunks().len()).try_for_each(|i| {
            c.chunk_payload(i)?;
            c.check_chunk_ids(i)?;
            c.release_chunks(i..i + 1);
            let e = &c.chunks()[i];
            vectro::Progress::advance(&bar, e.rows, e.len);
            Ok::<(), vectro::Error>(())
        });
        vectro::Progress::finish(&bar);
        checked?;
    }
    let h = c.header();
    let payload: u64 = c
        .chunks()
        .iter()
        .map(|e| e.payload_range().len() as u64)
        .sum();
    let info = Info {
        input: file.display().to_string(),
        // The file's own version (bytes 4..8), which may be older than this build's.
        format_version: {
            let b = c.bytes();
            let v = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
            format!("{}.{}", v(4), v(6))
        },
        codec: c.codec().name(),
        payload_stage: match h.stage {
            vectro::codec::PayloadStage::Zstd => "zstd",
            _ => "plain",
        },
        codec_params_bytes: h.codec.params.len(),
        ids: c.id_kind().name(),
        first_row: c.first_row(),
        rows: c.rows(),
        dims: c.dims(),
        source_dtype: h.source_dtype.descr(),
        chunk_rows: h.chunk_rows,
        chunks: c.chunks().len(),
        header_bytes: c.header_len(),
        payload_bytes: payload,
        input_bytes: c.file_len(),
        bytes_per_vector: c.file_len() as f64 / c.rows() as f64,
        ratio_vs_float32: (c.rows() * c.dims() as u64 * 4) as f64 / c.file_len() as f64,
        metadata: json_metadata(c.metadata()),
        codec_facts: c.codec().facts().into_iter().collect(),
        chunks_verified: !a.quick,
        tiers: tiers(&c)?,
    };
    if a.json {
        json.push(serde_json::to_value(&info)?);
        return Ok(exit_codes::OK);
    }
    outln!("file:          {}", info.input);
    outln!("format:        vectro {}", info.format_version);
    outln!(
        "codec:         {} (payload: {})",
        info.codec,
        info.payload_stage
    );
    for (t, tier) in info.tiers.iter().enumerate() {
        outln!(
            "tier {t}:        {} ({}; {} bytes/row)",
            tier.codec,
            tier.role,
            tier.bytes_per_row
        );
    }
    outln!(
        "shape:         {} rows x {} dims (source dtype {})",
        info.rows,
        info.dims,
        info.source_dtype
    );
    outln!("chunks:        {} of {} rows", info.chunks, info.chunk_rows);
    match (c.id_kind(), info.first_row) {
        (vectro::format::IdKind::None, 0) => outln!("ids:           none (rows numbered from 0)"),
        (vectro::format::IdKind::None, f) => outln!(
            "ids:           none (rows numbered {f}..{} of the whole input)",
            f + info.rows
        ),
        (k, _) => outln!("ids:           {} (one stored per row)", k.name()),
    }
    outln!(
        "size:          {} ({} header, {} payload); {:.1} bytes/vector, {:.2}x vs float32",
        human_bytes(info.input_bytes),
        human_bytes(info.header_bytes as u64),
        human_bytes(info.payload_bytes),
        info.bytes_per_vector,
        info.ratio_vs_float32
    );
    if info.chunks_verified {
        outln!(
            "checksums:     header, index, trailer and all {} chunks ok",
            info.chunks
        );
    } else {
        outln!("checksums:     header, index and trailer ok; chunks not read (--quick)");
    }
    for (k, v) in c.codec().facts() {
        outln!("{:<14} {v}", format!("{k}:"));
    }
    for (k, v) in c.metadata() {
        let head = format!("meta {k:<9} ");
        match source_files(k, v) {
            Some(files) => {
                for (i, f) in files.iter().enumerate() {
                    let pad = if i == 0 {
                        head.clone()
                    } else {
                        " ".repeat(head.len())
                    };
                    outln!("{pad}{f}");
                }
            }
            None => outln!("{head}{v}"),
        }
    }
    Ok(exit_codes::OK)
}

/// The metadata for `--json`: a number as a number (a value that is exactly an integer's
/// or a float's text), `source_files` (which the container stores as JSON text) as the
/// array of `{name, rows, bytes}` objects it encodes, anything else as its string.
fn json_metadata(m: &vectro::format::Metadata) -> serde_json::Map<String, serde_json::Value> {
    m.iter()
        .map(|(k, v)| {
            let parsed = (k == SOURCE_FILES)
                .then(|| serde_json::from_str::<serde_json::Value>(v).ok())
                .flatten()
                .filter(serde_json::Value::is_array);
            (
                k.clone(),
                parsed
                    .or_else(|| number(v))
                    .unwrap_or_else(|| v.clone().into()),
            )
        })
        .collect()
}

/// `v` as a JSON number if it is written exactly as one (`"123"`, `"-4"`, `"0.5"`): not
/// `"0123"` or `"1e3"`, which would not read back the same.
fn number(v: &str) -> Option<serde_json::Value> {
    if let Ok(n) = v.parse::<u64>() {
        return (n.to_string() == v).then(|| n.into());
    }
    if let Ok(n) = v.parse::<i64>() {
        return (n.to_string() == v).then(|| n.into());
    }
    let x = v.parse::<f64>().ok().filter(|x| x.is_finite())?;
    (x.to_string() == v).then(|| x.into())
}

const SOURCE_FILES: &str = "source_files";

/// `source_files` as one line a file (`part-1.npy: rows 0..100, 3.25 KiB`), or `None` for
/// another key or a value that is not the expected array.
fn source_files(key: &str, value: &str) -> Option<Vec<String>> {
    if key != SOURCE_FILES {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(value).ok()?;
    v.as_array()?
        .iter()
        .map(|f| {
            let name = f["name"].as_str()?;
            let (a, b) = (f["rows"][0].as_u64()?, f["rows"][1].as_u64()?);
            let bytes = human_bytes(f["bytes"].as_u64()?);
            Some(format!("{name}: rows {a}..{b}, {bytes}"))
        })
        .collect()
}

/// What `info --json` shows of a `.vcb` codebook (from `vectro train`).
#[derive(Serialize)]
struct CodebookInfo {
    input: String,
    /// "codebook", where a container's info has a `format_version` of the container.
    kind: &'static str,
    format_version: String,
    codec: String,
    dims: usize,
    m: usize,
    nbits: u8,
    ksub: usize,
    code_bytes: usize,
    rotation: bool,
    input_bytes: u64,
    train_rows: u64,
    kmeans_iterations: u32,
    opq_iterations: u32,
    distortion: f64,
    seed: u64,
    fingerprint: String,
    /// The codec string and sample size it was trained with (`vectro train`, minor 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    recipe: Option<String>,
    codec_facts: std::collections::BTreeMap<String, String>,
}

/// `info` of a `.vcb` codebook: its codec parameters and training facts, as a container's
/// info shows them, after its checksum is checked.
fn codebook(
    a: &InfoArgs,
    file: &std::path::Path,
    json: &mut Vec<serde_json::Value>,
) -> anyhow::Result<i32> {
    // One read: the codebook, its size and its minor version (bytes 6..8) all come from it.
    let bytes = std::fs::read(file).map_err(|e| vectro::Error::io(file, "reading", e))?;
    let vcb = vectro::codec::codebook::VcbFile::parse(file, &bytes)?;
    if vcb.id == vectro::CodecId::BinaryItq || vcb.id == vectro::CodecId::Sq {
        return mean_codebook(a, file, &vcb, bytes.len() as u64, json);
    }
    if vcb.id == vectro::CodecId::Rq {
        return rq_codebook(a, file, &vcb, bytes.len() as u64, json);
    }
    let book = vectro::codec::Codebook::from_vcb_own_dims(file, &bytes)?;
    let file_bytes = bytes.len() as u64;
    let minor = u16::from_le_bytes([bytes[6], bytes[7]]);
    let codec = vectro::codec::Pq::new(book.clone());
    let f = book.facts;
    let info = CodebookInfo {
        input: file.display().to_string(),
        kind: "codebook",
        // from_vcb accepts only major version 1; the minor version is informational.
        format_version: format!("1.{minor}"),
        codec: vectro::Codec::name(&codec),
        dims: book.dims,
        m: book.m,
        nbits: book.nbits,
        ksub: book.ksub(),
        code_bytes: book.code_bytes(),
        rotation: book.rotation.is_some(),
        input_bytes: file_bytes,
        train_rows: f.sample_rows,
        kmeans_iterations: f.kmeans_iterations,
        opq_iterations: f.opq_iterations,
        distortion: f.distortion,
        seed: f.seed,
        fingerprint: format!("{:08x}", book.fingerprint()),
        recipe: vectro::codec::Codebook::vcb_recipe(&bytes),
        codec_facts: vectro::Codec::facts(&codec).into_iter().collect(),
    };
    if a.json {
        json.push(serde_json::to_value(&info)?);
        return Ok(exit_codes::OK);
    }
    let shape = format!(
        "{} dims in {} subspaces of {}, {} centroids each{}; {} bytes a row",
        info.dims,
        info.m,
        book.dsub(),
        info.ksub,
        if info.rotation { ", rotated" } else { "" },
        info.code_bytes
    );
    let facts = vectro::Codec::facts(&codec);
    print_vcb(
        &info.input,
        &info.format_version,
        &info.codec,
        info.recipe.as_deref(),
        &shape,
        info.input_bytes,
        facts,
    );
    Ok(exit_codes::OK)
}

/// What `info --json` shows of an rq `.vcb` (from `vectro train --codec rq:...`).
#[derive(Serialize)]
struct RqCodebookInfo {
    input: String,
    kind: &'static str,
    format_version: String,
    codec: String,
    dims: usize,
    m: usize,
    code_bytes: usize,
    input_bytes: u64,
    train_rows: u64,
    kmeans_iterations: u32,
    distortion: f64,
    seed: u64,
    fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipe: Option<String>,
    codec_facts: std::collections::BTreeMap<String, String>,
}

/// `info` of an rq `.vcb`: its codebooks' shape and training facts.
fn rq_codebook(
    a: &InfoArgs,
    file: &std::path::Path,
    vcb: &vectro::codec::codebook::VcbFile<'_>,
    file_bytes: u64,
    json: &mut Vec<serde_json::Value>,
) -> anyhow::Result<i32> {
    let trained = vcb.codec(file, vcb.own_dims())?;
    let vectro::codec::Trained::Rq(rq) = &trained else {
        unreachable!("an rq id parses to an RQ codec")
    };
    let f = rq.facts();
    let info = RqCodebookInfo {
        input: file.display().to_string(),
        kind: "codebook",
        format_version: format!("1.{}", vcb.minor),
        codec: trained.name(),
        dims: trained.dims(),
        m: rq.m(),
        code_bytes: rq.row_bytes(),
        input_bytes: file_bytes,
        train_rows: f.sample_rows,
        kmeans_iterations: f.kmeans_iterations,
        distortion: f.distortion,
        seed: f.seed,
        fingerprint: format!("{:08x}", trained.fingerprint()),
        recipe: vcb.recipe.map(str::to_owned),
        codec_facts: vectro::Codec::facts(rq).into_iter().collect(),
    };
    if a.json {
        json.push(serde_json::to_value(&info)?);
        return Ok(exit_codes::OK);
    }
    let shape = format!(
        "{} dims, {} codebooks of 256 codewords; {} bytes a row (codes and an f16 scale)",
        info.dims, info.m, info.code_bytes
    );
    let facts = info.codec_facts.into_iter();
    print_vcb(
        &info.input,
        &info.format_version,
        &info.codec,
        info.recipe.as_deref(),
        &shape,
        info.input_bytes,
        facts,
    );
    Ok(exit_codes::OK)
}

/// What `info --json` shows of a `.vcb` of a mean-based trained codec: binary-itq (from
/// `vectro train --codec binary-itq`; also its ITQ iterations and loss) or a centred sq
/// (`vectro train --codec sq:bits=B,centre=1`).
#[derive(Serialize)]
struct MeanCodebookInfo {
    input: String,
    kind: &'static str,
    format_version: String,
    codec: String,
    dims: usize,
    input_bytes: u64,
    train_rows: u64,
    #[serde(flatten)]
    training: serde_json::Map<String, serde_json::Value>,
    fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipe: Option<String>,
    codec_facts: std::collections::BTreeMap<String, String>,
}

/// `info` of a binary-itq `.vcb` (its mean and rotation's shape and training facts) or a
/// centred sq `.vcb` (the mean its rows are centred on).
fn mean_codebook(
    a: &InfoArgs,
    file: &std::path::Path,
    vcb: &vectro::codec::codebook::VcbFile<'_>,
    file_bytes: u64,
    json: &mut Vec<serde_json::Value>,
) -> anyhow::Result<i32> {
    let trained = vcb.codec(file, vcb.own_dims())?;
    let dims = trained.dims();
    let mut training = serde_json::Map::new();
    let (train_rows, shape, codec_facts) = match &trained {
        vectro::codec::Trained::Itq(itq) => {
            training.insert("itq_iterations".into(), itq.iterations().into());
            training.insert("itq_loss".into(), itq.loss().into());
            (
                u64::from(itq.train_rows()),
                format!(
                    "{dims} dims: a mean and a {dims} x {dims} rotation; {} bytes a row",
                    dims.div_ceil(8) + 4
                ),
                vectro::Codec::facts(itq),
            )
        }
        vectro::codec::Trained::Sq(sq) => (
            sq.mean_rows(),
            format!(
                "{dims} dims: the mean rows are centred on; {} bytes a row",
                sq.row_bytes()
            ),
            vectro::Codec::facts(sq),
        ),
        _ => unreachable!("only binary-itq and sq ids come here"),
    };
    let info = MeanCodebookInfo {
        input: file.display().to_string(),
        kind: "codebook",
        format_version: format!("1.{}", vcb.minor),
        codec: trained.name(),
        dims,
        input_bytes: file_bytes,
        train_rows,
        training,
        fingerprint: format!("{:08x}", trained.fingerprint()),
        recipe: vcb.recipe.map(str::to_owned),
        codec_facts: codec_facts.into_iter().collect(),
    };
    if a.json {
        json.push(serde_json::to_value(&info)?);
        return Ok(exit_codes::OK);
    }
    let facts =
        std::iter::once(("fingerprint".to_owned(), info.fingerprint)).chain(info.codec_facts);
    print_vcb(
        &info.input,
        &info.format_version,
        &info.codec,
        info.recipe.as_deref(),
        &shape,
        info.input_bytes,
        facts,
    );
    Ok(exit_codes::OK)
}

/// The text `info` shows of any `.vcb`: what it is, its `shape` line, then one line a fact.
fn print_vcb(
    input: &str,
    format_version: &str,
    codec: &str,
    recipe: Option<&str>,
    shape: &str,
    input_bytes: u64,
    facts: impl IntoIterator<Item = (String, String)>,
) {
    outln!("file:          {input}");
    outln!("format:        vectro codebook (.vcb) {format_version}");
    outln!("codec:         {codec}");
    if let Some(r) = recipe {
        outln!("trained with:  {r}");
    }
    outln!("shape:         {shape}");
    outln!("size:          {}", human_bytes(input_bytes));
    outln!("checksums:     crc32c ok");
    for (k, v) in facts {
        outln!("{:<14} {v}", format!("{k}:"));
    }
}
