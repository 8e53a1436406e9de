//! The integration tests: the compiled binary, an isolated HOME, an in-process fake STACKIT
//! token endpoint. One test binary keeps link time down.

#[path = "../support/mod.rs"]
mod support;

mod cache;
mod check;
mod configure_docker;
mod e2e;
mod engines;
mod exchange;
mod faults;
mod harbor;
mod identity;
mod keyless;
mod kubelet;
mod protocol;
mod robots;
mod secrets;
