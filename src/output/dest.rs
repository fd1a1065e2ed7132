//! Where a container goes: a file, atomically, or standard output (`--out -`).
//!
//! The container only appends and writes its index and trailer last, so it streams to a
//! pipe as well as to a file; a reader of the pipe knows it got everything once the
//! trailer's magic arrives.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::Result;
use crate::format::{ContainerWriter, INDEX_ENTRY_LEN, INDEX_HEADER_LEN, TRAILER_LEN};
use crate::output::{AtomicOutput, Durability};

/// An output being written.
#[derive(Debug)]
pub enum Dest {
    /// A file, written beside its target and renamed into place on commit.
    File(AtomicOutput),
    /// Standard output.
    Stdout,
}

impl Dest {
    /// `-` is standard output; anything else an [`AtomicOutput`].
    ///
    /// # Errors
    /// As [`AtomicOutput::create`].
    pub fn create(target: &Path, overwrite: bool, durability: Durability) -> Result<Dest> {
        if target == Path::new("-") {
            return Ok(Dest::Stdout);
        }
        Ok(Dest::File(AtomicOutput::create(
            target, overwrite, durability,
        )?))
    }

    /// Like [`Dest::create`], but a file output is resumable: a predictable, locked
    /// partial file beside the target (see [`AtomicOutput::create_resumable`]).
    ///
    /// # Errors
    /// As [`AtomicOutput::create_resumable`].
    pub fn create_resumable(
        target: &Path,
        overwrite: bool,
        durability: Durability,
    ) -> Result<Dest> {
        if target == Path::new("-") {
            return Ok(Dest::Stdout);
        }
        Ok(Dest::File(AtomicOutput::create_resumable(
            target, overwrite, durability,
        )?))
    }

    /// Whether an abandoned file output keeps its partial file (for `--resume`).
    pub fn keep_on_drop(&mut self, keep: bool) {
        if let Dest::File(o) = self {
            o.keep_on_drop(keep);
        }
    }

    /// Reserves disk blocks for a file output expected to reach `len` bytes
    /// ([`AtomicOutput::preallocate`]).
    pub fn preallocate(&mut self, len: u64) {
        if let Dest::File(o) = self {
            o.preallocate(len);
        }
    }

    /// The path that errors name: the temporary file, or `<stdout>`.
    pub fn error_path(&self) -> &Path {
        match self {
            Dest::File(o) => o.tmp_path(),
            Dest::Stdout => Path::new("<stdout>"),
        }
    }

    /// A buffered writer on the output.
    pub fn writer(&self) -> Box<dyn Write + '_> {
        match self {
            Dest::File(o) => Box::new(o.writer()),
            Dest::Stdout => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
        }
    }

    /// Puts a file in place (see [`AtomicOutput::commit`]); nothing to do for stdout.
    ///
    /// # Errors
    /// As [`AtomicOutput::commit`].
    pub fn commit(self) -> Result<()> {
        match self {
            Dest::File(o) => o.commit(),
            Dest::Stdout => Ok(()),
        }
    }
}

/// The size `w`'s file will have once finished: what is written, then index and trailer.
/// (A pipe cannot be asked for its length afterwards.)
pub(crate) fn finished_len<W: Write>(w: &ContainerWriter<W>) -> u64 {
    let index = INDEX_HEADER_LEN + INDEX_ENTRY_LEN * w.chunks().len();
    w.offset() + (index + TRAILER_LEN) as u64
}
