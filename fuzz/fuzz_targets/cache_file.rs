//! The token cache file parser and the freshness rules applied to what it returns.
//! Input: 8 bytes of "now" (little endian), then the file text.
#![no_main]

use docker_credential_stackit::token::cache::{self, Freshness, MIN_REMAINING};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (now, text) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (1_800_000_000, data),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(token) = cache::parse_entry(text, "kid\nhttps://service-account.api.stackit.cloud/token") {
        assert!(!token.access_token.is_empty());
        match token.freshness(now) {
            Freshness::Fresh | Freshness::Usable => assert!(token.remaining(now) >= MIN_REMAINING),
            Freshness::Expired => assert!(token.remaining(now) < MIN_REMAINING),
        }
    }
});
