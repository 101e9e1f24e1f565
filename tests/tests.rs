//! liyu's integration tests: one binary, one module per area, a small harness in `util`.

mod harness;
/// The fuzz targets' assertions, shared with `fuzz/` (see its `src/lib.rs`).
#[path = "../fuzz/src/lib.rs"]
mod oracles;
mod util;

mod api;
mod browser;
mod check_cli;
mod checker;
mod demo;
mod faults;
mod fuzz_replay;
mod process;
mod props;
mod proxy;
mod quality;
mod security;
mod soak;
mod store;
mod thirdparty;
