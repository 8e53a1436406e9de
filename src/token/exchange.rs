//! The one network round trip: POST the assertion to the token endpoint, with retries on
//! network errors, 429 and 5xx inside one total deadline. 4xx is final.

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::{debug, warn};
use base64::Engine;
use serde::Deserialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The OAuth grant type of the key flow (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Token answers larger than this are refused (a real one is about 2 KB).
const MAX_BODY: u64 = 64 * 1024;
/// How much of an error body goes into a message.
const MAX_ERROR_TEXT: usize = 300;
/// Tokens claiming a longer life are cached as if they lived this long.
const MAX_LIFETIME: u64 = 24 * 3600;

/// A minted access token.
#[derive(Debug)]
pub struct Minted {
    /// The access token (the registry password).
    pub access_token: Secret,
    /// Expiry in unix seconds: the token's `exp`, else now + `expires_in`.
    pub expires_at: u64,
    /// The server's `Date` header, if sent (for clock-skew checks).
    pub server_date: Option<u64>,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What one attempt came to.
enum Attempt {
    Done(Minted),
    /// Worth retrying; an optional server-requested wait.
    Retry(String, Option<Duration>),
    Fatal(Error),
}

/// What is exchanged for an access token.
#[derive(Debug, Clone, Copy)]
pub enum Grant<'a> {
    /// A signed key-flow assertion (`grant_type=…jwt-bearer`).
    Assertion(&'a Secret),
    /// A federated OIDC token for a service account (`grant_type=client_credentials`).
    Federated {
        /// The federated JWT.
        token: &'a Secret,
        /// The service account's e-mail (`client_id`).
        email: &'a str,
    },
}

impl Grant<'_> {
    /// The variable that sets this grant's endpoint, for messages.
    fn endpoint_variable(&self) -> &'static str {
        match self {
            Grant::Assertion(_) => "STACKIT_TOKEN_BASEURL",
            Grant::Federated { .. } => "STACKIT_IDP_TOKEN_ENDPOINT",
        }
    }
}

/// Exchanges `grant` at `endpoint`, giving up at `deadline`.
pub fn exchange(endpoint: &str, grant: Grant<'_>, deadline: Instant) -> Result<Minted> {
    let agent = crate::http::Client::from_env()?;
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Token(format!(
                "token endpoint {endpoint}: no time left (DOCKER_CREDENTIAL_STACKIT_TIMEOUT)"
            )));
        }
        debug!("POST {endpoint} (attempt {attempt}, {:.1}s left)", left.as_secs_f64());
        let (reason, wait) = match try_once(&agent, endpoint, grant, left) {
            Attempt::Done(m) => return Ok(m),
            Attempt::Fatal(e) => return Err(e),
            Attempt::Retry(reason, wait) => (reason, wait),
        };
        // A server's Retry-After is a floor, never a licence to hammer it: `Retry-After: 0` on
        // every 429 would otherwise turn this loop into a flood until the deadline.
        let wait = wait.map_or_else(|| backoff(attempt), |w| w.max(backoff(attempt)));
        let left = deadline.saturating_duration_since(Instant::now());
        if wait >= left {
            return Err(Error::Token(format!(
                "{reason}; gave up after {attempt} attempt{} in {:.1}s (DOCKER_CREDENTIAL_STACKIT_TIMEOUT allows {:.0}s)",
                if attempt == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64(),
                (deadline - started).as_secs_f64()
            )));
        }
        warn!("{reason}; retrying in {:.1}s", wait.as_secs_f64());
        std::thread::sleep(wait);
    }
}

