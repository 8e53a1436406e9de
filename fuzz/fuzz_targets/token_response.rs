//! What the token endpoint sends back: the 2xx body, error text shown to the user, and the
//! `Date` header. Input: 8 bytes of "now" (little endian), then the body.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::token_response(data));
