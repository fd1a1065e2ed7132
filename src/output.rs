//! Crash-safe output files: write to a temporary file beside the target, fsync, rename.
//!
//! A half-written file never sits at the final path. If the process dies, only the
//! temporary file remains; if an error is returned, the temporary file is removed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// Whether and how hard to make the output durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync the file and its directory before and after the rename (the default).
    #[default]
    Fsync,
    /// Skip fsync: for scratch outputs that a crash may lose.
    None,
}

/// An output being written; [`AtomicOutput::commit`] puts it in place.
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    tmp: NamedTempFile,
    overwrite: bool,
    durability: Durability,
}

impl AtomicOutput {
    /// Starts an output for `target`. Fails at once if `target` exists and `overwrite` is
    /// false, so no work is wasted.
    ///
    /// # Errors
    /// [`Error::OutputExists`], or [`Error::Io`] if the temporary file cannot be created.
    pub fn create(target: &Path, overwrite: bool, durability: Durability) -> Result<Self> {
        if !overwrite && target.exists() {
            return Err(Error::OutputExists(target.to_path_buf()));
        }
        let dir = parent_dir(target);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, "creating a temporary file in", e))?;
        Ok(AtomicOutput {
            target: target.to_path_buf(),
            tmp,
            overwrite,
            durability,
        })
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary path being written.
    pub fn tmp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// The temporary file, for writing.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// A buffered writer on the temporary file.
    pub fn writer(&self) -> BufWriter<&File> {
        BufWriter::with_capacity(1 << 20, self.tmp.as_file())
    }

    /// Flushes to disk (unless durability is off) and renames into place.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file; [`Error::OutputExists`] if the target appeared
    /// meanwhile and overwriting is off. The temporary file is removed either way.
    pub fn commit(self) -> Result<()> {
        let tmp_path = self.tmp.path().to_path_buf();
        if self.durability == Durability::Fsync {
            self.tmp
                .as_file()
                .sync_all()
                .map_err(|e| Error::io(&tmp_path, "syncing", e))?;
        }
        let target = self.target;
        let persisted = if self.overwrite {
            self.tmp.persist(&target).map_err(|e| e.error)
        } else {
            self.tmp.persist_noclobber(&target).map_err(|e| e.error)
        };
        persisted.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::OutputExists(target.clone())
            } else {
                Error::io(&target, "renaming into place", e)
            }
        })?;
        if self.durability == Durability::Fsync {
            sync_dir(parent_dir(&target))?;
        }
        Ok(())
    }
}

fn parent_dir(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// fsyncs a directory so that a rename in it survives a crash.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "syncing directory", e))
}

/// Writes all of `bytes` to a new file at `target`, atomically.
///
/// # Errors
/// As [`AtomicOutput::create`] and [`AtomicOutput::commit`].
pub fn write_file(target: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    let out = AtomicOutput::create(target, overwrite, Durability::Fsync)?;
    let mut w = out.writer();
    w.write_all(bytes)
        .and_then(|_| w.flush())
        .map_err(|e| Error::io(out.tmp_path(), "writing", e))?;
    drop(w);
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_existing_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("o.bin");
        write_file(&t, b"one", false).unwrap();
        assert!(matches!(
            write_file(&t, b"two", false),
            Err(Error::OutputExists(_))
        ));
        assert_eq!(std::fs::read(&t).unwrap(), b"one");
        write_file(&t, b"two", true).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"two");
        // An abandoned output leaves nothing behind.
        drop(AtomicOutput::create(&dir.path().join("x"), false, Durability::None).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
