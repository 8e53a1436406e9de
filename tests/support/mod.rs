//! Shared test support: an isolated environment per test (HOME, cache, key files), the one
//! strict builder that runs programs ([`cmd`]), reusable service accounts, TLS certificates, the
//! gate in front of the fake endpoint, the fakes' rig, and the rules for tests that need tools
//! or privileges the machine may lack.

#![allow(dead_code)]

pub mod cmd;
pub mod engines;
pub mod gate;
pub mod harbor;
pub mod keys;
pub mod registry;
pub mod rig;

pub use cmd::{Cmd, Output, Running};

use docker_credential_stackit::testing::fake::{Account, FakeStackit};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The served host every test uses unless it says otherwise.
pub const HOST: &str = "registry.onstackit.cloud";

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_docker-credential-stackit")
}

/// Three service accounts, made once per test process with keys from the pool ([`keys`]).
pub fn accounts() -> &'static [Account] {
    static ACCOUNTS: OnceLock<Vec<Account>> = OnceLock::new();
    ACCOUNTS.get_or_init(|| {
        ["ci-pusher", "reader", "third"]
            .iter()
            .enumerate()
            .map(|(slot, n)| keys::account(n, slot))
            .collect()
    })
}

/// The first account, the one most tests use.
pub fn sa() -> &'static Account {
    &accounts()[0]
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Everything a test's processes run with: a private HOME (also their working directory) and
/// explicit variables; nothing else from the test's own environment but `PATH`.
pub struct TestEnv {
    pub home: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl TestEnv {
    /// An empty environment: nothing configured, so every host is "not found".
    pub fn empty() -> TestEnv {
        TestEnv {
            home: tempfile::tempdir().unwrap(),
            vars: Vec::new(),
        }
    }

    /// The usual set-up: the first account's key file (with embedded private key) and the fake
    /// endpoint's URL.
    pub fn with_key(fake: &FakeStackit) -> TestEnv {
        let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
        let path = env.write("sa-key.json", sa().key_json(true, None).expose());
        env.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", path.to_str().unwrap())
    }

    /// Sets a variable for every command run from this environment.
    pub fn var(mut self, name: &str, value: &str) -> TestEnv {
        self.set_var(name, value);
        self
    }

    /// Removes a variable again.
    pub fn unset(mut self, name: &str) -> TestEnv {
        self.remove_var(name);
        self
    }

    /// [`TestEnv::var`] in place, for environments that change halfway through a test.
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_string(), value.to_string()));
    }

    /// [`TestEnv::unset`] in place.
    pub fn remove_var(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
    }

    /// Writes a 0600 file under HOME (creating directories) and returns its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.home.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        set_mode(&path, 0o600);
        path
    }

    /// A path under HOME.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// The default cache directory under the isolated HOME.
    pub fn cache_dir(&self) -> PathBuf {
        self.home.path().join(".cache/docker-credential-stackit")
    }

    /// The token cache files present now.
    pub fn cache_files(&self) -> Vec<PathBuf> {
        json_files(&self.cache_dir())
    }

    /// A command for the binary with this environment.
    pub fn cmd(&self, args: &[&str]) -> Cmd {
        self.program(bin(), args)
    }

    /// A command for any program (a real client that calls the helper) with this environment.
    pub fn program(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Cmd {
        let mut cmd = Cmd::new(program)
            .args(args)
            .env("HOME", self.home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.home.path());
        for (k, v) in &self.vars {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// `get` with `stdin`.
    pub fn get(&self, stdin: &str) -> Cmd {
        self.cmd(&["get"]).stdin(stdin)
    }

    /// The `Secret` of a successful, quiet `get` for `host`.
    pub fn secret(&self, host: &str) -> String {
        secret_of(&self.get(host).json())
    }

    /// The only cache entry, parsed; panics unless it is a complete, valid entry.
    pub fn cache_entry(&self) -> Value {
        let files = self.cache_files();
        assert_eq!(files.len(), 1, "{files:?}");
        valid_entry(&files[0])
    }

    /// Rewrites the only cache entry's timestamps: issued `issued_ago` seconds ago, expiring
    /// `expires_in` seconds from now.
    pub fn age_cache(&self, issued_ago: u64, expires_in: i64) {
        let files = self.cache_files();
        assert_eq!(files.len(), 1, "{files:?}");
        age_entry(&files[0], issued_ago, expires_in);
    }

    /// Moves the only cache entry past half-life (10 of 60 minutes left): the next `get`
    /// refreshes.
    pub fn age_past_half_life(&self) {
        self.age_cache(3000, 600);
    }
}

/// The `Secret` field of a `get` answer.
pub fn secret_of(answer: &Value) -> String {
    answer["Secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no Secret in {answer}"))
        .to_string()
}

/// The `*.json` files in `dir`, sorted.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
}

/// A cache file parsed; panics unless it is a complete, valid entry.
pub fn valid_entry(path: &Path) -> Value {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    assert_eq!(v["version"], 1, "{v}");
    assert!(!v["access_token"].as_str().unwrap_or("").is_empty(), "{v}");
    v
}

