//! Which key serves which host: env vars, the credentials file, the helper config file, the
//! token endpoint rules, and key and config files that are broken or hostile.

use crate::support::*;
use serde_json::json;
use std::path::Path;

fn username_of(env: &TestEnv, host: &str) -> String {
    env.get(host).json()["Username"].as_str().unwrap().to_string()
}

#[test]
fn key_content_in_the_environment() {
    let fake = fake();
    let env = TestEnv::empty()
        .var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("STACKIT_SERVICE_ACCOUNT_KEY", sa().key_json(true, None).expose());
    assert_eq!(username_of(&env, HOST), sa().iss);
}

#[test]
fn key_path_wins_over_key_content() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var(
        "STACKIT_SERVICE_ACCOUNT_KEY",
        accounts()[1].key_json(true, None).expose(),
    );
    assert_eq!(username_of(&env, HOST), sa().iss);
}

#[test]
fn the_assertion_is_what_stackit_expects() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    assert_eq!(fake.rejections(), Vec::<String>::new());
    let seen = fake.assertions();
    assert_eq!(seen.len(), 1);
    let (h, c) = (&seen[0]["header"], &seen[0]["claims"]);
    assert_eq!(
        (h["alg"].as_str(), h["typ"].as_str(), h["kid"].as_str()),
        (Some("RS512"), Some("JWT"), Some(sa().kid.as_str()))
    );
    assert_eq!(c["iss"], sa().iss.as_str());
    assert_eq!(c["sub"], sa().sub.as_str());
    assert_eq!(c["aud"], sa().aud.as_str(), "aud is a string, not an array");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 600);
    // A random (version 4, RFC 4122 variant) UUID: xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx.
    let jti = c["jti"].as_str().unwrap();
    let groups: Vec<&str> = jti.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{jti}"
    );
    assert!(
        jti.chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{jti}"
    );
    assert!(
        groups[2].starts_with('4') && groups[3].starts_with(['8', '9', 'a', 'b']),
        "{jti}"
    );
    // Fresh for every assertion.
    std::fs::remove_file(&env.cache_files()[0]).unwrap();
    env.get(HOST).json();
    let second = &fake.assertions()[1]["claims"]["jti"];
    assert_ne!(second.as_str(), Some(jti));
}

#[test]
fn external_private_keys_pkcs1_and_pkcs8_override_the_embedded_one() {
    let fake = fake();
    let key_without_private = sa().key_json(false, None);
    // PKCS#1 from a file.
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let key = env.write("k.json", key_without_private.expose());
    let pem = env.write("k.pem", sa().key.pkcs1_pem().expose());
    let env = env
        .var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap())
        .var("STACKIT_PRIVATE_KEY_PATH", pem.to_str().unwrap());
    assert_eq!(username_of(&env, HOST), sa().iss);
    // PKCS#8 as content with literal \n, the way it arrives through some CI secret stores.
    let escaped = sa().key.pkcs8_pem().expose().replace('\n', "\\n");
    let env = TestEnv::empty()
        .var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
        .var("STACKIT_SERVICE_ACCOUNT_KEY", key_without_private.expose())
        .var("STACKIT_PRIVATE_KEY", &escaped);
    assert_eq!(username_of(&env, HOST), sa().iss);
    // An external key that does not match is used (and refused), proving it overrides.
    TestEnv::with_key(&fake)
        .var("STACKIT_PRIVATE_KEY", accounts()[1].key.pkcs8_pem().expose())
        .get(HOST)
        .assert_error(&["rejected", "HTTP 400"]);
    assert_eq!(fake.rejections().len(), 1);
}

#[test]
fn missing_private_key_names_the_fix() {
    let fake = fake();
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let key = env.write("k.json", sa().key_json(false, None).expose());
    env.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap())
        .get(HOST)
        .assert_error(&["no credentials.privateKey", "STACKIT_PRIVATE_KEY_PATH"]);
    assert_eq!(fake.requests(), 0);
}

