//! Crash-safe output files: write to a temporary file beside the target, fsync, rename.
//!
//! A half-written file never sits at the final path. Two kinds of temporary file exist:
//!
//! - [`AtomicOutput::create`]: a temporary file with a predictable name, [`tmp_path`]
//!   (`<dir>/.<name>.tmp`), removed if the output is abandoned (an error, or the value
//!   dropped without [`AtomicOutput::commit`]). A run killed before it could remove the
//!   file leaves it behind, and the next run for the same output truncates and reuses it,
//!   so retries never pile up orphans.
//! - [`AtomicOutput::create_resumable`]: a temporary file with a predictable name,
//!   [`partial_path`] (`<dir>/.<name>.partial`). It survives a crash or an error so that
//!   `compress --resume` can continue it.
//!
//! Both are locked with an advisory `flock` while written, so that a second writer of the
//! same output fails at once with [`Error::Locked`]; the kernel drops the lock of a killed
//! process, which is how a stale file is told from a live one. The two suffixes differ, so
//! neither name can be the other's for any target.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::{Error, Result};

/// Bytes [`AtomicOutput::writer`] buffers; larger writes bypass the buffer.
const WRITE_BUFFER: usize = 64 << 10;

pub mod dest;
mod same_file;
mod write_behind;
pub use same_file::{check_not_input, same_file};
pub use write_behind::WriteBehind;

/// Whether and how hard to make the output durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync the file and its directory before and after the rename (the default).
    #[default]
    Fsync,
    /// Skip fsync: for scratch outputs that a crash may lose.
    None,
}

/// The predictable temporary path of a resumable output for `target`:
/// `<dir>/.<name>.partial`.
pub fn partial_path(target: &Path) -> PathBuf {
    hidden_sibling(target, "partial")
}

/// The predictable temporary path of an [`AtomicOutput::create`] output for `target`:
/// `<dir>/.<name>.tmp`.
pub fn tmp_path(target: &Path) -> PathBuf {
    hidden_sibling(target, "tmp")
}

/// The longest file name most filesystems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// `<dir>/.<name>.<suffix>` beside `target`. When that name would exceed [`NAME_MAX`] bytes
/// (an output named with 247 to 255 bytes), the name is cut and a hash of the whole name
/// added, `.<cut name>~<16 hex digits>.<suffix>`, so the temporary name is still valid,
/// still the same on every run (for `--resume`) and still distinct for distinct outputs.
fn hidden_sibling(target: &Path, suffix: &str) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let name = target.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    let mut out = Vec::with_capacity(NAME_MAX);
    out.push(b'.');
    if 1 + name.len() + 1 + suffix.len() <= NAME_MAX {
        out.extend_from_slice(name);
    } else {
        // FNV-1a: stable across runs and builds, unlike std's hasher.
        let hash = name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let tag = format!("~{hash:016x}");
        let keep = NAME_MAX - 1 - tag.len() - 1 - suffix.len();
        // Cut at a character boundary when the name is UTF-8, so the result stays readable.
        let cut = match std::str::from_utf8(name) {
            Ok(s) => (0..=keep)
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0),
            Err(_) => keep,
        };
        out.extend_from_slice(&name[..cut]);
        out.extend_from_slice(tag.as_bytes());
    }
    out.push(b'.');
    out.extend_from_slice(suffix.as_bytes());
    parent_dir(target).join(std::ffi::OsString::from_vec(out))
}

/// An output being written; [`AtomicOutput::commit`] puts it in place.
#[derive(Debug)]
pub struct AtomicOutput {
    target: PathBuf,
    file: File,
    /// Removes the temporary file when dropped; `None` once committed or kept.
    tmp: Option<TempPath>,
    tmp_path: PathBuf,
    keep_on_drop: bool,
    overwrite: bool,
    durability: Durability,
    /// Disk blocks were reserved past the end of the file, to be released at commit.
    preallocated: bool,
}

impl AtomicOutput {
    /// Starts an output for `target` at [`tmp_path`], locked; a stale temporary file left
    /// by a killed run is truncated and reused. Fails at once if `target` exists and
    /// `overwrite` is false, so no work is wasted.
    ///
    /// # Errors
    /// [`Error::OutputExists`]; [`Error::Locked`] if another process is writing the same
    /// output; [`Error::Io`] if the temporary file cannot be created.
    pub fn create(target: &Path, overwrite: bool, durability: Durability) -> Result<Self> {
        check_target(target, overwrite)?;
        let path = tmp_path(target);
        let file = open_locked(&path, target)?;
        let out = AtomicOutput {
            target: target.to_path_buf(),
            file,
            tmp: Some(
                TempPath::try_from_path(&path)
                    .map_err(|e| Error::io(&path, "opening the temporary output", e))?,
            ),
            tmp_path: path,
            keep_on_drop: false,
            overwrite,
            durability,
            preallocated: false,
        };
        // The lock is ours, so whatever the file holds is a killed run's leftovers.
        out.truncate(0)?;
        Ok(out)
    }

