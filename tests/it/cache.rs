//! The token cache: reuse, expiry, file modes, files that must never be used, corrupt files,
//! stale-while-error, erase, and cache directories that are full, read-only, foreign or odd.
//! Many processes and the lock: `locks.rs`.

use crate::support::*;
use docker_credential_stackit::testing::fake::Reply;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn status(code: u16, body: &str) -> Reply {
    Reply::Status(code, body.into(), vec![])
}

#[test]
fn warm_get_makes_no_request_and_files_are_private() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let first = env.secret(HOST);
    for _ in 0..3 {
        assert_eq!(env.secret(HOST), first);
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
fn corrupt_and_foreign_cache_files_are_replaced() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
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
        assert_ne!(env.secret(HOST), "x");
        assert_eq!(fake.requests(), before + 1, "garbage {garbage:?} is ignored");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(v["version"], 1, "and replaced by a valid file");
    }
}

/// A fresh cache entry for the test account as `env` would have written it, holding `token`.
fn plant_entry(env: &TestEnv, path: &Path, token: &str) {
    let mut v = valid_entry(&env.cache_files()[0]);
    v["access_token"] = json!(token);
    v["issued_at"] = json!(now());
    v["expires_at"] = json!(now() + 3600);
    std::fs::write(path, v.to_string()).unwrap();
    set_mode(path, 0o600);
}

#[test]
fn unsafe_cache_files_are_never_used() {
    // Each would hand out the planted token if the helper trusted it.
    const PLANTED: &str = "planted-token-that-must-not-be-served";
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    let file = env.cache_files()[0].clone();
    let mut requests = 1;
    let mut get_fresh = |what: &str, expect_warning: Option<&str>| {
        let mut get = env.get(HOST);
        if let Some(w) = expect_warning {
            get = get.stderr_has(w);
        }
        let token = secret_of(&get.json());
        requests += 1;
        assert_ne!(token, PLANTED, "{what}: the planted token was served");
        assert!(fake.verify_access_token(&token).is_some(), "{what}");
        assert_eq!(fake.requests(), requests, "{what}: ignored, so a new token was fetched");
    };

    // Readable by others: someone may have copied it, and the helper did not write it so.
    plant_entry(&env, &file, PLANTED);
    set_mode(&file, 0o644);
    get_fresh("mode 0644", None);
    assert_eq!(mode(&file), 0o600, "replaced by a private file");
    assert_ne!(env.cache_entry()["access_token"], PLANTED);

    // Another user's.
    if has_cap(caps::CHOWN) {
        plant_entry(&env, &file, PLANTED);
        std::os::unix::fs::chown(&file, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
        get_fresh("owned by nobody", None);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&file).unwrap().uid(), unsafe { libc::geteuid() });
    } else {
        skip_or_fail::<()>("the other-owner case needs CAP_CHOWN (run as root)".into());
    }

    // Not a plain file: a FIFO (must not be waited on) and a directory (cannot be replaced,
    // so the helper also says it cannot write the cache).
    std::fs::remove_file(&file).unwrap();
    mkfifo(&file);
    get_fresh("a FIFO", None);
    assert!(
        env.cache_entry()["access_token"].is_string(),
        "replaced by a real entry"
    );
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("access_token"), PLANTED).unwrap();
    get_fresh("a directory", Some("cannot write the token cache"));
}

#[test]
fn real_sized_tokens_are_cached_and_served_whole() {
    // STACKIT's access tokens are about 2 KB; these are 2 to 4 KB, well under the cache file's
    // 64 KiB cap.
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    for size in [2048, 4096] {
        let token = unsigned_jwt(&json!({"exp": now() + 3600, "email": sa().iss, "pad": "p".repeat(size)}));
        assert!(token.len() >= size, "{}", token.len());
        fake.script([status(
            200,
            &json!({"access_token": token, "expires_in": 3600}).to_string(),
        )]);
        let before = fake.requests();
        assert_eq!(env.secret(HOST), token, "{size}: minted");
        assert_eq!(env.secret(HOST), token, "{size}: from the cache");
        assert_eq!(fake.requests(), before + 1, "{size}: the second get made no request");
        std::fs::remove_file(&env.cache_files()[0]).unwrap();
    }
}