#[test]
fn stackit_credentials_file_default_and_explicit() {
    let fake = fake();
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let key = env.write("keys/sa.json", sa().key_json(true, None).expose());
    env.write(
        ".stackit/credentials.json",
        &json!({"STACKIT_SERVICE_ACCOUNT_KEY_PATH": key}).to_string(),
    );
    assert_eq!(username_of(&env, HOST), sa().iss);

    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let creds = env.write(
        "elsewhere/creds.json",
        &json!({"STACKIT_SERVICE_ACCOUNT_KEY": accounts()[1].key_json(true, None).expose()}).to_string(),
    );
    let env = env.var("STACKIT_CREDENTIALS_PATH", creds.to_str().unwrap());
    assert_eq!(username_of(&env, HOST), accounts()[1].iss);
}

#[test]
fn config_file_maps_hosts_to_their_own_keys() {
    let fake = fake();
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    env.write("keys/a.json", sa().key_json(true, None).expose());
    env.write("keys/b.json", accounts()[1].key_json(true, None).expose());
    let cfg = env.write(
        ".config/docker-credential-stackit/config.json",
        &json!({"registries": {
            "registry.onstackit.cloud": {"serviceAccountKeyPath": "../../keys/a.json"},
            "other.registry.example:5000": {"serviceAccountKeyPath": env.path("keys/b.json"), "username": "custom-name"},
        }})
        .to_string(),
    );
    assert!(cfg.exists());
    assert_eq!(username_of(&env, HOST), sa().iss);
    assert_eq!(username_of(&env, "other.registry.example:5000"), "custom-name");
    env.get("other.registry.example").assert_not_found();
    assert_eq!(fake.requests(), 2, "two identities, two tokens");
    assert_eq!(env.cache_files().len(), 2);
    assert_eq!(
        env.cmd(&["list"]).json(),
        json!({"registry.onstackit.cloud": sa().iss, "other.registry.example:5000": "custom-name"})
    );
}

#[test]
fn registries_variable_adds_served_hosts() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "127.0.0.1:5000, mirror.example");
    assert_eq!(username_of(&env, "127.0.0.1:5000"), sa().iss);
    assert_eq!(username_of(&env, "https://mirror.example/v2/"), sa().iss);
    env.get("127.0.0.1:5001").assert_not_found();
    env.get("mirror.example.evil").assert_not_found();
}

#[test]
fn a_broken_identity_is_an_error_not_not_found() {
    let fake = fake();
    let cases: Vec<(TestEnv, Vec<&str>)> = vec![
        (
            TestEnv::empty().var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", "/nonexistent/key.json"),
            vec![
                "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
                "/nonexistent/key.json",
                "no such file",
            ],
        ),
        (
            TestEnv::empty().var("STACKIT_SERVICE_ACCOUNT_KEY", "{not json"),
            vec!["STACKIT_SERVICE_ACCOUNT_KEY", "not valid JSON"],
        ),
        (
            TestEnv::empty().var("STACKIT_SERVICE_ACCOUNT_KEY", r#"{"credentials":{"kid":"k"}}"#),
            vec!["credentials.iss"],
        ),
        (
            TestEnv::empty().var("STACKIT_SERVICE_ACCOUNT_KEY", sa().key.pkcs8_pem().expose()),
            vec!["PEM", "STACKIT_PRIVATE_KEY_PATH"],
        ),
        (
            TestEnv::empty().var("STACKIT_CREDENTIALS_PATH", "/nonexistent/creds.json"),
            vec!["/nonexistent/creds.json"],
        ),
    ];
    for (env, fragments) in cases {
        env.var("STACKIT_TOKEN_BASEURL", &fake.url())
            .get(HOST)
            .assert_error(&fragments);
    }
    let env = TestEnv::empty();
    let key = env.write("big.json", &"x".repeat(1024 * 1024));
    env.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap())
        .get(HOST)
        .assert_error(&["larger than"]);
    assert_eq!(fake.requests(), 0);
}

