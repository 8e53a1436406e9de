//! Docker's protocol, exactly: stdout carries only the answer or one error line.

use crate::support::*;

#[test]
fn version_and_help_exit_zero() {
    let env = TestEnv::empty();
    for args in [["version"], ["--version"], ["-v"]] {
        let out = env.cmd(&args).run();
        assert_eq!(out.code, 0);
        assert!(out.stdout.starts_with("docker-credential-stackit "), "{out:?}");
        assert_eq!(out.stdout.lines().count(), 1);
    }
    for args in [["help"], ["--help"], ["-h"]] {
        let out = env.cmd(&args).run();
        assert_eq!(out.code, 0);
        for verb in ["get", "store", "erase", "list", "version", "token"] {
            assert!(out.stdout.contains(&format!("  {verb}")), "help lacks {verb}");
        }
    }
}

#[test]
fn unknown_or_missing_command_is_a_usage_error() {
    let env = TestEnv::empty();
    let out = env.cmd(&["frobnicate"]).run();
    assert_eq!(out.code, 2);
    assert!(out.stdout.contains("unknown command \"frobnicate\""), "{out:?}");
    assert_eq!(env.cmd(&[]).run().code, 2);
}

#[test]
fn hosts_not_served_are_not_found() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    for host in [
        "docker.io",
        "https://index.docker.io/v1/",
        "registry.onstackit.cloud.evil.example",
        "evilregistry.onstackit.cloud",
        "registry.onstackit.cloud:5000",
        "https://registry.onstackit.cloud@evil.example",
        "not a host",
    ] {
        env.get(host).assert_not_found();
    }
    assert_eq!(fake.requests(), 0, "unserved hosts must never reach the token endpoint");
}

#[test]
fn served_host_without_any_identity_is_not_found() {
    TestEnv::empty().get("registry.onstackit.cloud").assert_not_found();
}

#[test]
fn every_server_url_form_gets_the_same_credentials_and_echoes_the_input() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let mut secrets = Vec::new();
    for (input, echoed) in [
        ("registry.onstackit.cloud", "registry.onstackit.cloud"),
        ("registry.onstackit.cloud\n", "registry.onstackit.cloud"),
        ("  registry.onstackit.cloud\r\n", "registry.onstackit.cloud"),
        ("https://registry.onstackit.cloud", "https://registry.onstackit.cloud"),
        (
            "https://registry.onstackit.cloud/v2/",
            "https://registry.onstackit.cloud/v2/",
        ),
        ("registry.onstackit.cloud:443", "registry.onstackit.cloud:443"),
        ("Registry.OnStackit.Cloud", "Registry.OnStackit.Cloud"),
    ] {
        let out = env.get(input);
        let v = out.json();
        assert_eq!(v["ServerURL"], echoed);
        assert_eq!(v["Username"], sa().iss.as_str());
        assert_eq!(
            v.as_object().unwrap().len(),
            3,
            "exactly ServerURL, Username, Secret: {v}"
        );
        assert_eq!(out.stdout.lines().count(), 1);
        secrets.push(v["Secret"].as_str().unwrap().to_string());
    }
    secrets.dedup();
    assert_eq!(secrets.len(), 1, "all forms share one cached token");
    assert_eq!(fake.requests(), 1);
}

#[test]
fn empty_input_gets_dockers_canonical_messages() {
    let env = TestEnv::empty();
    for verb in ["get", "erase"] {
        for input in ["", "\n", "  \r\n"] {
            let out = env.cmd(&[verb]).stdin(input).run();
            assert_eq!(
                (out.code, out.stdout.as_str()),
                (1, "no credentials server URL\n"),
                "{verb} {input:?}"
            );
        }
    }
    let out = env
        .cmd(&["store"])
        .stdin(r#"{"ServerURL":"registry.onstackit.cloud","Secret":"x"}"#)
        .run();
    assert_eq!((out.code, out.stdout.as_str()), (1, "no credentials username\n"));
    let out = env.cmd(&["store"]).stdin("").run();
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout.lines().count(), 1);
}

