//! The token cache: reuse, the lock, file modes, corrupt files, stale-while-error.

use crate::support::*;
use docker_credential_stackit::fake::Reply;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn secret(out: &Output) -> String {
    out.json()["Secret"].as_str().unwrap().to_string()
}

/// Rewrites the only cache file's timestamps (and optionally its token).
fn age_cache(env: &TestEnv, issued_ago: u64, expires_in: i64) {
    let files = env.cache_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    v["issued_at"] = json!(now() - issued_ago);
    v["expires_at"] = json!((now() as i64 + expires_in) as u64);
    std::fs::write(&files[0], v.to_string()).unwrap();
}

#[test]
fn warm_get_makes_no_request_and_files_are_private() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let first = secret(&env.get("registry.onstackit.cloud"));
    for _ in 0..3 {
        assert_eq!(secret(&env.get("registry.onstackit.cloud")), first);
    }
    assert_eq!(fake.requests(), 1);
    assert_eq!(mode(&env.cache_dir()), 0o700);
    for f in std::fs::read_dir(env.cache_dir()).unwrap() {
        let f = f.unwrap().path();
        assert_eq!(mode(&f), 0o600, "{f:?}");
    }
    let cached = std::fs::read_to_string(&env.cache_files()[0]).unwrap();
    assert!(cached.contains(&first));
}

#[test]
fn fifty_processes_at_once_make_exactly_one_request() {
    let fake = fake();
    // Slow answers keep all fifty processes inside the cold window at once.
    fake.set_delay(Duration::from_millis(300));
    let env = TestEnv::with_key(&fake);
    let running: Vec<_> = (0..50)
        .map(|_| env.cmd(&["get"]).stdin("registry.onstackit.cloud").spawn())
        .collect();
    let outs: Vec<Output> = running.into_iter().map(|r| r.wait()).collect();
    let secrets: std::collections::BTreeSet<String> = outs.iter().map(secret).collect();
    assert_eq!(secrets.len(), 1, "every process got the same token");
    assert_eq!(fake.requests(), 1);
    assert_eq!(fake.rejections(), Vec::<String>::new());
    for f in std::fs::read_dir(env.cache_dir()).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }
}

#[test]
fn corrupt_and_foreign_cache_files_are_replaced() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get("registry.onstackit.cloud").json();
    let file = env.cache_files()[0].clone();
    for garbage in [
        "",
        "{",
        "\u{0}\u{1}\u{2}",
        r#"{"version":1,"identity":"someone else","access_token":"x","issued_at":1,"expires_at":99999999999}"#,
        "[]",
    ] {
        std::fs::write(&file, garbage).unwrap();
        let before = fake.requests();
        let out = env.get("registry.onstackit.cloud");
        assert_ne!(secret(&out), "x");
        assert_eq!(fake.requests(), before + 1, "garbage {garbage:?} is ignored");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(v["version"], 1, "and replaced by a valid file");
    }
}

#[test]
fn past_half_life_refreshes() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let first = secret(&env.get("registry.onstackit.cloud"));
    age_cache(&env, 3000, 600); // a 1-hour token with 10 minutes left
    let second = secret(&env.get("registry.onstackit.cloud"));
    assert_eq!(fake.requests(), 2);
    assert_ne!(first, second);
    age_cache(&env, 1000, 2600); // more than half left: reused
    assert_eq!(secret(&env.get("registry.onstackit.cloud")), second);
    assert_eq!(fake.requests(), 2);
}

#[test]
fn refresh_failure_serves_the_cached_token_with_a_warning() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1");
    let first = secret(&env.get("registry.onstackit.cloud"));
    age_cache(&env, 3000, 600);
    fake.script((0..20).map(|_| Reply::Status(503, "down".into(), vec![])));
    let out = env.get("registry.onstackit.cloud");
    assert_eq!(secret(&out), first);
    assert!(
        out.stderr.contains("HTTP 503") && out.stderr.contains("using the cached token"),
        "{out:?}"
    );
}

#[test]
fn a_token_with_under_a_minute_left_is_never_handed_out() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1");
    let first = secret(&env.get("registry.onstackit.cloud"));
    age_cache(&env, 3540, 59);
    fake.script((0..20).map(|_| Reply::Status(503, "down".into(), vec![])));
    let out = env.get("registry.onstackit.cloud");
    out.assert_error(&["HTTP 503"]);
    assert!(!out.stdout.contains(&first));
}

#[test]
fn a_short_lived_fresh_token_is_handed_out_but_not_reused() {
    let fake = fake();
    fake.set_lifetime(30);
    let env = TestEnv::with_key(&fake);
    let a = secret(&env.get("registry.onstackit.cloud"));
    assert!(!a.is_empty());
    env.get("registry.onstackit.cloud").json();
    assert_eq!(fake.requests(), 2);
}

#[test]
fn no_cache_means_no_files_and_a_request_each_time() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1");
    env.get("registry.onstackit.cloud").json();
    env.get("registry.onstackit.cloud").json();
    assert_eq!(fake.requests(), 2);
    assert!(!env.cache_dir().exists());
}

#[test]
fn erase_drops_the_cached_token() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get("registry.onstackit.cloud").json();
    assert_eq!(env.cache_files().len(), 1);
    let out = env.cmd(&["erase"]).stdin("registry.onstackit.cloud").run();
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert!(env.cache_files().is_empty());
    env.get("registry.onstackit.cloud").json();
    assert_eq!(fake.requests(), 2);
}

