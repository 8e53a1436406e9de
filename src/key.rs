//! The STACKIT service account key JSON and its RSA private key.
//!
//! Parsing is lenient where the SDKs are (unknown fields ignored, `privateKey`,
//! `tokenEndpoint` and `validUntil` optional) and strict where a mistake would only show up later
//! as an opaque 400 from the token endpoint (`kid`, `iss`, `sub`, `aud` must be present).

use crate::error::{Error, FileError, Result};
use crate::fs::{ReadError, open_for_reading, read_text_by};
use crate::secret::Secret;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::path::Path;

/// Key files and PEM files larger than this are refused: a real key is about 4 KB.
pub const MAX_KEY_FILE: u64 = 256 * 1024;

/// A parsed service account key. Only what the helper uses is kept.
#[derive(Debug, Clone)]
pub struct ServiceAccountKey {
    /// Top-level `id` of the key, if present.
    pub id: Option<String>,
    /// `publicKey`, if present (PEM or certificate), as written: [`Self::public_key_pem`].
    public_key: Option<JsonString>,
    /// `validUntil` (RFC 3339), if present.
    pub valid_until: Option<String>,
    /// `active`, if present.
    pub active: Option<bool>,
    /// `credentials.kid`: the JWT header `kid`.
    pub kid: String,
    /// `credentials.iss`: the service account e-mail, used as the registry username.
    pub iss: String,
    /// `credentials.sub`: the service account id.
    pub sub: String,
    /// `credentials.aud`: the assertion's audience, copied verbatim.
    pub aud: String,
    /// `credentials.privateKey`: the embedded PEM private key, if STACKIT generated the pair,
    /// as written: [`Self::private_key_pem`].
    private_key: Option<JsonString>,
    /// `credentials.tokenEndpoint`, if present (trusted only for https `stackit.cloud` hosts).
    pub token_endpoint: Option<String>,
}

/// A JSON string value kept as the key file writes it, quotes and escapes included, and
/// unescaped only when asked for. The two PEM blocks of a key are most of its text and only
/// signing and `check` read them: unescaping them up front was a third of a warm `get`'s heap.
#[derive(Debug, Clone)]
struct JsonString(Secret);

impl JsonString {
    /// `raw` if it is a string; `None` for `null`; an error for any other JSON value, so that a
    /// key with a malformed field fails as it always did, when it is loaded.
    fn from_raw(raw: Option<&RawValue>, field: &str, origin: &str) -> Result<Option<JsonString>> {
        match raw.map(RawValue::get) {
            None | Some("null") => Ok(None),
            Some(text) if text.starts_with('"') => Ok(Some(JsonString(Secret::new(text)))),
            Some(_) => Err(Error::Key(format!(
                "{origin} has a field of the wrong type ({field} must be a string); it must be the service account key JSON downloaded from STACKIT"
            ))),
        }
    }

    /// The string's value, unescaped; `None` when it is blank.
    fn decode(&self) -> Option<Secret> {
        // A JSON string literal, checked when it was read: it decodes to a string.
        let value = Secret::new(serde_json::from_str::<String>(self.0.expose()).unwrap_or_default());
        (!value.expose().trim().is_empty()).then_some(value)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey<'a> {
    id: Option<String>,
    #[serde(borrow)]
    public_key: Option<&'a RawValue>,
    valid_until: Option<String>,
    active: Option<bool>,
    #[serde(borrow)]
    credentials: Option<RawCredentials<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCredentials<'a> {
    kid: Option<String>,
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<String>,
    #[serde(borrow)]
    private_key: Option<&'a RawValue>,
    token_endpoint: Option<String>,
}

/// `text` base64-decoded (standard or URL-safe alphabet, padded or not, line breaks allowed),
/// if that gives UTF-8 text that starts like a JSON object; else `None`.
fn base64_json(text: &str) -> Option<Secret> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let compact = Secret::new(compact);
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(compact.expose()).ok())?;
    match String::from_utf8(bytes) {
        Ok(json) if json.trim_start().starts_with('{') => Some(Secret::new(json)),
        Ok(mut other) => {
            zeroize::Zeroize::zeroize(&mut other);
            None
        }
        Err(e) => {
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            None
        }
    }
}

impl ServiceAccountKey {
    /// `credentials.privateKey`, unescaped; `None` when absent or blank.
    pub fn private_key_pem(&self) -> Option<Secret> {
        self.private_key.as_ref().and_then(JsonString::decode)
    }

    /// `publicKey`, unescaped; `None` when absent or blank.
    pub fn public_key_pem(&self) -> Option<Secret> {
        self.public_key.as_ref().and_then(JsonString::decode)
    }

