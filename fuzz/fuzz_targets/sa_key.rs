//! The service account key JSON (`ServiceAccountKey::parse`) and PEM private keys.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sa_key(data));
