//! No secret ever appears in stderr or in an error line, whatever goes wrong, at debug level.

use crate::support::*;
use docker_credential_stackit::fake::Reply;
use docker_credential_stackit::secret::Secret;
use serde_json::json;

/// Runs many scenarios with `DOCKER_CREDENTIAL_STACKIT_LOG=debug` and collects every output
/// that is not a deliberate secret answer, then searches it for every secret involved.
#[test]
fn secrets_never_leak_into_diagnostics_or_errors() {
    let fake = fake();
    let mut diagnostics = Vec::new();
    let mut secrets: Vec<String> = vec![];
    let pem = sa().key.pkcs8_pem().expose().to_string();
    // The base64 body lines of the private key, any of which would be a leak.
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
            .map(str::to_string),
    );
    secrets.push("robot-secret-Xy9".into());

    let base = || TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    let mut run = |out: Output, stdout_is_secret: bool| {
        if out.code == 0 && stdout_is_secret && !out.stdout.starts_with('{') {
            secrets.push(out.stdout.trim().to_string());
        } else if out.code == 0 && stdout_is_secret {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
                && let Some(s) = v["Secret"].as_str()
            {
                secrets.push(s.to_string());
            }
        } else {
            diagnostics.push(out.stdout.clone());
        }
        diagnostics.push(out.stderr);
    };

    let env = base();
    run(env.get("registry.onstackit.cloud"), true);
    run(env.get("registry.onstackit.cloud"), true);
    run(env.cmd(&["list"]).run(), false);
    run(env.cmd(&["token"]).run(), true);
    run(env.cmd(&["erase"]).stdin("registry.onstackit.cloud").run(), false);

    // Failures of every kind.
    fake.script([Reply::Status(400, "echo of your assertion follows".into(), vec![])]);
    run(base().get("registry.onstackit.cloud"), false);
    fake.script([Reply::Status(500, "x".into(), vec![]), Reply::Close]);
    run(
        base()
            .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
            .get("registry.onstackit.cloud"),
        true,
    );
    run(
        base()
            .var("STACKIT_PRIVATE_KEY", &pem.replace("MII", "XXX"))
            .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
            .get("registry.onstackit.cloud"),
        false,
    );
    run(
        base()
            .var("STACKIT_PRIVATE_KEY", accounts()[1].key.pkcs8_pem().expose())
            .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
            .get("registry.onstackit.cloud"),
        false,
    );
    let broken =
        json!({"credentials": {"kid": "k", "iss": "i", "sub": "s", "aud": "a", "privateKey": ["nested", pem.clone()]}});
    run(
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &broken.to_string())
            .get("registry.onstackit.cloud"),
        false,
    );
    run(
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &pem)
            .get("registry.onstackit.cloud"),
        false,
    );
    run(
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &format!("{{\"credentials\": {pem:?}"))
            .get("registry.onstackit.cloud"),
        false,
    );

    // Robot secrets through store, get, list, erase and a malformed store.
    let robots = TestEnv::empty().var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    let robot = json!({"ServerURL": "registry.onstackit.cloud", "Username": "robot$x", "Secret": "robot-secret-Xy9"})
        .to_string();
    run(robots.cmd(&["store"]).stdin(&robot).run(), false);
    run(robots.get("registry.onstackit.cloud"), true);
    run(robots.cmd(&["list"]).run(), false);
    run(robots.cmd(&["store"]).stdin(&robot[..robot.len() - 1]).run(), false);
    run(
        robots
            .cmd(&["store"])
            .stdin(robot.replace("\"robot-secret-Xy9\"", "[\"robot-secret-Xy9\"]"))
            .run(),
        false,
    );
    run(
        TestEnv::with_key(&fake)
            .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug")
            .cmd(&["store"])
            .stdin(&robot)
            .run(),
        false,
    );

    assert!(secrets.len() > 10, "the scan has material to look for");
    let all = diagnostics.join("\n");
    assert!(all.contains("debug:"), "the scan covered debug output");
    for s in &secrets {
        assert!(!s.is_empty());
        assert!(
            !all.contains(s.as_str()),
            "secret {}… leaked into:\n{all}",
            &s[..s.len().min(12)]
        );
    }
}