    /// Parses key JSON. `origin` names where it came from (a variable or a file) for errors.
    pub fn parse(text: &str, origin: &str) -> Result<ServiceAccountKey> {
        let trimmed = text.trim_start_matches('\u{feff}').trim();
        if trimmed.is_empty() {
            return Err(Error::Key(format!(
                "{origin} is empty; it must hold the service account key JSON"
            )));
        }
        if trimmed.starts_with("-----BEGIN") {
            return Err(Error::Key(format!(
                "{origin} holds a PEM key, not the service account key JSON; put the JSON there and the PEM in STACKIT_PRIVATE_KEY_PATH"
            )));
        }
        // CI secret stores often hold the key base64-encoded; it is accepted as such.
        let decoded = (!trimmed.starts_with('{')).then(|| base64_json(trimmed)).flatten();
        if decoded.is_some() {
            crate::log::debug!("{origin} holds the key JSON base64-encoded; decoded it");
        }
        let trimmed = decoded.as_ref().map_or(trimmed, |d| d.expose().trim());
        // serde's messages can quote values (and so key material); report position only.
        let raw: RawKey = serde_json::from_str(trimmed).map_err(|e| {
            let what = if e.is_syntax() || e.is_eof() {
                "is not valid JSON"
            } else {
                "has a field of the wrong type"
            };
            Error::Key(format!(
                "{origin} {what} (line {} column {}); it must be the service account key JSON downloaded from STACKIT",
                e.line(),
                e.column()
            ))
        })?;
        let creds = raw.credentials.ok_or_else(|| {
            Error::Key(format!(
                "{origin} has no \"credentials\" object; is it a service account key JSON?"
            ))
        })?;
        let mut missing = Vec::new();
        let mut take = |value: Option<String>, name: &'static str| {
            let v = value.map(|s| s.trim().to_string()).unwrap_or_default();
            if v.is_empty() {
                missing.push(name);
            }
            v
        };
        let kid = take(creds.kid, "credentials.kid");
        let iss = take(creds.iss, "credentials.iss");
        let sub = take(creds.sub, "credentials.sub");
        let aud = take(creds.aud, "credentials.aud");
        if !missing.is_empty() {
            return Err(Error::Key(format!(
                "{origin} lacks {}; download the key again from STACKIT",
                missing.join(", ")
            )));
        }
        Ok(ServiceAccountKey {
            id: raw.id,
            public_key: JsonString::from_raw(raw.public_key, "publicKey", origin)?,
            valid_until: raw.valid_until,
            active: raw.active,
            kid,
            iss,
            sub,
            aud,
            private_key: JsonString::from_raw(creds.private_key, "credentials.privateKey", origin)?,
            token_endpoint: creds
                .token_endpoint
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        })
    }
}

/// Reads a key or PEM file, bounded by [`MAX_KEY_FILE`], naming `origin` in errors.
/// A pipe's data is waited for until `deadline`. A regular file that others may read gets a
/// warning: it holds a private key.
pub fn read_key_file(path: &Path, origin: &str, deadline: std::time::Instant) -> Result<Secret> {
    let (text, shared_mode) = read_private_file(path, origin, deadline)?;
    if let Some(mode) = shared_mode {
        warn_shared("key file", path, mode);
    }
    Ok(text)
}

/// Reads a file that may hold secrets, bounded by [`MAX_KEY_FILE`], naming `origin` in errors;
/// also returns its mode when it is a regular file others may read or write (`None` for a
/// private file, a pipe or a device, where `chmod` is no fix). The caller decides whether what
/// it holds deserves a warning.
pub fn read_private_file(path: &Path, origin: &str, deadline: std::time::Instant) -> Result<(Secret, Option<u32>)> {
    let fail = |problem| FileError {
        what: origin.to_string(),
        path: path.to_path_buf(),
        problem,
    };
    let file = open_for_reading(path).map_err(|e| fail(ReadError::Unreadable(e)))?;
    let meta = file.metadata().ok();
    let shared_mode = meta.as_ref().and_then(shared_mode);
    let text = read_text_by(file, meta.as_ref(), MAX_KEY_FILE, deadline)
        .map(Secret::new)
        .map_err(|problem| Error::File(fail(problem)))?;
    Ok((text, shared_mode))
}

/// Warns that `what` at `path` (mode `mode`) is readable by others.
pub fn warn_shared(what: &str, path: &Path, mode: u32) {
    crate::log::warn!(
        "{what} {} is readable by other users (mode {mode:o}); run: chmod 600 {}",
        path.display(),
        path.display()
    );
}

#[cfg(unix)]
fn shared_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    (meta.is_file() && meta.mode() & 0o077 != 0).then(|| meta.mode() & 0o777)
}

