//! Docker's protocol, exactly: stdout carries only the answer or one error line, whatever arrives
//! on stdin.

use crate::support::*;

#[test]
fn version_and_help_exit_zero() {
    let env = TestEnv::empty();
    for args in [["version"], ["--version"], ["-v"]] {
        let out = env.cmd(&args).stdout_has("docker-credential-stackit ").run();
        assert!(out.stdout.starts_with("docker-credential-stackit "), "{out:?}");
        assert_eq!(out.stdout.lines().count(), 1);
    }
    for args in [["help"], ["--help"], ["-h"]] {
        let out = env.cmd(&args).stdout_any().run();
        for verb in ["get", "store", "erase", "list", "version", "token"] {
            assert!(out.stdout.contains(&format!("  {verb}")), "help lacks {verb}");
        }
    }
}

#[test]
fn unknown_or_missing_command_is_a_usage_error() {
    // One line on stderr naming the problem and `help`, exit 2, nothing on stdout.
    let env = TestEnv::empty();
    for (args, problem) in [
        (&["frobnicate"][..], "unknown command \"frobnicate\""),
        (&["-V"], "unknown command \"-V\""),
        (&[], "no command given"),
        (&["help", "frobnicate"], "unknown command \"frobnicate\""),
        (&["check", "--pull", "--push"], "--pull or --push"),
        (&["kubelet", "--bogus"], "--allow-node-fallback"),
    ] {
        let out = env
            .cmd(args)
            .stdin("")
            .status(2)
            .stdout("")
            .stderr_has(problem)
            .stderr_has("help")
            .run();
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
    }
}

#[test]
fn every_verb_answers_help_with_its_own_usage() {
    let env = TestEnv::empty();
    for verb in [
        "get",
        "store",
        "erase",
        "list",
        "token",
        "kubelet",
        "check",
        "configure-docker",
        "demo",
        "version",
    ] {
        for flag in ["--help", "-h"] {
            // stdin stays open and empty: a verb that read it instead would still answer
            // something, but not its usage.
            let out = env.cmd(&[verb, flag]).stdin("").stdout_any().run();
            assert!(
                out.stdout
                    .starts_with(&format!("Usage: docker-credential-stackit {verb}")),
                "{verb} {flag}: {out:?}"
            );
        }
        let out = env.cmd(&["help", verb]).stdout_any().run();
        assert!(
            out.stdout
                .starts_with(&format!("Usage: docker-credential-stackit {verb}")),
            "help {verb}: {out:?}"
        );
    }
    for general in [&["help"][..], &["--help"], &["-h"]] {
        env.cmd(general)
            .stdout_has("Usage: docker-credential-stackit <command>")
            .run();
    }
    for version in ["version", "--version", "-v"] {
        env.cmd(&[version])
            .stdout(format!("docker-credential-stackit {}\n", env!("CARGO_PKG_VERSION")))
            .run();
    }
    // A help request never waits for stdin, runs the demo or sends anything.
    assert!(env.cmd(&["demo", "--help"]).stdout_any().run().stdout.lines().count() < 10);
}

#[test]
fn protocol_verbs_on_a_terminal_print_a_hint_instead_of_waiting() {
    // `script` gives the helper a terminal on stdin, as a person typing the command would.
    let Some(script) = crate::support::tool("script", "apt-get install bsdutils") else {
        return;
    };
    for (verb, hint) in [
        ("get", "printf registry.onstackit.cloud | docker-credential-stackit get"),
        (
            "erase",
            "printf registry.onstackit.cloud | docker-credential-stackit erase",
        ),
        ("store", "docker login"),
        ("kubelet", "CredentialProviderRequest"),
    ] {
        let command = format!("{} {verb}", crate::support::bin());
        let out = Cmd::system(script.to_str().unwrap())
            .args(["-qec", &command, "/dev/null"])
            .env("HOME", TestEnv::empty().home.path())
            .deadline(std::time::Duration::from_secs(10))
            .status(2)
            .stdout_any()
            .stderr_any()
            .run();
        assert!(out.stdout.contains(hint), "{verb}: {out:?}");
        assert_eq!(out.stdout.trim().lines().count(), 1, "{verb}: one line: {out:?}");
    }
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
    TestEnv::empty().get(HOST).assert_not_found();
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
        let v = env.get(input).json();
        assert_eq!(v["ServerURL"], echoed);
        assert_eq!(v["Username"], sa().iss.as_str());
        assert_eq!(
            v.as_object().unwrap().len(),
            3,
            "exactly ServerURL, Username, Secret: {v}"
        );
        secrets.push(secret_of(&v));
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
            env.cmd(&[verb])
                .stdin(input)
                .stdout("no credentials server URL\n")
                .assert_error(&[]);
        }
    }
    env.cmd(&["store"])
        .stdin(r#"{"ServerURL":"registry.onstackit.cloud","Secret":"x"}"#)
        .stdout("no credentials username\n")
        .assert_error(&[]);
    env.cmd(&["store"]).stdin("").assert_error(&[]);
}

