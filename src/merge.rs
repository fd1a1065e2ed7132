//! `merge`: join the shards of one compress into the container a single run would write.
//!
//! Nothing is re-encoded: each chunk's payload is copied as it is, after its crc32c is
//! checked, and only its 36-byte framing is written anew with the chunk's place in the
//! whole (see FORMAT.md, "Shards and merge"). The header is the shards' common header with
//! the whole row count and without the `shard*` metadata, so the result is byte-identical
//! to a single-process compress of the same input with the same settings.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::shard::{ShardInfo, is_shard_key};
use crate::format::{Container, ContainerWriter, Header};
use crate::output::Durability;
use crate::output::dest::{Dest, finished_len};
use crate::par::peak_rss_bytes;
use crate::progress::Progress;
use crate::source::dataset::expand;

/// What a merge did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeSummary {
    /// The shard files, in shard order.
    pub parts: Vec<PathBuf>,
    /// The merged container.
    pub output: PathBuf,
    /// Rows in the merged container.
    pub rows: u64,
    /// Chunks copied.
    pub chunks: u64,
    /// Size of the merged container.
    pub output_bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Output MB (10⁶ bytes) per second.
    pub mb_per_s: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
}

struct Part {
    container: Container,
    info: ShardInfo,
}

/// Merges the shard files `parts` (files, directories of `.vectro` files, or glob
/// patterns; in any order) into `output` (`-` for standard output).
///
/// # Errors
/// [`Error::Mismatch`] if the parts disagree (codec, parameters, dims, chunking, source
/// metadata, shard count) or overlap; [`Error::MissingShard`] naming the first missing
/// shard; [`Error::Corrupt`] for an incomplete or corrupt part; I/O errors;
/// [`Error::Cancelled`].
pub fn merge(
    parts: &[PathBuf],
    output: &Path,
    overwrite: bool,
    durability: Durability,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<MergeSummary> {
    let start = Instant::now();
    let parts = open_parts(parts, output)?;
    let header = merged_header(&parts)?;
    let out = Dest::create(output, overwrite, durability)?;
    let err_path = out.error_path().to_path_buf();
    let io = |e| Error::io(&err_path, "writing", e);
    let payload: u64 = parts
        .iter()
        .flat_map(|p| p.container.chunks())
        .map(|e| e.len)
        .sum();
    progress.begin(header.rows, payload);
    let result = (|| {
        let mut w = ContainerWriter::new(out.writer(), header.clone()).map_err(io)?;
        for p in &parts {
            for (i, e) in p.container.chunks().iter().enumerate() {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                w.write_chunk(e.rows, p.container.chunk_stored(i)?)
                    .map_err(io)?;
                p.container.check_unchanged()?;
                release(&p.container, e.offset..e.offset + e.len);
                progress.advance(e.rows, e.len);
            }
        }
        let chunks = w.chunks().len() as u64;
        let bytes = finished_len(&w);
        w.finish().map_err(io)?.flush().map_err(io)?;
        Ok((chunks, bytes))
    })();
    progress.finish();
    let (chunks, output_bytes) = result?;
    out.commit()?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(MergeSummary {
        parts: parts
            .iter()
            .map(|p| p.container.path().to_path_buf())
            .collect(),
        output: output.to_path_buf(),
        rows: header.rows,
        chunks,
        output_bytes,
        seconds,
        mb_per_s: output_bytes as f64 / 1e6 / seconds.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Drops this process's view of bytes `range` of `c` once copied (the page cache keeps
/// them), so that merging shards bigger than RAM does not grow the resident set.
fn release(c: &Container, range: std::ops::Range<u64>) {
    const PAGE: u64 = 4096;
    let (start, end) = (range.start / PAGE * PAGE, range.end / PAGE * PAGE);
    let bytes = c.bytes();
    if end > start && end as usize <= bytes.len() {
        // SAFETY: the range lies inside the container's read-only file mapping, which
        // starts on a page boundary. MADV_DONTNEED on such a mapping only discards our view
        // of the pages; any later read refaults them from the file, so no byte changes.
        unsafe {
            libc::madvise(
                bytes.as_ptr().add(start as usize) as *mut libc::c_void,
                (end - start) as usize,
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// Opens every part, in shard order, leaving out `output` itself if a directory or
/// pattern matched it and it is not a shard (an earlier merge's output, say).
///
/// # Errors
/// [`Error::OutputIsInput`] if `output` is a part named on its own or is a shard.
fn open_parts(args: &[PathBuf], output: &Path) -> Result<Vec<Part>> {
    if args.is_empty() {
        return Err(Error::Config("merge: no parts given".into()));
    }
    let mut parts = Vec::new();
    for a in args {
        let (paths, multi) = expand(a, "vectro")?;
        for path in paths {
            if crate::output::same_file(output, &path) {
                let is_shard = || {
                    Container::open(&path).is_ok_and(|c| {
                        ShardInfo::from_metadata(&path, c.metadata()).is_ok_and(|i| i.is_some())
                    })
                };
                // Skipping a shard would report it missing, not that --out would replace it.
                if !multi || is_shard() {
                    return Err(Error::OutputIsInput {
                        output: output.to_path_buf(),
                        input: path,
                    });
                }
                continue;
            }
            let container = Container::open(&path).map_err(|e| match e {
                Error::Corrupt { path, msg } => Error::Corrupt {
                    msg: format!("{msg} (if this shard's compress was killed, run it again)"),
                    path,
                },
                e => e,
            })?;
            let info = ShardInfo::from_metadata(&path, container.metadata())?.ok_or_else(|| {
                Error::Mismatch(format!(
                    "{}: not a shard (it has no `shard` metadata): merge takes the outputs of `vectro compress --shard K/N`",
                    path.display()
                ))
            })?;
            parts.push(Part { container, info });
        }
    }
    parts.sort_by_key(|p| p.info.shard.k);
    Ok(parts)
}

/// Checks that the parts are the shards of one compress, all there, each once, and
/// returns the header of the whole.
fn merged_header(parts: &[Part]) -> Result<Header> {
    let first = &parts[0];
    let (n, total) = (first.info.shard.n, first.info.total_rows);
    let common = |p: &Part| -> Header {
        let mut h = p.container.header().clone();
        h.rows = total;
        h.metadata.retain(|k, _| !is_shard_key(k));
        h
    };
    let want = common(first);
    for p in parts {
        let (a, b) = (first.container.path(), p.container.path());
        if p.info.shard.n != n || p.info.total_rows != total {
            return Err(Error::Mismatch(format!(
                "{} is shard {} of an input of {} rows, {} is shard {} of {} rows: they are not from the same compress",
                a.display(),
                first.info.shard,
                total,
                b.display(),
                p.info.shard,
                p.info.total_rows
            )));
        }
        let got = common(p);
        if got != want {
            return Err(Error::Mismatch(format!(
                "{} and {} differ in {}: merge only joins shards of one input compressed with the same settings",
                a.display(),
                b.display(),
                header_difference(&want, &got)
            )));
        }
    }
    let mut next = 0u32;
    for p in parts {
        let s = p.info.shard;
        if s.k < next {
            let twin = parts
                .iter()
                .find(|q| q.info.shard.k == s.k)
                .expect("itself");
            return Err(Error::Mismatch(format!(
                "shard {s} is given twice: {} and {}",
                twin.container.path().display(),
                p.container.path().display()
            )));
        }
        check_shard_rows(p, want.chunk_rows as u64)?;
        if s.k > next {
            return Err(missing(next, n, total, want.chunk_rows as u64));
        }
        next = s.k + 1;
    }
    if next < n {
        return Err(missing(next, n, total, want.chunk_rows as u64));
    }
    Ok(want)
}

fn check_shard_rows(p: &Part, chunk_rows: u64) -> Result<()> {
    let (_, rows) = p.info.shard.plan(p.info.total_rows, chunk_rows)?;
    if p.info.first_row != rows.start || p.container.rows() != rows.end - rows.start {
        return Err(Error::Mismatch(format!(
            "{}: shard {} holds rows {}..{}, but that shard is rows {}..{}: the file is not what its metadata says",
            p.container.path().display(),
            p.info.shard,
            p.info.first_row,
            p.info.first_row + p.container.rows(),
            rows.start,
            rows.end
        )));
    }
    Ok(())
}

fn missing(k: u32, n: u32, total: u64, chunk_rows: u64) -> Error {
    let rows = crate::format::shard::Shard { k, n }
        .plan(total, chunk_rows)
        .map_or(0..0, |(_, r)| r);
    Error::MissingShard {
        k,
        n,
        first_row: rows.start,
        end_row: rows.end,
    }
}

fn header_difference(a: &Header, b: &Header) -> String {
    if a.tiers != b.tiers || (a.codec != b.codec && !(a.tiers.is_empty() && b.tiers.is_empty())) {
        let name = |h: &Header| {
            crate::codec::tiers::from_specs(&h.tiers, &h.codec, h.dims as usize)
                .map_or_else(|_| "?".into(), |c| c.name())
        };
        return format!(
            "tiers ({} and {}: compress every shard with the same --codec and --rescore)",
            name(a),
            name(b)
        );
    }
    if a.codec != b.codec {
        return "codec or codec parameters (codebook)".into();
    }
    if a.dims != b.dims || a.chunk_rows != b.chunk_rows || a.source_dtype != b.source_dtype {
        return "dims, chunk rows or source dtype".into();
    }
    if a.ids != b.ids {
        return format!(
            "ids ({} ids, {} ids: compress every shard with the same --ids)",
            a.ids.name(),
            b.ids.name()
        );
    }
    if a.stage != b.stage {
        return "payload stage (--zstd)".into();
    }
    if a.payload != b.payload {
        return "payload columns (compress every shard with the same --payload-columns)".into();
    }
    let key = a
        .metadata
        .iter()
        .find(|(k, v)| b.metadata.get(*k) != Some(*v))
        .or_else(|| {
            b.metadata
                .iter()
                .find(|(k, _)| !a.metadata.contains_key(*k))
        })
        .map(|(k, _)| k.as_str())
        .unwrap_or("?");
    format!("metadata {key:?}")
}
