//! Harbor robot JSON and every check the validator runs on a parsed robot.
#![no_main]

use docker_credential_stackit::validate::{self, Need, Options, Robot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Robot::list_from_json(text);
    let Ok(robot) = Robot::from_json(text) else {
        return;
    };
    for now in [0, 1_800_000_000, i64::MAX, i64::MIN] {
        let _ = validate::check_robot(&robot, &Options::default(), now);
        let _ = robot.is_expired(now);
    }
    let needs = [
        Need::repository("shop", "pull"),
        Need::repository("shop", "push"),
        Need::new("", "", ""),
    ];
    for need in &needs {
        let _ = validate::decide(&robot, need);
    }
    let _ = validate::check_needs(&robot, &needs);
    let _ = robot.to_value();
    let key = docker_credential_stackit::key::ServiceAccountKey::parse(
        r#"{"credentials":{"kid":"k","iss":"sa@sa.stackit.cloud","sub":"0b9e4b1e-0000-4000-8000-000000000000","aud":"a"}}"#,
        "fuzz",
    );
    if let Ok(key) = key {
        let sa = validate::SaIdentity::from_key(&key);
        let _ = validate::check_link(&robot, &validate::LinkSource::Pointers(validate::LinkPointers::default()), &sa);
    }
});
