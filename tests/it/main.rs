//! The integration tests: the compiled binary, an isolated HOME, an in-process fake STACKIT
//! token endpoint. One test binary keeps link time down. Every process a test starts goes
//! through the strict builder in `tests/support/cmd.rs`.

#[path = "../support/mod.rs"]
mod support;

mod builder;
mod cache;
mod check;
mod ci;
mod configure_docker;
mod e2e;
mod engines;
mod exchange;
mod fuzz_corpus;
mod harbor;
mod identity;
mod keyless;
mod kubelet;
mod locks;
mod protocol;
mod robots;
mod secrets;
mod terminal;
