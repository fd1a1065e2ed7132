//! A zeroed buffer of [`Lanes`] that asks Linux for transparent huge pages when it is big.
//!
//! ADC's tables take tens of MB (49 MB for 1000 queries at m = 48), written once. With
//! 4 KiB pages their first-touch page faults cost more than computing the tables (7% of
//! an eval's CPU time in a profile); 2 MiB pages take 512 times fewer faults, and the
//! scan's random reads across a block's table miss the TLB less. Where the advice is not
//! taken (another OS, THP off), the buffer is an ordinary allocation.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::simd::adc::Lanes;

/// The size and alignment of a transparent huge page on x86-64 and most aarch64 Linux.
const HUGE: usize = 2 << 20;

/// An owned, zero-initialised `[Lanes]`.
pub(crate) struct LanesBuf {
    ptr: NonNull<Lanes>,
    len: usize,
    /// `None` for an empty buffer, which owns no allocation.
    layout: Option<Layout>,
}

// SAFETY: `LanesBuf` owns its elements exclusively, as a `Vec<Lanes>` does, and `Lanes`
// is plain floats.
unsafe impl Send for LanesBuf {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for LanesBuf {}

impl LanesBuf {
    /// `len` zeroed vectors; from 2 MiB up, 2 MiB-aligned and advised as huge pages.
    ///
    /// # Panics
    /// If the size overflows `usize`; aborts if the allocation fails, as `Vec` does.
    pub(crate) fn zeroed(len: usize) -> LanesBuf {
        let size = len
            .checked_mul(size_of::<Lanes>())
            .expect("ADC tables overflow the address space");
        if size == 0 {
            return LanesBuf {
                ptr: NonNull::dangling(),
                len: 0,
                layout: None,
            };
        }
        let align = if size >= HUGE {
            HUGE
        } else {
            align_of::<Lanes>()
        };
        let layout = Layout::from_size_align(size.next_multiple_of(align), align)
            .expect("ADC tables overflow the address space");
        // SAFETY: the layout's size is not zero.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<Lanes>()) else {
            handle_alloc_error(layout)
        };
        #[cfg(target_os = "linux")]
        if align == HUGE {
            // SAFETY: `raw..raw + layout.size()` is this allocation, 2 MiB-aligned and not
            // yet touched; MADV_HUGEPAGE only advises the kernel (an error leaves small
            // pages, which is fine, so it is ignored).
            unsafe { libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE) };
        }
        // SAFETY: `raw` is valid for writes of `size` bytes, and all-zero bytes are a valid
        // `Lanes` (sixteen 0.0 floats).
        unsafe { std::ptr::write_bytes(raw, 0, size) };
        LanesBuf {
            ptr,
            len,
            layout: Some(layout),
        }
    }
}

impl Deref for LanesBuf {
    type Target = [Lanes];
    fn deref(&self) -> &[Lanes] {
        // SAFETY: `ptr` is valid for `len` initialised, aligned `Lanes` (or dangling with
        // `len` 0), owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for LanesBuf {
    fn deref_mut(&mut self) -> &mut [Lanes] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for LanesBuf {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: allocated in `zeroed` with this very layout, and freed only here.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}

impl std::fmt::Debug for LanesBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LanesBuf({} vectors)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_huge_buffers_are_zeroed_aligned_and_writable() {
        for len in [0, 1, 3, HUGE / 64 - 1, HUGE / 64 + 5] {
            let mut b = LanesBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|l| l.0 == [0.0; 16]));
            assert_eq!(b.as_ptr() as usize % 64, 0);
            if len * 64 >= HUGE {
                assert_eq!(b.as_ptr() as usize % HUGE, 0);
            }
            for (i, l) in b.iter_mut().enumerate() {
                l.0[15] = i as f32;
            }
            assert!(b.iter().enumerate().all(|(i, l)| l.0[15] == i as f32));
        }
    }
}
