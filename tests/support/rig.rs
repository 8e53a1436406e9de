//! The end-to-end rig: real clients (skopeo, the Docker CLI) talking to a real CNCF
//! distribution registry (`docker-registry`) whose token auth is the fake Harbor, which in turn
//! checks STACKIT access tokens from the fake STACKIT endpoint. The clients find our binary
//! through a real `credHelpers` entry. Everything listens on 127.0.0.1 and is per test: ports
//! are random, files live in temp dirs, the registry is killed on drop.
//!
//! See `harbor-and-e2e-rig.md` part B for why the pieces are wired this way.

use super::harbor::{FakeHarbor, HarborConfig, Verifier, project_robot};
use super::{Output, TestCommand, TestEnv, bin, sa};
use docker_credential_stackit::fake::FakeStackit;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any client command may run before the test fails as hung. Generous on purpose:
/// a guard against hangs, not a benchmark.
pub const HANG_GUARD: Duration = Duration::from_secs(90);

/// The robot whose permissions the tests vary, and its legacy secret.
pub const ROBOT: &str = "robot$shop+ci";
pub const ROBOT_SECRET: &str = "Legacy1secret";

/// A second robot that seeds images with explicit credentials (`--dest-creds`), so a test can
/// put an image in place without going through the helper it is about to test.
const SEEDER: &str = "robot$shop+seed";
const SEEDER_SECRET: &str = "Seed1secret";

/// Absolute paths of the real programs the e2e tests drive.
pub struct Tools {
    pub registry: PathBuf,
    pub skopeo: PathBuf,
    pub docker: PathBuf,
}

/// The packages that provide each tool, for the skip/fail message.
const TOOLS: [(&str, &str); 3] = [
    (
        "docker-registry",
        "apt-get install -y --no-install-recommends docker-registry",
    ),
    ("skopeo", "apt-get install -y --no-install-recommends skopeo"),
    (
        "docker",
        "the Docker CLI client: Debian docker.io or docker-ce-cli; no daemon needed",
    ),
];

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The tools, or `None` (with a loud message) when one is missing outside CI. Under `CI=true`
/// a missing tool fails the test: CI must not turn e2e coverage into silent skips.
pub fn tools() -> Option<Tools> {
    let found: Vec<Option<PathBuf>> = TOOLS.iter().map(|(name, _)| which(name)).collect();
    let missing: Vec<String> = TOOLS
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|((name, how), _)| format!("{name} ({how})"))
        .collect();
    if missing.is_empty() {
        let mut found = found.into_iter().flatten();
        return Some(Tools {
            registry: found.next()?,
            skopeo: found.next()?,
            docker: found.next()?,
        });
    }
    skip_or_fail(format!("e2e test needs programs not on PATH: {}", missing.join("; ")))
}

/// One external program for a test that is not an e2e test (e.g. `strace`), with the same rule:
/// `None` with a loud message outside CI, a failure under `CI=true`.
pub fn tool(name: &str, how: &str) -> Option<PathBuf> {
    which(name).or_else(|| skip_or_fail(format!("test needs {name} on PATH ({how})")))
}

fn skip_or_fail<T>(message: String) -> Option<T> {
    if in_ci() {
        panic!("{message}; CI is set, so this fails instead of skipping");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests, and a
    // skip must be seen. (nextest captures per process; see docs/e2e.md.)
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {message}. Set CI=true to make this a failure."
    );
    None
}

