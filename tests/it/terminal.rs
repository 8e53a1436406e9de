//! Nothing from outside reaches a terminal raw: names from the helper's config file and from
//! Docker's config, and tokens from an endpoint, are printed with control, bidi and zero-width
//! characters escaped, or refused. A hostile value must not retitle or clear the terminal, nor
//! fake a line of output.

use crate::support::*;
use docker_credential_stackit::testing::fake::Reply;
use serde_json::json;

/// Escape sequences a hostile file or server might plant: retitle the window (OSC 0 ... BEL),
/// clear the screen (CSI 2J, and its 8-bit C1 form), a carriage return that overwrites the line,
/// a right-to-left override and a zero-width space.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}2J\rfake\u{202e}\u{200b}";

/// Fails if `text` holds any character a terminal would act on or reorder by.
fn assert_clean(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n' && c != '\t')
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(raw.is_empty(), "{what} printed raw {raw:?}: {text:?}");
}

#[test]
fn a_registry_name_and_an_unknown_field_in_the_config_file_are_printed_escaped() {
    let fake = fake();
    for config in [
        json!({"registries": {format!("evil{HOSTILE}.example"): {}}}),
        json!({"registries": {"registry.onstackit.cloud": {format!("serviceAccountKeyPth{HOSTILE}"): "x"}}}),
        json!({format!("tokenEndpoint{HOSTILE}"): "https://x.example"}),
    ] {
        let env = TestEnv::with_key(&fake);
        let file = env.write("helper.json", &config.to_string());
        let env = env.var("DOCKER_CREDENTIAL_STACKIT_CONFIG", file.to_str().unwrap());
        for verb in [&["get"][..], &["token"], &["list"], &["check", "--json"], &["check"]] {
            let out = env.cmd(verb).stdin(HOST).any_status().stdout_any().stderr_any().run();
            assert_ne!(out.code, 0, "{verb:?} with {config}");
            assert_clean(&format!("{verb:?} stdout"), &out.stdout);
            assert_clean(&format!("{verb:?} stderr"), &out.stderr);
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(
                all.contains("\\u{1b}") || all.contains("\\\\u001b") || all.contains("\\u001b"),
                "{verb:?}: the hostile name is shown escaped: {all}"
            );
        }
    }
    assert_eq!(fake.requests(), 0);
}

#[test]
fn an_auths_key_in_dockers_config_is_printed_escaped_by_a_dry_run() {
    let env = TestEnv::empty();
    let docker = env.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let env = env.var("DOCKER_CONFIG", docker.to_str().unwrap());
    let text = serde_json::to_string_pretty(&json!({"auths": {format!("evil{HOSTILE}.example"): {}}})).unwrap();
    std::fs::write(docker.join("config.json"), &text).unwrap();
    let out = env
        .cmd(&["configure-docker", "--dry-run"])
        .stdout_any()
        .stderr_any()
        .run();
    assert_eq!(out.code, 0, "{out:?}");
    assert_clean("configure-docker --dry-run stdout", &out.stdout);
    assert_clean("configure-docker --dry-run stderr", &out.stderr);
    assert!(
        out.stdout.contains("evil"),
        "the auths entry is in the diff's context: {}",
        out.stdout
    );
}

#[test]
fn an_access_token_that_is_not_visible_ascii_is_refused_not_printed() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    for token in [
        "zq7\u{1b}]0;owned\u{7}Xw",
        "zq7 Xw",
        "zq7\u{202e}Xw",
        "zq7ö\u{e9}Xw",
        "zq7\nXw",
    ] {
        let body = json!({"access_token": token, "expires_in": 3600}).to_string();
        for verb in ["token", "get"] {
            fake.script([Reply::Status(200, body.clone(), vec![])]);
            let out = env
                .cmd(&[verb])
                .stdin(HOST)
                .any_status()
                .stdout_any()
                .stderr_any()
                .run();
            assert_eq!(out.code, 1, "{verb} with {token:?}: {out:?}");
            assert!(out.stderr.contains("not visible ASCII"), "{verb}: {}", out.stderr);
            for out in [&out.stdout, &out.stderr] {
                assert!(
                    !out.contains("zq7") && !out.contains("Xw"),
                    "{verb} printed the token: {out:?}"
                );
            }
            assert_clean(&format!("{verb} stdout"), &out.stdout);
            assert_clean(&format!("{verb} stderr"), &out.stderr);
            assert!(env.cache_files().is_empty(), "{verb}: a refused token is not cached");
        }
    }
}
