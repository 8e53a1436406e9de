//! Faults and hostile input not covered elsewhere (issue 7): DNS, trickling and badly
//! certified endpoints, 429 storms, odd tokens and clocks, hostile key files, a full disk,
//! foreign cache directories, killed processes and stuck locks, and odd stdin.
//!
//! Every test checks two things a user would notice: one clear line saying what to fix (or a
//! correct answer), and that nothing already cached was lost or corrupted.

use crate::support::*;
use docker_credential_stackit::fake::{Reply, Shape};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HOST: &str = "registry.onstackit.cloud";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn secret(out: &Output) -> String {
    out.json()["Secret"].as_str().unwrap().to_string()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The only cache file, parsed; panics unless it is a complete, valid entry.
fn cache_entry(env: &TestEnv) -> Value {
    let files = env.cache_files();
    assert_eq!(files.len(), 1, "{files:?}");
    valid_entry(&files[0])
}

fn valid_entry(path: &Path) -> Value {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    assert_eq!(v["version"], 1, "{v}");
    assert!(!v["access_token"].as_str().unwrap_or("").is_empty(), "{v}");
    v
}

/// Moves the only cache entry past half-life (10 of 60 minutes left): the next `get` refreshes.
fn age_past_half_life(env: &TestEnv) {
    let file = env.cache_files()[0].clone();
    let mut v = valid_entry(&file);
    v["issued_at"] = json!(now() - 3000);
    v["expires_at"] = json!(now() + 600);
    std::fs::write(&file, v.to_string()).unwrap();
}

/// Waits until the fake has seen `n` requests (a hang guard, not a timing assertion).
fn wait_for_requests(fake: &docker_credential_stackit::fake::FakeStackit, n: usize) {
    let start = Instant::now();
    while fake.requests() < n {
        assert!(start.elapsed() < Duration::from_secs(30), "the helper never called");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A JWT with the given claims and a dummy signature (the helper never verifies it).
fn unsigned_jwt(claims: &Value) -> String {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        b(r#"{"alg":"RS256","typ":"JWT"}"#),
        b(&claims.to_string())
    )
}

// ---------------------------------------------------------------------------------------------
// The token endpoint

#[test]
fn a_dns_failure_is_final_and_names_the_host() {
    // `.invalid` never resolves (RFC 6761), so nothing is sent anywhere but the local resolver.
    let env = TestEnv::with_key(&fake()).var("STACKIT_TOKEN_BASEURL", "https://token.invalid/token");
    let out = env.get(HOST);
    out.assert_error(&["https://token.invalid/token", "host not found (DNS"]);
    assert!(
        !out.stderr.contains("retrying"),
        "a name that does not exist is not retried until the deadline: {out:?}"
    );
    assert!(env.cache_files().is_empty());
}

#[test]
fn a_slow_trickle_is_cut_off_at_the_deadline() {
    let fake = fake();
    // About 2 KB at one byte per 100 ms: minutes, against a 2 s deadline.
    fake.script([Reply::Trickle(Duration::from_millis(100))]);
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2");
    let started = Instant::now();
    let out = env.get(HOST);
    out.assert_error(&[
        &fake.url(),
        "did not answer in time",
        "DOCKER_CREDENTIAL_STACKIT_TIMEOUT",
    ]);
    assert!(started.elapsed() < Duration::from_secs(60), "hang guard");
    assert!(env.cache_files().is_empty(), "no half-read token is cached");

    // With a usable cached token, the same fault costs nothing: the old token is served.
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "20");
    let first = secret(&env.get(HOST));
    age_past_half_life(&env);
    fake.script([Reply::Trickle(Duration::from_millis(100))]);
    let out = env
        .cmd(&["get"])
        .env("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2")
        .stdin(HOST)
        .run();
    assert_eq!(secret(&out), first);
    assert!(out.stderr.contains("using the cached token"), "{out:?}");
    assert_eq!(cache_entry(&env)["access_token"], first.as_str());
}

#[test]
fn an_expired_certificate_is_refused_before_the_assertion_is_sent() {
    let tls = tls_expired(&["127.0.0.1", "localhost"]);
    let fake = docker_credential_stackit::fake::FakeStackit::start_with(Some(tls.server)).unwrap();
    fake.register(sa());
    let env = TestEnv::with_key(&fake);
    let ca = env.write("ca.pem", &tls.ca_pem);
    let out = env.var("SSL_CERT_FILE", ca.to_str().unwrap()).get(HOST);
    let line = out.assert_error(&["TLS", &fake.url()]);
    assert!(line.contains("expired") && line.contains("clock"), "{line}");
    assert!(!out.stderr.contains("retrying"), "{out:?}");
    assert_eq!(
        fake.requests(),
        0,
        "no request over a connection with an expired certificate"
    );
}

#[test]
fn a_429_storm_backs_off_and_gives_up_with_one_line() {
    let fake = fake();
    // `Retry-After: 0` on every answer must not turn the retry loop into a flood.
    fake.script((0..500).map(|_| Reply::Status(429, "{}".into(), vec![("Retry-After".into(), "0".into())])));
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3");
    let out = env.get(HOST);
    out.assert_error(&["HTTP 429", "gave up after", "DOCKER_CREDENTIAL_STACKIT_TIMEOUT"]);
    let made = fake.requests();
    assert!(
        (2..=12).contains(&made),
        "retried with backoff, not in a tight loop: {made} requests in 3 s"
    );
    assert!(env.cache_files().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Odd tokens and clocks

#[test]
fn tokens_without_a_readable_exp_fall_back_to_expires_in() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    for shape in [Shape::Opaque, Shape::NoExp] {
        fake.script([Reply::Issue(shape)]);
        let before = now();
        let token = secret(&env.get(HOST));
        let entry = cache_entry(&env);
        assert_eq!(entry["access_token"], token.as_str(), "{shape:?}");
        let exp = entry["expires_at"].as_u64().unwrap();
        assert!(
            (before + 3600..=now() + 3600).contains(&exp),
            "{shape:?}: expiry is now + expires_in: {entry}"
        );
        // Cached like any other token.
        assert_eq!(secret(&env.get(HOST)), token);
        std::fs::remove_file(&env.cache_files()[0]).unwrap();
    }
    assert_eq!(fake.requests(), 2);
}

#[test]
fn an_already_expired_token_is_handed_out_once_with_a_clock_warning_and_never_cached() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    fake.script([Reply::Issue(Shape::ExpIn(-300)), Reply::Issue(Shape::ExpIn(-300))]);
    let out = env.get(HOST);
    let token = secret(&out);
    assert!(fake.verify_access_token(&token).is_none(), "it really is expired");
    assert!(out.stderr.contains("check the system clock"), "{out:?}");
    assert!(env.cache_files().is_empty(), "an expired token is never cached");
    env.get(HOST).json();
    assert_eq!(fake.requests(), 2, "so the next get asks again");
}

#[test]
fn a_far_future_exp_is_cached_for_at_most_a_day() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    fake.script([Reply::Issue(Shape::ExpIn(10 * 365 * 86_400))]);
    env.get(HOST).json();
    let exp = cache_entry(&env)["expires_at"].as_u64().unwrap();
    assert!(exp <= now() + 86_400, "capped at 24 h: {exp}");
    assert!(exp > now() + 86_000);
}

#[test]
fn clock_skew_and_hostile_date_headers() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1");
    let body = json!({"access_token": unsigned_jwt(&json!({"exp": now() + 3600})), "expires_in": 3600}).to_string();
    let reply = |date: &str| Reply::Status(200, body.clone(), vec![("Date".into(), date.into())]);

    fake.script([reply("Sun, 06 Nov 1994 08:49:37 GMT")]);
    let out = env.get(HOST);
    out.json();
    assert!(
        out.stderr.contains("clock differs") && out.stderr.contains("NTP"),
        "{out:?}"
    );
    // A Date header no real server sends must not crash the helper or invent a skew.
    for date in [
        "Sun, 06 Nov 18446744073709551615 08:49:37 GMT",
        "Sun, 31 Feb 99999 23:59:60 GMT",
        "Sun, 06 Nov 1994 99:99:99 GMT",
        "\u{1}\u{2}",
    ] {
        fake.script([reply(date)]);
        let out = env.get(HOST);
        out.json();
        assert!(!out.stderr.contains("internal error"), "{date:?}: {out:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile key files

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
    let dir = env.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    // A FIFO nobody writes to: opening it must not block (it would hang every docker pull).
    let fifo = env.path("fifo.json");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let cases: [(&Path, &[&str]); 6] = [
        (&fifo, &["is empty"]),
        (&binary, &["not text (invalid UTF-8)"]),
        (&sparse, &["larger than 256 KiB"]),
        (Path::new("/dev/zero"), &["larger than 256 KiB"]),
        (&nul, &["not valid JSON"]),
        (&dir, &["cannot read"]),
    ];
    for (path, fragments) in cases {
        let out = env
            .cmd(&["get"])
            .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", path)
            .stdin(HOST)
            .run();
        let line = out.assert_error(fragments);
        assert!(
            line.contains("STACKIT_SERVICE_ACCOUNT_KEY_PATH") && line.contains(path.to_str().unwrap()),
            "names the variable and the file: {line}"
        );
    }
    // The same for an external PEM.
    let key = env.write("k.json", sa().key_json(false, None).expose());
    let out = env
        .cmd(&["get"])
        .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &key)
        .env("STACKIT_PRIVATE_KEY_PATH", &binary)
        .stdin(HOST)
        .run();
    out.assert_error(&["STACKIT_PRIVATE_KEY_PATH", "not text"]);
    // The helper's own config file: a FIFO reads as empty, /dev/zero is refused.
    let out = env
        .cmd(&["get"])
        .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &key)
        .env("DOCKER_CREDENTIAL_STACKIT_CONFIG", &fifo)
        .stdin(HOST)
        .run();
    out.assert_error(&["no credentials.privateKey"]);
    env.cmd(&["get"])
        .env("DOCKER_CREDENTIAL_STACKIT_CONFIG", "/dev/zero")
        .stdin(HOST)
        .run()
        .assert_error(&["/dev/zero", "larger than 1024 KiB"]);
    // A FIFO planted in place of the token cache file is skipped, not waited on.
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    let entry = env.cache_files()[0].clone();
    std::fs::remove_file(&entry).unwrap();
    let c_entry = std::ffi::CString::new(entry.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_entry.as_ptr(), 0o600) }, 0);
    assert!(fake.verify_access_token(&secret(&env.get(HOST))).is_some());
    assert!(
        cache_entry(&env)["access_token"].is_string(),
        "replaced by a real entry"
    );
    assert_eq!(fake.requests(), 2);
}

