//! The process's allocator: mimalloc, asked for a block the way its fast path is reached.
//!
//! Why not the `mimalloc` crate's own `MiMalloc`: it passes every request to
//! `mi_malloc_aligned(size, align)`, even for the word alignment nearly every Rust type has.
//! mimalloc 3 serves that from its fast path only while the size's page has a free block at
//! hand. Otherwise, for any size that is not a power of two, it takes its slow path and
//! over-allocates by `align - 1`. Where that crosses a size class (48 bytes become 55, a
//! 64-byte block), the block comes from the next class up; that class's page is the one
//! refilled, and the size's own page, left empty, sends the next request of that size down the
//! same path. Under load 8.8 of a Redis event's 56 allocations took the over-allocating path,
//! and the aligned path came to 79 instructions per allocation (`benches/load/NOTES.md`,
//! fifteenth round).
//!
//! Every block mimalloc hands out is a whole number of machine words from a word-aligned start,
//! so a plain `mi_malloc` already satisfies an alignment of a word or less. Only larger
//! alignments (a tokio task's cache-line padding, say) go to the aligned functions.

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment every mimalloc block has: its sizes are counted in words.
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc, with word-aligned requests through its plain entry points.
pub struct Allocator;

fn word_aligned(layout: &Layout) -> bool {
    layout.align() <= WORD
}

// SAFETY: each function returns what mimalloc returns for the layout's size, aligned to the
// layout's alignment (by mimalloc's word granularity, or by asking for it), or null; `dealloc`
// and `realloc` get only pointers these functions returned, which `mi_free` and `mi_realloc*`
// accept whatever entry point made them.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's allocation functions take any size and a power-of-two alignment.
        unsafe {
            if word_aligned(&layout) {
                mi::mi_malloc(layout.size()) as *mut u8
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if word_aligned(&layout) {
                mi::mi_zalloc(layout.size()) as *mut u8
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its
        // alignment, by word granularity or by asking for it.
        unsafe {
            if word_aligned(&layout) {
                mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around mimalloc's small-object limit (1 KiB) and its word and power-of-two steps,
    /// each with every alignment from a byte to a page.
    fn layouts() -> impl Iterator<Item = Layout> {
        let sizes = [
            1, 7, 8, 9, 15, 16, 17, 24, 40, 48, 56, 72, 100, 1000, 1024, 1025, 1096, 2544, 4096,
            70_000,
        ];
        sizes.into_iter().flat_map(|size| {
            (0..=12).map(move |shift| Layout::from_size_align(size, 1 << shift).unwrap())
        })
    }

    fn aligned(ptr: *mut u8, layout: &Layout) -> bool {
        !ptr.is_null() && (ptr as usize) % layout.align() == 0
    }

    #[test]
    fn every_block_has_its_layouts_alignment_and_holds_its_size() {
        for layout in layouts() {
            // Many of one size, so that its page runs out and is refilled in between: the
            // path that over-allocated before.
            let blocks: Vec<*mut u8> = (0..300)
                .map(|i| unsafe {
                    let ptr = Allocator.alloc(layout);
                    assert!(aligned(ptr, &layout), "{layout:?} gave {ptr:p}");
                    std::ptr::write_bytes(ptr, i as u8, layout.size());
                    ptr
                })
                .collect();
            for (i, &ptr) in blocks.iter().enumerate() {
                let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                assert!(bytes.iter().all(|&b| b == i as u8), "{layout:?}: overlap");
                unsafe { Allocator.dealloc(ptr, layout) };
            }
        }
    }

    // In mimalloc's library, linked in whole; the crate declares them only with its `extended`
    // feature.
    unsafe extern "C" {
        fn mi_usable_size(ptr: *const c_void) -> usize;
        fn mi_good_size(size: usize) -> usize;
    }

    /// The defect this module exists for: many word-aligned blocks of a size that is not a
    /// power of two, enough to empty and refill its page many times, each come from the size's
    /// own class. Through `mi_malloc_aligned` every one of 20,000 blocks of 48 bytes took 64.
    #[test]
    fn word_aligned_blocks_come_from_their_own_size_class() {
        for size in [24, 48, 80, 96, 112, 160, 192, 224, 320, 448, 640, 896] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let class = unsafe { mi_good_size(size) };
            let blocks: Vec<*mut u8> = (0..20_000)
                .map(|_| unsafe { Allocator.alloc(layout) })
                .collect();
            let oversized = blocks
                .iter()
                .filter(|&&ptr| unsafe { mi_usable_size(ptr as *const c_void) } != class)
                .count();
            for ptr in blocks {
                unsafe { Allocator.dealloc(ptr, layout) };
            }
            assert_eq!(
                oversized, 0,
                "{size}-byte blocks of another class than {class}"
            );
        }
    }

    #[test]
    fn a_zeroed_block_is_zero_and_aligned() {
        for layout in layouts() {
            unsafe {
                // Dirty a block of the size first, so that a reused one would show.
                let dirty = Allocator.alloc(layout);
                std::ptr::write_bytes(dirty, 0xAB, layout.size());
                Allocator.dealloc(dirty, layout);
                let ptr = Allocator.alloc_zeroed(layout);
                assert!(aligned(ptr, &layout), "{layout:?} gave {ptr:p}");
                let bytes = std::slice::from_raw_parts(ptr, layout.size());
                assert!(bytes.iter().all(|&b| b == 0), "{layout:?}: not zeroed");
                Allocator.dealloc(ptr, layout);
            }
        }
    }

    #[test]
    fn a_reallocated_block_keeps_its_contents_and_alignment() {
        for layout in layouts() {
            for new_size in [1, layout.size() / 2 + 1, layout.size() * 3, 5000] {
                unsafe {
                    let ptr = Allocator.alloc(layout);
                    for i in 0..layout.size() {
                        *ptr.add(i) = (i % 251) as u8;
                    }
                    let grown = Allocator.realloc(ptr, layout, new_size);
                    let kept = Layout::from_size_align(new_size, layout.align()).unwrap();
                    assert!(
                        aligned(grown, &kept),
                        "{layout:?} -> {new_size} gave {grown:p}"
                    );
                    for i in 0..layout.size().min(new_size) {
                        assert_eq!(*grown.add(i), (i % 251) as u8, "{layout:?} -> {new_size}");
                    }
                    Allocator.dealloc(grown, kept);
                }
            }
        }
    }
}