/// Rewrites a cache entry's timestamps (see [`TestEnv::age_cache`]).
pub fn age_entry(path: &Path, issued_ago: u64, expires_in: i64) {
    let mut v = valid_entry(path);
    v["issued_at"] = json!(now() - issued_ago);
    v["expires_at"] = json!((now() as i64 + expires_in) as u64);
    std::fs::write(path, v.to_string()).unwrap();
}

/// Waits until the fake has seen `n` requests (a hang guard, not a timing assertion).
pub fn wait_for_requests(fake: &FakeStackit, n: usize) {
    let start = Instant::now();
    while fake.requests() < n {
        assert!(start.elapsed() < Duration::from_secs(60), "the helper never called");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A JWT with the given claims and a dummy signature (the helper never verifies it).
pub fn unsigned_jwt(claims: &Value) -> String {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        b(r#"{"alg":"RS256","typ":"JWT"}"#),
        b(&claims.to_string())
    )
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Creates a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo {path:?}");
}

// ---------------------------------------------------------------------------------------------
// What the machine offers: tools, privileges. Outside CI a missing one skips loudly; under
// `CI=true` it fails, so that CI never turns coverage into silent skips.

/// Whether `CI` is set to something other than empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `None` with a loud message outside CI; a failure under `CI=true`.
pub fn skip_or_fail<T>(message: String) -> Option<T> {
    if in_ci() {
        panic!("{message}; CI is set, so this fails instead of skipping");
    }
    use std::io::Write;
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests, and a
    // skip must be seen. (nextest captures per process; see docs/e2e.md.)
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {message}. Set CI=true to make this a failure."
    );
    None
}

/// An executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// One external program (e.g. `strace`), under the rule above.
pub fn tool(name: &str, how: &str) -> Option<PathBuf> {
    which(name).or_else(|| skip_or_fail(format!("test needs {name} on PATH ({how})")))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Linux capability numbers the tests care about.
pub mod caps {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SYS_ADMIN: u32 = 21;
}

/// Whether this process has capability `cap` in its effective set (`/proc/self/status`).
pub fn has_cap(cap: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|bits| bits & (1 << cap) != 0)
}

/// The unprivileged user tests switch to when they need file modes to bind (`nobody`).
pub const NOBODY: (u32, u32) = (65534, 65534);

/// Hands `path` and everything below it to `uid:gid` (root only).
pub fn chown_tree(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), (uid, gid));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TLS and fakes

/// A CA and a server certificate for 127.0.0.1 and localhost, as a rustls server config plus
/// the CA in PEM (for `SSL_CERT_FILE`).
pub struct Tls {
    pub server: Arc<rustls::ServerConfig>,
    pub ca_pem: String,
}

/// Makes a CA and a leaf certificate for `names` signed by it.
pub fn tls_for(names: &[&str]) -> Tls {
    tls_with(names, false)
}

/// Like [`tls_for`], but the leaf certificate expired in 2020 (the CA is still valid).
pub fn tls_expired(names: &[&str]) -> Tls {
    tls_with(names, true)
}

fn tls_with(names: &[&str], expired: bool) -> Tls {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "docker-credential-stackit test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        leaf_params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
        .unwrap();
    Tls {
        server: Arc::new(server),
        ca_pem: ca_cert.pem(),
    }
}

/// A fake endpoint that knows every test account.
pub fn fake() -> FakeStackit {
    let fake = FakeStackit::start().unwrap();
    for a in accounts() {
        fake.register(a);
    }
    fake
}

/// A TLS fake endpoint that knows every test account, and its CA.
pub fn tls_fake() -> (FakeStackit, String) {
    let tls = tls_for(&["127.0.0.1", "localhost"]);
    let fake = FakeStackit::start_with(Some(tls.server)).unwrap();
    for a in accounts() {
        fake.register(a);
    }
    (fake, tls.ca_pem)
}

/// A proxy on loopback that records the first line of each request (`CONNECT host:port …`)
/// and refuses it, so a test can see where a request was headed without it leaving the machine.
pub fn recording_proxy() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let _ = std::io::BufReader::new(&stream).read_line(&mut line);
            log.lock().unwrap().push(line.trim_end().to_string());
            let _ = stream.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (url, seen)
}

/// A loopback address that refuses connections for as long as this value lives: a socket bound
/// to it that never listens. A port that was bound and closed again can be taken at once by a
/// fake that another test starts, which then answers instead of refusing.
pub struct RefusedPort {
    _socket: std::os::fd::OwnedFd,
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
}

/// See [`RefusedPort`].
pub fn refused_port() -> RefusedPort {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor this function owns; the sockaddr structs are
    // zero-initialised and sized as the calls expect.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let socket = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::bind(fd, (&raw const sa).cast(), len);
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let mut bound: libc::sockaddr_in = std::mem::zeroed();
        let mut bound_len = len;
        let rc = libc::getsockname(fd, (&raw mut bound).cast(), &mut bound_len);
        assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
        RefusedPort {
            _socket: socket,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], u16::from_be(bound.sin_port))),
        }
    }
}
