//! Diagnostics on stderr, filtered by `DOCKER_CREDENTIAL_STACKIT_LOG` (`off`, `error`, `warn`,
//! `info`, `debug`; default `warn`). stdout belongs to the protocol and is never written here.

use std::io::Write;
use std::sync::OnceLock;

/// How much to say on stderr, from quiet to chatty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing at all.
    Off,
    /// Only failures.
    Error,
    /// Failures and things the user should fix (the default).
    Warn,
    /// Also what was done (token minted, credentials stored).
    Info,
    /// Also which source was chosen for every setting, and why.
    Debug,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

impl Level {
    /// Parses a level name; `None` for anything unknown.
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "quiet" => Some(Level::Off),
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }
}

/// Sets the level from `DOCKER_CREDENTIAL_STACKIT_LOG` as the environment snapshot has it
/// (the binary does this once, first thing). Later calls change nothing.
pub fn init(value: Option<&str>) {
    LEVEL.get_or_init(|| match value {
        Some(v) if !v.is_empty() => Level::parse(v).unwrap_or_else(|| {
            emit_always(
                "warning",
                format_args!(
                    "DOCKER_CREDENTIAL_STACKIT_LOG={v:?} is not one of off, error, warn, info, debug; using warn"
                ),
            );
            Level::Warn
        }),
        _ => Level::Warn,
    });
}

/// The active level ([`init`]; `warn` before that).
pub fn level() -> Level {
    LEVEL.get().copied().unwrap_or(Level::Warn)
}

/// True if messages at `at` are printed.
pub fn enabled(at: Level) -> bool {
    at != Level::Off && at <= level()
}

/// Writes one message at `at` if the level allows it. Use the `debug!`/`info!`/`warn!` macros.
pub fn emit(at: Level, args: std::fmt::Arguments<'_>) {
    if enabled(at) {
        let tag = match at {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            _ => "debug",
        };
        emit_always(tag, args);
    }
}

fn emit_always(tag: &str, args: std::fmt::Arguments<'_>) {
    // Messages carry names and texts from files, servers and the environment: escaped here,
    // once, for every message (see `terminal`).
    let text = args.to_string();
    let text = crate::terminal::escape(&text);
    // A closed stderr must not turn into a panic: ignore write errors.
    let _ = writeln!(std::io::stderr().lock(), "docker-credential-stackit: {tag}: {text}");
}

/// Logs at debug level: which source won, and why.
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Debug, format_args!($($arg)*)) };
}

/// Logs at info level: what was done.
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Info, format_args!($($arg)*)) };
}

/// Logs at warn level: something the user should fix, while the command still succeeds.
macro_rules! warn_ {
    ($($arg:tt)*) => { $crate::log::emit($crate::log::Level::Warn, format_args!($($arg)*)) };
}

// `warn` is also a built-in attribute, so the macro is defined under another name and imported
// from here (`use crate::log::warn`), never at the crate root beside `#![warn(..)]`.
pub(crate) use {debug, info, warn_ as warn};
