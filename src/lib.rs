//! `docker-credential-stackit`: a Docker credential helper for the STACKIT Container Registry.
//!
//! Docker, podman, skopeo, buildah and nerdctl call the binary through `credHelpers`; it reads
//! a STACKIT service account key, signs an RS512 assertion, exchanges it for a short-lived access
//! token at the STACKIT token endpoint, caches the token safely on disk, and answers with
//! username = the service account's e-mail and password = the token.
//!
//! Data flows one way: stdin -> [`protocol`] -> [`server_url`] match -> [`config`] (identity) ->
//! [`token::cache`] (hit: done) -> [`key`] -> [`token::assertion`] -> [`token::exchange`] ->
//! cache write -> [`protocol`] -> stdout. [`verbs`] ties the steps together per verb.

#![warn(missing_docs)]

pub mod check;
pub mod clock;
pub mod config;
pub mod configure_docker;
pub mod demo;
pub mod error;
/// The test double (feature `fake`, on only for the tests and examples): not part of the API.
#[cfg(feature = "fake")]
#[doc(hidden)]
pub mod fake;
pub(crate) mod federated;
pub(crate) mod fs;
pub(crate) mod http;
pub mod identity;
pub mod jwt;
pub mod key;
pub mod kubelet;
pub mod log;
pub(crate) mod loopback;
pub(crate) mod nss;
pub mod protocol;
pub mod redact;
pub(crate) mod robots;
pub mod secret;
pub mod server_url;
pub mod terminal;
pub mod token;
pub mod validate;
pub mod verbs;

pub use error::{Error, Result};
pub use secret::Secret;

/// The crate version, as `version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