#[test]
fn custom_and_unusable_cache_dirs() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let custom = env.path("my-cache");
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", custom.to_str().unwrap());
    env.get("registry.onstackit.cloud").json();
    assert_eq!(mode(&custom), 0o700);
    assert_eq!(
        std::fs::read_dir(&custom).unwrap().count(),
        2,
        "token file and lock file"
    );

    // A cache dir that cannot exist (its parent is a file): still serves, with a warning.
    let blocker = env.write("blocker", "");
    let env = env.var(
        "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR",
        blocker.join("cache").to_str().unwrap(),
    );
    let out = env.get("registry.onstackit.cloud");
    out.json();
    assert!(out.stderr.contains("token cache disabled"), "{out:?}");

    // A world-writable cache dir is refused, not used.
    let open = env.path("open-cache");
    std::fs::create_dir(&open).unwrap();
    set_mode(&open, 0o777);
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", open.to_str().unwrap());
    let out = env.get("registry.onstackit.cloud");
    out.json();
    assert!(out.stderr.contains("writable by other users"), "{out:?}");
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}

#[test]
fn a_symlinked_cache_file_is_not_followed() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get("registry.onstackit.cloud").json();
    let file = env.cache_files()[0].clone();
    let victim = env.write("victim.txt", "precious");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&victim, &file).unwrap();
    env.get("registry.onstackit.cloud").json();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        !std::fs::symlink_metadata(&file).unwrap().file_type().is_symlink(),
        "the link was replaced, not followed"
    );
}

#[test]
fn a_warm_get_starts_no_thread_or_process_and_opens_no_socket() {
    let Some(strace) = crate::support::rig::tool("strace", "apt-get install strace") else {
        return;
    };
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get("registry.onstackit.cloud").json();
    let log = env.path("strace.log");
    let log_arg = log.to_str().unwrap();
    let trace_set = "trace=clone,clone3,fork,vfork,execve,socket,connect";
    let cmd = env.program(strace, &["-f", "-qq", "-o", log_arg, "-e", trace_set, bin(), "get"]);
    let out = cmd.stdin("registry.onstackit.cloud").run();
    out.json();
    let trace = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = trace.lines().filter(|l| !l.contains("execve(")).collect();
    assert!(trace.contains("execve("), "strace saw the process: {trace}");
    assert_eq!(
        calls,
        Vec::<&str>::new(),
        "the warm path made no clone/fork/socket/connect call"
    );
    assert_eq!(fake.requests(), 1);
}

#[test]
fn a_crowd_waiting_on_a_refused_key_reports_the_refusal_instead_of_repeating_it() {
    let fake = fake();
    // Slow refusals keep all twenty processes waiting on the lock while the first one asks.
    fake.set_delay(Duration::from_millis(800));
    // Two refusals: one for the crowd, one for the latecomer below; then tokens again.
    fake.script((0..2).map(|_| Reply::Status(400, r#"{"error":"invalid_grant"}"#.into(), vec![])));
    let env = TestEnv::with_key(&fake);
    let running: Vec<_> = (0..20)
        .map(|_| env.cmd(&["get"]).stdin("registry.onstackit.cloud").spawn())
        .collect();
    for out in running.into_iter().map(|r| r.wait()) {
        out.assert_error(&["HTTP 400", "invalid_grant"]);
    }
    assert_eq!(fake.requests(), 1, "one refused request for the whole crowd");

    // A process that starts after the failure asks again: the failure is not cached for later.
    fake.set_delay(Duration::ZERO);
    env.get("registry.onstackit.cloud").assert_error(&["HTTP 400"]);
    assert_eq!(fake.requests(), 2);
    let failure_files = || {
        std::fs::read_dir(env.cache_dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "err"))
            .count()
    };
    assert_eq!(failure_files(), 1);
    // A success clears the record.
    env.get("registry.onstackit.cloud").json();
    assert_eq!(failure_files(), 0);
}

#[test]
fn a_symlinked_cache_dir_is_refused_and_its_target_keeps_its_mode() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    // One of the user's own directories, readable by others on purpose.
    let mine = env.path("shared-notes");
    std::fs::create_dir(&mine).unwrap();
    set_mode(&mine, 0o755);
    let link = env.path("cache-link");
    std::os::unix::fs::symlink(&mine, &link).unwrap();
    let with_slash = format!("{}/", link.display());
    for (n, dir) in [link.to_str().unwrap(), with_slash.as_str()].into_iter().enumerate() {
        let out = env
            .cmd(&["get"])
            .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", dir)
            .stdin("registry.onstackit.cloud")
            .run();
        out.json();
        let warning: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("token cache disabled"))
            .collect();
        assert_eq!(warning.len(), 1, "one warning line: {out:?}");
        for part in [
            "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR",
            link.to_str().unwrap(),
            "symbolic link",
        ] {
            assert!(warning[0].contains(part), "the warning names {part:?}: {out:?}");
        }
        assert_eq!(mode(&mine), 0o755, "the link's target keeps its mode");
        assert_eq!(
            std::fs::read_dir(&mine).unwrap().count(),
            0,
            "nothing written through the link"
        );
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fake.requests(), n + 1, "no cache: every get asks");
    }
}