    /// Starts a resumable output for `target` at [`partial_path`]: opens it read-write
    /// without truncating (an earlier run's chunks may be reused) and takes an exclusive
    /// advisory lock on it.
    ///
    /// The caller decides what to keep: call [`AtomicOutput::truncate`] to start afresh.
    /// If the output is dropped without a commit, the file stays for a later resume while
    /// [`AtomicOutput::keep_on_drop`] is true (the default here), and is removed otherwise.
    ///
    /// # Errors
    /// [`Error::OutputExists`]; [`Error::Locked`] if another process is writing the same
    /// output; [`Error::Io`] if the file cannot be opened or locked.
    pub fn create_resumable(
        target: &Path,
        overwrite: bool,
        durability: Durability,
    ) -> Result<Self> {
        check_target(target, overwrite)?;
        let path = partial_path(target);
        let file = open_locked(&path, target)?;
        let tmp = TempPath::try_from_path(&path)
            .map_err(|e| Error::io(&path, "opening the partial output", e))?;
        Ok(AtomicOutput {
            target: target.to_path_buf(),
            file,
            tmp: Some(tmp),
            tmp_path: path,
            keep_on_drop: true,
            overwrite,
            durability,
            preallocated: false,
        })
    }

    /// Whether an abandoned output keeps its temporary file (for `--resume`).
    pub fn keep_on_drop(&mut self, keep: bool) {
        self.keep_on_drop = keep;
    }

    /// Empties the temporary file, to start the output afresh.
    ///
    /// # Errors
    /// [`Error::Io`] naming the temporary file.
    pub fn truncate(&self, len: u64) -> Result<()> {
        // ext4 runs its truncate even when the size does not change, and a file truncated
        // to 0 is written back when closed (its `auto_da_alloc` heuristic): a fresh output
        // would start writing back everything it holds when closed, even with --no-fsync.
        if self.len()? == len {
            return Ok(());
        }
        self.file
            .set_len(len)
            .map_err(|e| Error::io(&self.tmp_path, "truncating", e))
    }

    fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io(&self.tmp_path, "reading metadata of", e))
    }

    /// Reserves disk blocks for an output expected to grow to `len` bytes, without
    /// changing the file's size (so a resume still sees only what was written).
    ///
    /// Writing new pages into reserved blocks skips the filesystem's per-page delayed
    /// allocation, which on ext4 here is about 40% of the kernel's cost of writing a new
    /// file. Best effort: where `fallocate` is not supported, or the disk is too full for
    /// the whole reservation, nothing changes and the writes report any real shortage.
    /// Blocks left past the end are released by [`AtomicOutput::commit`].
    pub fn preallocate(&mut self, len: u64) {
        let Ok(cur) = self.len() else { return };
        if len <= cur || i64::try_from(len).is_err() {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: fallocate only reads the descriptor, which `self.file` keeps open;
            // KEEP_SIZE reserves blocks past the end and changes no byte of the file.
            unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_KEEP_SIZE,
                    cur as libc::off_t,
                    (len - cur) as libc::off_t,
                )
            };
            // Even a failed call (ENOSPC) may have reserved part of the range: trim at
            // commit whatever happened.
            self.preallocated = true;
        }
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary path being written.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// The temporary file, for writing.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A buffered writer on the temporary file, at the file's current position. A durable
    /// output is written back as it grows ([`WriteBehind`]), so the final fsync is short.
    ///
    /// The buffer gathers headers, index and trailer; a chunk payload of at least
    /// 64 KiB (any default chunk of 384 dims) goes straight to the file.
    /// (With a 1 MiB buffer, int4's 0.5 MiB payloads were first copied into it: 2.5% of
    /// the samples of an int4 compress in `perf`, all on the single writer thread.)
    pub fn writer(&self) -> BufWriter<OutputFile<'_>> {
        let file = match self.durability {
            Durability::Fsync => WriteBehind::new(&self.file)
                .map_or(OutputFile::Plain(&self.file), OutputFile::WriteBehind),
            Durability::None => OutputFile::Plain(&self.file),
        };
        BufWriter::with_capacity(WRITE_BUFFER, file)
    }

    /// Writes `bytes` as the whole output and commits it ([`AtomicOutput::commit`]).
    ///
    /// # Errors
    /// [`Error::Io`] naming the temporary file; as [`AtomicOutput::commit`].
    pub fn commit_bytes(self, bytes: &[u8]) -> Result<()> {
        let mut w = self.writer();
        w.write_all(bytes)
            .and_then(|_| w.flush())
            .map_err(|e| Error::io(self.tmp_path(), "writing", e))?;
        drop(w);
        self.commit()
    }

    /// Flushes to disk (unless durability is off) and renames into place.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file; [`Error::OutputExists`] if the target appeared
    /// meanwhile and overwriting is off. On an error the temporary file is removed, or kept
    /// if it is resumable and [`AtomicOutput::keep_on_drop`] is set.
    pub fn commit(mut self) -> Result<()> {
        if self.preallocated {
            // Cutting the file at its own size releases reserved blocks past the end.
            let len = self.len()?;
            self.file
                .set_len(len)
                .map_err(|e| Error::io(&self.tmp_path, "truncating", e))?;
        }
        if self.durability == Durability::Fsync {
            self.file
                .sync_all()
                .map_err(|e| Error::io(&self.tmp_path, "syncing", e))?;
        }
        let Some(tmp) = self.tmp.take() else {
            unreachable!("only commit, which consumes self, takes the temporary file")
        };
        let target = self.target.clone();
        let persisted = if self.overwrite {
            tmp.persist(&target).map_err(|e| (e.error, e.path))
        } else {
            tmp.persist_noclobber(&target)
                .map_err(|e| (e.error, e.path))
        };
        if let Err((e, tmp)) = persisted {
            self.tmp = Some(tmp);
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::OutputExists(target)
            } else {
                Error::io(&target, "renaming into place", e)
            });
        }
        if self.durability == Durability::Fsync {
            sync_dir(parent_dir(&target))?;
        }
        Ok(())
    }
}