#[test]
fn key_and_config_files_that_are_binary_huge_or_not_files_get_a_clear_error() {
    let fake = fake();
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let binary = env.path("binary.json");
    std::fs::write(&binary, [0x7b, 0xff, 0xfe, 0x00, 0x80, 0x22]).unwrap();
    let sparse = env.path("sparse.json");
    // 4 GiB without using disk: the helper must stop reading long before that.
    std::fs::File::create(&sparse).unwrap().set_len(4 << 30).unwrap();
    let nul = env.path("nul.json");
    std::fs::write(&nul, [0u8; 512]).unwrap();
    // Private like a key file should be, so the only message is the error.
    for f in [&binary, &sparse, &nul] {
        set_mode(f, 0o600);
    }
    let dir = env.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o700);
    // A FIFO nobody writes to: opening it must not block (it would hang every docker pull);
    // the builder's deadline turns a hang into a failure.
    let fifo = env.path("fifo.json");
    mkfifo(&fifo);
    let cases: [(&Path, &[&str]); 6] = [
        (&fifo, &["is empty"]),
        (&binary, &["not text (invalid UTF-8)"]),
        (&sparse, &["larger than 256 KiB"]),
        (Path::new("/dev/zero"), &["larger than 256 KiB"]),
        (&nul, &["not valid JSON"]),
        (&dir, &["cannot read"]),
    ];
    for (path, fragments) in cases {
        let mut get = env.get(HOST).env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", path);
        if path == Path::new("/dev/zero") {
            // Mode 666 like every /dev/zero, but a device: chmod is no fix, so no advice.
            get = get.stderr_lacks("chmod").stderr_has("larger than 256 KiB");
        }
        let line = get.assert_error(fragments);
        assert!(
            line.contains("STACKIT_SERVICE_ACCOUNT_KEY_PATH") && line.contains(path.to_str().unwrap()),
            "names the variable and the file: {line}"
        );
    }
    // The same for an external PEM.
    let key = env.write("k.json", sa().key_json(false, None).expose());
    env.get(HOST)
        .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &key)
        .env("STACKIT_PRIVATE_KEY_PATH", &binary)
        .assert_error(&["STACKIT_PRIVATE_KEY_PATH", "not text"]);
    // The helper's own config file: a FIFO reads as empty, /dev/zero is refused.
    env.get(HOST)
        .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &key)
        .env("DOCKER_CREDENTIAL_STACKIT_CONFIG", &fifo)
        .assert_error(&["no credentials.privateKey"]);
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_CONFIG", "/dev/zero")
        .assert_error(&["/dev/zero", "larger than 1024 KiB"]);
    assert_eq!(fake.requests(), 0);
}

/// Whether process `pid` holds `fifo` open and is blocked reading a pipe. Both are needed: the
/// helper also reads its stdin, a pipe too, before it opens the key file.
fn blocked_reading_the_fifo(pid: u32, fifo: &std::path::Path) -> bool {
    let fifo = std::fs::canonicalize(fifo).unwrap_or_else(|_| fifo.to_path_buf());
    let holds_it = std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == *fifo))
    });
    // It waits for the pipe's data in poll(2), bounded by its deadline.
    holds_it && std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("poll"))
}

