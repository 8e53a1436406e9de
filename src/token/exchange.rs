//! The one network round trip: POST the assertion to the token endpoint, with retries on
//! network errors, 429 and 5xx inside one total deadline. 4xx is final.

use crate::clock::{parse_http_date, unix_now};
use crate::error::{Error, Result};
use crate::http::{BodyError, SendError, body_note};
use crate::jwt::jwt_claim_u64;
use crate::log::debug;
use crate::redact::sanitize;
use crate::secret::Secret;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// The OAuth grant type of the key flow (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Token answers larger than this are refused (a real one is about 2 KB).
const MAX_BODY: u64 = 64 * 1024;
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

    /// What to change to send this grant to another URL: where `endpoint` was configured, or
    /// the variable that overrides a default (or a key file's `tokenEndpoint`).
    fn where_to_set(&self, endpoint: &crate::http::Endpoint) -> String {
        match endpoint.origin() {
            o if o == "the default" || o.starts_with("credentials.tokenEndpoint") => self.endpoint_variable().into(),
            o => o.to_string(),
        }
    }
}

/// Exchanges `grant` at `endpoint`, giving up at `deadline`.
pub fn exchange(
    endpoint: &crate::http::Endpoint,
    grant: Grant<'_>,
    deadline: Instant,
    proxies: &crate::http::Proxies,
) -> Result<Minted> {
    let agent = crate::http::Client::new(proxies)?;
    // Messages name the endpoint without its user info; only the request sees the whole URL.
    let (url, set_it, endpoint) = (endpoint.url(), grant.where_to_set(endpoint), endpoint.to_string());
    let endpoint = endpoint.as_str();
    let started = Instant::now();
    let gave_up = |reason: &str, attempts: u32| {
        Error::Network(format!(
            "{reason}; gave up after {attempts} attempt{} in {:.1}s, as the next one was due after the {:.0}s that DOCKER_CREDENTIAL_STACKIT_TIMEOUT allows; {CHECK_HINT}",
            if attempts == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64(),
            (deadline - started).as_secs_f64()
        ))
    };
    let mut attempt = 0u32;
    let mut last_reason: Option<String> = None;
    loop {
        attempt += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // A slow machine may wake from the back-off sleep past the deadline: the reason of
            // the last attempt is still what the user needs.
            return Err(match &last_reason {
                Some(reason) => gave_up(reason, attempt - 1),
                None => no_time_left(endpoint),
            });
        }
        debug!("POST {endpoint} (attempt {attempt}, {:.1}s left)", left.as_secs_f64());
        let (reason, wait) = match try_once(&agent, (url, endpoint, &set_it), grant, deadline) {
            Attempt::Done(m) => return Ok(m),
            Attempt::Fatal(e) => return Err(e),
            Attempt::Retry(reason, wait) => (reason, wait),
        };
        // A server's Retry-After is a floor, never a licence to hammer it: `Retry-After: 0` on
        // every 429 would otherwise turn this loop into a flood until the deadline.
        let wait = wait.map_or_else(|| backoff(attempt), |w| w.max(backoff(attempt)));
        let left = deadline.saturating_duration_since(Instant::now());
        if wait >= left {
            // Stopping with time left is honest only if the reason is said: the next attempt
            // was due after the deadline.
            return Err(gave_up(&reason, attempt));
        }
        // Docker calls get several times per command: retries are detail, the final error is
        // what the user needs to see.
        debug!("{reason}; retrying in {:.1}s", wait.as_secs_f64());
        last_reason = Some(reason);
        std::thread::sleep(wait);
    }
}

