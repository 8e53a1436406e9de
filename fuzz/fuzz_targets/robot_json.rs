//! Harbor robot JSON and every check the validator runs on a parsed robot.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::robot_json(data));
