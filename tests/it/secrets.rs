//! No secret ever appears in stderr or in an error line, whatever goes wrong, at debug level.

use crate::support::*;
use docker_credential_stackit::Secret;
use docker_credential_stackit::testing::fake::Reply;
use serde_json::json;

/// Runs many scenarios with `DOCKER_CREDENTIAL_STACKIT_LOG=debug`, then searches the stdout and
/// stderr of every run for every secret involved: each assertion the fake endpoint received
/// (signed `eyJ…` JWTs), each access token it issued, the private key's lines and a robot
/// secret. The one place a secret may appear is the answer itself: `get`'s `Secret` and
/// `token`'s line, which are taken out of that run's stdout before the search.
#[test]
fn secrets_never_leak_into_diagnostics_or_errors() {
    let fake = fake();
    let pem = sa().key.pkcs8_pem().expose().to_string();
    const ROBOT_SECRET: &str = "robot-secret-Xy9";
    // (what ran, what it printed, whether stdout carries a secret on purpose)
    let mut runs: Vec<(String, Output, bool)> = Vec::new();
    let mut run = |what: &str, cmd: Cmd, answers_with_a_secret: bool| {
        let out = cmd.any_status().stdout_any().stderr_any().run();
        runs.push((what.to_string(), out, answers_with_a_secret));
    };
    let base = || TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");

    let env = base();
    run("cold get", env.get(HOST), true);
    run("warm get", env.get(HOST), true);
    run("list", env.cmd(&["list"]), false);
    run("token", env.cmd(&["token"]), true);
    run("erase", env.cmd(&["erase"]).stdin(HOST), false);

    // Failures of every kind.
    fake.script([Reply::Status(400, "echo of your assertion follows".into(), vec![])]);
    run("refused", base().get(HOST), true);
    fake.script([Reply::Status(500, "x".into(), vec![]), Reply::Close]);
    run(
        "retried",
        base().var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1").get(HOST),
        true,
    );
    run(
        "broken private key",
        base()
            .var("STACKIT_PRIVATE_KEY", &pem.replace("MII", "XXX"))
            .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
            .get(HOST),
        true,
    );
    run(
        "another account's private key",
        base()
            .var("STACKIT_PRIVATE_KEY", accounts()[1].key.pkcs8_pem().expose())
            .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
            .get(HOST),
        true,
    );
    let broken =
        json!({"credentials": {"kid": "k", "iss": "i", "sub": "s", "aud": "a", "privateKey": ["nested", pem.clone()]}});
    run(
        "key JSON of the wrong shape",
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &broken.to_string())
            .get(HOST),
        true,
    );
    run(
        "a PEM where the key JSON belongs",
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &pem)
            .get(HOST),
        true,
    );
    run(
        "truncated key JSON",
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &format!("{{\"credentials\": {pem:?}"))
            .get(HOST),
        true,
    );

    // Robot secrets through store, get, list, erase and a malformed store.
    let robots = TestEnv::empty().var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    let robot = json!({"ServerURL": HOST, "Username": "robot$x", "Secret": ROBOT_SECRET}).to_string();
    run("store", robots.cmd(&["store"]).stdin(&robot), false);
    run("robot get", robots.get(HOST), true);
    run("robot list", robots.cmd(&["list"]), false);
    run(
        "truncated store",
        robots.cmd(&["store"]).stdin(&robot[..robot.len() - 1]),
        false,
    );
    run(
        "store of the wrong shape",
        robots
            .cmd(&["store"])
            .stdin(robot.replace(&format!("\"{ROBOT_SECRET}\""), &format!("[\"{ROBOT_SECRET}\"]"))),
        false,
    );
    run(
        "robot store next to a key",
        TestEnv::with_key(&fake)
            .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug")
            .cmd(&["store"])
            .stdin(&robot),
        false,
    );

    let mut secrets: Vec<(String, String)> = Vec::new();
    let assertions = fake.received_assertions();
    assert!(
        assertions.len() >= 4 && assertions.iter().all(|a| a.expose().starts_with("eyJ")),
        "the scan has signed assertions to look for: {}",
        assertions.len()
    );
    secrets.extend(
        assertions
            .iter()
            .map(|a| ("an assertion".into(), a.expose().to_string())),
    );
    let tokens = fake.issued_tokens();
    assert!(tokens.len() >= 2, "the scan has access tokens to look for");
    secrets.extend(
        tokens
            .iter()
            .map(|t| ("an access token".into(), t.expose().to_string())),
    );
    // The base64 body lines of the private key, any of which would be a leak.
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
            .map(|l| ("a private key line".into(), l.to_string())),
    );
    secrets.push(("the robot secret".into(), ROBOT_SECRET.into()));

    let mut answers = 0;
    let mut debug_lines = 0;
    for (what, out, answers_with_a_secret) in &runs {
        let mut stdout = out.stdout.clone();
        if *answers_with_a_secret && out.code == 0 {
            let answer = match serde_json::from_str::<serde_json::Value>(&out.stdout) {
                Ok(v) => v["Secret"].as_str().unwrap_or_default().to_string(),
                Err(_) => out.stdout.trim().to_string(),
            };
            assert!(!answer.is_empty(), "{what}: {out:?}");
            stdout = stdout.replacen(&answer, "[the answer]", 1);
            answers += 1;
        }
        debug_lines += out.stderr.matches("debug:").count();
        let seen = format!("stdout: {stdout}\nstderr: {}", out.stderr);
        for (kind, secret) in &secrets {
            assert!(
                !seen.contains(secret.as_str()),
                "{kind} ({}…) leaked in {what}:\n{seen}",
                &secret[..secret.len().min(12)]
            );
        }
    }
    assert!(answers >= 5, "the scan covered successful answers too");
    assert!(debug_lines > 10, "the scan covered debug output");
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