fn try_once(agent: &crate::http::Client, endpoint: &str, grant: Grant<'_>, left: Duration) -> Attempt {
    let request = agent
        .post(endpoint)
        .config()
        .timeout_global(Some(left))
        .build()
        .header("Accept", "application/json");
    let response = match grant {
        Grant::Assertion(assertion) => {
            request.send_form([("grant_type", GRANT_TYPE), ("assertion", assertion.expose())])
        }
        Grant::Federated { token, email } => request.send_form([
            ("grant_type", crate::federated::GRANT_TYPE),
            ("client_assertion_type", crate::federated::CLIENT_ASSERTION_TYPE),
            ("client_assertion", token.expose()),
            ("client_id", email),
        ]),
    };
    let mut response = match response {
        Ok(r) => r,
        Err(e) => return network_error(endpoint, e),
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v, unix_now()));
    let location = header("location");
    let server_date = header("date").and_then(|d| parse_http_date(&d));
    let body = response.body_mut().with_config().limit(MAX_BODY).read_to_string();

    match status {
        200..=299 => match body {
            Ok(text) => match parse_success(&text, endpoint, unix_now()) {
                Ok((access_token, expires_at)) => Attempt::Done(Minted {
                    access_token,
                    expires_at,
                    server_date,
                }),
                Err(e) => Attempt::Fatal(e),
            },
            Err(ureq::Error::BodyExceedsLimit(_)) => Attempt::Fatal(Error::Token(format!(
                "token endpoint {endpoint} answered with more than {} KiB; refusing it",
                MAX_BODY / 1024
            ))),
            Err(e) => Attempt::Retry(
                format!("token endpoint {endpoint}: reading the answer failed: {}", describe(&e)),
                None,
            ),
        },
        300..=399 => Attempt::Fatal(Error::Token(format!(
            "token endpoint {endpoint} redirected (HTTP {status}) to {}; redirects are not followed with a signed assertion, set {} to the final URL",
            location.as_deref().map(sanitize).unwrap_or_else(|| "nowhere".into()),
            grant.endpoint_variable()
        ))),
        429 => Attempt::Retry(
            format!("token endpoint {endpoint} is rate limiting (HTTP 429)"),
            retry_after,
        ),
        500..=599 => Attempt::Retry(
            format!(
                "token endpoint {endpoint} failed (HTTP {status}{})",
                body_note(status, body.as_deref().unwrap_or(""))
            ),
            retry_after,
        ),
        _ => Attempt::Fatal(rejection(endpoint, status, body.ok().as_deref().unwrap_or(""), grant)),
    }
}

/// The prefix std puts on a failed `getaddrinfo`, followed by `gai_strerror`'s text. ureq
/// passes that error through as [`ureq::Error::Io`], so this text is the only way to tell a
/// name that does not exist from a dropped connection.
const LOOKUP_FAILED: &str = "failed to lookup address information";

fn network_error(endpoint: &str, e: ureq::Error) -> Attempt {
    let text = describe(&e);
    if let ureq::Error::Io(io) = &e
        && let Some(detail) = io.to_string().strip_prefix(LOOKUP_FAILED)
    {
        let detail = sanitize(detail.trim_start_matches([':', ' ']));
        // EAI_AGAIN is the resolver saying "try later"; every other answer is final, and
        // retrying it would only keep Docker waiting until the deadline.
        if detail.contains("Temporary failure") {
            return Attempt::Retry(
                format!("token endpoint {endpoint}: DNS lookup failed for now ({detail})"),
                None,
            );
        }
        return Attempt::Fatal(Error::Token(format!(
            "token endpoint {endpoint}: host not found (DNS: {detail}); check the URL, your network and any HTTPS_PROXY"
        )));
    }
    // Certificate problems are final, not transient.
    if crate::http::is_tls_error(&e) {
        return tls_failure(endpoint, &text);
    }
    match e {
        // A trickling or silent endpoint is reachable, just too slow: say so.
        ureq::Error::Timeout(_) => Attempt::Retry(
            format!("token endpoint {endpoint} did not answer in time ({text})"),
            None,
        ),
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => {
            Attempt::Retry(format!("token endpoint {endpoint} unreachable: {text}"), None)
        }
        ureq::Error::HostNotFound => Attempt::Fatal(Error::Token(format!(
            "token endpoint {endpoint}: host not found (DNS: no address); check the URL, your network and any HTTPS_PROXY"
        ))),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => Attempt::Fatal(Error::Config(format!(
            "token endpoint {endpoint:?} is not a valid URL: {text}"
        ))),
        ureq::Error::InvalidProxyUrl => Attempt::Fatal(Error::Config(format!(
            "the proxy URL in HTTPS_PROXY/HTTP_PROXY/ALL_PROXY is invalid: {text}"
        ))),
        _ => Attempt::Fatal(Error::Token(format!("token endpoint {endpoint}: {text}"))),
    }
}

