//! Write-behind for durable outputs: start writing finished ranges back to disk while the
//! rest is still being computed, instead of leaving it all to the final fsync.
//!
//! Every [`STEP`] bytes written, `sync_file_range(SYNC_FILE_RANGE_WRITE)` queues the new
//! range for writeback and returns at once; ranges more than [`WINDOW`] behind the end are
//! then waited for, so a fast producer cannot pile up more dirty pages than that (the
//! kernel would otherwise let it fill ~20% of memory, then stall every writer on the
//! machine). The final fsync finds at most `WINDOW + STEP` bytes left to write. Errors are
//! not reported here: the fsync that follows reports any that matter.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

/// Bytes between writeback requests.
pub const STEP: u64 = 8 << 20;
/// Bytes allowed in flight (dirty or under writeback) behind the end.
pub const WINDOW: u64 = 64 << 20;

/// A [`Write`] on a file that queues what it wrote for writeback as it goes.
#[derive(Debug)]
pub struct WriteBehind<'a> {
    file: &'a File,
    /// The file position: the end of what this writer wrote.
    pos: u64,
    /// Everything before this was queued for writeback.
    queued: u64,
    /// Everything before this was waited for.
    waited: u64,
    step: u64,
    window: u64,
}

impl<'a> WriteBehind<'a> {
    /// Starts at the file's current position.
    ///
    /// # Errors
    /// Any error reading the file's position.
    pub fn new(file: &'a File) -> std::io::Result<Self> {
        Self::with_window(file, STEP, WINDOW)
    }

    pub(crate) fn with_window(file: &'a File, step: u64, window: u64) -> std::io::Result<Self> {
        let pos = (&*file).stream_position()?;
        Ok(WriteBehind {
            file,
            pos,
            queued: pos,
            waited: pos,
            step,
            window,
        })
    }

    fn write_behind(&mut self) {
        if self.pos < self.queued + self.step {
            return;
        }
        range(self.file, self.queued, self.pos, false);
        self.queued = self.pos;
        let done = self.pos.saturating_sub(self.window);
        if done > self.waited {
            range(self.file, self.waited, done, true);
            self.waited = done;
        }
    }
}

/// Queues `from..to` for writeback, and with `wait` waits until it is on disk.
fn range(file: &File, from: u64, to: u64, wait: bool) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let flags = if wait {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER
        } else {
            libc::SYNC_FILE_RANGE_WRITE
        };
        // SAFETY: sync_file_range only reads the descriptor, which `file` keeps open.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                flags,
            )
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to, wait);
}

impl Write for WriteBehind<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        self.write_behind();
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for WriteBehind<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        // Rewriting earlier bytes (a zip's local headers) dirties them again; the final
        // fsync takes care of those.
        self.queued = self.queued.min(self.pos);
        self.waited = self.waited.min(self.pos);
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_every_byte_in_place_whatever_the_window() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (step, window) in [(1, 1), (4096, 0), (10_000, 50_000), (STEP, WINDOW)] {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(b"head").unwrap();
            let mut w = WriteBehind::with_window(&f, step, window).unwrap();
            for part in data.chunks(7777) {
                w.write_all(part).unwrap();
            }
            w.seek(SeekFrom::Start(2)).unwrap();
            w.write_all(b"AD").unwrap();
            w.seek(SeekFrom::End(0)).unwrap();
            w.write_all(b"tail").unwrap();
            w.flush().unwrap();
            let mut back = Vec::new();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut back).unwrap();
            assert_eq!(&back[..4], b"heAD", "step {step}");
            assert_eq!(&back[4..4 + data.len()], &data[..], "step {step}");
            assert_eq!(&back[4 + data.len()..], b"tail", "step {step}");
        }
    }
}
