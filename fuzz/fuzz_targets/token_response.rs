//! What the token endpoint sends back: the 2xx body, error text shown to the user, and the
//! `Date` header. Input: 8 bytes of "now" (little endian), then the body.
#![no_main]

use docker_credential_stackit::token::exchange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (now, body) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (1_800_000_000, data),
    };
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    if let Ok((token, expires_at)) = exchange::parse_success(body, "https://e.example/token", now) {
        assert!(!token.is_empty());
        // Never cached for more than a day, whatever the token claims.
        assert!(expires_at <= now.saturating_add(24 * 3600), "{expires_at} vs {now}");
    }
    let clean = docker_credential_stackit::redact::sanitize(body);
    assert!(!clean.chars().any(char::is_control), "{clean:?}");
    assert!(clean.chars().count() <= 301);
    let _ = docker_credential_stackit::clock::parse_http_date(body);
    let _ = docker_credential_stackit::jwt::jwt_claim_u64(body, "exp");
});