// ---------------------------------------------------------------------------------------------
// The file system

/// A tmpfs of `size` mounted at `path` for the life of the value (root only).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` until a write fails with "no space left".
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = [0u8; 4096];
    loop {
        match f.write_all(&block).and_then(|_| f.sync_all()) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                return path;
            }
        }
    }
}

#[test]
fn a_full_disk_during_a_cache_write_keeps_the_old_cache() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let mount_point = env.path("small-fs");
    let cache = mount_point.join("cache");
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", cache.to_str().unwrap());
    // Declared after `env`, so it is unmounted before the temporary HOME is removed.
    let tmpfs = Tmpfs::mount(&mount_point, "256k");
    let run = |env: &TestEnv| {
        let mut cmd = env.cmd(&["get"]).stdin(HOST);
        if tmpfs.is_none() {
            // Without root there is no small file system to fill: make writes to regular
            // files fail instead (RLIMIT_FSIZE of 16 bytes), as a full disk would.
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.cmd.pre_exec(|| {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let limit = libc::rlimit {
                        rlim_cur: 16,
                        rlim_max: libc::RLIM_INFINITY,
                    };
                    libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
                    Ok(())
                });
            }
        }
        cmd.run()
    };
    eprintln!(
        "disk full simulated with {}",
        if tmpfs.is_some() {
            "a full 256 KiB tmpfs"
        } else {
            "RLIMIT_FSIZE (not root)"
        }
    );

    let first = secret(&env.get(HOST));
    let entry_path = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let mut v = valid_entry(&entry_path);
    v["issued_at"] = json!(now() - 3000);
    v["expires_at"] = json!(now() + 600);
    std::fs::write(&entry_path, v.to_string()).unwrap();
    let before = std::fs::read(&entry_path).unwrap();
    let filler = tmpfs.as_ref().map(|_| fill(&mount_point));

    let out = run(&env);
    let second = secret(&out);
    assert_ne!(second, first, "the refresh still answers with the new token");
    assert!(
        out.stderr.contains("cannot write the token cache") && out.stderr.contains("continuing without it"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(&entry_path).unwrap(), before, "the old entry is intact");
    valid_entry(&entry_path);
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no half-written temp files: {leftovers:?}");

    // Space again: the next refresh is cached normally.
    if let Some(f) = filler {
        std::fs::remove_file(f).unwrap();
    }
    let third = secret(&env.get(HOST));
    assert_eq!(valid_entry(&entry_path)["access_token"], third.as_str());
    assert_eq!(fake.requests(), 3);
}

