//! Legacy robot credentials: kept for hosts without a service account, dropped once linked.

use crate::support::*;
use serde_json::json;

fn store(env: &TestEnv, server: &str, user: &str, secret: &str) -> Cmd {
    env.cmd(&["store"])
        .stdin(json!({"ServerURL": server, "Username": user, "Secret": secret}).to_string() + "\n")
}

fn robots_file(env: &TestEnv) -> std::path::PathBuf {
    env.path(".local/share/docker-credential-stackit/robots.json")
}

#[test]
fn docker_login_logout_with_a_robot() {
    let env = TestEnv::empty();
    store(&env, HOST, "robot$shop+ci", "s3cr3t-robot").run();
    assert_eq!(mode(&robots_file(&env)), 0o600);
    assert_eq!(mode(robots_file(&env).parent().unwrap()), 0o700);
    let v = env.get(HOST).json();
    assert_eq!(
        v,
        json!({"ServerURL": "registry.onstackit.cloud", "Username": "robot$shop+ci", "Secret": "s3cr3t-robot"})
    );
    assert_eq!(
        env.cmd(&["list"]).json(),
        json!({"registry.onstackit.cloud": "robot$shop+ci"})
    );
    for _ in 0..2 {
        env.cmd(&["erase"]).stdin(HOST).run();
    }
    env.get(HOST).assert_not_found();
}

#[test]
fn robot_credentials_are_per_host() {
    let env = TestEnv::empty().var("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "127.0.0.1:5000");
    store(&env, "127.0.0.1:5000", "robot$a", "one").run();
    store(&env, "https://registry.onstackit.cloud/", "robot$b", "two").run();
    assert_eq!(env.secret("127.0.0.1:5000"), "one");
    assert_eq!(env.secret(HOST), "two");
}

#[test]
fn storing_the_service_accounts_own_login_is_accepted_and_ignored() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let creds = env.get(HOST).json();
    // Silently: exit 0, nothing on stdout or stderr.
    store(
        &env,
        HOST,
        creds["Username"].as_str().unwrap(),
        creds["Secret"].as_str().unwrap(),
    )
    .run();
    assert!(!robots_file(&env).exists(), "the token is not stored anywhere else");
}

#[test]
fn linking_the_robot_discards_its_stored_secret() {
    let fake = fake();
    let env = TestEnv::empty();
    store(&env, HOST, "robot$shop+ci", "old-secret").run();
    // The robot gets linked and the user configures the service account key.
    let key = env.write("sa.json", sa().key_json(true, None).expose());
    let linked = env
        .var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap());
    let v = linked.get(HOST).stderr_has("discarded stored robot credentials").json();
    assert_eq!(v["Username"], sa().iss.as_str());
    // Without the key again, the old secret is gone for good.
    let unlinked = linked.unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH");
    unlinked.get(HOST).assert_not_found();

    // A robot login stored while the host has a service account is kept (store never reports
    // success for something it threw away), with a warning that get answers with the service
    // account; the next get that produces a token discards it, as the contract says.
    let env = TestEnv::with_key(&fake);
    store(&env, HOST, "robot$shop+ci", "x")
        .stdout("")
        .stderr_has("keeping the credentials of robot$shop+ci")
        .stderr_has("the service account key from STACKIT_SERVICE_ACCOUNT_KEY_PATH")
        .run();
    assert!(robots_file(&env).exists());
    let v = env.get(HOST).stderr_has("discarded stored robot credentials").json();
    assert_eq!(v["Username"], sa().iss.as_str());
    assert!(
        !std::fs::read_to_string(robots_file(&env))
            .unwrap()
            .contains("robot$shop+ci")
    );
    // The service account's own login is accepted as before.
    store(&env, HOST, sa().iss.as_str(), "token")
        .stdout("")
        .stderr("")
        .run();
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
    store(&env, HOST, "<token>", "refresh-token").run();
    assert_eq!(env.get(HOST).json()["Username"], "<token>");
}

