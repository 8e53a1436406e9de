//! Shared test support: an isolated environment per test (HOME, cache, key files), a small
//! builder for running the real binary, reusable service accounts, and TLS certificates.

#![allow(dead_code)]

pub mod engines;
pub mod harbor;
pub mod rig;

use docker_credential_stackit::fake::{Account, FakeStackit};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_docker-credential-stackit")
}

/// Three service accounts, generated once per test run (RSA generation is slow-ish).
pub fn accounts() -> &'static [Account] {
    static ACCOUNTS: OnceLock<Vec<Account>> = OnceLock::new();
    ACCOUNTS.get_or_init(|| {
        ["ci-pusher", "reader", "third"]
            .iter()
            .map(|n| Account::generate(n))
            .collect()
    })
}

/// The first account, the one most tests use.
pub fn sa() -> &'static Account {
    &accounts()[0]
}

/// Everything a test's helper processes run with: a private HOME and explicit variables.
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

    /// Writes a 0600 file under HOME and returns its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.home.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        set_mode(&path, 0o600);
        path
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// The default cache directory under the isolated HOME.
    pub fn cache_dir(&self) -> PathBuf {
        self.home.path().join(".cache/docker-credential-stackit")
    }

    /// The token cache files present now.
    pub fn cache_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.cache_dir())
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        files
    }

    /// A command for the binary with this environment.
    pub fn cmd(&self, args: &[&str]) -> TestCommand {
        self.program(bin(), args)
    }

    /// A command for any program (a real client that calls the helper) with this environment.
    pub fn program(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> TestCommand {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        TestCommand { cmd, stdin: None }
    }

    /// `get` with `stdin`.
    pub fn get(&self, stdin: &str) -> Output {
        self.cmd(&["get"]).stdin(stdin).run()
    }
}

/// A command about to run, with optional stdin.
pub struct TestCommand {
    pub cmd: Command,
    stdin: Option<Vec<u8>>,
}

/// What a run produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts success and returns stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts Docker's not-found answer.
    pub fn assert_not_found(&self) {
        assert_eq!(self.code, 1, "{self:?}");
        assert_eq!(self.stdout, "credentials not found in native keychain\n", "{self:?}");
    }

    /// Asserts a one-line error on stdout containing every fragment, and returns it.
    pub fn assert_error(&self, fragments: &[&str]) -> &str {
        assert_eq!(self.code, 1, "expected exit 1: {self:?}");
        assert_eq!(self.stdout.lines().count(), 1, "expected one line on stdout: {self:?}");
        for f in fragments {
            assert!(self.stdout.contains(f), "stdout lacks {f:?}: {self:?}");
        }
        self.stdout.trim_end()
    }
}

impl TestCommand {
    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Self {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    /// Starts the process without waiting (for concurrency tests).
    pub fn spawn(mut self) -> RunningCommand {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn the helper");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = &self.stdin {
            let _ = stdin.write_all(input);
        }
        drop(stdin);
        RunningCommand { child }
    }

    pub fn run(self) -> Output {
        self.spawn().wait()
    }

    /// Runs with a hang guard: a process still running after `limit` is killed and the test
    /// fails, so a hanging client cannot hang the suite.
    pub fn run_within(self, limit: std::time::Duration) -> Output {
        self.spawn().wait_within(limit)
    }
}

pub struct RunningCommand {
    child: Child,
}

impl RunningCommand {
    /// [`RunningCommand::wait`] with a hang guard (see [`TestCommand::run_within`]).
    pub fn wait_within(mut self, limit: std::time::Duration) -> Output {
        use std::io::Read;
        use std::time::{Duration, Instant};
        // Drain the pipes while waiting, or a chatty child blocks on a full pipe. Through
        // channels with a bounded wait: a grandchild (the helper under `docker`, which passes
        // its own stderr on) can keep a pipe open after the child is gone.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            });
            rx
        };
        let stdout = drain(self.child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let stderr = drain(self.child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
        let started = Instant::now();
        let collect = |rx: &std::sync::mpsc::Receiver<String>| {
            let left = limit.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
            rx.recv_timeout(left)
                .unwrap_or_else(|_| "[pipe still held open by a leftover process]".into())
        };
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return Output {
                    code: status.code().unwrap_or(-1),
                    stdout: collect(&stdout),
                    stderr: collect(&stderr),
                };
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "hang guard: still running after {limit:?}; stdout: {:?}; stderr: {:?}",
                    collect(&stdout),
                    collect(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGKILL (no chance to clean up) and collects what the process had printed.
    pub fn kill(mut self) -> Output {
        let _ = self.child.kill();
        self.wait()
    }

    pub fn wait(self) -> Output {
        let out = self.child.wait_with_output().expect("wait for the helper");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

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
pub fn recording_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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