#[test]
fn a_cache_file_over_the_size_cap_is_ignored() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    let file = env.cache_files()[0].clone();
    // A complete, fresh entry for this identity whose token makes the file just under, then
    // just over 64 KiB: the first is used, the second is not read at all.
    let entry_of = |token_len: usize| {
        let mut v = valid_entry(&file);
        v["access_token"] = json!("t".repeat(token_len));
        v["issued_at"] = json!(now());
        v["expires_at"] = json!(now() + 3600);
        let overhead = v.to_string().len() - token_len;
        (v, overhead)
    };
    let (_, overhead) = entry_of(0);
    let (under, _) = entry_of(64 * 1024 - overhead - 16);
    std::fs::write(&file, under.to_string()).unwrap();
    assert!(std::fs::metadata(&file).unwrap().len() < 64 * 1024);
    assert_eq!(env.secret(HOST), under["access_token"].as_str().unwrap());
    assert_eq!(fake.requests(), 1, "an entry under the cap is used");

    let (over, _) = entry_of(64 * 1024 - overhead + 16);
    std::fs::write(&file, over.to_string()).unwrap();
    assert!(std::fs::metadata(&file).unwrap().len() > 64 * 1024);
    let token = env.secret(HOST);
    assert!(fake.verify_access_token(&token).is_some(), "over the cap: ignored");
    assert_eq!(fake.requests(), 2);
}

#[test]
fn past_half_life_refreshes() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let first = env.secret(HOST);
    env.age_cache(3000, 600); // a 1-hour token with 10 minutes left
    let second = env.secret(HOST);
    assert_eq!(fake.requests(), 2);
    assert_ne!(first, second);
    env.age_cache(1000, 2600); // more than half left: reused
    assert_eq!(env.secret(HOST), second);
    assert_eq!(fake.requests(), 2);
}

#[test]
fn refresh_failure_serves_the_cached_token_with_a_warning() {
    let fake = fake();
    // 3 s: the first attempt gets its 503 however slowly the process starts.
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3");
    let first = env.secret(HOST);
    env.age_cache(3000, 600);
    fake.script((0..20).map(|_| status(503, "down")));
    let out = env
        .get(HOST)
        .stderr_has("HTTP 503")
        .stderr_has("using the cached token")
        .json();
    assert_eq!(secret_of(&out), first);
}

#[test]
fn a_token_with_under_a_minute_left_is_never_handed_out() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3");
    let first = env.secret(HOST);
    env.age_cache(3540, 59);
    fake.script((0..20).map(|_| status(503, "down")));
    let line = env.get(HOST).stderr_lacks(first.as_str()).assert_error(&["HTTP 503"]);
    assert!(!line.contains(&first));
}

#[test]
fn a_short_lived_fresh_token_is_handed_out_but_not_reused() {
    let fake = fake();
    fake.set_lifetime(30);
    let env = TestEnv::with_key(&fake);
    assert!(!env.secret(HOST).is_empty());
    env.get(HOST).json();
    assert_eq!(fake.requests(), 2);
}

#[test]
fn no_cache_means_no_files_and_a_request_each_time() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1");
    env.get(HOST).json();
    env.get(HOST).json();
    assert_eq!(fake.requests(), 2);
    assert!(!env.cache_dir().exists());
}

#[test]
fn erase_drops_the_cached_token() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    assert_eq!(env.cache_files().len(), 1);
    env.cmd(&["erase"]).stdin(HOST).run();
    assert!(env.cache_files().is_empty());
    env.get(HOST).json();
    assert_eq!(fake.requests(), 2);
}

#[test]
fn erase_reports_a_cached_token_it_cannot_delete() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    let file = env.cache_files()[0].clone();
    // A directory in the entry's place cannot be unlinked, whoever runs the test.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("keep"), "x").unwrap();
    env.cmd(&["erase"])
        .stdin(HOST)
        .assert_error(&["cannot remove the cached token", env.cache_dir().to_str().unwrap()]);
    assert!(file.join("keep").exists());
}

#[test]
fn custom_and_unusable_cache_dirs() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let custom = env.path("my-cache");
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", custom.to_str().unwrap());
    env.get(HOST).json();
    assert_eq!(mode(&custom), 0o700);
    assert_eq!(
        std::fs::read_dir(&custom).unwrap().count(),
        2,
        "token file and lock file"
    );

    // A cache dir that cannot exist (its parent is a file): still serves, with a warning that
    // says why; and a regular file named as the cache dir is not taken for one.
    let blocker = env.write("blocker", "");
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", blocker.join("cache"))
        .stderr_has("token cache disabled: cannot inspect")
        .stderr_has("Not a directory")
        .json();
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", &blocker)
        .stderr_has(format!(
            "token cache disabled: {} is not a directory",
            blocker.display()
        ))
        .json();
    assert_eq!(std::fs::read(&blocker).unwrap(), b"", "the file is left as it was");

    // A world-writable cache dir is refused, not used.
    let open = env.path("open-cache");
    std::fs::create_dir(&open).unwrap();
    set_mode(&open, 0o777);
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", &open)
        .stderr_has("writable by other users")
        .json();
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}

