//! The library's error type. Every message names what to fix and never contains secret material.

/// Everything that can go wrong, grouped by what the user has to look at.
///
/// The `Display` text is the one-line message Docker shows (it is printed on stdout for the
/// protocol verbs), so each variant's text is complete on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host is not served, or a served host has neither an identity nor stored robot
    /// credentials. The text is Docker's canonical "not found" message, compared byte for byte.
    #[error("credentials not found in native keychain")]
    NotFound,
    /// `get`, `erase` or `store` got an empty server URL (Docker's canonical message).
    #[error("no credentials server URL")]
    MissingServerUrl,
    /// `store` got an empty username (Docker's canonical message).
    #[error("no credentials username")]
    MissingUsername,
    /// Malformed input on stdin.
    #[error("{0}")]
    Input(String),
    /// A bad environment variable, config file or credentials file.
    #[error("{0}")]
    Config(String),
    /// The service account key or private key cannot be used.
    #[error("{0}")]
    Key(String),
    /// The token endpoint could not be reached or refused the key.
    #[error("{0}")]
    Token(String),
    /// A file or directory could not be read or written.
    #[error("{0}")]
    Io(String),
    /// Wrong command-line arguments (exit status 2).
    #[error("{0}")]
    Usage(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
