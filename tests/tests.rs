//! liyu's integration tests: one binary, one module per area, a small harness in `util`.

mod harness;
mod util;

mod api;
mod browser;
mod check_cli;
mod checker;
mod demo;
mod proxy;
mod quality;
mod store;
mod thirdparty;
