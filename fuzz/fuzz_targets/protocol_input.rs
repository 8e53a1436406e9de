//! stdin of `get`/`erase`/`store`: bounded read, server URL extraction, `store`'s JSON.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::protocol_input(data));