#[test]
fn a_key_or_token_pipe_whose_writer_never_writes_ends_at_the_deadline() {
    // A FIFO with an idle writer in place of the key file, the external private key or the
    // federated token file: get ends at DOCKER_CREDENTIAL_STACKIT_TIMEOUT with an error
    // naming the file, instead of waiting until it is killed.
    let fake = fake();
    let base = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1");
    let fifo = base.path("idle-pipe");
    mkfifo(&fifo);
    let _writer = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let fifo = fifo.to_str().unwrap();
    for (variable, extra) in [
        ("STACKIT_SERVICE_ACCOUNT_KEY_PATH", None),
        ("STACKIT_PRIVATE_KEY_PATH", None),
        (
            "STACKIT_FEDERATED_TOKEN_FILE",
            Some(("STACKIT_SERVICE_ACCOUNT_EMAIL", "ci@sa.stackit.cloud")),
        ),
        ("DOCKER_CREDENTIAL_STACKIT_CONFIG", None),
    ] {
        let mut get = base
            .get(HOST)
            .env(variable, fifo)
            .deadline(std::time::Duration::from_secs(8));
        if let Some((name, value)) = extra {
            get = get.env(name, value);
        }
        let started = std::time::Instant::now();
        let line = get.assert_error(&[fifo, "DOCKER_CREDENTIAL_STACKIT_TIMEOUT"]);
        assert!(line.contains("pipe"), "{variable}: {line}");
        assert!(started.elapsed() < std::time::Duration::from_secs(8), "{variable}");
    }
    assert_eq!(fake.requests(), 0);
}

#[test]
fn a_key_from_a_pipe_that_is_written_later_is_read_whole() {
    // STACKIT_SERVICE_ACCOUNT_KEY_PATH=<(vault read ...): the helper opens the pipe at once
    // (never blocking on a FIFO without a writer) but must then wait for the data, not fail.
    let fake = fake();
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let fifo = env.path("key-pipe");
    mkfifo(&fifo);
    // The writer end, open before the helper starts, so that the helper's read waits for data.
    let mut writer = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let running = env
        .get(HOST)
        .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &fifo)
        .expect_json()
        .spawn();
    // Write only once the helper sits in its read (or after 10 s where /proc does not say).
    let waiting = std::time::Instant::now();
    while !blocked_reading_the_fifo(running.pid(), &fifo) && waiting.elapsed() < std::time::Duration::from_secs(10) {
        assert!(!running.has_exited(), "the helper gave up before the key arrived");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    use std::io::Write;
    writer.write_all(sa().key_json(true, None).expose().as_bytes()).unwrap();
    // The helper keeps its own read end; closing ours (both ends) ends the data.
    drop(writer);
    assert!(!secret_of(&running.wait().json()).is_empty());
    assert_eq!(fake.requests(), 1);
}

#[test]
fn a_cold_get_has_one_deadline_for_reading_its_key_and_fetching_its_token() {
    // DOCKER_CREDENTIAL_STACKIT_TIMEOUT bounds the whole cold get: time spent waiting for the
    // key (here from a pipe whose writer is slow) is not given again to the token request,
    // which would otherwise make a get against an endpoint that never answers last up to
    // twice the timeout. TIMEOUT=4, the key arrives after 3 s, the endpoint hangs: the get
    // must end by about 4 s, where two budgets would end it after 7.
    let fake = fake();
    fake.script([docker_credential_stackit::testing::fake::Reply::Hang(
        std::time::Duration::from_secs(60),
    )]);
    let env = TestEnv::empty()
        .var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "4");
    let fifo = env.path("key-pipe");
    mkfifo(&fifo);
    let mut writer = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let started = std::time::Instant::now();
    let running = env
        .get(HOST)
        .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &fifo)
        .expect_error(&["DOCKER_CREDENTIAL_STACKIT_TIMEOUT"])
        .deadline(std::time::Duration::from_secs(20))
        .spawn();
    while !blocked_reading_the_fifo(running.pid(), &fifo) && started.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_secs(3).saturating_sub(started.elapsed()));
    use std::io::Write;
    writer.write_all(sa().key_json(true, None).expose().as_bytes()).unwrap();
    drop(writer);
    running.wait();
    let took = started.elapsed();
    assert!(fake.requests() >= 1, "the token request was made");
    assert!(
        took < std::time::Duration::from_secs(6),
        "the get took {took:?}: the token request got a second budget"
    );
}