/// The file under [`AtomicOutput::writer`]'s buffer.
#[derive(Debug)]
pub enum OutputFile<'a> {
    /// Written as is; the page cache writes it back when it likes.
    Plain(&'a File),
    /// Written back as it grows.
    WriteBehind(WriteBehind<'a>),
}

impl Write for OutputFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            OutputFile::Plain(f) => f.write(buf),
            OutputFile::WriteBehind(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            OutputFile::Plain(f) => f.flush(),
            OutputFile::WriteBehind(w) => w.flush(),
        }
    }
}

impl std::io::Seek for OutputFile<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        match self {
            OutputFile::Plain(f) => f.seek(to),
            OutputFile::WriteBehind(w) => w.seek(to),
        }
    }
}

/// A writer that reports its first error and then quietly accepts (and drops) everything
/// after it, keeping track of where writes and seeks would have left it. For writers that
/// write again when dropped after a failure, as the zip crate's does to finish an archive
/// (printing to stderr when that fails too): the first error is the one to report, and the
/// output is abandoned anyway.
#[derive(Debug)]
pub struct FirstError<W> {
    inner: W,
    failed: bool,
    /// Where the next write goes, and the end of what was written.
    pos: u64,
    len: u64,
}

impl<W> FirstError<W> {
    /// Wraps `inner`, which must be at position 0.
    pub fn new(inner: W) -> Self {
        FirstError {
            inner,
            failed: false,
            pos: 0,
            len: 0,
        }
    }

    fn wrote(&mut self, n: usize) {
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
    }
}

impl<W: Write> Write for FirstError<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.failed {
            match self.inner.write(buf) {
                Ok(n) => {
                    self.wrote(n);
                    return Ok(n);
                }
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        self.wrote(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.failed = r.is_err();
        r
    }
}

impl<W: std::io::Seek> std::io::Seek for FirstError<W> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        if !self.failed {
            let r = self.inner.seek(to);
            match &r {
                Ok(p) => self.pos = *p,
                Err(_) => self.failed = true,
            }
            return r;
        }
        let base = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = base.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        // Otherwise dropping the TempPath removes the file.
        if let Some(tmp) = self.tmp.take()
            && self.keep_on_drop
        {
            // Leave the partial output for `--resume`; dropping the file releases the lock.
            let _ = tmp.keep();
        }
    }
}