#[test]
fn bad_stdin_gets_a_clear_error() {
    let env = TestEnv::empty();
    env.cmd(&["get"])
        .stdin(vec![b'a'; 2 * 1024 * 1024])
        .run()
        .assert_error(&["larger than"]);
    env.cmd(&["get"])
        .stdin([0xff, 0xfe, 0x00])
        .run()
        .assert_error(&["UTF-8"]);
    env.cmd(&["get"])
        .stdin(r#"{"ServerURL":"registry.onstackit.cloud"}"#)
        .run()
        .assert_error(&["expects a bare server URL"]);
    env.cmd(&["store"])
        .stdin("registry.onstackit.cloud")
        .run()
        .assert_error(&["JSON object"]);
}

#[test]
fn list_needs_no_stdin_and_answers_json() {
    let fake = fake();
    let env = TestEnv::empty();
    for input in ["", "unused"] {
        let out = env.cmd(&["list"]).stdin(input).run();
        assert_eq!(out.json(), serde_json::json!({}));
    }
    let env = TestEnv::with_key(&fake);
    let out = env.cmd(&["list"]).run();
    assert_eq!(out.json(), serde_json::json!({"registry.onstackit.cloud": sa().iss}));
    assert_eq!(fake.requests(), 0, "list does no network");
}

#[test]
fn erase_succeeds_with_nothing_to_erase_twice() {
    let env = TestEnv::empty();
    for _ in 0..2 {
        let out = env.cmd(&["erase"]).stdin("registry.onstackit.cloud").run();
        assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    }
    assert_eq!(env.cmd(&["erase"]).stdin("docker.io").run().code, 0);
}

#[test]
fn token_verb_prints_the_bare_token() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let out = env.cmd(&["token"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let token = out.stdout.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert!(fake.verify_access_token(token).is_some());
    let get = env.get("registry.onstackit.cloud").json();
    assert_eq!(get["Secret"], token, "token and get share the cache");
    assert_eq!(fake.requests(), 1);

    let out = TestEnv::empty().cmd(&["token"]).run();
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (1, ""),
        "errors never go to stdout, where they would become a password"
    );
    assert!(out.stderr.contains("STACKIT_SERVICE_ACCOUNT_KEY_PATH"), "{out:?}");
    assert_eq!(env.cmd(&["token", "docker.io"]).run().code, 1);
    assert_eq!(env.cmd(&["token", "a", "b"]).run().code, 2);
}

#[test]
fn token_usage_errors_never_reach_stdout() {
    // `token | docker login --password-stdin` would take anything on stdout for the password.
    let out = TestEnv::empty().cmd(&["token", "a", "b"]).run();
    assert_eq!((out.code, out.stdout.as_str()), (2, ""), "{out:?}");
    assert!(out.stderr.contains("at most one SERVER"), "{out:?}");
}

#[test]
fn demo_runs_end_to_end() {
    let out = TestEnv::empty().cmd(&["demo"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Demo passed"), "{out:?}");
}

#[test]
fn errors_are_repeated_on_stderr_because_docker_hides_stdout() {
    let env = TestEnv::empty().var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", "/nonexistent/key.json");
    let out = env.get("registry.onstackit.cloud");
    let line = out.assert_error(&["/nonexistent/key.json"]);
    assert!(out.stderr.contains(&format!("error: {line}")), "{out:?}");
    // Not found is an answer, not an error, and stays quiet.
    let out = TestEnv::empty().get("docker.io");
    out.assert_not_found();
    assert_eq!(out.stderr, "");
    // `off` silences it.
    let out = env
        .var("DOCKER_CREDENTIAL_STACKIT_LOG", "off")
        .get("registry.onstackit.cloud");
    assert_eq!((out.code, out.stderr.as_str()), (1, ""));
}
