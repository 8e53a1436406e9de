//! Making text from servers safe to print: control characters out, HTML reduced to text, tokens
//! redacted wherever they sit, bounded length. Pure; used for every message that quotes a server.

/// How much of a server's text goes into a message.
const MAX_ERROR_TEXT: usize = 300;

/// Makes server text safe for a one-line message: no control characters, JWT-looking and long
/// opaque tokens redacted wherever they sit (a server might echo the assertion, a proxy the
/// access token), HTML reduced to text, at most 300 characters.
pub fn sanitize(text: &str) -> String {
    // JSON may escape `/` as `\/`, which would cut a base64 token into runs too short to
    // recognise.
    let text = text.replace("\\/", "/");
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

/// Whether `text` holds a whole signed JWT anywhere (`eyJ…` with three segments), even glued
/// to the characters before it. For telling a pasted token from a file path, which may well
/// look like `eyJsomething.json`.
pub fn contains_jwt(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .any(|i| jwt_end(bytes, i).is_some_and(|end| bytes[i..end].iter().filter(|&&b| b == b'.').count() >= 2))
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
        let jwt = if starts_run(bytes, i, is_base64url) {
            jwt_end(bytes, i)
        } else {
            glued_jwt_end(bytes, i)
        };
        let found = jwt
            .map(|end| (i, end))
            .or_else(|| starts_run(bytes, i, is_opaque).then(|| opaque_span(bytes, i)).flatten());
        match found {
            // Both ends sit next to ASCII bytes, so they are character boundaries.
            Some((from, end)) => {
                out.push_str(&text[copied..from]);
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

/// The end of a JWT glued to the word before it (`Bearer` + token without a space, say),
/// starting at `start` inside a run: only when its first segment really decodes to a JSON
/// object, so that a word like `turkeyJerky.example` stays.
fn glued_jwt_end(bytes: &[u8], start: usize) -> Option<usize> {
    use base64::Engine;
    let end = jwt_end(bytes, start)?;
    let header_len = bytes[start..end].iter().take_while(|b| is_base64url(**b)).count();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&bytes[start..start + header_len])
        .ok()?;
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&header)
        .is_ok()
        .then_some(end)
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
///
/// A token glued to a word (`invalid_tokenQk9…`) is found too: when the whole run does not look
/// random, its tails starting within the first [`MAX_GLUED_WORD`] characters are tried, and the
/// word stays. Returns where the token starts and ends.
fn opaque_span(bytes: &[u8], start: usize) -> Option<(usize, usize)> {
    let end = start + bytes[start..].iter().take_while(|b| is_opaque(**b)).count();
    let last_from = (start + MAX_GLUED_WORD).min(end.saturating_sub(MIN_OPAQUE));
    (start..=last_from)
        .filter(|&from| from == start || char_class(bytes[from]) != char_class(bytes[from - 1]))
        .find(|&from| looks_random(&bytes[from..end]))
        .map(|from| (from, end + bytes[end..].iter().take_while(|b| **b == b'=').count()))
}

/// How long a word glued in front of a token may be for the token still to be found.
const MAX_GLUED_WORD: usize = 48;

/// Whether `run` (base64 characters) looks like a random token rather than words.
fn looks_random(run: &[u8]) -> bool {
    if run.len() < MIN_OPAQUE {
        return false;
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
    match classes {
        // base64: upper case, lower case and digits.
        7 => switches * 5 >= run.len(),
        // base64 that drew no digit; CamelCase words switch at most twice a word.
        3 => switches * 3 >= run.len(),
        // hex, base32: one letter case and digits in one unbroken stretch, which no word is
        // (base32 has few digits, so it may hardly switch; UUIDs are broken by dashes).
        5 | 6 => longest_stretch >= MIN_OPAQUE,
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jwt::unsigned as jwt;

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
    /// A JWT of real length whose signature holds `-` and `_`.
    pub(crate) fn real_looking_jwt() -> String {
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
    fn tokens_glued_to_a_word_or_json_escaped_are_redacted() {
        let jwt = real_looking_jwt();
        let opaque = "Zk3_9aQ-xW7vLp2mN8sR4tY6uB1cD5eF0gH";
        let b64 = "dGhpcyBpcyBhIHNlY3JldCB0b2tlbiB2YWx1ZQ+/x/a/b/c/Q29tZQ==";
        for (text, secret) in [
            (format!("Authorization: Bearer{jwt}"), jwt.as_str()),
            (
                format!("invalid assertion_for_the_client_with_a_long_name{jwt}"),
                jwt.as_str(),
            ),
            (format!("error: invalid_access_token{opaque} given"), opaque),
            (format!("unknownsessionidentifier{opaque}"), opaque),
            (
                format!(r#"{{"token":"{}"}}"#, b64.replace('/', "\\/")),
                "dGhpcyBpcyBhIHNlY3JldCB0b2tlbiB2YWx1ZQ",
            ),
        ] {
            let out = sanitize(&text);
            let flat = out.replace("\\/", "/");
            for piece in secret.as_bytes().chunks(12).filter(|c| c.len() == 12) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(!flat.contains(piece), "{piece} of {secret} kept in {out}");
            }
            assert!(out.contains("[redacted token]"), "{out}");
        }
        // A short word in front stays readable.
        assert!(
            sanitize(&format!("x Bearer{jwt}")).starts_with("x Bearer["),
            "{}",
            sanitize(&format!("x Bearer{jwt}"))
        );
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
            // `eyJ` inside a longer word is not the start of a JWT, however it goes on.
            "no route to turkeyJerkyFactory.example.com",
            // Too short for a JWT header: a word that merely starts with `eyJ`.
            "the proxy for sites.eyJabc.def said no",
            // A JWT header alone (`{"alg":"RS512"}`) carries no secret and stays readable.
            "unsupported header eyJhbGciOiJSUzUxMiJ9 (and eyJhbGciOiJSUzUxMiJ9.)",
            // A `>` in a text that is not HTML is text.
            "expected 1 > 0 but got <none>",
        ] {
            assert_eq!(sanitize(text), text);
        }
    }

    #[test]
    fn letters_only_runs_are_judged_by_how_often_they_switch_case() {
        // Random base64 that drew no digit switches case at nearly every other letter...
        assert_redacted(
            "token qXmTbWzRkDpLvNcHsYgFjQaEuIoPwZxCk.",
            &["qXmTbWzRkDpLvNcHsYgFjQaEuIoPwZxCk"],
        );
        // (or at every second one: a third of the letters switching is enough)
        let pairs = "qwERtyUIopASdfGHjkLZxcVBnmQWerTYuiOP";
        assert_redacted(&format!("token {pairs}"), &[pairs]);
        // ...a long CamelCase identifier only where a word starts.
        let name = "DockerCredentialStackitConfiguration";
        assert_eq!(
            sanitize(&format!("unknown field {name}")),
            format!("unknown field {name}")
        );
    }

    #[test]
    fn sanitize_reads_html_as_text_keeping_its_greater_than_signs() {
        assert_eq!(
            sanitize("<html><body><p>limit: 5 > 3 requests</p></body></html>"),
            "limit: 5 > 3 requests"
        );
    }

    #[test]
    fn the_shortest_jwt_header_is_redacted_whole() {
        // `{"a":1}` encodes to exactly the shortest header a JWT may have.
        let t = "eyJhIjoxfQ.eyJzdWIiOiJ4In0.c2ln";
        assert_eq!(sanitize(&format!("bad: {t}")), "bad: [redacted token]");
    }
}