#[test]
fn a_read_only_cache_still_serves_warns_and_keeps_its_token() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let mount_point = env.path("ro-fs");
    let cache = mount_point.join("cache");
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", cache.to_str().unwrap());
    let tmpfs = Tmpfs::mount(&mount_point, "256k");
    let first = secret(&env.get(HOST));
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let how = match &tmpfs {
        Some(t) => {
            let ok = std::process::Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(&t.0)
                .status()
                .unwrap()
                .success();
            assert!(ok, "remount read-only");
            "a read-only tmpfs"
        }
        None => {
            // Not root: a directory we may not write to is the nearest thing.
            set_mode(&cache, 0o500);
            "a mode 500 directory (not root)"
        }
    };
    eprintln!("read-only cache simulated with {how}");

    // Warm: the cached token is read as usual.
    assert_eq!(secret(&env.get(HOST)), first);
    // Past half-life: the refresh works, cannot be stored, and says so; the old entry stays.
    let mut v = valid_entry(&entry);
    if tmpfs.is_none() {
        set_mode(&cache, 0o700);
    }
    // (Ageing needs a writable file: on the tmpfs, remount for the edit, then back.)
    if let Some(t) = &tmpfs {
        std::process::Command::new("mount")
            .args(["-o", "remount,rw"])
            .arg(&t.0)
            .status()
            .unwrap();
    }
    v["issued_at"] = json!(now() - 3000);
    v["expires_at"] = json!(now() + 600);
    std::fs::write(&entry, v.to_string()).unwrap();
    match &tmpfs {
        Some(t) => {
            std::process::Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(&t.0)
                .status()
                .unwrap();
        }
        None => set_mode(&cache, 0o500),
    }
    let before = std::fs::read(&entry).unwrap();
    let out = env.get(HOST);
    let second = secret(&out);
    assert_ne!(second, first);
    assert!(fake.verify_access_token(&second).is_some());
    assert!(out.stderr.contains("cannot write the token cache"), "{out:?}");
    assert_eq!(std::fs::read(&entry).unwrap(), before, "the old entry is intact");
    assert_eq!(out.stdout.lines().count(), 1);
    if tmpfs.is_none() {
        set_mode(&cache, 0o700);
    }
}