#[test]
fn a_cache_dir_owned_by_another_user_or_group_writable_is_refused() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let foreign = env.path("foreign-cache");
    std::fs::create_dir(&foreign).unwrap();
    set_mode(&foreign, 0o700);
    if has_cap(caps::CHOWN) {
        std::os::unix::fs::chown(&foreign, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
        env.get(HOST)
            .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", &foreign)
            .stderr_has("belongs to uid 65534, not to you")
            .stderr_has("token cache disabled")
            .json();
        assert_eq!(
            std::fs::read_dir(&foreign).unwrap().count(),
            0,
            "nothing written into it"
        );
        // Seen from another user, a private directory cannot even be opened: the warning says
        // that, not something else.
        if has_cap(caps::SETUID) && has_cap(caps::SETGID) {
            let mine = env.path("roots-cache");
            std::fs::create_dir(&mine).unwrap();
            set_mode(&mine, 0o700);
            set_mode(env.home.path(), 0o755);
            std::os::unix::fs::chown(env.path("sa-key.json"), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
            env.get(HOST)
                .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", &mine)
                .run_as(NOBODY.0, NOBODY.1)
                .stderr_has(format!("token cache disabled: cannot open {}", mine.display()))
                .stderr_has("Permission denied")
                .json();
        }
    } else {
        skip_or_fail::<()>("the other-owner case needs CAP_CHOWN (run as root) to give a directory away".into());
    }
    let shared = env.path("group-cache");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o770);
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", &shared)
        .stderr_has("writable by other users")
        .stderr_has("chmod 700")
        .json();
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 0);
}

#[test]
fn a_symlinked_cache_file_is_not_followed() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    // No cache file yet is the normal cold path, not worth a word even in the debug log.
    env.get(HOST).stderr_any().stderr_lacks("ignoring cache file").json();
    let file = env.cache_files()[0].clone();
    let victim = env.write("victim.txt", "precious");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&victim, &file).unwrap();
    // A planted link is: the debug log says why the cache was passed over.
    env.get(HOST).stderr_has("ignoring cache file").json();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        !std::fs::symlink_metadata(&file).unwrap().file_type().is_symlink(),
        "the link was replaced, not followed"
    );
    assert_eq!(fake.requests(), 2, "a link is not read either");
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
            .get(HOST)
            .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", dir)
            .stderr_has("token cache disabled")
            .expect_json()
            .run();
        let warning: Vec<&str> = out.stderr.lines().collect();
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

/// One `openat` from an strace log: the path, the flags, and whether it failed.
struct Open {
    path: String,
    flags: String,
    failed: bool,
}

fn opens(trace: &str) -> Vec<Open> {
    trace
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("openat(")? + "openat(".len()..];
            let (_, quoted) = rest.split_once('"')?;
            let (path, after) = quoted.split_once('"')?;
            let flags = after.trim_start_matches(", ").split([',', ')']).next()?.to_string();
            Some(Open {
                path: path.to_string(),
                flags,
                failed: l.contains(") = -1 "),
            })
        })
        .collect()
}