#[test]
fn an_unreadable_key_file_says_permission_denied() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let key = env.path("sa-key.json");
    set_mode(&key, 0o000);
    // Root reads any file: the helper then runs as nobody, who owns nothing here but may
    // reach the file through the temp HOME.
    let mut get = env.get(HOST);
    if has_cap(caps::DAC_OVERRIDE) {
        if !(has_cap(caps::SETUID) && has_cap(caps::SETGID)) {
            skip_or_fail::<()>("needs a user whom file modes bind".into());
            return;
        }
        set_mode(env.home.path(), 0o755);
        get = get
            .run_as(NOBODY.0, NOBODY.1)
            .env("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1");
    }
    get.assert_error(&[
        "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
        key.to_str().unwrap(),
        "permission denied",
    ]);
    assert_eq!(fake.requests(), 0);
}

#[test]
fn key_file_readable_by_others_gets_a_warning() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    set_mode(&env.path("sa-key.json"), 0o644);
    env.get(HOST)
        .stderr_has("readable by other users")
        .stderr_has("chmod 600")
        .json();
}

#[test]
fn token_endpoint_from_the_key_file_is_trusted_only_for_https_stackit_cloud() {
    let fake = fake();
    let env = TestEnv::empty()
        // Everything not on loopback would leave the machine: send it into a closed port instead,
        // so the test proves which URL was chosen without touching the network.
        .var("HTTPS_PROXY", "http://127.0.0.1:9")
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1");
    let key = env.write("k.json", sa().key_json(true, Some(&fake.url())).expose());
    let env = env.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap());
    env.get(HOST)
        .stderr_has("ignoring credentials.tokenEndpoint")
        .assert_error(&["https://service-account.api.stackit.cloud/token"]);
    assert_eq!(
        fake.requests(),
        0,
        "a key file must not send the assertion to an arbitrary host"
    );
    // The explicit variable is trusted.
    env.var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("NO_PROXY", "127.0.0.1")
        .get(HOST)
        .json();
    assert_eq!(fake.requests(), 1);
}

#[test]
fn a_key_file_may_only_name_the_known_stackit_token_hosts() {
    // Application domains under stackit.cloud can be run by any STACKIT customer: a doctored key
    // file must not send the assertion there. The proxy records where each request was headed.
    let cases = [
        (
            "https://attacker.apps.01.cf.eu01.stackit.cloud/token",
            "service-account.api.stackit.cloud:443",
        ),
        (
            "https://accounts.stackit.cloud/oauth/v2/token",
            "accounts.stackit.cloud:443",
        ),
    ];
    for (named, reached) in cases {
        let (proxy, seen) = recording_proxy();
        // 3 s: the first attempt must happen however slowly the process starts.
        let env = TestEnv::empty()
            .var("HTTPS_PROXY", &proxy)
            .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3");
        let key = env.write("k.json", sa().key_json(true, Some(named)).expose());
        env.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap())
            .get(HOST)
            .stderr_any()
            .assert_error(&[]);
        let seen = seen.lock().unwrap();
        assert!(
            !seen.is_empty() && seen.iter().all(|l| l.starts_with(&format!("CONNECT {reached} "))),
            "{named}: {seen:?}"
        );
    }
}

#[test]
fn plain_http_only_to_loopback() {
    TestEnv::with_key(&fake())
        .var("STACKIT_TOKEN_BASEURL", "http://192.0.2.1/token")
        .get(HOST)
        .assert_error(&["plain http", "STACKIT_TOKEN_BASEURL"]);
}