#[test]
fn a_cache_dir_owned_by_another_user_or_group_writable_is_refused() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let foreign = env.path("foreign-cache");
    std::fs::create_dir(&foreign).unwrap();
    set_mode(&foreign, 0o700);
    if is_root() {
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        let out = env
            .cmd(&["get"])
            .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", &foreign)
            .stdin(HOST)
            .run();
        out.json();
        assert!(
            out.stderr.contains("belongs to uid 65534, not to you") && out.stderr.contains("token cache disabled"),
            "{out:?}"
        );
        assert_eq!(
            std::fs::read_dir(&foreign).unwrap().count(),
            0,
            "nothing written into it"
        );
    } else {
        eprintln!("not root: cannot chown a directory to another user; checking group-writable only");
    }
    let shared = env.path("group-cache");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o770);
    let out = env
        .cmd(&["get"])
        .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", &shared)
        .stdin(HOST)
        .run();
    out.json();
    assert!(
        out.stderr.contains("writable by other users") && out.stderr.contains("chmod 700"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Killed processes and stuck locks

#[test]
fn sigkill_during_a_refresh_leaves_a_valid_cache_and_no_stuck_lock() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let first = secret(&env.get(HOST));
    age_past_half_life(&env);
    let before = std::fs::read(&env.cache_files()[0]).unwrap();

    fake.set_delay(Duration::from_secs(5));
    let victim = env.cmd(&["get"]).stdin(HOST).spawn();
    wait_for_requests(&fake, 2); // it holds the lock and waits for the token
    let killed = victim.kill();
    assert_eq!(killed.stdout, "", "killed before it answered");
    assert_eq!(
        std::fs::read(&env.cache_files()[0]).unwrap(),
        before,
        "old entry untouched"
    );
    assert_eq!(cache_entry(&env)["access_token"], first.as_str());

    fake.set_delay(Duration::ZERO);
    let after = env
        .cmd(&["get"])
        .env("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3")
        .stdin(HOST)
        .run();
    let next = secret(&after);
    assert_ne!(next, first, "the lock died with its holder, so the refresh went ahead");
    assert_eq!(cache_entry(&env)["access_token"], next.as_str());
}

#[test]
fn sigkill_at_random_points_of_a_cold_get_never_leaves_a_corrupt_cache() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let mut killed_mid_way = 0;
    for i in 0..30u64 {
        for f in env.cache_files() {
            std::fs::remove_file(f).unwrap();
        }
        let running = env.cmd(&["get"]).stdin(HOST).spawn();
        // Spread the kills over start-up, signing, the request and the write.
        std::thread::sleep(Duration::from_micros(i * 700));
        let out = running.kill();
        if out.stdout.is_empty() {
            killed_mid_way += 1;
        }
        for f in env.cache_files() {
            valid_entry(&f);
        }
    }
    eprintln!("{killed_mid_way} of 30 gets were killed before answering");
    let token = secret(&env.get(HOST));
    assert!(fake.verify_access_token(&token).is_some());
}

