//! libFuzzer target: see `liyu_fuzz::codec` for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| liyu_fuzz::codec(data));