#[test]
fn debug_log_explains_the_choice_on_stderr_only() {
    let fake = fake();
    let env = TestEnv::with_key(&fake)
        .var("STACKIT_SERVICE_ACCOUNT_KEY", "{}")
        .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    let mut get = env.get(HOST);
    for fragment in [
        "key from STACKIT_SERVICE_ACCOUNT_KEY_PATH",
        "wins over STACKIT_SERVICE_ACCOUNT_KEY",
        "token endpoint",
        "STACKIT_TOKEN_BASEURL",
    ] {
        get = get.stderr_has(fragment);
    }
    get.json();
    // `off`: nothing on stderr (the builder's default).
    TestEnv::with_key(&fake)
        .var("DOCKER_CREDENTIAL_STACKIT_LOG", "off")
        .get(HOST)
        .json();
}

#[test]
fn a_base64_encoded_key_is_accepted() {
    // CI secret stores often hold the key base64-encoded (with line breaks, as `base64` wraps).
    use base64::Engine;
    let fake = fake();
    let json = sa().key_json(true, None);
    let encoded = base64::engine::general_purpose::STANDARD.encode(json.expose());
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let env = TestEnv::empty()
        .var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("STACKIT_SERVICE_ACCOUNT_KEY", &wrapped.join("\n"));
    assert!(!secret_of(&env.get(HOST).json()).is_empty());
    assert_eq!(fake.requests(), 1);
    // Base64 of something else is still not a key, and is not quoted.
    let other = base64::engine::general_purpose::STANDARD.encode("not a key at all, just text");
    let line = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_KEY", &other)
        .get(HOST)
        .assert_error(&["STACKIT_SERVICE_ACCOUNT_KEY", "not valid JSON"]);
    assert!(!line.contains(&other), "{line}");
}

#[test]
fn near_miss_names_are_named_with_the_closest_known_one() {
    let fake = fake();
    // A typo in the credentials file: Docker would otherwise go on anonymously in silence.
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let key = env.write("sa-key.json", sa().key_json(true, None).expose());
    env.write(
        ".stackit/credentials.json",
        &serde_json::json!({"STACKIT_SERVICE_ACCOUNT_KEY_PTH": key}).to_string(),
    );
    env.get(HOST)
        .stdout("credentials not found in native keychain\n")
        .status(1)
        .stderr_has("STACKIT_SERVICE_ACCOUNT_KEY_PTH")
        .stderr_has("did you mean STACKIT_SERVICE_ACCOUNT_KEY_PATH?")
        .run();
    let report = env.cmd(&["check", "--json"]).status(1).stderr_any().stdout_any().run();
    assert!(report.stdout.contains("settings.unknown_name"), "{}", report.stdout);

    // Variables: ours by prefix, or a near miss of one we read.
    let env = TestEnv::with_key(&fake)
        .var("STACKIT_SERVICE_ACCOUNT_EMIAL", "ci@sa.stackit.cloud")
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUTS", "3")
        // The SDKs' and the webhook's own variables are no near misses.
        .var("STACKIT_IDP_TOKEN_EXPIRATION_SECONDS", "600")
        .var("STACKIT_REGION", "eu01");
    let out = env.get(HOST).stdout_any().stderr_any().run();
    assert_eq!(out.code, 0, "{out:?}");
    for expected in [
        "STACKIT_SERVICE_ACCOUNT_EMIAL is set but not used by docker-credential-stackit; did you mean STACKIT_SERVICE_ACCOUNT_EMAIL?",
        "DOCKER_CREDENTIAL_STACKIT_TIMEOUTS is set but not used by docker-credential-stackit; did you mean DOCKER_CREDENTIAL_STACKIT_TIMEOUT?",
    ] {
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    }
    assert!(
        !out.stderr.contains("STACKIT_REGION") && !out.stderr.contains("EXPIRATION"),
        "{}",
        out.stderr
    );
    let report = env
        .cmd(&["check", "--json"])
        .any_status()
        .stderr_any()
        .stdout_any()
        .run();
    assert!(
        report.stdout.contains("STACKIT_SERVICE_ACCOUNT_EMIAL"),
        "{}",
        report.stdout
    );
}