#[cfg(not(unix))]
fn shared_mode(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

/// PEM that arrived through an environment variable or CI secret store may carry literal `\n`
/// instead of newlines (the STACKIT docs un-escape them with sed); returns the repaired text, or
/// `None` when the text already has real newlines or no escapes.
pub(crate) fn unescape_newlines(text: &str) -> Option<Secret> {
    (!text.contains('\n') && text.contains("\\n")).then(|| Secret::new(text.replace("\\n", "\n")))
}

/// Turns PEM text into a signing key. Accepts PKCS#8 (`BEGIN PRIVATE KEY`) and PKCS#1
/// (`BEGIN RSA PRIVATE KEY`), and PEM whose newlines arrived as literal `\n` (env vars).
pub fn signing_key(pem: &Secret, origin: &str) -> Result<jsonwebtoken::EncodingKey> {
    let text = pem.expose().trim();
    let unescaped = unescape_newlines(text);
    let text = unescaped.as_ref().map_or(text, Secret::expose);
    if text.contains("ENCRYPTED") {
        return Err(Error::Key(format!(
            "{origin} is an encrypted private key; decrypt it (openssl pkey -in key.pem -out plain.pem)"
        )));
    }
    if !text.contains("-----BEGIN") {
        return Err(Error::Key(format!(
            "{origin} is not a PEM private key (expected -----BEGIN PRIVATE KEY-----)"
        )));
    }
    jsonwebtoken::EncodingKey::from_rsa_pem(text.as_bytes()).map_err(|_| {
        Error::Key(format!(
            "{origin} is not a usable RSA private key (PEM, PKCS#8 or PKCS#1 expected)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = r#"{"id":"k1","publicKey":"p","createdAt":"2026-01-01T00:00:00Z","active":true,"extra":{"a":1},
      "credentials":{"kid":"k1","iss":"sa@sa.stackit.cloud","sub":"s-1","aud":"https://aud","privateKey":"-----BEGIN PRIVATE KEY-----\nX\n-----END PRIVATE KEY-----\n"}}"#;

    #[test]
    fn parses_a_realistic_key_and_ignores_extras() {
        let k = ServiceAccountKey::parse(KEY, "test").unwrap();
        assert_eq!(
            (k.kid.as_str(), k.iss.as_str(), k.sub.as_str(), k.aud.as_str()),
            ("k1", "sa@sa.stackit.cloud", "s-1", "https://aud")
        );
        assert!(k.private_key.is_some());
        assert_eq!(k.token_endpoint, None);
        assert_eq!(k.active, Some(true));
    }

    #[test]
    fn the_pem_fields_are_unescaped_when_read_and_checked_when_loaded() {
        let k = ServiceAccountKey::parse(KEY, "test").unwrap();
        let pem = k.private_key_pem().unwrap();
        assert_eq!(
            pem.expose(),
            "-----BEGIN PRIVATE KEY-----\nX\n-----END PRIVATE KEY-----\n"
        );
        assert_eq!(k.public_key_pem().unwrap().expose(), "p");
        // null and blank are no key; any other JSON type is refused when the key is loaded.
        for (value, present) in [("null", false), ("\"  \\n \"", false), ("\"\\u0041\"", true)] {
            let text = KEY.replace(
                "\"-----BEGIN PRIVATE KEY-----\\nX\\n-----END PRIVATE KEY-----\\n\"",
                value,
            );
            let k = ServiceAccountKey::parse(&text, "test").unwrap();
            assert_eq!(k.private_key_pem().is_some(), present, "{value}");
        }
        for value in ["5", "true", "[\"a\"]", "{\"pem\":\"x\"}"] {
            let text = KEY.replace(
                "\"-----BEGIN PRIVATE KEY-----\\nX\\n-----END PRIVATE KEY-----\\n\"",
                value,
            );
            let err = ServiceAccountKey::parse(&text, "KEYVAR").unwrap_err().to_string();
            assert!(err.contains("KEYVAR has a field of the wrong type"), "{value}: {err}");
            let text = KEY.replace("\"publicKey\":\"p\"", &format!("\"publicKey\":{value}"));
            assert!(ServiceAccountKey::parse(&text, "KEYVAR").is_err(), "publicKey {value}");
        }
    }

    #[test]
    fn names_missing_fields() {
        let err = ServiceAccountKey::parse(r#"{"credentials":{"kid":"k","iss":""}}"#, "KEYVAR")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("KEYVAR")
                && err.contains("credentials.iss")
                && err.contains("credentials.sub")
                && err.contains("credentials.aud"),
            "{err}"
        );
        let err = ServiceAccountKey::parse(r#"{"id":"x"}"#, "f").unwrap_err().to_string();
        assert!(err.contains("no \"credentials\""), "{err}");
    }

    #[test]
    fn pem_and_garbage_get_specific_errors_without_content() {
        let err = ServiceAccountKey::parse("-----BEGIN PRIVATE KEY-----\nabc", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("PEM"), "{err}");
        let err = ServiceAccountKey::parse(
            r#"{"credentials":{"kid":"k","iss":"i","sub":"s","aud":"a","privateKey":["SECRETBITS"]}}"#,
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("SECRETBITS") && err.contains("wrong type"), "{err}");
        assert!(
            ServiceAccountKey::parse("", "f")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(ServiceAccountKey::parse("\u{0}\u{1}binary", "f").is_err());
    }

    #[test]
    fn bad_pem_is_reported() {
        assert!(
            signing_key(&Secret::new("nope"), "STACKIT_PRIVATE_KEY")
                .unwrap_err()
                .to_string()
                .contains("STACKIT_PRIVATE_KEY")
        );
        assert!(
            signing_key(
                &Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
                "x"
            )
            .is_err()
        );
        assert!(
            signing_key(&Secret::new("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA"), "x")
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
    }
}