fn tls_failure(endpoint: &str, text: &str) -> Attempt {
    // An expired (or not yet valid) certificate is a server or clock problem; another CA
    // bundle would not help, so do not suggest one.
    let hint = if text.contains("expired") || text.contains("not valid yet") {
        "the endpoint's certificate is outside its validity period: check this machine's clock, else the endpoint must renew it"
    } else {
        "if a proxy or private CA is in the way, point SSL_CERT_FILE at its CA bundle"
    };
    Attempt::Fatal(Error::Token(format!(
        "TLS with token endpoint {endpoint} failed: {text}; {hint}"
    )))
}

fn describe(e: &ureq::Error) -> String {
    sanitize(&e.to_string())
}

/// The error for a final 4xx answer: status, a hint, and the body (sanitised, truncated).
fn rejection(endpoint: &str, status: u16, body: &str, grant: Grant<'_>) -> Error {
    let refused = status == 400 || status == 401 || status == 403;
    match grant {
        Grant::Assertion(_) => {
            let hint = if body.contains("was not found") && body.contains("kid") {
                "; the key id is unknown there: check that the key still exists and that the token endpoint is right"
            } else if body.contains("invalid_grant") {
                "; the service account key was refused: it may be revoked, expired or deleted (create a new key in the STACKIT portal)"
            } else if refused {
                "; the service account key was refused: check that it is active, not expired and not deleted"
            } else {
                ""
            };
            Error::Token(format!(
                "token endpoint {endpoint} rejected the service account key (HTTP {status}{}){hint}",
                body_note(status, body)
            ))
        }
        Grant::Federated { email, .. } => {
            let hint = if refused {
                "; check the federated identity provider of this service account in the STACKIT portal: its issuer URL and its assertions on subject and audience must match this token"
            } else {
                ""
            };
            Error::Token(format!(
                "IdP token endpoint {endpoint} refused the federated token for {email} (HTTP {status}{}){hint}",
                body_note(status, body)
            ))
        }
    }
}

/// `": <sanitised body>"` for an error message about an HTTP answer with `status`, or nothing
/// for an empty body. A 2xx body is never shown, sanitised or not: a success carries credentials
/// (a token endpoint's or a registry token service's), and redaction is a second line of defence,
/// not a licence to print them.
pub(crate) fn body_note(status: u16, body: &str) -> String {
    if (200..300).contains(&status) {
        return String::new();
    }
    match sanitize(body) {
        t if t.is_empty() => String::new(),
        t => format!(": {t}"),
    }
}

/// Makes server text safe for a one-line message: no control characters, JWT-looking and long
/// opaque tokens redacted wherever they sit (a server might echo the assertion, a proxy the
/// access token), HTML reduced to text, at most 300 characters.
pub fn sanitize(text: &str) -> String {
    let mut plain = String::new();
    let mut in_tag = false;
    let html = text.trim_start().starts_with('<');
    for c in text.chars() {
        match c {
            '<' if html => in_tag = true,
            '>' if html && in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if in_tag => {}
            c if c.is_control() => plain.push(' '),
            c => plain.push(c),
        }
    }
    // Redact before truncating, so that a token cut at the limit cannot slip through as a
    // fragment too short to recognise.
    let mut out = redact_tokens(&plain).split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > MAX_ERROR_TEXT {
        out = out.chars().take(MAX_ERROR_TEXT).collect::<String>() + "…";
    }
    out
}

/// What replaces a token in server text.
const REDACTED: &str = "[redacted token]";
/// Opaque runs shorter than this stay: words, host labels, UUIDs and their parts.
const MIN_OPAQUE: usize = 32;
/// A JWT's first segment is at least this long (`{"a":1}` encodes to 10 characters), so that a
/// word that merely starts with `eyJ` stays.
const MIN_JWT_HEADER: usize = 10;

