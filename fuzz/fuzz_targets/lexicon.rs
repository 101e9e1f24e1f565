//! libFuzzer target: see `liyu_fuzz::lexicon` for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| liyu_fuzz::lexicon(data));