#[test]
fn a_warm_get_reads_the_key_and_the_cache_file_only_and_starts_no_thread_or_process_or_socket() {
    let Some(strace) = tool("strace", "apt-get install strace") else {
        return;
    };
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).json();
    let log = env.path("strace.log");
    let trace_set = "trace=clone,clone3,fork,vfork,execve,socket,connect,open,openat,creat";
    env.program(
        strace,
        &["-f", "-qq", "-o", log.to_str().unwrap(), "-e", trace_set, bin(), "get"],
    )
    .stdin(HOST)
    .json();
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(trace.contains("execve("), "strace saw the process: {trace}");
    let other: Vec<&str> = trace
        .lines()
        .filter(|l| !l.contains("execve(") && !l.contains("openat("))
        .collect();
    assert_eq!(
        other,
        Vec::<&str>::new(),
        "the warm path made no clone/fork/socket/connect call"
    );
    let opens = opens(&trace);
    let written: Vec<&Open> = opens
        .iter()
        .filter(|o| o.flags.contains("O_WRONLY") || o.flags.contains("O_RDWR") || o.flags.contains("O_CREAT"))
        .collect();
    assert!(
        written.is_empty(),
        "a warm get writes nothing: {:?}",
        written.iter().map(|o| &o.path).collect::<Vec<_>>()
    );
    // The files of the test's HOME it opened: the key file and the cache file, read; the
    // config and credentials files it looked for, absent. No lock file: nothing to wait for.
    let home = env.home.path().to_str().unwrap();
    let mine: Vec<(String, bool)> = opens
        .iter()
        .filter(|o| o.path.starts_with(home))
        .map(|o| (o.path[home.len()..].to_string(), o.failed))
        .collect();
    let cache_file = env.cache_files()[0].to_str().unwrap()[home.len()..].to_string();
    let read: Vec<&str> = mine.iter().filter(|(_, f)| !f).map(|(p, _)| p.as_str()).collect();
    // (The cache directory itself is opened to check its owner and mode.)
    assert_eq!(
        read,
        ["/sa-key.json", "/.cache/docker-credential-stackit", cache_file.as_str()],
        "{mine:?}"
    );
    let looked_for: Vec<&str> = mine.iter().filter(|(_, f)| *f).map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        looked_for,
        [
            "/.config/docker-credential-stackit/config.json",
            "/.stackit/credentials.json",
            "/.local/share/docker-credential-stackit/robots.json"
        ],
        "{mine:?}"
    );
    assert!(!mine.iter().any(|(p, _)| p.ends_with(".lock")), "{mine:?}");
    assert_eq!(fake.requests(), 1);
}

// ---------------------------------------------------------------------------------------------
// A full or read-only file system

