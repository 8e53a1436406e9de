//! A string that must never be printed by accident: access tokens, assertions, private keys and
//! robot secrets all live in [`Secret`].

use std::fmt;
use zeroize::Zeroize;

/// A secret string. `Debug` and `Display` print `[redacted]`; the memory is wiped on drop.
///
/// The only way to the plain text is [`Secret::expose`], so every place a secret leaves the
/// process is easy to find with a search for `expose(`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a string that must not be printed.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The plain text. Call it only where the secret is meant to leave the process.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when the secret is usable as an access token: non-empty visible ASCII (no space,
    /// no control or non-ASCII character). A token is used as a password and piped into other
    /// programs and terminals (`token`), so anything else from a token endpoint or a cache file
    /// is refused rather than passed on.
    pub(crate) fn is_token_text(&self) -> bool {
        !self.0.is_empty() && self.0.bytes().all(|b| b.is_ascii_graphic())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {s:#?}"), "[redacted] [redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }
}