/// Checks a run's one-line error on stdout (these runs log at debug level, so stderr is judged
/// by the scan, not by the builder).
fn assert_error_line(out: &Output, fragments: &[&str]) {
    assert_eq!((out.code, out.stdout.lines().count()), (1, 1), "{out:?}");
    for f in fragments {
        assert!(out.stdout.contains(f), "stdout lacks {f:?}: {out:?}");
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
    let out = env.get(HOST).any_status().stdout_any().stderr_any().run();
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
    assert_error_line(&out, &["HTTP 400", "invalid_grant", "[redacted token]"]);
    assert_no_piece_of(&secrets, &traces);
}

#[test]
fn an_assertion_echoed_by_a_failing_server_is_redacted_in_retry_warnings() {
    let (out, traces, secrets) = get_against_an_echo(
        // More than fit into the deadline: every attempt is answered with an echo. 3 s: the
        // first answer and its retry warning come however slowly the process starts.
        vec![Reply::Echo(503, r#"{"error":"unavailable","assertion":"{assertion}"}"#.into()); 20],
        // Retry warnings are debug detail; this test is about them, so it asks for them.
        &[
            ("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3"),
            ("DOCKER_CREDENTIAL_STACKIT_LOG", "debug"),
        ],
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
    assert_error_line(&out, &["HTTP 400", "bad assertion [redacted token]."]);
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
    assert_error_line(&out, &["not a JSON token response"]);
    assert_eq!(secrets.len(), 2, "one assertion, one access token: {secrets:?}");
    assert_no_piece_of(&secrets, &traces);
}

#[test]
fn an_endpoints_password_is_never_printed() {
    // STACKIT_TOKEN_BASEURL, STACKIT_IDP_TOKEN_ENDPOINT or a config file's tokenEndpoint with
    // user info: errors, debug lines and check's report name the endpoint without it.
    let fake = fake();
    let port = fake
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let with_password = format!("http://user:s3cr3tpw@127.0.0.1:{port}/token");
    let refused = Reply::Status(400, r#"{"error":"invalid_grant"}"#.into(), vec![]);
    let key_env = || {
        TestEnv::with_key(&fake)
            .var("STACKIT_TOKEN_BASEURL", &with_password)
            .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug")
    };
    let mut runs = Vec::new();
    fake.script([refused.clone(), refused.clone(), refused.clone()]);
    runs.push(key_env().get(HOST).any_status().stdout_any().stderr_any().run());
    runs.push(key_env().cmd(&["token"]).any_status().stdout_any().stderr_any().run());
    runs.push(
        key_env()
            .cmd(&["check", HOST])
            .any_status()
            .stdout_any()
            .stderr_any()
            .run(),
    );
    // The config file's tokenEndpoint.
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    let config = env.write(
        "helper.json",
        &serde_json::json!({"registries": {HOST: {"tokenEndpoint": with_password}}}).to_string(),
    );
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_CONFIG", config.to_str().unwrap());
    fake.script([refused.clone()]);
    runs.push(env.get(HOST).any_status().stdout_any().stderr_any().run());
    // Refused before any request: plain http to another host, and not a URL at all.
    for bad in [
        "http://user:s3cr3tpw@10.9.9.9/token",
        "ftp://user:s3cr3tpw@x.example/token",
        "user:s3cr3tpw@x.example",
    ] {
        runs.push(
            TestEnv::with_key(&fake)
                .var("STACKIT_TOKEN_BASEURL", bad)
                .get(HOST)
                .any_status()
                .stdout_any()
                .stderr_any()
                .run(),
        );
    }
    for out in &runs {
        assert!(
            !out.stdout.contains("s3cr3tpw") && !out.stderr.contains("s3cr3tpw"),
            "the endpoint's password is printed: {out:?}"
        );
        assert_ne!(out.code, 0, "{out:?}");
    }
    assert!(
        runs[0].stderr.contains("***@127.0.0.1"),
        "the endpoint is still named: {}",
        runs[0].stderr
    );
}

/// Fails if any 24-character stretch of `secret` (newlines dropped) appears in `out`.
fn assert_no_stretch(what: &str, secret: &str, out: &Output) {
    let flat: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
    let seen = format!("{}\n{}", out.stdout, out.stderr);
    let seen_flat: String = seen.chars().filter(|c| !c.is_whitespace()).collect();
    for piece in flat.as_bytes().chunks(24).filter(|c| c.len() == 24) {
        let piece = std::str::from_utf8(piece).unwrap();
        assert!(
            !seen_flat.contains(piece),
            "{what}: {piece} of the secret leaked into:\n{seen}"
        );
    }
    assert!(!seen.contains("BEGIN PRIVATE KEY"), "{what}: {seen}");
}

#[test]
fn key_content_pasted_into_a_path_setting_is_never_echoed() {
    // The secret's value instead of a file (an easy CI mistake): whatever verb runs, the
    // message says what the value looks like and where content goes, and quotes none of it.
    let fake = fake();
    let key_json = sa().key_json(true, None).expose().to_string();
    let pem = sa().key.pkcs8_pem().expose().to_string();
    let jwt =
        docker_credential_stackit::testing::fake::FakeIssuer::new("https://issuer.example").token("sub", "aud", 600);
    let cases = [
        (
            "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
            key_json.as_str(),
            "STACKIT_SERVICE_ACCOUNT_KEY",
            None,
        ),
        ("STACKIT_PRIVATE_KEY_PATH", pem.as_str(), "STACKIT_PRIVATE_KEY", None),
        (
            "STACKIT_FEDERATED_TOKEN_FILE",
            jwt.as_str(),
            "STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN",
            Some(("STACKIT_SERVICE_ACCOUNT_EMAIL", "ci@sa.stackit.cloud")),
        ),
    ];
    let kubelet_request = r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"registry.onstackit.cloud/a/b"}"#;
    for (variable, content, instead, extra) in cases {
        let mut env = TestEnv::with_key(&fake).var(variable, content);
        if let Some((name, value)) = extra {
            env = env.var(name, value);
        }
        for (verb, stdin) in [
            (&["get"][..], HOST),
            (&["token"], ""),
            (&["check", "--json"], ""),
            (&["check"], ""),
            (&["kubelet"], kubelet_request),
        ] {
            let out = env.cmd(verb).stdin(stdin).any_status().stdout_any().stderr_any().run();
            assert_ne!(out.code, 0, "{variable} {verb:?}: {out:?}");
            assert_no_stretch(&format!("{variable} {verb:?}"), content, &out);
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(
                all.contains(variable) && all.contains(instead),
                "{variable} {verb:?}: {all}"
            );
        }
    }
    // A path entry of the credentials file holding the key itself.
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    env.write(
        ".stackit/credentials.json",
        &json!({"STACKIT_SERVICE_ACCOUNT_KEY_PATH": key_json}).to_string(),
    );
    let out = env.get(HOST).any_status().stdout_any().stderr_any().run();
    assert_eq!(out.code, 1, "{out:?}");
    assert_no_stretch("credentials.json", &key_json, &out);
    assert!(out.stdout.contains("STACKIT_SERVICE_ACCOUNT_KEY"), "{}", out.stdout);
    assert_eq!(fake.requests(), 0);
}