/// One POST of `grant` to `url`; messages name it as `endpoint` (without user info) and say
/// that `set_it` moves it.
fn try_once(agent: &crate::http::Client, target: (&str, &str, &str), grant: Grant<'_>, deadline: Instant) -> Attempt {
    let (url, endpoint, set_it) = target;
    let request = agent.post(url).header("Accept", "application/json");
    let answer = crate::http::bounded(request, deadline, MAX_BODY, |request| match grant {
        Grant::Assertion(assertion) => {
            request.send_form([("grant_type", GRANT_TYPE), ("assertion", assertion.expose())])
        }
        Grant::Federated { token, email } => request.send_form([
            ("grant_type", crate::federated::GRANT_TYPE),
            ("client_assertion_type", crate::federated::CLIENT_ASSERTION_TYPE),
            ("client_assertion", token.expose()),
            ("client_id", email),
        ]),
    });
    let answer = match answer {
        Ok(a) => a,
        Err(SendError::NoTimeLeft) => {
            return Attempt::Fatal(no_time_left(endpoint));
        }
        Err(SendError::Failed(e)) => return network_error(endpoint, e),
    };
    let status = answer.status;
    let retry_after = answer
        .header("retry-after")
        .and_then(|v| parse_retry_after(v, unix_now()));
    let location = answer.header("location").map(str::to_string);
    let server_date = answer.header("date").and_then(parse_http_date);
    let body = answer.body;

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
            Err(BodyError::TooLarge) => Attempt::Fatal(Error::Token(format!(
                "token endpoint {endpoint} answered with more than {} KiB; refusing it",
                MAX_BODY / 1024
            ))),
            Err(BodyError::Read(e)) => Attempt::Retry(
                format!("token endpoint {endpoint}: reading the answer failed: {}", describe(&e)),
                None,
            ),
        },
        300..=399 => Attempt::Fatal(Error::Token(format!(
            "token endpoint {endpoint} redirected (HTTP {status}) to {}; redirects are not followed with a signed assertion, set {} to the final URL",
            location.as_deref().map(sanitize).unwrap_or_else(|| "nowhere".into()),
            set_it
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

/// How every network error ends: where the details are.
const CHECK_HINT: &str = "run `docker-credential-stackit check` for details";

fn no_time_left(endpoint: &str) -> Error {
    Error::Network(format!(
        "token endpoint {endpoint}: no time left within DOCKER_CREDENTIAL_STACKIT_TIMEOUT; {CHECK_HINT}"
    ))
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
        return Attempt::Fatal(Error::Network(format!(
            "token endpoint {endpoint}: host not found (DNS: {detail}); check the URL, your network and any HTTPS_PROXY; {CHECK_HINT}"
        )));
    }
    // Certificate problems are final, not transient.
    if crate::http::is_tls_error(&e) {
        return tls_failure(endpoint, &text);
    }
    match e {
        // A trickling or silent endpoint is reachable, just too slow: say so.
        ureq::Error::Timeout(_) => Attempt::Retry(format!("token endpoint {endpoint} did not answer in time"), None),
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_) => {
            Attempt::Retry(format!("token endpoint {endpoint} unreachable: {text}"), None)
        }
        // Anything else is final. A bad URL or proxy never gets here: the endpoint was parsed by
        // the same URI parser when it was configured, the proxy when the client was built.
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

/// What went wrong, in words: the common network failures as a person would put them, the
/// rest as the library says it (sanitised).
fn describe(e: &ureq::Error) -> String {
    use std::io::ErrorKind;
    let io_kind = match e {
        ureq::Error::Io(io) => Some(io.kind()),
        _ => None,
    };
    match (e, io_kind) {
        (ureq::Error::Timeout(_), _) | (_, Some(ErrorKind::TimedOut)) => "no answer in time".into(),
        (_, Some(ErrorKind::ConnectionRefused)) => {
            "connection refused (nothing listens there, or a firewall rejects it)".into()
        }
        (_, Some(ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted)) => "the connection was cut".into(),
        (_, Some(ErrorKind::NetworkUnreachable)) => "network unreachable".into(),
        (_, Some(ErrorKind::HostUnreachable)) => "host unreachable".into(),
        (_, Some(ErrorKind::UnexpectedEof)) => "the connection closed before an answer".into(),
        (ureq::Error::ConnectionFailed, _) => "the connection failed".into(),
        (ureq::Error::Protocol(p), _) => format!("the answer was not valid HTTP ({})", sanitize(&p.to_string())),
        _ => sanitize(&e.to_string()),
    }
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
    if !token.is_token_text() {
        return Err(Error::Token(format!(
            "token endpoint {endpoint} answered with an access_token that is not visible ASCII text (spaces, control or non-ASCII characters); it was refused, not passed on as a password"
        )));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::jwt::unsigned as jwt;
    use crate::redact::tests::real_looking_jwt;

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
            r#"{"access_token":"   ","expires_in":3600}"#,
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
    fn backoff_grows_with_jitter_and_a_cap() {
        for attempt in 1..10 {
            let b = backoff(attempt).as_millis() as u64;
            let base = (250u64 << (attempt - 1).min(4)).min(4000);
            assert!(b >= base / 2 && b < base * 3 / 2, "{attempt}: {b}");
        }
        // Jitter: waits spread over the range, so that processes refused together do not
        // come back together (20 equal draws from 16 random bits do not happen).
        let waits: std::collections::BTreeSet<u128> = (0..20).map(|_| backoff(3).as_millis()).collect();
        assert!(waits.len() > 1 && *waits.last().unwrap() > 600, "{waits:?}");
    }
}
