//! Training a codebook from what `compress --in` reads: only the sampled rows are read.

use std::path::Path;

use super::Progress;
use crate::codec::codebook::VcbFile;
use crate::codec::{self, RowSource, TrainOptions, Trained};
use crate::error::{Error, Result};
use crate::source::{Input, NpySource};

impl RowSource for NpySource {
    fn rows(&self) -> u64 {
        self.header().rows
    }

    fn dims(&self) -> usize {
        self.header().dims as usize
    }

    /// Reads each sampled row with `pread` ([`NpySource::read_rows_at`]): the resident set
    /// holds the sample, never the pages around it.
    fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        let mut raw = Vec::new();
        for (&r, o) in ids.iter().zip(out.chunks_exact_mut(RowSource::dims(self))) {
            self.read_row_f32(r, &mut raw, o)?;
        }
        Ok(())
    }

    fn locate(&self, row: u64) -> (std::path::PathBuf, u64) {
        (self.path().to_path_buf(), row)
    }
}

/// Any input `compress` takes: the rows are sampled through [`Input::read_rows`], which
/// refuses a stream (it cannot be sampled before it is read).
impl RowSource for Input {
    fn rows(&self) -> u64 {
        self.header().rows
    }

    fn dims(&self) -> usize {
        self.header().dims as usize
    }

    fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        Input::read_rows(self, ids, out)
    }

    fn locate(&self, row: u64) -> (std::path::PathBuf, u64) {
        Input::locate(self, row)
    }
}

/// Trains `codec` (`pq:...`, `opq:...` or `binary-itq`) on a seeded sample of `input`,
/// for `vectro train`. `input` is what `compress --in` takes: a `.npy`, a directory or a
/// glob of them (one matrix, in the same order, so a codebook trained on the shards equals
/// one trained on their concatenation); a stream cannot be sampled and is refused.
///
/// # Errors
/// A bad input or codec string, too few rows, or a non-finite value in the sample.
pub fn train(
    input: &Path,
    codec: &str,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<Trained> {
    if input == Path::new("-") {
        // Training samples rows at random, which a stream cannot offer; say so before
        // reading anything from stdin.
        crate::input::open_input(input)?;
    }
    train_with(
        input,
        &crate::source::InputOptions::default(),
        codec,
        opts,
        progress,
    )
}

/// [`train`] of an input read with `input_opts` (`--column`).
///
/// # Errors
/// As [`train`].
pub fn train_with(
    input: &Path,
    input_opts: &crate::source::InputOptions,
    codec: &str,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<Trained> {
    if input == Path::new("-") {
        crate::input::open_input(input)?;
    }
    let source = Input::open_with(input, input_opts)?;
    codec::train(codec, &source, opts, progress)
}

/// Reads a `.vcb` file (pq, opq or binary-itq) for `dims`-dimensional data: the trained
/// codec, with the training recipe it records, if any ([`VcbFile::recipe`]).
///
/// # Errors
/// [`Error::Io`] if unreadable; [`Error::Corrupt`] for a damaged or foreign file;
/// [`Error::Mismatch`] when it was trained for another dimension.
pub fn read_codebook(path: &Path, dims: usize) -> Result<(Trained, Option<String>)> {
    let bytes = read_vcb_bytes(path)?;
    let vcb = VcbFile::parse(path, &bytes)?;
    Ok((vcb.codec(path, dims)?, vcb.recipe.map(str::to_owned)))
}

/// Reads a `.vcb` file for the dimension it records itself (`info`, and checking
/// `--codec` against `--codebook` before any data is read).
///
/// # Errors
/// As [`read_codebook`].
pub fn read_codebook_own_dims(path: &Path) -> Result<(Trained, Option<String>)> {
    let bytes = read_vcb_bytes(path)?;
    let vcb = VcbFile::parse(path, &bytes)?;
    Ok((
        vcb.codec(path, vcb.own_dims())?,
        vcb.recipe.map(str::to_owned),
    ))
}

fn read_vcb_bytes(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut crate::input::open_input(path)?, &mut bytes)
        .map_err(|e| Error::io(path, "reading", e))?;
    Ok(bytes)
}

/// Whether the file at `path` starts with the `.vcb` magic. Any error reading it is
/// `false`: the caller's own open of the file reports it.
pub fn is_codebook_file(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
        && magic == crate::codec::codebook::VCB_MAGIC
}
