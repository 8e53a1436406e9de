//! Legacy robot credentials: kept for hosts without a service account, dropped once linked.

use crate::support::*;
use serde_json::json;

fn store(env: &TestEnv, server: &str, user: &str, secret: &str) -> Output {
    env.cmd(&["store"])
        .stdin(json!({"ServerURL": server, "Username": user, "Secret": secret}).to_string() + "\n")
        .run()
}

fn robots_file(env: &TestEnv) -> std::path::PathBuf {
    env.path(".local/share/docker-credential-stackit/robots.json")
}

#[test]
fn docker_login_logout_with_a_robot() {
    let env = TestEnv::empty();
    let out = store(&env, "registry.onstackit.cloud", "robot$shop+ci", "s3cr3t-robot");
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    assert_eq!(mode(&robots_file(&env)), 0o600);
    assert_eq!(mode(robots_file(&env).parent().unwrap()), 0o700);
    let v = env.get("registry.onstackit.cloud").json();
    assert_eq!(
        v,
        json!({"ServerURL": "registry.onstackit.cloud", "Username": "robot$shop+ci", "Secret": "s3cr3t-robot"})
    );
    assert_eq!(
        env.cmd(&["list"]).run().json(),
        json!({"registry.onstackit.cloud": "robot$shop+ci"})
    );
    for _ in 0..2 {
        assert_eq!(env.cmd(&["erase"]).stdin("registry.onstackit.cloud").run().code, 0);
    }
    env.get("registry.onstackit.cloud").assert_not_found();
}

#[test]
fn robot_credentials_are_per_host() {
    let env = TestEnv::empty().var("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "127.0.0.1:5000");
    assert_eq!(store(&env, "127.0.0.1:5000", "robot$a", "one").code, 0);
    assert_eq!(
        store(&env, "https://registry.onstackit.cloud/", "robot$b", "two").code,
        0
    );
    assert_eq!(env.get("127.0.0.1:5000").json()["Secret"], "one");
    assert_eq!(env.get("registry.onstackit.cloud").json()["Secret"], "two");
}

#[test]
fn storing_the_service_accounts_own_login_is_accepted_and_ignored() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let creds = env.get("registry.onstackit.cloud").json();
    let out = store(
        &env,
        "registry.onstackit.cloud",
        creds["Username"].as_str().unwrap(),
        creds["Secret"].as_str().unwrap(),
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", ""),
        "{out:?}"
    );
    assert!(!robots_file(&env).exists(), "the token is not stored anywhere else");
}

#[test]
fn linking_the_robot_discards_its_stored_secret() {
    let fake = fake();
    let env = TestEnv::empty();
    assert_eq!(
        store(&env, "registry.onstackit.cloud", "robot$shop+ci", "old-secret").code,
        0
    );
    // The robot gets linked and the user configures the service account key.
    let key = env.write("sa.json", sa().key_json(true, None).expose());
    let linked = env
        .var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap());
    let out = linked.get("registry.onstackit.cloud");
    assert_eq!(out.json()["Username"], sa().iss.as_str());
    assert!(out.stderr.contains("discarded stored robot credentials"), "{out:?}");
    // Without the key again, the old secret is gone for good.
    let unlinked = linked.unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH");
    unlinked.get("registry.onstackit.cloud").assert_not_found();

    // A robot login stored while the host has a service account is not kept.
    let out = store(
        &TestEnv::with_key(&fake),
        "registry.onstackit.cloud",
        "robot$shop+ci",
        "x",
    );
    assert_eq!(out.code, 0);
    assert!(
        out.stderr.contains("not storing credentials of robot$shop+ci"),
        "{out:?}"
    );
}

#[test]
fn store_for_a_host_that_is_not_served_is_refused() {
    let env = TestEnv::empty();
    store(&env, "docker.io", "me", "pw")
        .assert_error(&["docker.io is not served", "DOCKER_CREDENTIAL_STACKIT_REGISTRIES"]);
    assert!(!robots_file(&env).exists());
}

#[test]
fn identity_token_logins_are_kept_verbatim() {
    let env = TestEnv::empty();
    assert_eq!(
        store(&env, "registry.onstackit.cloud", "<token>", "refresh-token").code,
        0
    );
    assert_eq!(env.get("registry.onstackit.cloud").json()["Username"], "<token>");
}

