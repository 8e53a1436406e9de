//! Many processes at once and processes that die: one token request per identity however many
//! ask, waiters that back off and never outwait the deadline, a warm get that never waits, and
//! SIGKILL at every stage of a cold get without a corrupt cache or a stuck lock.

use crate::support::gate::{Gate, wait_until_all_reach_the_lock};
use crate::support::*;
use docker_credential_stackit::testing::fake::Reply;
use std::time::{Duration, SystemTime};

/// The identity's lock file (present after the first cold get).
fn lock_file(env: &TestEnv) -> std::path::PathBuf {
    std::fs::read_dir(env.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "lock"))
        .expect("a token-*.lock file")
}

/// Holds the identity's lock, as a refreshing helper in another process would.
fn hold_lock(env: &TestEnv) -> std::fs::File {
    let held = std::fs::OpenOptions::new().write(true).open(lock_file(env)).unwrap();
    held.lock().unwrap();
    held
}

#[test]
fn fifty_processes_at_once_make_exactly_one_request() {
    let fake = fake();
    // The first request is held until all fifty processes are inside the cold path, waiting on
    // the lock: they really contend, however slowly the machine starts them.
    let gate = Gate::closed(&fake);
    let env = TestEnv::with_key(&fake).var("STACKIT_TOKEN_BASEURL", &gate.url());
    let running: Vec<Running> = (0..50).map(|_| env.get(HOST).expect_json().spawn()).collect();
    let pids: Vec<u32> = running.iter().map(Running::pid).collect();
    gate.wait_for_arrivals(1);
    wait_until_all_reach_the_lock(&pids, &env.cache_dir());
    gate.open();
    let secrets: std::collections::BTreeSet<String> =
        running.into_iter().map(|r| secret_of(&r.wait().json())).collect();
    assert_eq!(secrets.len(), 1, "every process got the same token");
    assert_eq!(fake.requests(), 1);
    assert_eq!(gate.arrivals(), 1);
    assert_eq!(fake.rejections(), Vec::<String>::new());
    for f in std::fs::read_dir(env.cache_dir()).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }
}

#[test]
fn a_crowd_waiting_on_a_refused_key_reports_the_refusal_instead_of_repeating_it() {
    let fake = fake();
    // Two refusals: one for the crowd, one for the latecomer below; then tokens again.
    fake.script((0..2).map(|_| Reply::Status(400, r#"{"error":"invalid_grant"}"#.into(), vec![])));
    // The refusal is held until all twenty processes wait on the lock (not an 800 ms delay
    // that a slow machine can outlast).
    let gate = Gate::closed(&fake);
    let env = TestEnv::with_key(&fake).var("STACKIT_TOKEN_BASEURL", &gate.url());
    let running: Vec<Running> = (0..20)
        .map(|_| env.get(HOST).expect_error(&["HTTP 400", "invalid_grant"]).spawn())
        .collect();
    let pids: Vec<u32> = running.iter().map(Running::pid).collect();
    gate.wait_for_arrivals(1);
    wait_until_all_reach_the_lock(&pids, &env.cache_dir());
    gate.open();
    for r in running {
        r.wait();
    }
    assert_eq!(fake.requests(), 1, "one refused request for the whole crowd");

    // A process that starts after the failure asks again: the failure is not cached for later.
    env.get(HOST).assert_error(&["HTTP 400"]);
    assert_eq!(fake.requests(), 2);
    let failure_files = || {
        std::fs::read_dir(env.cache_dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "err"))
            .count()
    };
    assert_eq!(failure_files(), 1);
    // A success clears the record.
    env.get(HOST).json();
    assert_eq!(failure_files(), 0);
}

#[test]
fn a_warm_get_never_waits_for_the_lock() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2");
    let first = env.secret(HOST);
    // Another process refreshes (it holds the lock); a fresh cached token is still the answer,
    // at once: waiting would end in "timed out … using the cached token" on stderr, which the
    // builder's default (stderr empty) refuses.
    // (No wall-clock bound: the warning is the deterministic sign of a wait.)
    let _held = hold_lock(&env);
    assert_eq!(env.secret(HOST), first);
    assert_eq!(fake.requests(), 1);
}

#[test]
fn lock_waiters_back_off_instead_of_spinning() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2");
    env.get(HOST).json();
    std::fs::remove_file(&env.cache_files()[0]).unwrap();
    let _held = hold_lock(&env);
    // Two seconds of waiting on a held lock: polled with a growing pause (at most 25 ms), so
    // the waiter sleeps nearly all the time. A spinning waiter burns the whole two seconds.
    let out = env.get(HOST).expect_error(&["timed out after 2s"]).run();
    assert!(out.elapsed >= Duration::from_secs(2), "{out:?}");
    assert!(
        out.cpu < Duration::from_millis(500),
        "the waiter used {:?} of CPU in {:?}",
        out.cpu,
        out.elapsed
    );
}