#[test]
fn only_files_that_hold_a_key_are_warned_about_their_mode() {
    let fake = fake();
    // The Quick start's credentials file names the key file: it holds no secret, so 0644 is fine.
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let key = env.write("sa-key.json", sa().key_json(true, None).expose());
    let creds = env.write(
        ".stackit/credentials.json",
        &serde_json::json!({"STACKIT_SERVICE_ACCOUNT_KEY_PATH": key}).to_string(),
    );
    set_mode(&creds, 0o644);
    env.get(HOST).stderr("").json();
    // One that holds the key itself is private material.
    env.write(
        ".stackit/credentials.json",
        &serde_json::json!({"STACKIT_SERVICE_ACCOUNT_KEY": sa().key_json(true, None).expose()}).to_string(),
    );
    set_mode(&creds, 0o644);
    env.get(HOST)
        .stderr_has("credentials file (it holds a key)")
        .stderr_has("chmod 600")
        .json();
    // A directory where the key should be is an error, with no chmod advice for it.
    let dir = env.path("keydir");
    std::fs::create_dir_all(&dir).unwrap();
    let out = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", dir.to_str().unwrap())
        .get(HOST)
        .any_status()
        .stdout_any()
        .stderr_any()
        .run();
    assert_eq!(out.code, 1);
    assert!(
        !out.stderr.contains("chmod") && !out.stdout.contains("chmod"),
        "{out:?}"
    );
}

#[test]
fn a_missing_key_named_in_the_credentials_file_names_both_files_apart() {
    let env = TestEnv::empty();
    let creds = env.write(
        ".stackit/credentials.json",
        &serde_json::json!({"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "sa-key.json"}).to_string(),
    );
    let missing = creds.parent().unwrap().join("sa-key.json");
    let line = env.get(HOST).assert_error(&["no such file"]);
    assert!(
        line.contains(&format!("in {} ({}): no such file", creds.display(), missing.display())),
        "{line}"
    );
}

#[test]
fn debug_logging_names_the_winner_and_the_losers() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    env.write(
        ".stackit/credentials.json",
        &serde_json::json!({"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "elsewhere.json"}).to_string(),
    );
    env.get(HOST)
        .stderr_has("key from STACKIT_SERVICE_ACCOUNT_KEY_PATH")
        .stderr_has("the STACKIT credentials file is present but not used")
        .json();
    // A config file entry wins over both.
    let key = env.path("sa-key.json");
    let config = env.write(
        "helper.json",
        &serde_json::json!({"registries": {HOST: {"serviceAccountKeyPath": key}}}).to_string(),
    );
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_CONFIG", config.to_str().unwrap())
        .stderr_has("from the config file")
        .stderr_has("STACKIT_SERVICE_ACCOUNT_KEY_PATH/STACKIT_SERVICE_ACCOUNT_KEY is present but not used")
        .stderr_has("the STACKIT credentials file is present but not used")
        .json();
}

#[test]
fn the_quick_start_makes_private_files_and_get_works_without_warnings() {
    // The README's Quick start, step 2, run as written in a fresh HOME with the key downloaded.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("## Quick start").unwrap();
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    let lines: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("install -D") || l.starts_with("(umask 077"))
        .collect();
    assert_eq!(lines.len(), 2, "the key and credentials-file lines: {block}");
    let fake = fake();
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let downloaded = env.write("Downloads/sa-key.json", sa().key_json(true, None).expose());
    set_mode(&downloaded, 0o644);
    for line in &lines {
        env.program("sh", &["-c", line]).stdout_any().run();
    }
    use std::os::unix::fs::PermissionsExt;
    for file in [".stackit/sa-key.json", ".stackit/credentials.json"] {
        let mode = std::fs::metadata(env.path(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    // No warning about the files' modes, and the key is found through the credentials file.
    assert_eq!(env.get(HOST).stderr("").json()["Username"], sa().iss.as_str());
}
