//! The library's error type. Every message names what to fix and never contains secret material.

use crate::fs::ReadError;

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
    /// A file the user named (a key, a PEM, the credentials file) cannot be read; keeps the
    /// cause, so callers decide on it rather than on the text.
    #[error(transparent)]
    File(#[from] FileError),
    /// A private directory (the robot store's) cannot be used; keeps which check failed.
    #[error(transparent)]
    Dir(#[from] crate::fs::DirError),
    /// The token endpoint refused the key or answered something unusable.
    #[error("{0}")]
    Token(String),
    /// The token endpoint (or a CI provider's token endpoint) could not be reached: no such
    /// host, no connection, no answer, or failures until the deadline. The fix is in the
    /// network (DNS, firewall, proxy), not in the key.
    #[error("{0}")]
    Network(String),
    /// A file or directory could not be read or written.
    #[error("{0}")]
    Io(String),
    /// Wrong command-line arguments (exit status 2).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The `check` finding code for this error when it stops a step before the step could look
    /// closer: decided on what went wrong, not on the step that happened to meet it. Every
    /// variant is named, so a new one has to be given its code.
    pub fn code(&self) -> &'static str {
        use crate::check::codes;
        match self {
            Error::Key(_) | Error::File(_) => codes::KEY_UNREADABLE,
            Error::Token(_) => codes::TOKEN_FAILED,
            Error::Network(_) => codes::TOKEN_UNREACHABLE,
            Error::Config(_)
            | Error::Input(_)
            | Error::Usage(_)
            | Error::Dir(_)
            | Error::Io(_)
            | Error::NotFound
            | Error::MissingServerUrl
            | Error::MissingUsername => codes::SETTINGS_INVALID,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A file that could not be read, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.message())]
pub struct FileError {
    /// What the file is, e.g. "the file named by STACKIT_SERVICE_ACCOUNT_KEY_PATH".
    pub what: String,
    /// The path.
    pub path: std::path::PathBuf,
    /// Why it cannot be used.
    pub problem: ReadError,
}

impl FileError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        self.problem.is_not_found()
    }

    fn message(&self) -> String {
        // "… named by X_PATH in /a/credentials.json /a/sa-key.json" would run two paths
        // together: a path after another one goes in parentheses.
        let path = if self.what.contains(" in ") {
            format!("({})", self.path.display())
        } else {
            self.path.display().to_string()
        };
        let what = &self.what;
        format!("cannot read {what} {path}: {}", self.problem.reason_for("key file"))
    }
}