#[test]
fn a_broken_key_does_not_cost_the_stored_robot_login() {
    // An endpoint that knows no account refuses every key.
    let refusing = docker_credential_stackit::testing::fake::FakeStackit::start().unwrap();
    let mut env = TestEnv::empty()
        .var("STACKIT_TOKEN_BASEURL", &refusing.url())
        .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    store(&env, HOST, "robot$shop+ci", "keep-me").stderr_any().run();
    // A mistyped key path, then a key the token endpoint refuses.
    let typo = env.path("typo/sa.json");
    let key = env.write("sa.json", sa().key_json(true, None).expose());
    for path in [&typo, &key] {
        env.set_var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", path.to_str().unwrap());
        env.get(HOST)
            .stderr_has("keeping the stored robot credentials")
            .stderr_lacks("discarded")
            .assert_error(&[]);
    }
    assert_eq!(refusing.requests(), 1);
    // A robot login offered while the key is broken is kept (it replaces the old one) and is
    // what get answers once the key is gone again.
    env.set_var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", typo.to_str().unwrap());
    store(&env, HOST, "robot$shop+new", "new-secret")
        .stdout("")
        .stderr_has("keeping the credentials of robot$shop+new")
        .run();
    env.remove_var("STACKIT_SERVICE_ACCOUNT_KEY_PATH");
    assert_eq!(secret_of(&env.get(HOST).stderr_any().json()), "new-secret");
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
    store(&env, "127.0.0.1:5000", "robot$other", "o").run();
    let _held = hold_robot_lock(&env);
    let keyed = env.var("STACKIT_TOKEN_BASEURL", &fake.url());
    let key = keyed.write("sa.json", sa().key_json(true, None).expose());
    let keyed = keyed.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap());
    // Nothing to discard: no lock is needed, so the held lock cannot delay the answer. Waiting
    // for it would end in a warning about robots.lock at the 2 s deadline, and stderr must be
    // empty (the old code waited 10 s here).
    let out = keyed.get(HOST).expect_json().run();
    assert_eq!(out.json()["Username"], sa().iss.as_str());
    assert!(
        out.elapsed < std::time::Duration::from_secs(10),
        "waited {:?}",
        out.elapsed
    );
}

#[test]
fn a_robot_to_discard_behind_a_held_lock_does_not_fail_or_stall_get() {
    let fake = fake();
    let env = TestEnv::empty().var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2");
    store(&env, HOST, "robot$shop+ci", "old").run();
    let held = hold_robot_lock(&env);
    let key = env.write("sa.json", sa().key_json(true, None).expose());
    let keyed = env
        .var("STACKIT_TOKEN_BASEURL", &fake.url())
        .var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap());
    let out = keyed.get(HOST).stderr_has("robots.lock").expect_json().run();
    // The answer is the service account's; the discard waits no longer than the deadline.
    assert_eq!(out.json()["Username"], sa().iss.as_str());
    assert!(
        out.elapsed < std::time::Duration::from_secs(10),
        "waited {:?}",
        out.elapsed
    );
    drop(held);
    // With the lock free again, the next get discards it.
    keyed.get(HOST).stderr_has("discarded stored robot credentials").json();
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
    store(&env, HOST, "robot$shop+ci", "s3cr3t-robot")
        .stdout_lacks("s3cr3t-robot")
        .stderr_lacks("s3cr3t-robot")
        .stderr_has("symbolic link")
        .assert_error(&[data.to_str().unwrap(), "symbolic link"]);
    assert_eq!(mode(&mine), 0o755, "the link's target keeps its mode");
    assert_eq!(
        std::fs::read_dir(&mine).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn a_store_of_a_few_megabytes_is_read_and_a_runaway_one_is_not() {
    // The store holds one entry per host; a few MiB (many hosts, long secrets) is still a
    // store, more than 4 MiB is not read at all (a runaway file must not eat memory).
    let env = TestEnv::empty();
    store(&env, HOST, "robot$shop+ci", "first").run();
    let big = "s".repeat(3 * 1024 * 1024);
    let doc = json!({"version": 1, "registries": {HOST: {"username": "robot$shop+big", "secret": big}}});
    std::fs::write(robots_file(&env), doc.to_string()).unwrap();
    let answer = env.get(HOST).json();
    assert_eq!(answer["Username"], "robot$shop+big");
    assert_eq!(answer["Secret"].as_str().unwrap().len(), big.len());
    let huge = "s".repeat(5 * 1024 * 1024);
    let doc = json!({"version": 1, "registries": {HOST: {"username": "robot$shop+huge", "secret": huge}}});
    std::fs::write(robots_file(&env), doc.to_string()).unwrap();
    env.get(HOST).stderr_any().assert_not_found();
}

#[test]
fn a_store_file_that_cannot_be_opened_is_named_not_taken_for_empty() {
    // robots.json replaced by a symlink (to a store someone else prepared): never followed,
    // and not silently read as "no robots" either: get says why it ignores it.
    let env = TestEnv::empty();
    store(&env, HOST, "robot$shop+ci", "first").run();
    let elsewhere = env.path("elsewhere.json");
    std::fs::write(
        &elsewhere,
        json!({"version": 1, "registries": {HOST: {"username": "robot$evil+x", "secret": "planted"}}}).to_string(),
    )
    .unwrap();
    std::fs::remove_file(robots_file(&env)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, robots_file(&env)).unwrap();
    env.get(HOST)
        .stderr_has("ignoring stored robot credentials")
        .stdout("credentials not found in native keychain\n")
        .status(1)
        .run();
    // A writer moves what it cannot read aside (nothing lost, the target untouched) and starts
    // a fresh store.
    store(&env, HOST, "robot$shop+new", "x")
        .stderr_has("moved the unreadable")
        .run();
    let aside = robots_file(&env).with_extension("json.corrupt");
    assert!(std::fs::symlink_metadata(&aside).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&elsewhere).unwrap().contains("planted"));
    assert_eq!(env.get(HOST).json()["Username"], "robot$shop+new");
}
