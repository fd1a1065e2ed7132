//! Opening an input file by path, with the two mistakes that cannot work named plainly:
//! `-` where the command does not stream, and a pipe where it needs a file; and reading a
//! stream in whole buffers.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// Opens the input at `path` for reading. A directory is returned as is, for the caller
/// to name in its own terms.
///
/// Inputs are memory-mapped or read by offset, which a pipe cannot do: a FIFO or a
/// process substitution (`<(cat g.npy)`) would otherwise read as an empty file and be
/// reported as "not a .npy file".
///
/// # Errors
/// [`Error::Config`] for `-` or a path that is not a regular file; [`Error::Io`] if it
/// cannot be opened.
pub(crate) fn open_input(path: &Path) -> Result<File> {
    if path == Path::new("-") {
        return Err(Error::Config(
            "-: this command cannot read standard input (only `vectro compress - OUTPUT` does); \
             save the stream to a file first and give its path"
                .into(),
        ));
    }
    // Checked before opening: opening a FIFO with no writer would block for ever.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "opening", e))?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(Error::Config(format!(
            "{}: not a regular file (a pipe, FIFO, socket or device); vectro needs to map \
             or seek its inputs: save it to a file first (to stream a .npy into compress, \
             use `vectro compress - OUTPUT`)",
            path.display()
        )));
    }
    File::open(path).map_err(|e| Error::io(path, "opening", e))
}

/// Reads until `buf` is full or the input ends; returns the bytes read. Unlike
/// `read_exact`, a short read says where the input ended, for the error message.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
