//! Registry bearer tokens (`Grants::from_token`) and scopes. Input: a scope line, then the token.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::registry_token(data));