#[test]
fn a_broken_key_does_not_cost_the_stored_robot_login() {
    // An endpoint that knows no account refuses every key.
    let refusing = docker_credential_stackit::fake::FakeStackit::start().unwrap();
    let mut env = TestEnv::empty()
        .var("STACKIT_TOKEN_BASEURL", &refusing.url())
        .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    assert_eq!(
        store(&env, "registry.onstackit.cloud", "robot$shop+ci", "keep-me").code,
        0
    );
    // A mistyped key path, then a key the token endpoint refuses.
    let typo = env.path("typo/sa.json");
    let key = env.write("sa.json", sa().key_json(true, None).expose());
    for path in [&typo, &key] {
        env.set_var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", path.to_str().unwrap());
        let out = env.get("registry.onstackit.cloud");
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("keeping the stored robot credentials"), "{out:?}");
        assert!(!out.stderr.contains("discarded"), "{out:?}");
    }
    assert_eq!(refusing.requests(), 1);
    // A robot login offered while the key is broken is not stored, and the old one stays.
    env.set_var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", typo.to_str().unwrap());
    assert_eq!(store(&env, "registry.onstackit.cloud", "robot$shop+new", "x").code, 0);
    env.remove_var("STACKIT_SERVICE_ACCOUNT_KEY_PATH");
    assert_eq!(env.get("registry.onstackit.cloud").json()["Secret"], "keep-me");
}

/// Holds the robot store's lock, as a `store` in another process would.
fn hold_robot_lock(env: &TestEnv) -> std::fs::File {
    let path = env.path(".local/share/docker-credential-stackit/robots.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    file.lock().unwrap();
    file
}

#[test]
fn get_never_waits_for_the_robot_store_past_its_deadline() {
    let fake = fake();
    let env = TestEnv::empty().var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2");
    // A robot for another host: the store exists, but there is nothing to discard.
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "127.0.0.1:5000");
    assert_eq!(store(&env, "127.0.0.1:5000", "robot$other", "o").code, 0);
    let _held = hold_robot_lock(&env);
    let keyed = env.var("STACKIT_TOKEN_BASEURL", &fake.url());
    let key = keyed.write("sa.json", sa().key_json(true, None).expose());
    let keyed = keyed.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap());
    // Nothing to discard: no lock is needed, so the held lock cannot delay the answer (the old
    // code waited 10 s here; the hang guard is generous for a slow CI machine).
    let started = std::time::Instant::now();
    let out = keyed
        .cmd(&["get"])
        .stdin("registry.onstackit.cloud")
        .run_within(std::time::Duration::from_secs(60));
    assert_eq!(out.json()["Username"], sa().iss.as_str());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn a_robot_to_discard_behind_a_held_lock_does_not_fail_or_stall_get() {
    let fake = fake();
    let env = TestEnv::empty().var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2");
    assert_eq!(store(&env, "registry.onstackit.cloud", "robot$shop+ci", "old").code, 0);
    let held = hold_robot_lock(&env);
    let key = env.write("sa.json", sa().key_json(true, None).expose());
    let keyed = env
        .var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap());
    let started = std::time::Instant::now();
    let out = keyed
        .cmd(&["get"])
        .stdin("registry.onstackit.cloud")
        .run_within(std::time::Duration::from_secs(60));
    // The answer is the service account's; the discard waits no longer than the deadline.
    assert_eq!(out.json()["Username"], sa().iss.as_str());
    assert!(out.stderr.contains("robots.lock"), "{out:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
    drop(held);
    // With the lock free again, the next get discards it.
    let out = keyed.get("registry.onstackit.cloud");
    assert!(out.stderr.contains("discarded stored robot credentials"), "{out:?}");
}

#[test]
fn a_symlinked_data_dir_is_refused_and_its_target_keeps_its_mode() {
    let env = TestEnv::empty();
    let mine = env.path("shared-notes");
    std::fs::create_dir(&mine).unwrap();
    set_mode(&mine, 0o755);
    let data = robots_file(&env).parent().unwrap().to_path_buf();
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&mine, &data).unwrap();
    let out = store(&env, "registry.onstackit.cloud", "robot$shop+ci", "s3cr3t-robot");
    out.assert_error(&[data.to_str().unwrap(), "symbolic link"]);
    assert!(!out.stdout.contains("s3cr3t-robot") && !out.stderr.contains("s3cr3t-robot"));
    assert_eq!(mode(&mine), 0o755, "the link's target keeps its mode");
    assert_eq!(
        std::fs::read_dir(&mine).unwrap().count(),
        0,
        "nothing written through the link"
    );
}
