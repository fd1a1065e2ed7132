//! `decompress`: a container back into a float32 `.npy`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use super::Progress;
use crate::error::{Error, Result};
use crate::format::Container;
use crate::npy;
use crate::npy::f32_le_bytes;
use crate::output::Durability;
use crate::output::dest::Dest;
use crate::par::{peak_rss_bytes, run_ordered};
use crate::source::reader::ReleaseBehind;

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
    /// Bytes of `.npy` written.
    pub output_bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
}

/// Decodes the container at `input` into a float32 `.npy` at `output`, or to standard
/// output for `-`.
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
    let start = Instant::now();
    let c = Container::open(input)?;
    crate::output::check_not_input(output, [input])?;
    let mut out = Dest::create(output, overwrite, durability)?;
    let header = npy::write_header(c.rows(), c.dims() as u64);
    let output_bytes = header.len() as u64 + c.rows() * c.dims() as u64 * 4;
    out.preallocate(output_bytes);
    let tmp = out.error_path().to_path_buf();
    let io = |e| Error::io(&tmp, "writing", e);
    let mut w = out.writer();
    w.write_all(&header).map_err(io)?;
    let threads = crate::par::resolve_threads(threads);
    let row_bytes = c.dims() as u64 * 4;
    progress.begin(c.rows(), c.rows() * row_bytes);
    // Written buffers go back to the workers: a fresh multi-MiB Vec per chunk would
    // page-fault its way through every chunk again.
    let (recycle, pool) = crossbeam_channel::bounded::<Vec<f32>>(2 * threads + 2);
    let mut behind = ReleaseBehind::for_chunks(&c);
    let result = run_ordered(
        threads,
        (0..c.chunks().len()).map(Ok),
        |i| {
            let mut rows = pool.try_recv().unwrap_or_default();
            rows.resize(c.chunks()[i].rows as usize * c.dims(), 0.0);
            c.decode_chunk(i, &mut rows)?;
            Ok((i, rows))
        },
        |(i, rows)| {
            w.write_all(&f32_le_bytes(&rows)).map_err(io)?;
            behind.release_chunks(&c, i, i + 1);
            let n = (rows.len() / c.dims()) as u64;
            progress.advance(n, n * row_bytes);
            let _ = recycle.try_send(rows);
            Ok(())
        },
        cancel,
    );
    progress.finish();
    result?;
    w.flush().map_err(io)?;
    drop(w);
    out.commit()?;
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
