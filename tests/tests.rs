//! liyu's integration tests: one binary, one module per area, a small harness in `util`.

mod harness;
mod util;

mod check_cli;
mod checker;
mod proxy;
mod quality;
