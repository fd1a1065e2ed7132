//! `decompress`: a container back into a float32 `.npy`.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crossbeam_channel::bounded;
use serde::Serialize;

use super::ordered::run_ordered;
use super::{Progress, default_threads, peak_rss_bytes};
use crate::error::{Error, Result};
use crate::format::Container;
use crate::npy;
use crate::output::{AtomicOutput, Durability, WriteBehind};

/// What a decompress run did.
#[derive(Debug, Clone, Serialize)]
pub struct DecompressSummary {
    /// The container read.
    pub input: PathBuf,
    /// The `.npy` written.
    pub output: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Output file size.
    pub output_bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
}

/// Decodes the container at `input` into a float32 `.npy` at `output`.
///
/// # Errors
/// A corrupt container ([`Error::Corrupt`]), an existing output, I/O errors, or
/// [`Error::Cancelled`].
pub fn decompress(
    input: &Path,
    output: &Path,
    threads: usize,
    overwrite: bool,
    durability: Durability,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<DecompressSummary> {
    let opts = (threads, overwrite, durability, true);
    decompress_with(input, output, opts, progress, cancel)
}

/// [`decompress`], choosing whether to try direct I/O (tests run both ways).
pub(crate) fn decompress_with(
    input: &Path,
    output: &Path,
    (threads, overwrite, durability, direct_io): (usize, bool, Durability, bool),
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<DecompressSummary> {
    let start = Instant::now();
    let c = Container::open(input)?;
    let out = AtomicOutput::create(output, overwrite, durability)?;
    let tmp = out.tmp_path().to_path_buf();
    let io = |e| Error::io(&tmp, "writing", e);
    let file = out.file();
    let head = npy::write_header(c.rows(), c.dims() as u64);
    let threads = if threads == 0 {
        default_threads()
    } else {
        threads
    };
    let row_bytes = c.dims() as u64 * 4;
    progress.begin(c.rows(), c.rows() * row_bytes);
    // Decoded buffers are reused so that their pages are faulted in once, not per chunk.
    let (recycle, pool) = bounded::<Vec<f32>>(2 * threads + 2);
    let decode = |i: usize| -> Result<Vec<f32>> {
        let mut rows = pool.try_recv().unwrap_or_default();
        rows.resize(c.chunks()[i].rows as usize * c.dims(), 0.0);
        c.decode_chunk(i, &mut rows)?;
        Ok(rows)
    };
    let jobs = || (0..c.chunks().len()).map(Ok);
    let (mut done, mut released) = (0, 0);
    let direct = if direct_io { out.direct_writer() } else { None };
    let result = if let Some(mut w) = direct {
        // In order through direct I/O: see `DirectWriter` for why.
        let r = w.write_all(&head).map_err(io).and_then(|()| {
            run_ordered(
                threads,
                jobs(),
                decode,
                |rows| {
                    released = release_chunk(&c, done, released);
                    done += 1;
                    w.write_all(&f32_le_bytes(&rows)).map_err(io)?;
                    let n = (rows.len() / c.dims()) as u64;
                    progress.advance(n, n * row_bytes);
                    let _ = recycle.try_send(rows);
                    Ok(())
                },
                cancel,
            )
        });
        r.and_then(|()| w.finish().map(drop).map_err(io))
    } else {
        // Workers write their rows at their final offsets, so the copy into the page cache
        // (most of the cost) runs on every core.
        file.write_all_at(&head, 0).map_err(io)?;
        let mut behind = WriteBehind::new(file, durability);
        run_ordered(
            threads,
            jobs(),
            |i| {
                let rows = decode(i)?;
                let e = c.chunks()[i];
                let at = head.len() as u64 + e.first_row * row_bytes;
                file.write_all_at(&f32_le_bytes(&rows), at).map_err(io)?;
                Ok((rows, at + e.rows * row_bytes))
            },
            |(rows, end)| {
                released = release_chunk(&c, done, released);
                done += 1;
                behind.written_to(end);
                let n = (rows.len() / c.dims()) as u64;
                progress.advance(n, n * row_bytes);
                let _ = recycle.try_send(rows);
                Ok(())
            },
            cancel,
        )
    };
    progress.finish();
    result?;
    out.commit()?;
    let output_bytes = std::fs::metadata(output)
        .map_err(|e| Error::io(output, "reading metadata of", e))?
        .len();
    Ok(DecompressSummary {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        rows: c.rows(),
        dims: c.dims() as u64,
        output_bytes,
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Drops this process's view of the mapped container up to the end of chunk `i` (already
/// decoded), from `from`, and returns the new release point. Without it the mapping's pages
/// stay resident and peak RSS grows with the container's size.
fn release_chunk(c: &Container, i: usize, from: usize) -> usize {
    const PAGE: usize = 4096;
    let e = c.chunks()[i];
    let to = (e.offset + e.len) as usize / PAGE * PAGE;
    if to > from {
        let base = c.bytes().as_ptr();
        // SAFETY: `from..to` lies inside the read-only, shared file mapping that `c` owns
        // (`to` is at most the end of a chunk, and the map base is page-aligned). DONTNEED
        // on such a mapping only drops our page-table entries: a later access refaults the
        // same bytes from the file, so no reference into the map ever sees a change.
        unsafe {
            libc::madvise(
                base.add(from).cast_mut().cast(),
                to - from,
                libc::MADV_DONTNEED,
            );
        }
        return to;
    }
    from
}

/// The little-endian bytes of `v`; free (no copy) on little-endian machines.
pub fn f32_le_bytes(v: &[f32]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: f32 has no padding and u8 has alignment 1; the length is scaled by 4.
        let b = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 4) };
        std::borrow::Cow::Borrowed(b)
    } else {
        std::borrow::Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{GenerateOptions, generate};
    use crate::pipeline::{CompressOptions, NoProgress, compress};

    #[test]
    fn every_row_lands_in_place_for_any_threads_and_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("x.npy");
        let opts = GenerateOptions {
            rows: 777,
            dims: 19,
            ..Default::default()
        };
        let stop = AtomicBool::new(false);
        generate(&npy, &opts, false, &NoProgress, &stop).unwrap();
        for chunk_rows in [1u32, 10, 776, 4096] {
            let comp = dir.path().join(format!("c{chunk_rows}.vectro"));
            let o = CompressOptions {
                chunk_rows: Some(chunk_rows),
                ..Default::default()
            };
            compress(&npy, &comp, &o, &NoProgress, &stop).unwrap();
            // The reference: the header, then each row decoded on its own, in order.
            let c = Container::open(&comp).unwrap();
            let mut want = npy::write_header(c.rows(), c.dims() as u64);
            let mut row = vec![0f32; c.dims()];
            for r in 0..c.rows() {
                c.get(r, &mut row).unwrap();
                want.extend_from_slice(&f32_le_bytes(&row));
            }
            for threads in [1, 2, 5] {
                let out = dir.path().join(format!("d{chunk_rows}-{threads}.npy"));
                let d = if threads == 2 {
                    Durability::Fsync
                } else {
                    Durability::None
                };
                for direct_io in [false, true] {
                    std::fs::remove_file(&out).ok();
                    let o = (threads, false, d, direct_io);
                    decompress_with(&comp, &out, o, &NoProgress, &stop).unwrap();
                    let got = std::fs::read(&out).unwrap();
                    assert!(
                        got == want,
                        "chunk_rows {chunk_rows}, threads {threads}, direct {direct_io}"
                    );
                }
            }
        }
    }
}