/// A `docker-registry serve` child process with token auth pointing at a fake Harbor.
pub struct Registry {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry trusting `harbor`'s tokens on a free loopback port and waits until it
    /// answers `/v2/` with the Bearer challenge.
    pub fn start(program: &Path, harbor: &FakeHarbor) -> Registry {
        let dir = tempfile::tempdir().expect("registry temp dir");
        // A port picked by binding :0 can be taken by someone else before the registry binds
        // it; then the registry exits and we try another.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let host = format!("127.0.0.1:{port}");
            let config = harbor.distribution_config(&host, &dir.path().join("data"), &dir.path().join("token.crt"));
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write the registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
            let mut child = Command::new(program)
                .arg("serve")
                .arg(&config_path)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("registry log"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let started = Instant::now();
            loop {
                if child.try_wait().expect("poll docker-registry").is_some() {
                    break; // Most likely the port was taken; try another.
                }
                if probe(&host) == Some(401) {
                    return Registry { child, host, dir };
                }
                if started.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("docker-registry did not come up on {host}: {}", read_log(dir.path()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("docker-registry kept failing to start: {}", read_log(dir.path()));
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// What the registry logged so far (for failure messages).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Only the process this rig started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
}

/// The status of `GET /v2/`, or `None` while nothing answers.
fn probe(host: &str) -> Option<u16> {
    let mut tcp = TcpStream::connect(host).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(tcp, "GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// One test's world: the fakes, a registry, and a HOME whose Docker config sends the registry
/// to our helper.
pub struct Rig {
    pub tools: Tools,
    pub stackit: Arc<FakeStackit>,
    pub harbor: FakeHarbor,
    pub registry: Registry,
    /// HOME, DOCKER_CONFIG and the variables every client and helper run with.
    pub env: TestEnv,
    /// Every STACKIT access token the fake Harbor was shown, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Rig {
    /// Starts everything, or returns `None` when a tool is missing outside CI. No SA key is
    /// configured yet: see [`Rig::with_key`].
    pub fn start() -> Option<Rig> {
        let tools = tools()?;
        let stackit = Arc::new(super::fake());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let verifier: Verifier = {
            let (stackit, seen) = (stackit.clone(), seen.clone());
            Arc::new(move |token: &str| {
                seen.lock().unwrap_or_else(|p| p.into_inner()).push(token.to_string());
                stackit.verify_access_token(token)
            })
        };
        let harbor = FakeHarbor::start(HarborConfig::default(), Some(verifier));
        harbor.add_robot(project_robot("shop", "seed", &["pull", "push"]), SEEDER_SECRET);
        let registry = Registry::start(&tools.registry, &harbor);
        let env = client_env(registry.host(), &stackit);
        Some(Rig {
            tools,
            stackit,
            harbor,
            registry,
            env,
            seen,
        })
    }

    /// The registry's `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        self.registry.host()
    }

    /// `docker://127.0.0.1:PORT/<reference>` for skopeo.
    pub fn docker_ref(&self, reference: &str) -> String {
        format!("docker://{}/{reference}", self.host())
    }

    /// Configures the first test account's SA key for the helper (the robot's link is a
    /// separate, Harbor-side step: [`Rig::link`]).
    pub fn with_key(&mut self) {
        let path = self.env.write("sa-key.json", sa().key_json(true, None).expose());
        self.env.set_var(
            "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
            path.to_str().expect("UTF-8 temp path"),
        );
    }

    /// Adds [`ROBOT`] with `actions` on `repository` in project `shop`, unlinked.
    pub fn robot(&self, actions: &[&str]) {
        self.harbor
            .add_robot(project_robot("shop", "ci", actions), ROBOT_SECRET);
    }

    /// Links [`ROBOT`] to the first test account.
    pub fn link(&self) {
        self.harbor.link(ROBOT, &sa().iss, &sa().sub);
    }

    /// The usual SA set-up: key configured, robot with `actions`, linked.
    pub fn linked(actions: &[&str]) -> Option<Rig> {
        let mut rig = Rig::start()?;
        rig.with_key();
        rig.robot(actions);
        rig.link();
        Some(rig)
    }

    /// skopeo with the global flags every call needs: no dependence on the machine's
    /// `/etc/containers/policy.json`.
    pub fn skopeo(&self, args: &[&str]) -> TestCommand {
        let mut all = vec!["--insecure-policy"];
        all.extend_from_slice(args);
        self.env.program(&self.tools.skopeo, &all)
    }

    /// The Docker CLI (no daemon).
    pub fn docker(&self, args: &[&str]) -> TestCommand {
        self.env.program(&self.tools.docker, args)
    }

    /// Our binary, as a user would run it, with the rig's environment.
    pub fn helper(&self, args: &[&str]) -> TestCommand {
        self.env.cmd(args)
    }

    /// `skopeo copy` from an OCI layout to `reference` in the registry (credentials from the
    /// helper).
    pub fn push(&self, image: &OciImage, reference: &str) -> Output {
        self.skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &image.reference(),
            &self.docker_ref(reference),
        ])
        .run_within(HANG_GUARD)
    }

    /// `skopeo copy` from `reference` in the registry to a new OCI layout under `dir`.
    pub fn pull(&self, reference: &str, dir: &Path) -> Output {
        let dest = format!("oci:{}:pulled", dir.display());
        self.skopeo(&["copy", "--src-tls-verify=false", &self.docker_ref(reference), &dest])
            .run_within(HANG_GUARD)
    }

    /// Pushes `image` as `reference` with the seeder robot's explicit credentials, bypassing
    /// the helper, so a test can start from an image that is already there.
    pub fn seed(&self, image: &OciImage, reference: &str) {
        let out = self.push_as(SEEDER, SEEDER_SECRET, image, reference);
        assert_eq!(out.code, 0, "seeding {reference} failed: {out:?}");
    }

    /// `skopeo copy` of `image` to `reference` with explicit credentials (`--dest-creds`), so the
    /// helper is not asked.
    pub fn push_as(&self, user: &str, secret: &str, image: &OciImage, reference: &str) -> Output {
        let creds = format!("{user}:{secret}");
        self.skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &image.reference(),
            &self.docker_ref(reference),
        ])
        .run_within(HANG_GUARD)
    }

    /// The STACKIT access tokens the fake Harbor has been shown so far.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Docker's config file (`$DOCKER_CONFIG/config.json`).
    pub fn docker_config(&self) -> PathBuf {
        self.env.path(".docker/config.json")
    }

    /// Docker's config, parsed.
    pub fn docker_config_json(&self) -> Value {
        let text = std::fs::read_to_string(self.docker_config()).expect("read config.json");
        serde_json::from_str(&text).expect("config.json is JSON")
    }

    /// Rewrites Docker's config.
    pub fn write_docker_config(&self, config: &Value) {
        self.env.write(".docker/config.json", &config.to_string());
    }

    /// The helper's stored robot credentials file.
    pub fn robots_file(&self) -> PathBuf {
        self.env.path(".local/share/docker-credential-stackit/robots.json")
    }
}

/// The environment real clients run in, isolated from the machine's own credentials:
/// - HOME, DOCKER_CONFIG and XDG_* under a temp dir, so neither the Docker CLI nor skopeo can
///   find a credential file outside the test;
/// - REGISTRY_AUTH_FILE = Docker's config.json: skopeo then reads only that file (its
///   `credHelpers` included) and never the machine-wide `/run/containers/0/auth.json`;
/// - `_CONTAINERS_ROOTLESS_UID` makes containers/image treat the (root) test like a user and
///   keep its blob-info cache under XDG_DATA_HOME instead of the machine-wide
///   `/var/lib/containers/cache`, which would be shared between tests and runs;
/// - DOCKER_HOST points at a socket that does not exist, so `docker login` always takes its
///   client-side path (which calls the credential helper) even where a daemon runs;
/// - PATH starts with a directory holding only `docker-credential-stackit`.
fn client_env(host: &str, stackit: &FakeStackit) -> TestEnv {
    let env = TestEnv::empty();
    let home = env.home.path().to_path_buf();
    let bin_dir = home.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    std::os::unix::fs::symlink(bin(), bin_dir.join("docker-credential-stackit")).expect("symlink the helper");
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let s = |p: PathBuf| p.to_str().expect("UTF-8 temp path").to_string();
    let env = env
        .var("PATH", &path)
        .var("DOCKER_CONFIG", &s(home.join(".docker")))
        .var("REGISTRY_AUTH_FILE", &s(home.join(".docker/config.json")))
        .var("XDG_CONFIG_HOME", &s(home.join(".config")))
        .var("XDG_DATA_HOME", &s(home.join(".local/share")))
        .var("XDG_CACHE_HOME", &s(home.join(".cache")))
        .var("_CONTAINERS_ROOTLESS_UID", "1000")
        .var(
            "DOCKER_HOST",
            &format!("unix://{}", home.join("no-daemon.sock").display()),
        )
        .var("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", host)
        .var("STACKIT_TOKEN_BASEURL", &stackit.url());
    env.write(
        ".docker/config.json",
        &json!({"credHelpers": {host: "stackit"}}).to_string(),
    );
    env
}

/// A tiny OCI image layout written by hand: one gzipped tar layer with one file, a config, a
/// manifest and an index tagged `v1`. Deterministic bytes, so digests are stable.
pub struct OciImage {
    pub dir: PathBuf,
    /// `sha256:…` of the manifest.
    pub manifest_digest: String,
    /// `sha256:…` of every blob (layer, config, manifest).
    pub blobs: Vec<String>,
}

impl OciImage {
    /// Writes an image whose single file `/hello.txt` holds `content` into `dir`.
    pub fn write(dir: &Path, content: &str) -> OciImage {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
        let put = |bytes: &[u8]| -> (String, usize) {
            let hex = sha256_hex(bytes);
            std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).expect("blob");
            (format!("sha256:{hex}"), bytes.len())
        };
        let tar = tar_one_file("hello.txt", content.as_bytes());
        let (layer, layer_size) = put(&gzip_stored(&tar));
        let config = json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&tar))]},
        });
        let (config, config_size) = put(config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": layer_size}],
        });
        let (manifest, manifest_size) = put(manifest.to_string().as_bytes());
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }],
        });
        std::fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
        OciImage {
            dir: dir.to_path_buf(),
            manifest_digest: manifest.clone(),
            blobs: vec![layer, config, manifest],
        }
    }

    /// `oci:DIR:v1` for skopeo.
    pub fn reference(&self) -> String {
        format!("oci:{}:v1", self.dir.display())
    }

    /// A blob's bytes.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        read_blob(&self.dir, digest)
    }
}

/// A blob's bytes from any OCI layout.
pub fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {digest} in {}: {e}", layout.display()))
}

/// The manifest digest an OCI layout's index names first.
pub fn layout_manifest_digest(layout: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json")).expect("index JSON");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("a manifest digest")
        .to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A ustar archive with one regular file, mode 0644, mtime 0.
fn tar_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut field = |offset: usize, value: &[u8]| header[offset..offset + value.len()].copy_from_slice(value);
    field(0, name.as_bytes());
    field(100, b"0000644\0");
    field(108, b"0000000\0");
    field(116, b"0000000\0");
    field(124, format!("{:011o}\0", content.len()).as_bytes());
    field(136, b"00000000000\0");
    field(148, b"        "); // the checksum counts its own field as spaces
    field(156, b"0");
    field(257, b"ustar\0");
    field(263, b"00");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]); // end-of-archive marker
    out
}

/// gzip with "stored" (uncompressed) deflate blocks: valid gzip without a compression crate.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
