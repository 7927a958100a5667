//! Rule 5 of the core issue: an uncontended acquisition takes the fast path
//! in the caller's thread, with no allocation beyond the guard. Counted with
//! a counting global allocator, in a binary of its own (one test, so that no
//! other test thread allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use machine_mutex::Spec;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// The threads of this process (Linux: `/proc/self/task`; elsewhere the
/// check is skipped).
fn threads() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

/// Each uncontended acquire + release (blocking or try, legacy socket on or
/// off, descriptor kept or not) allocates one buffer, the lock file path:
/// the environment read of `TMPDIR`, grown once to the full path (two
/// allocator calls); a kept descriptor's guard keeps it for the release.
/// No thread is started.
#[test]
fn uncontended_acquire_allocates_only_the_path_and_starts_no_thread() {
    let name = format!("alloc-{}", std::process::id());
    let threads_before = threads();
    for legacy in [false, true] {
        for keep in [true, false] {
            let spec = Spec::new(&name)
                .with_legacy_socket(legacy)
                .with_kept_descriptor(keep);
            // The first acquisition creates the file (and keeps its descriptor).
            drop(spec.acquire().unwrap());
            let acquire = allocations_of(|| drop(spec.acquire().unwrap()));
            let try_acquire = allocations_of(|| drop(spec.try_acquire().unwrap()));
            eprintln!(
                "legacy socket {legacy}, kept {keep}: {acquire} and {try_acquire} allocations"
            );
            assert!(acquire <= 2, "acquire: {acquire} allocations");
            assert!(try_acquire <= 2, "try_acquire: {try_acquire} allocations");
            assert!(acquire > 0, "the counter counts");
        }
    }
    assert_eq!(threads(), threads_before, "no thread started");
}
