//! What does the compiled checker cost to build and to hold?
//!
//! `liyu serve` pays these once at start-up (and the build again on every lexicon reload):
//! - jieba's dictionary: load time and heap, once per process;
//! - the shipped lexicon: parse time and heap (the rules as data);
//! - the checker built from it: build time and heap (automaton, patterns, rules), measured on a
//!   second build so that jieba's dictionary, loaded by the first, is not counted twice.
//!
//! Heap is counted by a global allocator that wraps the system's and keeps the bytes currently
//! allocated, so the figures are exact and do not drift with the machine's load; times are the median
//! of a few runs. Prints `key: value` lines that `benches/run.sh` folds into its table.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jieba_rs::Jieba;
use liyu::{Checker, Lexicon};

/// The system allocator, counting the bytes in use.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            IN_USE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning what it built, how long it took and the heap it still holds.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    let before = IN_USE.load(Ordering::Relaxed);
    let started = Instant::now();
    let value = f();
    let took = started.elapsed();
    let held = IN_USE.load(Ordering::Relaxed).saturating_sub(before);
    (value, took, held)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` hands every bench `--bench`; there is nothing to configure here.
    const RUNS: usize = 5;

    // jieba's dictionary on its own (the checker loads its own copy once per process, below).
    let mut jieba_times = Vec::new();
    let mut jieba_heap = 0;
    for _ in 0..RUNS {
        let (jieba, took, held) = measure(Jieba::new);
        jieba_times.push(took);
        jieba_heap = held;
        drop(jieba);
    }

    let mut parse_times = Vec::new();
    let mut lexicon = None;
    let mut lexicon_heap = 0;
    for _ in 0..RUNS {
        let (l, took, held) = measure(|| Lexicon::builtin().expect("built-in lexicon"));
        parse_times.push(took);
        lexicon_heap = held;
        lexicon = Some(l);
    }
    let lexicon = lexicon.expect("at least one run");

    // The first build also loads jieba's dictionary into the checker's process-wide copy.
    let (first, first_time, first_heap) =
        measure(|| Checker::new(lexicon.clone()).expect("checker"));
    let mut build_times = Vec::new();
    let mut checker_heap = 0;
    for _ in 0..RUNS {
        let (checker, took, held) = measure(|| Checker::new(lexicon.clone()).expect("checker"));
        build_times.push(took);
        checker_heap = held;
        drop(checker);
    }
    drop(first);

    println!("rules: {}", lexicon.rules().len());
    println!("jieba dictionary load: {:.1} ms", ms(median(jieba_times)));
    println!("jieba dictionary heap: {:.1} MiB", mib(jieba_heap));
    println!("lexicon parse: {:.1} ms", ms(median(parse_times)));
    println!("lexicon heap: {:.2} MiB", mib(lexicon_heap));
    println!("checker build: {:.1} ms", ms(median(build_times)));
    println!("checker heap: {:.2} MiB", mib(checker_heap));
    println!(
        "first checker build (with jieba): {:.1} ms, {:.1} MiB",
        ms(first_time),
        mib(first_heap)
    );
}
