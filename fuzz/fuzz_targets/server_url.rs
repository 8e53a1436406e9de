//! Server URL normalisation: never panics, idempotent, and only maps text that contains the
//! served host onto it.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::server_url(data));
