//! The end-to-end rig: real clients (skopeo, the Docker CLI) talking to a real CNCF
//! distribution registry (`docker-registry`) whose token auth is the fake Harbor, which in turn
//! checks STACKIT access tokens from the fake STACKIT endpoint ([`super::rig::Rig`]). The clients
//! find our binary through a real `credHelpers` entry. Everything listens on 127.0.0.1 and is per
//! test: ports are random, files live in temp dirs, the registry's process group is killed on
//! drop. docs/e2e.md says what is needed and why the pieces are wired this way.

use super::harbor::{FakeHarbor, project_robot};
use super::rig::Rig;
use super::{Cmd, Output, Running};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long any client command may run before the test fails as hung. Generous on purpose:
/// a guard against hangs, not a benchmark.
pub const HANG_GUARD: Duration = Duration::from_secs(90);

/// A second robot that seeds images with explicit credentials (`--dest-creds`), so a test can
/// put an image in place without going through the helper it is about to test.
const SEEDER: &str = "robot$shop+seed";
const SEEDER_SECRET: &str = "Seed1secret";

/// Absolute paths of the real programs the e2e tests drive. The Docker CLI is optional: the
/// tests that need it skip (outside CI) only their Docker part.
pub struct Tools {
    pub registry: PathBuf,
    pub skopeo: PathBuf,
    pub docker: Option<PathBuf>,
}

const REGISTRY_HOW: &str = "apt-get install -y --no-install-recommends docker-registry";
const SKOPEO_HOW: &str = "apt-get install -y --no-install-recommends skopeo";
const DOCKER_HOW: &str = "the Docker CLI client: Debian docker.io or docker-ce-cli; no daemon needed";

/// The tools, or `None` (with a loud message) when the registry or skopeo is missing outside
/// CI. Under `CI=true` a missing tool, the Docker CLI included, fails the test: CI must not turn
/// e2e coverage into silent skips.
pub fn tools() -> Option<Tools> {
    let registry = super::which("docker-registry");
    let skopeo = super::which("skopeo");
    let docker = super::which("docker");
    let missing: Vec<String> = [
        ("docker-registry", REGISTRY_HOW, registry.is_none()),
        ("skopeo", SKOPEO_HOW, skopeo.is_none()),
        ("docker", DOCKER_HOW, docker.is_none() && super::in_ci()),
    ]
    .iter()
    .filter(|(_, _, missing)| *missing)
    .map(|(name, how, _)| format!("{name} ({how})"))
    .collect();
    if !missing.is_empty() {
        return super::skip_or_fail(format!("e2e test needs programs not on PATH: {}", missing.join("; ")));
    }
    Some(Tools {
        registry: registry?,
        skopeo: skopeo?,
        docker,
    })
}

/// A `docker-registry serve` process with token auth pointing at a fake Harbor.
pub struct Registry {
    process: Running,
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
            let process = Cmd::new(program)
                .arg("serve")
                .arg(&config_path)
                .log_to(dir.path().join("registry.log"))
                .die_with_test()
                .spawn();
            let started = Instant::now();
            loop {
                if process.has_exited() {
                    break; // Most likely the port was taken; try another.
                }
                if probe(&host) == Some(401) {
                    return Registry { process, host, dir };
                }
                if started.elapsed() > Duration::from_secs(30) {
                    panic!("docker-registry did not come up on {host}: {}", read_log(dir.path()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(process);
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

    /// The registry's process id (its group is killed when the value is dropped).
    pub fn pid(&self) -> u32 {
        self.process.pid()
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

/// One test's world: the fakes ([`Rig`], which this dereferences to), a real registry, and a
/// HOME whose Docker config sends the registry to our helper.
pub struct E2e {
    pub rig: Rig,
    pub tools: Tools,
    pub registry: Registry,
}

impl Deref for E2e {
    type Target = Rig;
    fn deref(&self) -> &Rig {
        &self.rig
    }
}

impl DerefMut for E2e {
    fn deref_mut(&mut self) -> &mut Rig {
        &mut self.rig
    }
}

impl E2e {
    /// Starts everything, or returns `None` when a tool is missing outside CI. No SA key is
    /// configured yet: see [`Rig::with_key`].
    pub fn start() -> Option<E2e> {
        let tools = tools()?;
        let fakes = Rig::fakes();
        fakes
            .harbor
            .add_robot(project_robot("shop", "seed", &["pull", "push"]), SEEDER_SECRET);
        let registry = Registry::start(&tools.registry, &fakes.harbor);
        let mut rig = Rig::assemble(fakes, registry.host());
        rig.env = super::rig::isolate_clients(rig.env);
        Some(E2e { rig, tools, registry })
    }

    /// The usual SA set-up: key configured, robot with `actions`, linked.
    pub fn linked(actions: &[&str]) -> Option<E2e> {
        let mut e2e = E2e::start()?;
        e2e.with_key();
        e2e.robot(actions);
        e2e.link();
        Some(e2e)
    }

    /// `docker://127.0.0.1:PORT/<reference>` for skopeo.
    pub fn docker_ref(&self, reference: &str) -> String {
        format!("docker://{}/{reference}", self.host())
    }

    /// skopeo with the global flags every call needs (no dependence on the machine's
    /// `/etc/containers/policy.json`), the hang guard, and its output left to the test.
    pub fn skopeo(&self, args: &[&str]) -> Cmd {
        let mut all = vec!["--insecure-policy"];
        all.extend_from_slice(args);
        client(self.env.program(&self.tools.skopeo, &all))
    }

    /// The Docker CLI (no daemon), or `None` (loudly) outside CI when it is not installed: the
    /// caller skips only its Docker part.
    pub fn docker(&self, args: &[&str]) -> Option<Cmd> {
        match &self.tools.docker {
            Some(docker) => Some(client(self.env.program(docker, args))),
            None => super::skip_or_fail(format!("this part needs the Docker CLI on PATH ({DOCKER_HOW})")),
        }
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
        .run()
    }

    /// `skopeo copy` from `reference` in the registry to a new OCI layout under `dir`.
    pub fn pull(&self, reference: &str, dir: &Path) -> Output {
        let dest = format!("oci:{}:pulled", dir.display());
        self.skopeo(&["copy", "--src-tls-verify=false", &self.docker_ref(reference), &dest])
            .run()
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
        .run()
    }
}

/// A real client's run: bounded by the hang guard; its exit status and output are for the test
/// to judge (clients print progress and pass the helper's warnings through).
pub fn client(cmd: Cmd) -> Cmd {
    cmd.deadline(HANG_GUARD).any_status().stdout_any().stderr_any()
}

/// A second registry next to an [`E2e`]'s, with its own fake Harbor (for "other registries never
/// see STACKIT credentials").
pub fn other_registry(e2e: &E2e, robot: Value, secret: &str) -> (FakeHarbor, Registry) {
    let harbor = FakeHarbor::with_stackit(e2e.stackit.clone());
    harbor.add_robot(robot, secret);
    let registry = Registry::start(&e2e.tools.registry, &harbor);
    (harbor, registry)
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
        let tar = tar(&[("hello.txt", 0o644, content.as_bytes())]);
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

/// A ustar archive of regular files `(name, mode, content)`, mtime 0, for image layers and `docker import`.
pub fn tar(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode, content) in files {
        let mut header = [0u8; 512];
        let mut field = |offset: usize, value: &[u8]| header[offset..offset + value.len()].copy_from_slice(value);
        field(0, name.as_bytes());
        field(100, format!("{mode:07o}\0").as_bytes());
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
        out.extend_from_slice(&header);
        out.extend_from_slice(content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
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