#[test]
fn a_lock_held_past_the_deadline_fails_clearly_or_serves_the_usable_token() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1");
    let first = env.secret(HOST);
    let lock_path = lock_file(&env);
    let held = hold_lock(&env);

    // Past half-life: the refresh cannot get the lock, the usable token is served.
    env.age_past_half_life();
    let out = env
        .get(HOST)
        .stderr_has("timed out")
        .stderr_has("using the cached token")
        .json();
    assert_eq!(secret_of(&out), first);

    // Nothing usable cached: one clear line naming the lock file.
    std::fs::remove_file(&env.cache_files()[0]).unwrap();
    env.get(HOST).assert_error(&[
        "timed out after 1s waiting for another docker-credential-stackit process",
        lock_path.to_str().unwrap(),
        "delete the lock file",
    ]);
    assert_eq!(fake.requests(), 1, "no request without the lock");
    drop(held);
    env.get(HOST).json();
    assert_eq!(fake.requests(), 2);
}

#[test]
fn a_lock_holder_that_dies_does_not_block_others() {
    let fake = fake();
    let gate = Gate::closed(&fake);
    let env = TestEnv::with_key(&fake);
    let holder = env.get(HOST).env("STACKIT_TOKEN_BASEURL", gate.url()).spawn();
    gate.wait_for_arrivals(1); // it holds the lock and waits for its token
    holder.kill();
    // A waiter gets 3 s; a lock left behind by the dead process would make it time out.
    let out = env.get(HOST).env("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3").json();
    assert!(fake.verify_access_token(&secret_of(&out)).is_some());
    assert_eq!(
        fake.requests(),
        1,
        "the dead holder's request never reached the endpoint"
    );
}

#[test]
fn sigkill_during_a_refresh_leaves_a_valid_cache_and_no_stuck_lock() {
    let fake = fake();
    let gate = Gate::closed(&fake);
    let env = TestEnv::with_key(&fake);
    let first = env.secret(HOST);
    env.age_past_half_life();
    let before = std::fs::read(&env.cache_files()[0]).unwrap();

    let victim = env.get(HOST).env("STACKIT_TOKEN_BASEURL", gate.url()).spawn();
    gate.wait_for_arrivals(1); // it holds the lock and waits for the token
    let killed = victim.kill();
    assert_eq!(killed.signal, Some(libc::SIGKILL));
    assert_eq!(killed.stdout, "", "killed before it answered");
    assert_eq!(
        std::fs::read(&env.cache_files()[0]).unwrap(),
        before,
        "old entry untouched"
    );
    assert_eq!(env.cache_entry()["access_token"], first.as_str());

    let next = secret_of(&env.get(HOST).env("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3").json());
    assert_ne!(next, first, "the lock died with its holder, so the refresh went ahead");
    assert_eq!(env.cache_entry()["access_token"], next.as_str());
}

/// Where in a cold `get` a kill landed, judged by what it left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Nothing reached the endpoint.
    BeforeTheRequest,
    /// Connected to the endpoint; nothing written yet.
    DuringTheRequest,
    /// A temp file was written but not renamed into place.
    DuringTheCacheWrite,
    /// The entry was in place; the process had not finished.
    AfterTheCacheWrite,
}

/// The cache's temp files (`.token-*.tmp`).
fn temp_files(env: &TestEnv) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(env.cache_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
        .collect()
}

/// Runs a cold `get` that `run` kills at some point (with `arrivals` counting connections to
/// the endpoint), checks that the cache is never corrupt, and returns where the kill landed
/// (`None` if the process finished first).
fn kill_cold_get(env: &TestEnv, arrivals: &dyn Fn() -> usize, run: impl FnOnce(Cmd) -> Output) -> Option<Stage> {
    for f in env.cache_files().into_iter().chain(temp_files(env)) {
        std::fs::remove_file(f).unwrap();
    }
    let connected = arrivals();
    let out = run(env.get(HOST));
    for f in env.cache_files() {
        valid_entry(&f);
    }
    // SIGKILL itself, or strace passing on the status of a tracee that died of it.
    let killed = out.signal == Some(libc::SIGKILL) || out.code == 128 + libc::SIGKILL;
    if !killed {
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
        return None;
    }
    Some(if !env.cache_files().is_empty() {
        Stage::AfterTheCacheWrite
    } else if !temp_files(env).is_empty() {
        Stage::DuringTheCacheWrite
    } else if arrivals() > connected {
        Stage::DuringTheRequest
    } else {
        Stage::BeforeTheRequest
    })
}