#[test]
fn temp_files_left_by_killed_writers_are_cleaned_up() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    let dir = env.cache_dir();
    let old = dir.join(".token-killed.tmp");
    let recent = dir.join(".token-in-flight.tmp");
    for p in [&old, &recent] {
        std::fs::write(p, "{\"partial").unwrap();
    }
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    std::fs::remove_file(&env.cache_files()[0]).unwrap();
    env.get(HOST).json(); // a cold get writes, and tidies up
    assert!(!old.exists(), "an hour-old temp file is a dead writer's: removed");
    assert!(recent.exists(), "a fresh one may belong to a running writer: kept");
    cache_entry(&env);
}

#[test]
fn a_lock_holder_that_dies_does_not_block_others() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    fake.set_delay(Duration::from_secs(10));
    let holder = env.cmd(&["get"]).stdin(HOST).spawn();
    wait_for_requests(&fake, 1);
    holder.kill();
    fake.set_delay(Duration::ZERO);
    // A waiter gets 3 s; a lock left behind by the dead process would make it time out.
    let out = env
        .cmd(&["get"])
        .env("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3")
        .stdin(HOST)
        .run();
    assert!(fake.verify_access_token(&secret(&out)).is_some(), "{out:?}");
    assert_eq!(fake.requests(), 2);
}

#[test]
fn a_lock_held_past_the_deadline_fails_clearly_or_serves_the_usable_token() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1");
    let first = secret(&env.get(HOST));
    let lock_path = std::fs::read_dir(env.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "lock"))
        .expect("a token-*.lock file");
    let held = std::fs::OpenOptions::new().write(true).open(&lock_path).unwrap();
    held.lock().unwrap();

    // Past half-life: the refresh cannot get the lock, the usable token is served.
    age_past_half_life(&env);
    let out = env.get(HOST);
    assert_eq!(secret(&out), first);
    assert!(
        out.stderr.contains("timed out") && out.stderr.contains("using the cached token"),
        "{out:?}"
    );

    // Nothing usable cached: one clear line naming the lock file.
    std::fs::remove_file(&env.cache_files()[0]).unwrap();
    let out = env.get(HOST);
    out.assert_error(&[
        "timed out after 1s waiting for another docker-credential-stackit process",
        lock_path.to_str().unwrap(),
        "delete the lock file",
    ]);
    assert_eq!(fake.requests(), 1, "no request without the lock");
    drop(held);
    env.get(HOST).json();
    assert_eq!(fake.requests(), 2);
}

// ---------------------------------------------------------------------------------------------
// stdin

#[test]
fn odd_stdin_never_hangs_and_gets_one_line() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let ten_mb = vec![b' '; 10 * 1024 * 1024];
    for verb in ["get", "erase", "store"] {
        env.cmd(&[verb])
            .stdin(&ten_mb)
            .run()
            .assert_error(&["larger than 1024 KiB"]);
    }
    let out = env.cmd(&["kubelet"]).stdin(&ten_mb).run();
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "kubelet errors go to stderr");
    assert!(out.stderr.contains("larger than"), "{out:?}");

    for blank in ["\t\t\n", " \u{a0}\u{3000} ", "\r\n\r\n", "\u{feff}\n"] {
        let out = env.cmd(&["get"]).stdin(blank).run();
        assert_eq!(out.stdout, "no credentials server URL\n", "{blank:?}");
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
        .run()
        .assert_error(&["expects a bare server URL"]);
    let out = env.cmd(&["kubelet"]).stdin(HOST).run();
    assert!(out.code == 1 && out.stderr.contains("not valid JSON"), "{out:?}");
    env.cmd(&["store"])
        .stdin(r#"["registry.onstackit.cloud","robot$x","secret"]"#)
        .run()
        .assert_error(&["JSON object"]);
    assert_eq!(fake.requests(), 1, "only the BOM case reached the endpoint");
}