/// What a user or another process can see after a run: stdout, stderr and every file in the
/// cache directory (the last refresh error is kept there for processes that waited on it).
fn traces(env: &TestEnv, out: &Output) -> String {
    let mut all = format!("stdout: {}\nstderr: {}\n", out.stdout, out.stderr);
    let mut dirs = vec![env.cache_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                all.push_str(&format!("{}: {text}\n", path.display()));
            }
        }
    }
    all
}

/// Asserts that no 24-character stretch of any secret appears in `traces`: that covers the whole
/// secret, each of a JWT's three segments (the signature included) and any truncated part of
/// them longer than 47 characters.
fn assert_no_piece_of(secrets: &[Secret], traces: &str) {
    assert!(!secrets.is_empty(), "the scan has material to look for");
    for secret in secrets {
        let secret = secret.expose();
        assert!(secret.split('.').count() == 3, "a JWT: {secret}");
        for segment in secret.split('.') {
            for piece in segment.as_bytes().chunks(24).filter(|c| c.len() == 24) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(!traces.contains(piece), "{piece} of a secret leaked into:\n{traces}");
            }
        }
    }
}

/// A token endpoint that answers with scripted echoes; returns what `get` left behind, with the
/// assertions and tokens involved.
fn get_against_an_echo(replies: Vec<Reply>, vars: &[(&str, &str)]) -> (Output, String, Vec<Secret>) {
    let fake = fake();
    fake.script(replies);
    let mut env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    for (k, v) in vars {
        env.set_var(k, v);
    }
    let out = env.get("registry.onstackit.cloud");
    let traces = traces(&env, &out);
    assert!(
        std::fs::read_dir(env.cache_dir())
            .unwrap()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "err")),
        "the failure was recorded in the cache, so the scan covers it"
    );
    let mut secrets = fake.received_assertions();
    secrets.extend(fake.issued_tokens());
    (out, traces, secrets)
}

#[test]
fn an_assertion_echoed_in_compact_json_is_redacted() {
    let (out, traces, secrets) = get_against_an_echo(
        vec![Reply::Echo(
            400,
            r#"{"error":"invalid_grant","assertion":"{assertion}"}"#.into(),
        )],
        &[],
    );
    out.assert_error(&["HTTP 400", "invalid_grant", "[redacted token]"]);
    assert_no_piece_of(&secrets, &traces);
}

#[test]
fn an_assertion_echoed_by_a_failing_server_is_redacted_in_retry_warnings() {
    let (out, traces, secrets) = get_against_an_echo(
        // More than fit into the deadline: every attempt is answered with an echo.
        vec![Reply::Echo(503, r#"{"error":"unavailable","assertion":"{assertion}"}"#.into()); 20],
        &[("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1")],
    );
    // The last attempt may run out of time instead of seeing a 503; the retry warnings are
    // what this test is about.
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("retrying")
            && out
                .stderr
                .contains(r#"HTTP 503: {"error":"unavailable","assertion":"[redacted token]"}"#),
        "{out:?}"
    );
    assert_no_piece_of(&secrets, &traces);
}

#[test]
fn an_assertion_followed_by_a_full_stop_is_redacted() {
    let (out, traces, secrets) = get_against_an_echo(vec![Reply::Echo(400, "bad assertion {assertion}.".into())], &[]);
    out.assert_error(&["HTTP 400", "bad assertion [redacted token]."]);
    assert_no_piece_of(&secrets, &traces);
}

#[test]
fn a_token_answer_with_trailing_garbage_is_not_echoed() {
    let (out, traces, secrets) = get_against_an_echo(
        vec![Reply::Echo(
            200,
            r#"{"access_token":"{token}","token_type":"Bearer","expires_in":3600} and again: {token}"#.into(),
        )],
        &[],
    );
    out.assert_error(&["not a JSON token response"]);
    assert_eq!(secrets.len(), 2, "one assertion, one access token: {secrets:?}");
    assert_no_piece_of(&secrets, &traces);
}