/// Replaces JWTs and long random-looking runs in `text` with [`REDACTED`], whatever surrounds
/// them: JSON quotes, `=`, `:`, a full stop or comma after them. Tokens are found by their
/// characters, not by splitting on spaces, because servers echo them in compact JSON and prose.
fn redact_tokens(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let jwt = starts_run(bytes, i, is_base64url).then(|| jwt_end(bytes, i)).flatten();
        let found = jwt.or_else(|| starts_run(bytes, i, is_opaque).then(|| opaque_end(bytes, i)).flatten());
        match found {
            // Both ends sit next to ASCII bytes, so they are character boundaries.
            Some(end) => {
                out.push_str(&text[copied..i]);
                out.push_str(REDACTED);
                copied = end;
                i = end;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The base64url alphabet, which JWT segments are written in.
fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Characters of opaque tokens: base64url and standard base64 (`=` padding is handled apart,
/// so that `access_token=` stays readable in front of a redacted value).
fn is_opaque(b: u8) -> bool {
    is_base64url(b) || b == b'+' || b == b'/'
}

/// Whether a run of `class` characters starts at `i` (the byte before is not one of them).
fn starts_run(bytes: &[u8], i: usize, class: fn(u8) -> bool) -> bool {
    class(bytes[i]) && (i == 0 || !class(bytes[i - 1]))
}

/// The end of a JWT starting at `start`: `eyJ` (a base64url `{"`) and at least one more
/// dot-separated base64url segment (JWS has three, JWE five; a proxy or a length limit may have
/// cut the rest off). A full stop after the last segment is punctuation and stays.
fn jwt_end(bytes: &[u8], start: usize) -> Option<usize> {
    if !bytes[start..].starts_with(b"eyJ") {
        return None;
    }
    let segment = |from: usize| from + bytes[from..].iter().take_while(|b| is_base64url(**b)).count();
    let header_end = segment(start);
    if header_end - start < MIN_JWT_HEADER {
        return None;
    }
    let (mut end, mut at) = (header_end, header_end);
    while bytes.get(at) == Some(&b'.') {
        let next = segment(at + 1);
        if next > at + 1 {
            end = next;
        }
        at = next;
    }
    (end > header_end).then_some(end)
}

/// Upper case, lower case or digit, as bits, so that a run's classes can be or-ed together.
fn char_class(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => 1,
        b'a'..=b'z' => 2,
        b'0'..=b'9' => 4,
        _ => 0,
    }
}

/// The end of an opaque token starting at `start`, with any `=` padding, if the run there looks
/// random rather than like words: at least [`MIN_OPAQUE`] characters that switch often between
/// upper case, lower case and digits. Random text switches at about every other character
/// (base64 60 %, hex 47 %, base32 30 %); words, host labels, versions and paths hardly do, and
/// `.`, `@` and `:` split them into short runs anyway. A rare random token that looks like
/// words (base64 that drew no digit and few case changes) is missed; the first line of defence
/// is that secrets are never put into messages, this is the second.
fn opaque_end(bytes: &[u8], start: usize) -> Option<usize> {
    let end = start + bytes[start..].iter().take_while(|b| is_opaque(**b)).count();
    let run = &bytes[start..end];
    if run.len() < MIN_OPAQUE {
        return None;
    }
    let classes = run.iter().fold(0, |all, b| all | char_class(*b));
    let switches = run
        .windows(2)
        .filter(|w| {
            let (a, b) = (char_class(w[0]), char_class(w[1]));
            a != 0 && b != 0 && a != b
        })
        .count();
    let longest_stretch = run
        .split(|b| !b.is_ascii_alphanumeric())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    let random = match classes {
        // base64: upper case, lower case and digits.
        7 => switches * 5 >= run.len(),
        // base64 that drew no digit; CamelCase words switch at most twice a word.
        3 => switches * 3 >= run.len(),
        // hex, base32: one letter case and digits in one unbroken stretch, which no word is
        // (base32 has few digits, so it may hardly switch; UUIDs are broken by dashes).
        5 | 6 => longest_stretch >= MIN_OPAQUE,
        _ => false,
    };
    random.then(|| end + bytes[end..].iter().take_while(|b| **b == b'=').count())
}

/// Parses a 2xx body: an `access_token`, and the expiry from its `exp` claim, else `expires_in`.
///
/// Pure (the clock is `now`), public so that it can be fuzzed: the body comes from the network.
pub fn parse_success(text: &str, endpoint: &str, now: u64) -> Result<(Secret, u64)> {
    // The body is never quoted here, not even sanitised: a success that does not parse may
    // still carry the access token (trailing garbage after valid JSON, a proxy's rewrite).
    let body: TokenBody = serde_json::from_str(text).map_err(|e| {
        Error::Token(format!(
            "token endpoint {endpoint} answered with something that is not a JSON token response ({}; the answer is not shown because it may hold a token)",
            not_a_token_response(text, &e)
        ))
    })?;
    let token = match body.access_token {
        Some(t) if !t.trim().is_empty() => Secret::new(t.trim()),
        _ => {
            return Err(Error::Token(format!(
                "token endpoint {endpoint} answered without an access_token"
            )));
        }
    };
    let expires_in = body
        .expires_in
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    let exp = jwt_claim_u64(token.expose(), "exp");
    let expires_at = match (exp, expires_in) {
        (Some(exp), _) => exp,
        (None, Some(secs)) => {
            debug!("access token has no readable exp claim; using expires_in={secs}");
            now.saturating_add(secs)
        }
        (None, None) => {
            return Err(Error::Token(format!(
                "token endpoint {endpoint} answered with a token whose lifetime is unknown (no exp claim, no expires_in)"
            )));
        }
    };
    if expires_at > now.saturating_add(MAX_LIFETIME) {
        debug!(
            "token claims to live {}s; caching it for at most {MAX_LIFETIME}s",
            expires_at - now
        );
        return Ok((token, now + MAX_LIFETIME));
    }
    Ok((token, expires_at))
}

/// What is wrong with a 2xx body that did not parse, in words that quote none of it: serde's
/// own messages may (`invalid type: string "eyJ…"`), so only its category and position are used.
fn not_a_token_response(text: &str, e: &serde_json::Error) -> String {
    let text = text.trim_start();
    if text.is_empty() {
        return "an empty body".into();
    }
    if text.starts_with('<') {
        return format!(
            "{} bytes of HTML or XML: a proxy or captive portal may be in the way",
            text.len()
        );
    }
    let what = match e.classify() {
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Eof => "JSON cut short",
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => "invalid JSON",
    };
    format!("{what} at line {}, column {}", e.line(), e.column())
}

/// Reads a numeric claim from a JWT's payload without verifying it (the registry verifies).
pub fn jwt_claim_u64(token: &str, claim: &str) -> Option<u64> {
    let claims = jwt_claims(token)?;
    let v = claims.get(claim)?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Decodes a JWT's payload (unverified) into a JSON object.
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Exponential backoff with ±50 % jitter: 0.25 s, 0.5 s, 1 s, ... capped at 4 s.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.saturating_sub(1).min(4)).min(4000);
    let mut r = [0u8; 2];
    let jitter = if aws_lc_rs::rand::fill(&mut r).is_ok() {
        u16::from_le_bytes(r) as u64
    } else {
        32768
    };
    Duration::from_millis(base / 2 + base * jitter / 65536)
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str, now: u64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    parse_http_date(v).map(|t| Duration::from_secs(t.saturating_sub(now)))
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate) to unix
/// seconds; `None` for anything else, or a date before 1970.
///
/// Read with the `time` crate's RFC 2822 parser: IMF-fixdate is RFC 2822's date syntax with the
/// zone fixed to `GMT`, so every IMF-fixdate reads the same; what RFC 2822 adds (a numeric or
/// US zone, a two-digit year, no weekday, no seconds, comments) is read as the instant it names. The obsolete
/// RFC 850 and asctime forms are not accepted, as before; servers have sent IMF-fixdate for
/// decades.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc2822).ok()?;
    u64::try_from(at.unix_timestamp()).ok()
}

/// Parses an RFC 3339 timestamp (`2026-05-01T10:00:00Z`, `…T10:00:00.123+02:00`) to unix
/// seconds, as in a key file's `validUntil`. Fractions are dropped; `None` for anything else
/// (an impossible date such as `2026-02-31`, an offset beyond ±23:59, a year outside
/// 0000-9999), or a time before 1970.
pub fn parse_rfc3339(value: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b(r#"{"alg":"RS512"}"#), b(payload))
    }

    #[test]
    fn expiry_from_exp_then_expires_in() {
        let t = jwt(r#"{"exp":5000,"email":"a@b"}"#);
        let (_, exp) = parse_success(&format!(r#"{{"access_token":"{t}","expires_in":10}}"#), "e", 1000).unwrap();
        assert_eq!(exp, 5000);
        let (_, exp) = parse_success(r#"{"access_token":"opaque","expires_in":600}"#, "e", 1000).unwrap();
        assert_eq!(exp, 1600);
        let (_, exp) = parse_success(r#"{"access_token":"opaque","expires_in":"60"}"#, "e", 1000).unwrap();
        assert_eq!(exp, 1060);
        let (_, exp) = parse_success(
            &format!(r#"{{"access_token":"{}"}}"#, jwt(r#"{"exp":99999999999}"#)),
            "e",
            1000,
        )
        .unwrap();
        assert_eq!(exp, 1000 + MAX_LIFETIME);
    }

    #[test]
    fn bad_success_bodies_are_errors() {
        for body in [
            "",
            "<html>hi</html>",
            "{}",
            r#"{"access_token":""}"#,
            r#"{"access_token":"opaque"}"#,
            "[1]",
        ] {
            assert!(parse_success(body, "https://e/token", 1).is_err(), "{body}");
        }
    }

    #[test]
    fn a_success_that_does_not_parse_is_never_quoted() {
        let t = real_looking_jwt();
        let opaque = "opaque-3fa85f64-5717-4562-b3fc-2c963f66afa6";
        for (body, what) in [
            (
                format!(r#"{{"access_token":"{t}","expires_in":3600}} trailing {t}"#),
                "invalid JSON at line 1, column",
            ),
            (
                format!(r#"{{"access_token":"{opaque}","expires_in":3600}}{opaque}"#),
                "invalid JSON",
            ),
            (format!(r#""{t}""#), "JSON of the wrong shape"),
            (
                format!(r#"{{"access_token":"{opaque}","expires_in":"#),
                "JSON cut short",
            ),
            (format!("<html>{opaque}</html>"), "HTML"),
        ] {
            let e = parse_success(&body, "https://e/token", 1).unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("not shown"), "{e}");
            assert!(!e.contains(&t[..20]) && !e.contains(&opaque[..20]), "{e}");
        }
        assert_eq!(body_note(200, &format!("token {opaque}")), "");
        assert_eq!(body_note(204, "x"), "");
        assert_eq!(body_note(503, "try later"), ": try later");
        assert_eq!(body_note(400, ""), "");
    }

    #[test]
    fn sanitize_strips_html_controls_and_tokens() {
        let t = jwt(r#"{"x":"yyyyyyyyyyyyyyyyyyyyyyyyyyyyy"}"#);
        let out = sanitize(&format!("bad\n\u{1b}[31m assertion {t} \r\n"));
        assert!(
            !out.contains(&t) && out.contains("[redacted token]") && !out.contains('\u{1b}'),
            "{out}"
        );
        assert_eq!(
            sanitize("<html><title>Gateway</title><body>Bad</body></html>"),
            "Gateway Bad"
        );
        assert!(sanitize(&"x".repeat(5000)).chars().count() <= MAX_ERROR_TEXT + 1);
    }

    /// A JWT as a token endpoint would see it: base64url segments containing `-` and `_`.
    fn real_looking_jwt() -> String {
        let t = jwt(r#"{"iss":"ci@sa.stackit.cloud","exp":1800000000,"jti":"c0ffee??>>>~~~"}"#);
        let sig = "Xq-1_b".repeat(57);
        let t = format!("{}{sig}", t.trim_end_matches("sig"));
        assert!(t.contains('-') && t.contains('_'), "{t}");
        t
    }

    #[track_caller]
    fn assert_redacted(text: &str, secrets: &[&str]) -> String {
        let out = sanitize(text);
        for secret in secrets {
            for segment in secret.split('.') {
                for piece in segment.as_bytes().chunks(12) {
                    let piece = std::str::from_utf8(piece).unwrap();
                    assert!(
                        piece.len() < 8 || !out.contains(piece),
                        "{piece:?} of {secret} in {out:?}"
                    );
                }
            }
        }
        assert!(out.contains("[redacted token]"), "{out}");
        out
    }

    #[test]
    fn sanitize_redacts_a_jwt_wherever_it_sits() {
        let t = real_looking_jwt();
        let out = assert_redacted(&format!(r#"{{"error":"invalid_grant","assertion":"{t}"}}"#), &[&t]);
        assert_eq!(out, r#"{"error":"invalid_grant","assertion":"[redacted token]"}"#);
        let out = assert_redacted(&format!("bad assertion {t}."), &[&t]);
        assert_eq!(out, "bad assertion [redacted token].");
        let out = assert_redacted(&format!("assertions {t}, {t}; done"), &[&t]);
        assert_eq!(out, "assertions [redacted token], [redacted token]; done");
        let out = assert_redacted(&format!("assertion={t}&grant_type=x"), &[&t]);
        assert_eq!(out, "assertion=[redacted token]&grant_type=x");
        let out = assert_redacted(&format!("token:{t} 'x' \"{t}\" ({t})"), &[&t]);
        assert_eq!(
            out,
            r#"token:[redacted token] 'x' "[redacted token]" ([redacted token])"#
        );
        // Cut off by a proxy: one segment and a half is still secret material.
        let half = &t[..t.find('.').unwrap() + 20];
        assert_redacted(&format!("echo: {half}"), &[half]);
    }

    #[test]
    fn sanitize_redacts_long_opaque_tokens() {
        for token in [
            "Zk3_9aQ-xW7vLp2mN8sR4tY6uB1cD5eF0gH",
            "dGhpcyBpcyBhIHNlY3JldCB0b2tlbiB2YWx1ZQ+/x==",
            "8f2a5c7e9b1d3f4a6c8e0b2d4f6a8c0e2b4d6f8a",
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        ] {
            for text in [
                format!(r#"{{"access_token":"{token}","expires_in":3600}}"#),
                format!("access_token={token}."),
                format!("secret: {token}, not shown"),
            ] {
                let out = assert_redacted(&text, &[token.trim_end_matches('=')]);
                assert!(!out.contains("=="), "padding goes with the token: {out}");
            }
        }
    }

    #[test]
    fn sanitize_redacts_nearly_all_random_tokens_of_every_alphabet() {
        // A fixed xorshift sequence: the same sample on every run, no flaky test.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabets = [
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            "0123456789abcdef",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        ];
        for alphabet in alphabets {
            let bytes = alphabet.as_bytes();
            let mut missed = Vec::new();
            for _ in 0..2000 {
                let len = MIN_OPAQUE + (next() % 33) as usize;
                let token: String = (0..len)
                    .map(|_| bytes[((next() >> 32) % bytes.len() as u64) as usize] as char)
                    .collect();
                if sanitize(&format!("x {token}.")) != "x [redacted token]." {
                    missed.push(token);
                }
            }
            // The odd token that drew no digit and few case changes looks like words (see
            // opaque_end); more than one in a thousand would be a broken rule.
            assert!(missed.len() <= 2, "{alphabet}: {missed:?}");
        }
    }

    #[test]
    fn sanitize_keeps_ordinary_words() {
        for text in [
            "token endpoint https://service-account.api.stackit.cloud/token rejected the key",
            "Key with kid 3fa85f64-5717-4562-b3fc-2c963f66afa6 was not found",
            "ci-pusher-7d3f2a1b@sa.stackit.cloud is not allowed; contact admin@example.com",
            "harbor 2.11.0-rc.1 (v1.2.3, build 20260131.4), see https://registry.onstackit.cloud/v2/shop/app/manifests/latest",
            "docker-credential-stackit-linux-amd64/usr/share/doc/docker-credential-stackit/README.md",
            "Set DOCKER_CREDENTIAL_STACKIT_TIMEOUT or STACKIT_SERVICE_ACCOUNT_KEY_PATH; internationalization-and-localization-settings",
            "opaque-3fa85f64-5717-4562-b3fc-2c963f66afa6 at 1795972096723 ms --------------------------------",
            r#"{"error":"Bad Request","message":"The request could not be performed","status":400}"#,
        ] {
            assert_eq!(sanitize(text), text);
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3", 0), Some(Duration::from_secs(3)));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", 784111777),
            Some(Duration::from_secs(3))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        // Found by the fault tests: a huge year overflowed (a panic in debug builds).
        assert_eq!(parse_http_date("Sun, 06 Nov 18446744073709551615 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"), Some(253_402_300_799));
        // The same bug as the fuzzer found it again (fuzz/dicts/token_response.dict); the time
        // field also had a fourth component that used to be ignored.
        assert_eq!(parse_http_date("un, 06 Nov 000018644942324121 00:00:0009:40 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37:99 GMT"), None);
    }

    #[test]
    fn rfc3339_forms() {
        assert_eq!(parse_rfc3339("1994-11-06T08:49:37Z"), Some(784111777));
        assert_eq!(parse_rfc3339("1994-11-06T08:49:37.123Z"), Some(784111777));
        assert_eq!(parse_rfc3339("1994-11-06T10:49:37+02:00"), Some(784111777));
        assert_eq!(parse_rfc3339("1994-11-06T06:49:37.5-02:00"), Some(784111777));
        for bad in ["", "1994-11-06", "1994-13-06T08:49:37Z", "soon", "1994-11-06T08:49:37"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        let noon = Some(1_769_860_800); // 2026-01-31T12:00:00Z
        for text in [
            "2026-01-31T12:00:00Z",
            "2026-01-31T12:00:00.000+00:00",
            "2026-01-31T13:30:00.123456789+01:30",
            "2026-01-31T02:00:00.5-10:00",
            "2026-01-31t12:00:00z",
            "2026-01-31 12:00:00Z",
            " 2026-01-31T12:00:00Z\n",
        ] {
            assert_eq!(parse_rfc3339(text), noon, "{text}");
        }
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800), "a leap day");
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59Z"), Some(253_402_300_799));
    }

    #[test]
    fn rfc3339_refuses_impossible_dates_offsets_and_huge_years() {
        for bad in [
            // A huge year used to overflow the day arithmetic (a panic in debug builds).
            "18446744073709551615-01-01T00:00:00Z",
            "99999-01-01T00:00:00Z",
            "2026-02-31T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-02-01T00:00:00+99:99",
            "2026-02-01T00:00:00+24:00",
            "2026-02-01T00:00:00+01:60",
            "2026-02-01T00:00:00+0100",
            "2026-02-01T24:00:00Z",
            "2026-02-01T10:00:60Z",
            "2026-5-1T10:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates_valid_and_invalid() {
        for (text, unix) in [
            ("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777),
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            ("Thu, 29 Feb 2024 00:00:00 GMT", 1_709_164_800),
            ("Fri, 31 Dec 9999 23:59:59 GMT", 253_402_300_799),
            (" Sun, 06 Nov 1994 08:49:37 GMT ", 784_111_777),
        ] {
            assert_eq!(parse_http_date(text), Some(unix), "{text}");
        }
        for bad in [
            "Sun, 31 Feb 2026 08:49:37 GMT",
            "Sat, 29 Feb 2025 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 06 Nop 1994 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 19940 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT trailing",
            "Sun, 06 Nov 1994",
            "1994-11-06T08:49:37Z",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        for attempt in 1..10 {
            let b = backoff(attempt).as_millis() as u64;
            let base = (250u64 << (attempt - 1).min(4)).min(4000);
            assert!(b >= base / 2 && b < base * 3 / 2, "{attempt}: {b}");
        }
    }
}