#[test]
fn bad_stdin_gets_a_clear_error() {
    let env = TestEnv::empty();
    env.cmd(&["get"])
        .stdin(vec![b'a'; 2 * 1024 * 1024])
        .assert_error(&["larger than"]);
    env.cmd(&["get"]).stdin([0xff, 0xfe, 0x00]).assert_error(&["UTF-8"]);
    env.get(r#"{"ServerURL":"registry.onstackit.cloud"}"#)
        .assert_error(&["expects a bare server URL"]);
    env.cmd(&["store"]).stdin(HOST).assert_error(&["JSON object"]);
}

#[test]
fn odd_stdin_never_hangs_and_gets_one_line() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let ten_mb = vec![b' '; 10 * 1024 * 1024];
    for verb in ["get", "erase", "store"] {
        env.cmd(&[verb])
            .stdin(&ten_mb)
            .deadline(std::time::Duration::from_secs(30))
            .assert_error(&["larger than 1024 KiB"]);
    }
    // The kubelet reads errors on stderr; stdout stays empty.
    env.cmd(&["kubelet"])
        .stdin(&ten_mb)
        .status(1)
        .stderr_has("larger than")
        .run();

    for blank in ["\t\t\n", " \u{a0}\u{3000} ", "\r\n\r\n", "\u{feff}\n"] {
        env.get(blank).stdout("no credentials server URL\n").assert_error(&[]);
    }
    // A byte-order mark (PowerShell pipes add one) is not part of the host name.
    assert_eq!(
        env.get("\u{feff}registry.onstackit.cloud\r\n").json()["ServerURL"],
        HOST
    );
    for hostile in [
        "registry.onstackit.cloud\u{0}",
        "registry.onstackit.cloud\u{0}.evil.example",
        "\u{1b}[31mregistry.onstackit.cloud",
        "registry.onstackit.cloud evil.example",
    ] {
        env.get(hostile).assert_not_found();
    }
    env.cmd(&["erase"])
        .stdin(r#"{"ServerURL":"registry.onstackit.cloud"}"#)
        .assert_error(&["expects a bare server URL"]);
    env.cmd(&["kubelet"])
        .stdin(HOST)
        .status(1)
        .stderr_has("not valid JSON")
        .run();
    env.cmd(&["store"])
        .stdin(r#"["registry.onstackit.cloud","robot$x","secret"]"#)
        .assert_error(&["JSON object"]);
    assert_eq!(fake.requests(), 1, "only the BOM case reached the endpoint");
}

#[test]
fn list_needs_no_stdin_and_answers_json() {
    let fake = fake();
    let env = TestEnv::empty();
    for input in ["", "unused"] {
        assert_eq!(env.cmd(&["list"]).stdin(input).json(), serde_json::json!({}));
    }
    let env = TestEnv::with_key(&fake);
    assert_eq!(
        env.cmd(&["list"]).json(),
        serde_json::json!({"registry.onstackit.cloud": sa().iss})
    );
    assert_eq!(fake.requests(), 0, "list does no network");
}

#[test]
fn erase_succeeds_with_nothing_to_erase_twice() {
    let env = TestEnv::empty();
    for _ in 0..2 {
        env.cmd(&["erase"]).stdin(HOST).run();
    }
    env.cmd(&["erase"]).stdin("docker.io").run();
}

#[test]
fn token_verb_prints_the_bare_token() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let out = env.cmd(&["token"]).stdout_any().run();
    let token = out.stdout.trim();
    assert_eq!(out.stdout, format!("{token}\n"), "one line");
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    assert!(fake.verify_access_token(token).is_some());
    assert_eq!(env.secret(HOST), token, "token and get share the cache");
    assert_eq!(fake.requests(), 1);

    // Errors never go to stdout, where they would become a password.
    TestEnv::empty()
        .cmd(&["token"])
        .status(1)
        .stderr_has("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
        .run();
    env.cmd(&["token", "docker.io"]).status(1).stderr_has("docker.io").run();
    env.cmd(&["token", "a", "b"])
        .status(2)
        .stderr_has("at most one SERVER")
        .run();
}

#[test]
fn token_usage_errors_never_reach_stdout() {
    // `token | docker login --password-stdin` would take anything on stdout for the password.
    TestEnv::empty()
        .cmd(&["token", "a", "b"])
        .status(2)
        .stdout("")
        .stderr_has("at most one SERVER")
        .run();
}

#[test]
fn demo_runs_end_to_end() {
    let out = TestEnv::empty()
        .cmd(&["demo"])
        .stdout_has("Demo passed")
        .stderr_any()
        .run();
    // The token's expiry is a time people read, not a raw `exp` number.
    assert!(
        out.stdout.contains(", expires 2") && out.stdout.contains("Z\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("exp="), "{}", out.stdout);
}

#[test]
fn errors_are_repeated_on_stderr_because_docker_hides_stdout() {
    let env = TestEnv::empty().var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", "/nonexistent/key.json");
    // assert_error checks that stderr is exactly `docker-credential-stackit: error: <line>`.
    env.get(HOST).assert_error(&["/nonexistent/key.json"]);
    // Not found is an answer, not an error, and stays quiet.
    TestEnv::empty().get("docker.io").assert_not_found();
    // `off` silences it.
    env.var("DOCKER_CREDENTIAL_STACKIT_LOG", "off")
        .get(HOST)
        .stderr("")
        .assert_error(&["/nonexistent/key.json"]);
}

#[test]
fn stdin_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    const LIMIT: usize = 1024 * 1024;
    // The host name padded with trailing whitespace, which the protocol trims.
    let mut input = HOST.as_bytes().to_vec();
    input.resize(LIMIT, b' ');
    assert_eq!(env.cmd(&["get"]).stdin(&input).json()["ServerURL"], HOST);
    input.push(b' ');
    env.cmd(&["get"]).stdin(&input).assert_error(&["larger than 1024 KiB"]);
    assert_eq!(fake.requests(), 1);
}

#[test]
fn bad_time_settings_say_which_values_are_allowed() {
    let env = TestEnv::empty();
    for value in ["0", "-1", "soon", "3601"] {
        let line = env
            .get(HOST)
            .env("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", value)
            .assert_error(&["DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "greater than 0 and at most 3600"]);
        assert!(
            !line.contains("between 0"),
            "0 is not allowed, so the message must not say so: {line}"
        );
    }
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW", "-3")
        .assert_error(&["DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW", "from 0 (off) to 3600"]);
}
