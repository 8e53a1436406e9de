//! The token cache file parser and the freshness rules applied to what it returns.
//! Input: 8 bytes of "now" (little endian), then the file text.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::cache_file(data));