/// Checks up front that an output can be written at `target`, as [`AtomicOutput::create`]
/// will: for a command that works long before it creates its output.
///
/// # Errors
/// [`Error::Config`] for `-`, a directory, anything else that is not a regular file (a
/// device such as /dev/null, a FIFO, a socket), or a name directly in /dev, or in /proc or
/// /sys; [`Error::OutputExists`].
pub fn check_target(target: &Path, overwrite: bool) -> Result<()> {
    // Commands that can stream handle `-` before they get here; for the others it would
    // quietly become a file named `-`.
    if target == Path::new("-") {
        return Err(Error::Config(
            "-: this command writes files only; give --out a path, not -".into(),
        ));
    }
    if target.is_dir() || target.file_name().is_none() {
        return Err(Error::Config(format!(
            "{}: is a directory; give the path of the output file",
            target.display()
        )));
    }
    // The output is renamed into place, and a rename replaces whatever the name holds:
    // `--out /dev/null --force`, run as root, left a regular file at /dev/null (every later
    // `> /dev/null` then wrote to disk). Devices, FIFOs and sockets are refused, --force
    // or not.
    if let Ok(meta) = std::fs::metadata(target)
        && !meta.is_file()
    {
        return Err(Error::Config(format!(
            "{}: not a regular file (a device, FIFO or socket); vectro writes its output to \
             a temporary file beside it and renames it into place, which would replace it: \
             give the path of a regular file (to discard the output or pipe it, use \
             --out - where the command has it and redirect stdout)",
            target.display()
        )));
    }
    // Likewise the names in /dev, /proc and /sys: `--out /dev/stdout` with stdout redirected
    // to a file passes the check above, and as root the temporary file would be created in
    // /dev and renamed over the /dev/stdout link. (/dev/shm and other mounts below /dev
    // are ordinary directories and stay allowed.)
    if let Ok(dir) = std::fs::canonicalize(parent_dir(target))
        && (dir == Path::new("/dev") || dir.starts_with("/proc") || dir.starts_with("/sys"))
    {
        return Err(Error::Config(format!(
            "{}: in {}, where vectro cannot write a temporary file and rename it into place: \
             give a path on an ordinary filesystem (for stdout, use --out - where the command \
             has it and redirect)",
            target.display(),
            dir.display()
        )));
    }
    if !overwrite && target.exists() {
        return Err(Error::OutputExists(target.to_path_buf()));
    }
    Ok(())
}

/// Opens (creating if need be, never truncating) and locks the temporary file `path` of
/// `target`.
///
/// The file at `path` may be renamed into place or removed by the writer whose lock we
/// waited out, so the lock is only good if `path` still names the locked file: otherwise
/// truncating it would destroy that writer's finished output. Then we open afresh.
fn open_locked(path: &Path, target: &Path) -> Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    for _ in 0..8 {
        // 0666 before the umask, like any file a program creates: a private 0600 would
        // leave outputs unreadable to the services (a vector DB loader, say) they are
        // written for.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::io(parent_dir(target), "creating the output in directory", e)
                }
                _ => Error::io(path, "creating the temporary output", e),
            })?;
        lock_exclusive(&file, path, target)?;
        let locked = file
            .metadata()
            .map_err(|e| Error::io(path, "reading metadata of", e))?;
        if std::fs::metadata(path).is_ok_and(|m| m.dev() == locked.dev() && m.ino() == locked.ino())
        {
            return Ok(file);
        }
    }
    Err(Error::Locked {
        target: target.to_path_buf(),
        lock: path.to_path_buf(),
    })
}