#[test]
fn sigkill_at_every_stage_of_a_cold_get_never_leaves_a_corrupt_cache() {
    let fake = fake();
    let open = Gate::recording(&fake);
    let env = TestEnv::with_key(&fake).var("STACKIT_TOKEN_BASEURL", &open.url());
    let through_open = || open.arrivals();
    let mut landed = std::collections::BTreeMap::<Stage, usize>::new();
    let mut count = |stage: Option<Stage>| {
        if let Some(s) = stage {
            *landed.entry(s).or_default() += 1;
        }
    };

    // A sweep over start-up, signing, the request and the write.
    for i in 0..30u64 {
        count(kill_cold_get(&env, &through_open, |get| {
            let running = get.spawn();
            std::thread::sleep(Duration::from_micros(i * 700));
            running.kill()
        }));
    }

    // Then each stage for certain, whatever the sweep hit on this machine. At once: before
    // anything is sent.
    count(kill_cold_get(&env, &through_open, |get| get.spawn().kill()));
    // While the request is held at a closed gate.
    let closed = Gate::closed(&fake);
    let stage = kill_cold_get(&env, &|| closed.arrivals(), |get| {
        let running = get.env("STACKIT_TOKEN_BASEURL", closed.url()).spawn();
        closed.wait_for_arrivals(1);
        running.kill()
    });
    assert_eq!(stage, Some(Stage::DuringTheRequest));
    count(stage);
    // On entering the rename that would put the entry in place, and on entering exit after
    // the entry is in place and the answer printed: strace delivers SIGKILL at that syscall.
    let mut covered = vec![Stage::BeforeTheRequest, Stage::DuringTheRequest];
    if let Some(strace) = tool("strace", "apt-get install strace") {
        covered.extend([Stage::DuringTheCacheWrite, Stage::AfterTheCacheWrite]);
        let strace = strace.to_str().unwrap().to_string();
        for (syscalls, expected) in [
            ("rename,renameat,renameat2", Stage::DuringTheCacheWrite),
            ("exit_group", Stage::AfterTheCacheWrite),
        ] {
            let stage = kill_cold_get(&env, &through_open, |_| {
                let inject = format!("inject={syscalls}:signal=KILL");
                env.program(
                    &strace,
                    &[
                        "-f",
                        "-qq",
                        "-o",
                        "/dev/null",
                        "-e",
                        &format!("trace={syscalls}"),
                        "-e",
                        &inject,
                        bin(),
                        "get",
                    ],
                )
                .stdin(HOST)
                .any_status()
                .stdout_any()
                .stderr_any()
                .run()
            });
            assert_eq!(stage, Some(expected), "SIGKILL on entering {syscalls}");
            count(stage);
        }
    }
    eprintln!("kills landed: {landed:?}");
    for stage in covered {
        assert!(landed.contains_key(&stage), "no kill landed {stage:?}: {landed:?}");
    }
    // Whatever was killed where, the next get works and leaves a valid entry.
    assert!(fake.verify_access_token(&env.secret(HOST)).is_some());
    env.cache_entry();
}

#[test]
fn temp_files_left_by_killed_writers_are_cleaned_up() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    let dir = env.cache_dir();
    let old = dir.join(".token-killed.tmp");
    let recent = dir.join(".token-in-flight.tmp");
    // Old files that are not the cache's temp files are not the cache's to delete.
    let not_ours = [dir.join("notes.tmp"), dir.join(".token-notes.txt")];
    for p in [&old, &recent].into_iter().chain(&not_ours) {
        std::fs::write(p, "{\"partial").unwrap();
    }
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for p in std::iter::once(&old).chain(&not_ours) {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
    std::fs::remove_file(&env.cache_files()[0]).unwrap();
    env.get(HOST).json(); // a cold get writes, and tidies up
    assert!(!old.exists(), "an hour-old temp file is a dead writer's: removed");
    assert!(recent.exists(), "a fresh one may belong to a running writer: kept");
    for p in &not_ours {
        assert!(p.exists(), "{p:?} is not a temp file of the cache: kept");
    }
    env.cache_entry();
}
