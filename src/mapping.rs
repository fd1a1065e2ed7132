//! Read-only memory maps that survive the file being truncated under them.
//!
//! Reading a page of a mapping past the end of its file raises SIGBUS, which kills the
//! process with no message. That happens whenever another process truncates a file while
//! Vectro reads it: a log rotation, a producer writing the same path again, a shared
//! filesystem. [`Map`] registers its address range in a fixed table; a process-wide SIGBUS
//! handler that finds the faulting address in a registered range replaces the missing page
//! with a page of zeros (so the reading instruction completes) and marks the map as cut.
//! Every reader calls [`Map::check`] after it has used the bytes of a chunk, and before it
//! writes anything derived from them: a cut map is then an [`Error::Truncated`] naming the
//! file, and nothing read from the zero pages reaches an output.
//!
//! A SIGBUS at an address outside every registered map (a bug, or a map made elsewhere) is
//! handed to the handler that was installed before, or, if there was none, re-raised with
//! the default action, so it still kills the process as it would have.

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memmap2::Mmap;

use crate::error::{Error, Result};

/// How many maps can be registered at once. A map that finds the table full still works,
/// unguarded (as every map did before this module).
const SLOTS: usize = 256;

/// One registered range. `start == 0` means the slot is free; a slot is claimed by a CAS on
/// `start`, and its `len` is written before `live` is set.
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    live: AtomicBool,
    cut: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    live: AtomicBool::new(false),
    cut: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];

/// The SIGBUS disposition found when the handler was installed.
static mut PREVIOUS: Option<libc::sigaction> = None;
static INSTALL: Once = Once::new();

/// A read-only map of a whole file, guarded against truncation.
#[derive(Debug)]
pub struct Map {
    map: Mmap,
    /// The table slot, if one was free.
    slot: Option<usize>,
    path: PathBuf,
}

impl Map {
    /// Maps `file` (opened from `path`, which errors name) read-only.
    ///
    /// # Errors
    /// [`Error::Io`] if the kernel refuses the mapping.
    pub fn new(file: &File, path: &Path) -> Result<Map> {
        // SAFETY: the map is read-only and its bytes are only read as plain bytes; a file
        // changed under it can make those bytes wrong (which the checksums and `check`
        // catch) but not unsound, and a file cut short is handled by the SIGBUS guard.
        let map = unsafe { Mmap::map(file) }.map_err(|e| Error::io(path, "mapping", e))?;
        let slot = register(map.as_ptr() as usize, map.len());
        Ok(Map {
            map,
            slot,
            path: path.to_path_buf(),
        })
    }

    /// Whether a read met a page past the end of the file.
    pub fn is_cut(&self) -> bool {
        self.slot
            .is_some_and(|s| TABLE[s].cut.load(Ordering::SeqCst))
    }

    /// Fails if the file was cut short under the map: what was read from it since it was
    /// cut is zeros, not the file's bytes.
    ///
    /// # Errors
    /// [`Error::Truncated`] naming the file, its mapped length and its length now.
    pub fn check(&self) -> Result<()> {
        if !self.is_cut() {
            return Ok(());
        }
        let now = std::fs::metadata(&self.path).map(|m| m.len()).ok();
        Err(Error::Truncated {
            path: self.path.clone(),
            mapped: self.map.len() as u64,
            now,
        })
    }

    /// The underlying map (for `madvise`).
    pub fn mmap(&self) -> &Mmap {
        &self.map
    }
}

impl Deref for Map {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        if let Some(s) = self.slot {
            let slot = &TABLE[s];
            slot.live.store(false, Ordering::SeqCst);
            slot.cut.store(false, Ordering::SeqCst);
            slot.len.store(0, Ordering::SeqCst);
            slot.start.store(0, Ordering::SeqCst);
        }
    }
}

/// Claims a slot for `[start, start + len)`; `None` for an empty map or a full table.
fn register(start: usize, len: usize) -> Option<usize> {
    if len == 0 || start == 0 {
        return None;
    }
    INSTALL.call_once(install);
    for (i, slot) in TABLE.iter().enumerate() {
        if slot
            .start
            .compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            slot.len.store(len, Ordering::SeqCst);
            slot.cut.store(false, Ordering::SeqCst);
            slot.live.store(true, Ordering::SeqCst);
            return Some(i);
        }
    }
    None
}

fn install() {
    // SAFETY: sigaction is given zeroed (valid) structs that outlive the calls and a handler
    // that only makes async-signal-safe calls (atomics, mmap, sigaction, raise). PREVIOUS is
    // written once, here, inside `Once`, before the handler that reads it is installed.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut new.sa_mask);
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) == 0 {
            PREVIOUS = Some(old);
        }
        libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut());
    }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &TABLE {
        if !slot.live.load(Ordering::SeqCst) {
            continue;
        }
        let start = slot.start.load(Ordering::SeqCst);
        let len = slot.len.load(Ordering::SeqCst);
        if addr < start || addr >= start + len {
            continue;
        }
        slot.cut.store(true, Ordering::SeqCst);
        // SAFETY: sysconf is async-signal-safe in practice (glibc reads a cached value).
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let at = addr & !(page - 1);
        // SAFETY: replaces one page inside a read-only map this process owns (the range is
        // registered and live) with a private zero page; the faulting read then completes,
        // and `check` reports the cut before anything read from it is used.
        let p = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            return;
        }
        break;
    }
    // Not ours (or the page could not be replaced): behave as if this handler were absent.
    // SAFETY: PREVIOUS was written before this handler was installed and is never written
    // again; calling the previous handler or restoring the default action and re-raising
    // are what a process without this handler would have done.
    unsafe {
        let prev = *std::ptr::addr_of!(PREVIOUS);
        match prev {
            Some(p)
                if p.sa_sigaction != libc::SIG_DFL
                    && p.sa_sigaction != libc::SIG_IGN
                    && p.sa_flags & libc::SA_SIGINFO != 0 =>
            {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(p.sa_sigaction);
                f(sig, info, ctx);
            }
            Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(p.sa_sigaction);
                f(sig);
            }
            _ => {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut dfl.sa_mask);
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                libc::raise(libc::SIGBUS);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_cut_under_the_map_is_an_error_not_a_sigbus() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        // SAFETY: sysconf only reads a system setting.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; page * 8]).unwrap();
        drop(f);
        let file = File::open(&path).unwrap();
        let map = Map::new(&file, &path).unwrap();
        assert_eq!(map[page * 5], 7);
        map.check().unwrap();
        // Another process (here: this one) cuts the file to two pages.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(page as u64 * 2)
            .unwrap();
        // Pages that are still in the file read as before.
        assert_eq!(map[page], 7);
        assert!(!map.is_cut());
        // A page past the new end: without the guard, SIGBUS. With it, a zero page.
        // SAFETY: the address is inside the live 8-page map; the page behind it is past the
        // file's end, which the guard under test turns into a zero page instead of SIGBUS.
        let v = unsafe { std::ptr::read_volatile(map.as_ptr().add(page * 6 + 3)) };
        assert_eq!(v, 0);
        assert!(map.is_cut());
        let e = map.check().unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("x.bin"), "{msg}");
        assert!(msg.contains("truncated"), "{msg}");
        assert!(msg.contains(&format!("{}", page * 8)), "{msg}");
        assert_eq!(e.kind(), crate::ErrorKind::Io);
        drop(map);
        // The slot is free again, and a new map of the short file is not cut.
        let file = File::open(&path).unwrap();
        let map = Map::new(&file, &path).unwrap();
        assert!(!map.is_cut());
        map.check().unwrap();
    }
}