/// Takes an exclusive advisory lock, failing at once if another process holds it. The lock
/// lives as long as the file handle, and the kernel releases it if the process dies.
fn lock_exclusive(file: &File, path: &Path, target: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        return Err(Error::Locked {
            target: target.to_path_buf(),
            lock: path.to_path_buf(),
        });
    }
    Err(Error::io(path, "locking", e))
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
    AtomicOutput::create(target, overwrite, Durability::Fsync)?.commit_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_reports_once_then_swallows() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 + buf.len() > 4 {
                    return Err(std::io::ErrorKind::StorageFull.into());
                }
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = FirstError::new(Full(0));
        w.write_all(b"abc").unwrap();
        let e = w.write_all(b"defg").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        w.write_all(b"more").unwrap();
        w.flush().unwrap();
        assert_eq!(w.inner.0, 3);
    }

    #[test]
    fn outputs_get_the_usual_permissions_not_private_ones() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("o.bin");
        write_file(&t, b"x", false).unwrap();
        // SAFETY: umask only swaps a process-wide integer; set it back at once.
        let umask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        let mode = std::fs::metadata(&t).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode,
            0o666 & !(umask as u32),
            "mode {mode:o}, umask {umask:o}"
        );
    }

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

    #[test]
    fn preallocated_blocks_past_the_end_are_released_at_commit() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("x");
        let mut out = AtomicOutput::create(&t, false, Durability::None).unwrap();
        out.preallocate(64 << 20);
        let mut w = out.writer();
        w.write_all(b"0123456789").unwrap();
        w.flush().unwrap();
        drop(w);
        // Where fallocate works, 64 MiB is reserved but the size is what was written.
        assert_eq!(out.file().metadata().unwrap().len(), 10);
        out.commit().unwrap();
        let m = std::fs::metadata(&t).unwrap();
        assert_eq!(m.len(), 10);
        assert!(m.blocks() * 512 < 1 << 20, "{} blocks kept", m.blocks());
    }

    #[test]
    fn a_killed_runs_temp_file_is_reused_and_gone_after_success() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("d.npy");
        // What a SIGKILLed run leaves: the temporary file, with no process holding its lock.
        std::fs::write(tmp_path(&t), vec![7u8; 4096]).unwrap();
        let out = AtomicOutput::create(&t, false, Durability::None).unwrap();
        assert_eq!(out.tmp_path(), tmp_path(&t));
        assert_eq!(out.file().metadata().unwrap().len(), 0, "stale bytes kept");
        out.file().write_all(b"fresh").unwrap();
        out.commit().unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"fresh");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["d.npy"]);
    }

    #[test]
    fn a_second_writer_of_one_target_is_locked_out_while_the_first_lives() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("d.npy");
        let first = AtomicOutput::create(&t, false, Durability::None).unwrap();
        first.file().write_all(b"first").unwrap();
        let second = AtomicOutput::create(&t, false, Durability::None);
        assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
        // The loser neither truncated nor removed the live writer's file.
        assert_eq!(std::fs::read(tmp_path(&t)).unwrap(), b"first");
        first.commit().unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"first");
        // Once the first is done the name is free again.
        drop(AtomicOutput::create(&t, true, Durability::None).unwrap());
        assert!(!tmp_path(&t).exists());
    }

    #[test]
    fn temp_and_partial_names_never_meet() {
        for name in ["x", "x.tmp", "x.partial", ".x.partial", ".x.tmp"] {
            for other in ["x", "x.tmp", "x.partial", ".x.partial", ".x.tmp"] {
                assert_ne!(tmp_path(Path::new(name)), partial_path(Path::new(other)));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("o.vectro");
        let resumable = AtomicOutput::create_resumable(&t, false, Durability::None).unwrap();
        let plain = AtomicOutput::create(&t, false, Durability::None).unwrap();
        assert_ne!(resumable.tmp_path(), plain.tmp_path());
    }

    #[test]
    fn resumable_output_is_locked_kept_and_committed() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("o.vectro");
        let a = AtomicOutput::create_resumable(&t, false, Durability::None).unwrap();
        assert_eq!(a.tmp_path(), partial_path(&t));
        let second = AtomicOutput::create_resumable(&t, false, Durability::None);
        assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
        a.file().write_all(b"chunks").unwrap();
        drop(a);
        assert_eq!(
            std::fs::read(partial_path(&t)).unwrap(),
            b"chunks",
            "kept for resume"
        );
        let mut b = AtomicOutput::create_resumable(&t, false, Durability::None).unwrap();
        b.keep_on_drop(false);
        drop(b);
        assert!(!partial_path(&t).exists(), "removed when not wanted");
        let c = AtomicOutput::create_resumable(&t, false, Durability::None).unwrap();
        c.file().write_all(b"done").unwrap();
        c.commit().unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"done");
        assert!(!partial_path(&t).exists());
        assert!(matches!(
            AtomicOutput::create_resumable(dir.path(), true, Durability::None),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn long_names_get_a_valid_distinct_stable_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        for len in [246usize, 247, 250, 255] {
            let a = dir.path().join("a".repeat(len));
            let b = dir.path().join(format!("{}b", "a".repeat(len - 1)));
            for p in [partial_path(&a), tmp_path(&a)] {
                let n = p.file_name().unwrap().len();
                assert!(n <= NAME_MAX, "{len}: {n}");
                // The filesystem takes it.
                std::fs::write(&p, b"x").unwrap();
                std::fs::remove_file(&p).unwrap();
            }
            assert_eq!(partial_path(&a), partial_path(&a));
            assert_ne!(partial_path(&a), partial_path(&b));
        }
        // Short names are as before.
        assert_eq!(
            partial_path(Path::new("/d/x.vectro")),
            Path::new("/d/.x.vectro.partial")
        );
        // A UTF-8 name is cut at a character boundary.
        let p = partial_path(&dir.path().join("é".repeat(127)));
        assert!(p.file_name().unwrap().to_str().is_some());
    }
}
