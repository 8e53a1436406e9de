//! Load driver for `scripts/stress`: runs the real helper binary against the in-process fake
//! STACKIT token endpoint and checks the cache rules under load.
//!
//! 1. Stress: N processes at once (default 200) across 3 identities with a cold cache must make
//!    exactly 3 token requests, every answer must be the right account's valid token, and every
//!    file in the cache directory must be 0600 (the directory 0700), with no temp file left.
//! 2. Soak: M sequential warm `get`s (default 10,000) must make no request and grow neither the
//!    cache directory nor the helper's peak RSS (first run vs last run, from `wait4`).
//!
//! Usage: `stress --helper PATH [--concurrent N] [--soak M] [--delay-ms D]`. Exit status 0 when
//! every check passed. All traffic stays on 127.0.0.1.

use docker_credential_stackit::testing::fake::{Account, FakeStackit};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The three hosts, each served by its own service account key.
const HOSTS: [&str; 3] = ["registry.onstackit.cloud", "reg-b.example", "reg-c.example:5000"];

struct Options {
    helper: PathBuf,
    concurrent: usize,
    soak: usize,
    delay_ms: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        helper: PathBuf::new(),
        concurrent: 200,
        soak: 10_000,
        delay_ms: 300,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--helper" => options.helper = PathBuf::from(value()?),
            "--concurrent" => options.concurrent = value()?.parse().map_err(|e| format!("--concurrent: {e}"))?,
            "--soak" => options.soak = value()?.parse().map_err(|e| format!("--soak: {e}"))?,
            "--delay-ms" => options.delay_ms = value()?.parse().map_err(|e| format!("--delay-ms: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.helper.as_os_str().is_empty() {
        return Err("--helper PATH is required (the docker-credential-stackit binary)".into());
    }
    Ok(options)
}

/// An isolated HOME with three key files and a config file mapping each host to its key.
struct World {
    home: tempfile::TempDir,
    url: String,
    config: PathBuf,
}

impl World {
    fn new(fake: &FakeStackit, accounts: &[Account]) -> Result<World, String> {
        let home = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let mut registries = serde_json::Map::new();
        for (host, account) in HOSTS.iter().zip(accounts) {
            let path = home.path().join(format!("{}.json", account.iss));
            write_private(&path, account.key_json(true, None).expose())?;
            registries.insert(host.to_string(), serde_json::json!({"serviceAccountKeyPath": path}));
        }
        let config = home.path().join("config.json");
        write_private(&config, &serde_json::json!({ "registries": registries }).to_string())?;
        Ok(World {
            home,
            url: fake.url(),
            config,
        })
    }

    fn cache_dir(&self) -> PathBuf {
        self.home.path().join(".cache/docker-credential-stackit")
    }