/// A tmpfs of `size` mounted at `path` for the life of the value; `None` without the privilege
/// to mount (CAP_SYS_ADMIN).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        if !has_cap(caps::SYS_ADMIN) {
            return None;
        }
        std::fs::create_dir_all(path).ok()?;
        let out = Cmd::system("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .any_status()
            .stderr_any()
            .run();
        // A container may have the capability but no permission to mount (seccomp, AppArmor).
        (out.code == 0).then(|| Tmpfs(path.to_path_buf()))
    }

    fn remount(&self, how: &str) {
        Cmd::system("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&self.0)
            .run();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Cmd::system("umount")
            .arg("-l")
            .arg(&self.0)
            .any_status()
            .stderr_any()
            .spawn()
            .wait();
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

/// The `*.json` entry in `cache`.
fn entry_in(cache: &Path) -> PathBuf {
    let files = json_files(cache);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
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
    // Without a small file system to fill, writes to regular files fail instead
    // (RLIMIT_FSIZE of 16 bytes), as on a full disk.
    let get = |env: &TestEnv| match &tmpfs {
        Some(_) => env.get(HOST),
        None => env.get(HOST).fsize_limit(16),
    };
    eprintln!(
        "disk full simulated with {}",
        if tmpfs.is_some() {
            "a full 256 KiB tmpfs"
        } else {
            "RLIMIT_FSIZE (no CAP_SYS_ADMIN)"
        }
    );

    let first = env.secret(HOST);
    let entry = entry_in(&cache);
    age_entry(&entry, 3000, 600);
    let before = std::fs::read(&entry).unwrap();
    let filler = tmpfs.as_ref().map(|_| fill(&mount_point));

    let second = secret_of(
        &get(&env)
            .stderr_has("cannot write the token cache")
            .stderr_has("continuing without it")
            .json(),
    );
    assert_ne!(second, first, "the refresh still answers with the new token");
    assert_eq!(std::fs::read(&entry).unwrap(), before, "the old entry is intact");
    valid_entry(&entry);
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
    let third = env.secret(HOST);
    assert_eq!(valid_entry(&entry)["access_token"], third.as_str());
    assert_eq!(fake.requests(), 3);
}

/// How a test makes the cache read-only.
#[derive(Debug, Clone, Copy)]
enum ReadOnly {
    /// A tmpfs remounted read-only (needs CAP_SYS_ADMIN).
    FileSystem,
    /// A mode 500 directory, with the helper run as a user whom modes bind: the test's own user
    /// if it cannot bypass them, else `nobody` (root, or anyone with CAP_DAC_OVERRIDE, would
    /// write into a mode 500 directory regardless).
    Mode,
}

/// Warm gets read a read-only cache as usual; a refresh that cannot be stored still answers,
/// says so, and leaves the old entry as it was.
fn read_only_cache_scenario(how: ReadOnly) {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let mount_point = env.path("ro");
    let cache = mount_point.join("cache");
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", cache.to_str().unwrap());
    let tmpfs = match how {
        ReadOnly::FileSystem => Some(Tmpfs::mount(&mount_point, "256k").expect("mount a tmpfs")),
        ReadOnly::Mode => None,
    };
    let as_nobody = matches!(how, ReadOnly::Mode) && has_cap(caps::DAC_OVERRIDE);
    if as_nobody {
        std::fs::create_dir_all(&mount_point).unwrap();
        chown_tree(env.home.path(), NOBODY);
    }
    let get = || {
        let get = env.get(HOST);
        if as_nobody { get.run_as(NOBODY.0, NOBODY.1) } else { get }
    };
    let lock = |locked: bool| match &tmpfs {
        Some(t) => t.remount(if locked { "ro" } else { "rw" }),
        None => set_mode(&cache, if locked { 0o500 } else { 0o700 }),
    };

    let first = secret_of(&get().json());
    let entry = entry_in(&cache);
    lock(true);
    // Warm: the cached token is read as usual.
    assert_eq!(secret_of(&get().json()), first, "{how:?}");
    // Past half-life: the refresh works, cannot be stored, and says so; the old entry stays.
    lock(false);
    age_entry(&entry, 3000, 600);
    lock(true);
    let before = std::fs::read(&entry).unwrap();
    let second = secret_of(&get().stderr_has("cannot write the token cache").json());
    assert_ne!(second, first, "{how:?}");
    assert!(fake.verify_access_token(&second).is_some());
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        before,
        "{how:?}: the old entry is intact"
    );
    lock(false);
}

#[test]
fn a_read_only_cache_still_serves_warns_and_keeps_its_token() {
    if has_cap(caps::SYS_ADMIN) {
        read_only_cache_scenario(ReadOnly::FileSystem);
    } else {
        skip_or_fail::<()>("the read-only file system case needs CAP_SYS_ADMIN to mount a tmpfs".into());
    }
    if has_cap(caps::DAC_OVERRIDE) && !(has_cap(caps::SETUID) && has_cap(caps::SETGID) && has_cap(caps::CHOWN)) {
        skip_or_fail::<()>(
            "the mode 500 case needs a user whom modes bind: this one bypasses them but cannot switch to nobody".into(),
        );
        return;
    }
    read_only_cache_scenario(ReadOnly::Mode);
}

// ---------------------------------------------------------------------------------------------
// Where the files go (README, "<config dir>, <cache dir> and <data dir>")

#[test]
fn the_xdg_base_directories_are_honoured_when_absolute_and_ignored_when_relative() {
    let fake = fake();
    let base = TestEnv::with_key(&fake);
    let elsewhere = tempfile::tempdir().unwrap();
    let at = |name: &str| elsewhere.path().join(name).to_str().unwrap().to_string();
    let config = r#"{"registries": {"custom.example": {}}}"#;
    std::fs::create_dir_all(elsewhere.path().join("config/docker-credential-stackit")).unwrap();
    std::fs::write(
        elsewhere.path().join("config/docker-credential-stackit/config.json"),
        config,
    )
    .unwrap();

    let env = base
        .var("XDG_CACHE_HOME", &at("cache"))
        .var("XDG_CONFIG_HOME", &at("config"))
        .var("XDG_DATA_HOME", &at("data"));
    // The config file under XDG_CONFIG_HOME is read: its extra host is served.
    env.get("custom.example").json();
    assert_eq!(
        json_files(&elsewhere.path().join("cache/docker-credential-stackit")).len(),
        1
    );
    assert!(env.cache_files().is_empty(), "nothing under ~/.cache");
    // Robot logins go to XDG_DATA_HOME (a host without a key: an unset key path).
    let robot = r#"{"ServerURL":"custom.example","Username":"robot$p+r","Secret":"s3cret"}"#;
    env.cmd(&["store"])
        .env_remove("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
        .stdin(robot)
        .run();
    assert!(
        elsewhere
            .path()
            .join("data/docker-credential-stackit/robots.json")
            .is_file()
    );

    // Relative values are not base directories (XDG Base Directory specification): the
    // defaults under HOME are used, never a path relative to the working directory.
    let relative = TestEnv::with_key(&fake)
        .var("XDG_CACHE_HOME", "cache")
        .var("XDG_CONFIG_HOME", "config");
    relative.get(HOST).json();
    assert_eq!(relative.cache_files().len(), 1, "under ~/.cache");
    assert!(!relative.path("cache").exists());
    relative.get("custom.example").assert_not_found();
}
