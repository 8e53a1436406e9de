//! `docker-credential-stackit`: a Docker credential helper for the STACKIT Container Registry.
//!
//! Docker, podman, skopeo, buildah and nerdctl call the binary through `credHelpers`; it reads
//! a STACKIT service account key, signs an RS512 assertion, exchanges it for a short-lived access
//! token at the STACKIT token endpoint, caches the token safely on disk, and answers with
//! username = the service account's e-mail and password = the token.
//!
//! Data flows one way: stdin -> `protocol` -> `Settings::served_host` (a `ServedHost`) ->
//! `config` (which identity) -> `identity` (key JSON or federated token) -> `token` (cache hit:
//! done; else `token::assertion` or the federated token -> `token::exchange` -> cache write) ->
//! `protocol` -> stdout. `verbs::Service` is the one service the protocol verbs, `kubelet` and
//! `token` ask.
//!
//! The library is the binary's, not a general-purpose API: its modules are private. What is
//! public is the pure robot/scope validator ([`validate`]), the configuration snapshot the
//! binary builds ([`Env`], [`Settings`]), the error type ([`Error`]), and in [`cli`] the verb
//! entry points `src/main.rs` calls.

#![warn(missing_docs)]

mod check;
mod clock;
mod config;
mod configure_docker;
mod demo;
mod error;
#[cfg(feature = "fake")]
mod fake;
mod federated;
mod fs;
mod http;
mod identity;
mod jwt;
mod key;
mod kubelet;
mod log;
mod loopback;
mod nss;
mod protocol;
mod redact;
mod robots;
mod secret;
mod server_url;
mod terminal;
mod token;
pub mod validate;
mod verbs;

pub use config::{Env, Settings};
pub use error::{Error, Result};
pub use secret::Secret;

/// The crate version, as `version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The entry points of the binary's verbs, one module per verb named as in the crate, holding
/// exactly what `src/main.rs` calls; plus the terminal and log helpers it shares with them.
pub mod cli {
    pub use crate::log::init as init_log;
    pub use crate::terminal::{Lines, escape};

    /// `check`: options, the environment it inspects, the run and its report.
    pub mod check {
        pub use crate::check::{Environment, Options, Report, USAGE, run};
    }

    /// `configure-docker`.
    pub mod configure_docker {
        pub use crate::configure_docker::{USAGE, run};
    }

    /// `demo`.
    pub mod demo {
        pub use crate::demo::run;
    }

    /// `kubelet`: the image credential provider plugin.
    pub mod kubelet {
        pub use crate::kubelet::{ALLOW_NODE_FALLBACK, NodeFallback, run};
    }

    /// The Docker credential-helper protocol (`get`, `store`, `erase`, `list`) on stdin/stdout.
    pub mod protocol {
        pub use crate::protocol::{Helper, read_input, serve};
    }

    /// What the protocol verbs and `token` do with [`Settings`](crate::Settings).
    pub mod verbs {
        pub use crate::verbs::Service;
    }
}

/// Not API: the parsers and internals that the fuzz checks (`fuzz/checks.rs`), the tests and
/// the examples exercise directly, re-exported under the crate's own module names. May change
/// with any release.
#[doc(hidden)]
pub mod testing {
    /// The scriptable fake STACKIT token endpoint and its helpers (feature `fake`).
    #[cfg(feature = "fake")]
    pub mod fake {
        pub use crate::fake::*;
    }

    /// `config`.
    pub mod config {
        pub use crate::config::{CONFIG_FIELDS, ENV_VARS};
    }

    /// `clock`.
    pub mod clock {
        pub use crate::clock::{parse_http_date, unix_now};
    }

    /// `identity`.
    pub mod identity {
        pub use crate::identity::Identity;
    }

    /// `jwt`.
    pub mod jwt {
        pub use crate::jwt::jwt_claim_u64;
    }

    /// `key`.
    pub mod key {
        pub use crate::key::{ServiceAccountKey, signing_key};
    }

    /// `kubelet`.
    pub mod kubelet {
        pub use crate::kubelet::{parse_request, registry_of};
    }

    /// `protocol`.
    pub mod protocol {
        pub use crate::protocol::{credentials, read_input, render_credentials, server_url};
    }

    /// `redact`.
    pub mod redact {
        pub use crate::redact::sanitize;
    }

    /// `server_url`.
    pub mod server_url {
        pub use crate::server_url::{DEFAULT_REGISTRY, is_loopback, normalize};
    }

    /// `token`.
    pub mod token {
        /// `token::assertion`.
        pub mod assertion {
            pub use crate::token::assertion::sign;
        }

        /// `token::cache`.
        pub mod cache {
            pub use crate::token::cache::{Freshness, MIN_REMAINING, parse_entry};
        }

        /// `token::exchange`.
        pub mod exchange {
            pub use crate::token::exchange::{GRANT_TYPE, parse_success};
        }
    }
}