    fn spawn_get(&self, helper: &Path, host: &str) -> Result<Child, String> {
        let mut child = Command::new(helper)
            .arg("get")
            .env_clear()
            .env("HOME", self.home.path())
            .env("STACKIT_TOKEN_BASEURL", &self.url)
            .env("DOCKER_CREDENTIAL_STACKIT_CONFIG", &self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", helper.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(host.as_bytes()).map_err(|e| format!("stdin: {e}"))?;
        }
        Ok(child)
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a child's stdout and stderr, then reaps it with `wait4` for its peak RSS (KiB).
fn finish(mut child: Child) -> Result<(i32, String, String, i64), String> {
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).map_err(|e| format!("stdout: {e}"))?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).map_err(|e| format!("stderr: {e}"))?;
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own un-reaped child; status and usage point to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let code = std::process::ExitStatus::from_raw(status).code().unwrap_or(-1);
    Ok((code, stdout, stderr, usage.ru_maxrss))
}

/// Every entry of the cache directory with a wrong mode or a leftover temp file.
fn bad_files(dir: &Path) -> Result<(Vec<String>, usize, u64), String> {
    let mut bad = Vec::new();
    let dir_mode = std::fs::metadata(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .permissions()
        .mode()
        & 0o777;
    if dir_mode != 0o700 {
        bad.push(format!("{} has mode {dir_mode:o}", dir.display()));
    }
    let (mut count, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let meta = entry.metadata().map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        count += 1;
        bytes += meta.len();
        let mode = meta.permissions().mode() & 0o777;
        if mode != 0o600 {
            bad.push(format!("{name} has mode {mode:o}"));
        }
        if name.ends_with(".tmp") {
            bad.push(format!("{name} is a leftover temp file"));
        }
    }
    Ok((bad, count, bytes))
}

fn stress(options: &Options, fake: &FakeStackit, accounts: &[Account], world: &World) -> Result<Vec<String>, String> {
    let mut failures = Vec::new();
    let started = Instant::now();
    let children = (0..options.concurrent)
        .map(|i| world.spawn_get(&options.helper, HOSTS[i % 3]).map(|c| (i % 3, c)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut secrets: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut peak_rss = 0;
    let mut correct = 0;
    for (which, child) in children {
        let (code, stdout, stderr, rss) = finish(child)?;
        peak_rss = peak_rss.max(rss);
        let answer: serde_json::Value = match serde_json::from_str(&stdout) {
            Ok(v) if code == 0 => v,
            _ => {
                failures.push(format!("get {} failed (exit {code}): {stdout}{stderr}", HOSTS[which]));
                continue;
            }
        };
        let account = &accounts[which];
        let secret = answer["Secret"].as_str().unwrap_or_default();
        let claims = fake.verify_access_token(secret);
        if answer["Username"] != account.iss.as_str()
            || answer["ServerURL"] != HOSTS[which]
            || claims.is_none_or(|c| c["email"] != account.iss.as_str())
        {
            failures.push(format!(
                "wrong answer for {}: username {}",
                HOSTS[which], answer["Username"]
            ));
        } else {
            correct += 1;
        }
        secrets.entry(which).or_default().insert(secret.to_string());
    }
    let elapsed = started.elapsed();
    let requests = fake.requests();
    if requests != 3 {
        failures.push(format!(
            "expected exactly 3 token requests, the endpoint saw {requests}"
        ));
    }
    if !fake.rejections().is_empty() {
        failures.push(format!("the endpoint refused assertions: {:?}", fake.rejections()));
    }
    for (which, set) in &secrets {
        if set.len() != 1 {
            failures.push(format!("{} got {} different tokens", HOSTS[*which], set.len()));
        }
    }
    let (bad, files, bytes) = bad_files(&world.cache_dir())?;
    failures.extend(bad);
    println!(
        "stress: {} concurrent gets across 3 identities (cold cache, endpoint delay {} ms): {requests} token requests, {correct} correct answers, {files} cache files ({bytes} bytes), peak helper RSS {peak_rss} KiB, {:.2}s",
        options.concurrent,
        options.delay_ms,
        elapsed.as_secs_f64()
    );
    Ok(failures)
}

fn soak(options: &Options, fake: &FakeStackit, world: &World) -> Result<Vec<String>, String> {
    let mut failures = Vec::new();
    if options.soak == 0 {
        return Ok(failures);
    }
    let before_requests = fake.requests();
    let (_, files_before, bytes_before) = bad_files(&world.cache_dir())?;
    let mut rss = Vec::with_capacity(options.soak);
    let mut first_secret = None;
    let started = Instant::now();
    for i in 0..options.soak {
        let child = world.spawn_get(&options.helper, HOSTS[0])?;
        let (code, stdout, stderr, peak) = finish(child)?;
        if code != 0 {
            failures.push(format!("warm get {i} failed (exit {code}): {stdout}{stderr}"));
            break;
        }
        let secret = serde_json::from_str::<serde_json::Value>(&stdout)
            .map(|v| v["Secret"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        match &first_secret {
            None => first_secret = Some(secret),
            Some(s) if *s != secret => {
                failures.push(format!("warm get {i} answered a different token"));
                break;
            }
            Some(_) => {}
        }
        rss.push(peak);
    }
    let elapsed = started.elapsed();
    let (bad, files_after, bytes_after) = bad_files(&world.cache_dir())?;
    failures.extend(bad);
    let requests = fake.requests() - before_requests;
    if requests != 0 {
        failures.push(format!("warm gets made {requests} token requests"));
    }
    if files_after != files_before || bytes_after != bytes_before {
        failures.push(format!(
            "the cache directory changed: {files_before} files / {bytes_before} bytes -> {files_after} / {bytes_after}"
        ));
    }
    let (first, last) = (rss.first().copied().unwrap_or(0), rss.last().copied().unwrap_or(0));
    let max = rss.iter().copied().max().unwrap_or(0);
    let mean = |runs: &[i64]| runs.iter().sum::<i64>() as f64 / runs.len().max(1) as f64;
    let window = (rss.len() / 10).max(1);
    let (early, late) = (
        mean(&rss[..window.min(rss.len())]),
        mean(&rss[rss.len().saturating_sub(window)..]),
    );
    // Each get is a fresh process, so growth here would mean the work per get grows (a cache
    // file that grows, a directory that fills up). Single runs vary by a few pages, so compare
    // the first and last tenth, and allow 256 KiB of noise.
    if late > early + 256.0 {
        failures.push(format!(
            "peak RSS grew from {early:.0} KiB (first tenth) to {late:.0} KiB (last tenth)"
        ));
    }
    println!(
        "soak: {} sequential warm gets: {requests} token requests, cache {files_before} files / {bytes_before} bytes before, {files_after} / {bytes_after} after; helper peak RSS first {first} KiB, last {last} KiB, mean of first/last tenth {early:.0}/{late:.0} KiB, max {max} KiB; {:.2} ms per get",
        rss.len(),
        elapsed.as_secs_f64() * 1000.0 / rss.len().max(1) as f64
    );
    Ok(failures)
}

fn run() -> Result<Vec<String>, String> {
    let options = parse_args()?;
    // 200 children with three pipes each need more descriptors than the usual soft limit.
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let fake = FakeStackit::start().map_err(|e| format!("cannot start the fake endpoint: {e}"))?;
    let accounts: Vec<Account> = ["stress-a", "stress-b", "stress-c"]
        .iter()
        .map(|n| Account::generate(n))
        .collect();
    for account in &accounts {
        fake.register(account);
    }
    // A slow endpoint keeps every process inside the cold window at once.
    fake.set_delay(Duration::from_millis(options.delay_ms));
    let world = World::new(&fake, &accounts)?;
    let mut failures = stress(&options, &fake, &accounts, &world)?;
    fake.set_delay(Duration::ZERO);
    failures.extend(soak(&options, &fake, &world)?);
    Ok(failures)
}

fn main() -> ExitCode {
    match run() {
        Ok(failures) if failures.is_empty() => {
            println!("stress: all checks passed");
            ExitCode::SUCCESS
        }
        Ok(failures) => {
            for f in failures.iter().take(20) {
                println!("FAILED: {f}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("stress: {e}");
            ExitCode::from(2)
        }
    }
}
