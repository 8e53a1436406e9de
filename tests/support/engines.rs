//! Container engines for the end-to-end tests, on top of the rig in `registry.rs`: a private Docker
//! engine (`dockerd`) per test, podman and buildah with private storage and configuration, a
//! logging shim that records every call of our helper, and per-step counts of STACKIT token
//! requests. Nothing here reads the machine's `/etc/docker` or `/etc/containers`, and every
//! image reference is fully qualified (`127.0.0.1:PORT/…`), so no engine ever looks for Docker
//! Hub. See docs/e2e.md for what each client does with the helper.

use super::registry::{E2e, client};
use super::{Cmd, Output, Running};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the engines' packages are installed, for the skip/fail message of [`super::tool`].
pub const DOCKERD_HOW: &str = "apt-get install -y --no-install-recommends docker.io";
pub const DOCKER_INIT_HOW: &str = "Debian's docker.io brings it (package tini, a static binary)";
pub const PODMAN_HOW: &str = "apt-get install -y --no-install-recommends podman";
pub const BUILDAH_HOW: &str = "apt-get install -y --no-install-recommends buildah";

/// A Docker engine of our own: socket, data root, exec root, pid file, config file and log in a
/// temp dir. Stopped and cleaned up on drop, and killed by the kernel if the test process dies
/// first (PR_SET_PDEATHSIG), so a killed test never leaves a daemon behind.
pub struct Dockerd {
    process: Option<Running>,
    dir: tempfile::TempDir,
    /// How long the daemon took to answer `/_ping`.
    pub startup: Duration,
}

impl Dockerd {
    /// Starts `dockerd` as root without touching the machine's networking (no bridge, no
    /// iptables) on vfs storage, and waits until it answers `/_ping`.
    pub fn start(program: &Path) -> Dockerd {
        let dir = tempfile::tempdir().expect("dockerd temp dir");
        let d = dir.path();
        // An empty config file instead of the machine's /etc/docker/daemon.json.
        std::fs::write(d.join("daemon.json"), "{}").expect("daemon.json");
        let socket = d.join("docker.sock");
        // Only PATH (containerd, runc, docker-init): no proxy variables, no HOME. The kernel
        // kills the daemon when the test thread that started it dies, however the test ends;
        // dockerd in turn starts containerd with the same setting.
        let process = Cmd::system(program.to_str().expect("UTF-8 path"))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
            ])
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .log_to(d.join("dockerd.log"))
            .die_with_test()
            .spawn();
        let started = Instant::now();
        loop {
            if process.has_exited() {
                panic!("dockerd exited: {}", read(&d.join("dockerd.log")));
            }
            if ping(&socket) {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                drop(process);
                panic!("dockerd did not answer within 60 s: {}", read(&d.join("dockerd.log")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Dockerd {
            process: Some(process),
            startup: started.elapsed(),
            dir,
        }
    }

    /// `unix://…/docker.sock`, for `DOCKER_HOST` (or `skopeo --src-daemon-host`).
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// What the daemon logged so far (for failure messages).
    pub fn log(&self) -> String {
        read(&self.dir.path().join("dockerd.log"))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            // SIGTERM first: dockerd then stops its containerd and unmounts what it mounted.
            process.signal(libc::SIGTERM);
            let asked = Instant::now();
            while !process.has_exited() && asked.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Whatever is left of the group is killed and reaped.
            drop(process);
        }
        // A daemon killed hard leaves its data root bind-mounted on itself, which would keep
        // the temp dir from being removed.
        unmount_below(self.dir.path());
    }
}

/// True once the daemon answers `GET /_ping` with 200 on its socket.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

/// Unmounts (lazily, deepest first) every mount point at or below `dir`.
fn unmount_below(dir: &Path) {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid C string; umount2 only reads it.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mount_path(p: &str) -> String {
    let mut out = String::new();
    let mut rest = p;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Private storage and configuration for podman and buildah, under the rig's HOME: vfs storage
/// in `--root`/`--runroot`, empty `containers.conf` and `registries.conf`, a storage.conf, and a
/// signature policy that accepts everything. Of the machine's `/etc/containers` they then read
/// only the `registries.conf.d` drop-ins, which hold short-name aliases (always read, whatever
/// the environment says; they do not apply to the fully qualified names used here).
pub struct Containers {
    dir: PathBuf,
}

impl Containers {
    /// Creates the files and sets the rig's environment up as a podman user's would be:
    /// - `REGISTRY_AUTH_FILE` goes, so podman and buildah look for credentials the way they do
    ///   for users: `$XDG_RUNTIME_DIR/containers/auth.json` first, then Docker's config.json
    ///   (skopeo, which the rig also runs, then reads the same files);
    /// - `DOCKER_CONFIG` goes too: podman 4.3 and buildah 1.28 take `$DOCKER_CONFIG/config.json`
    ///   as their only auth file when it is set (docs/e2e.md). Docker's config stays where it
    ///   was, in `$HOME/.docker`, where podman, Docker and the helper all find it by default;
    /// - `XDG_RUNTIME_DIR` is a private dir under HOME (`configure-docker --containers` and
    ///   podman agree on the auth file through it);
    /// - `CONTAINERS_CONF`, `CONTAINERS_REGISTRIES_CONF` and `CONTAINERS_STORAGE_CONF` name the
    ///   files here, and `TMPDIR` keeps big temporary blobs out of `/var/tmp`;
    /// - the policy is `$HOME/.config/containers/policy.json`, which containers/image prefers
    ///   to `/etc/containers/policy.json`. `--signature-policy` would not do: podman 4.3's push
    ///   reads the machine's policy despite it;
    /// - `_CONTAINERS_ROOTLESS_UID` stays as the rig set it for skopeo: podman and buildah run
    ///   fine as root with it and keep their blob-info cache under `XDG_DATA_HOME` instead of
    ///   `/var/lib/containers/cache`, which `--root` does not move.
    pub fn new(rig: &mut E2e) -> Containers {
        let dir = rig.env.path("containers");
        for sub in ["root", "runroot", "tmp", "run"] {
            std::fs::create_dir_all(dir.join(sub)).expect("containers dirs");
        }
        super::set_mode(&dir.join("run"), 0o700);
        std::fs::write(dir.join("containers.conf"), "").expect("containers.conf");
        std::fs::write(dir.join("registries.conf"), "").expect("registries.conf");
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            dir.join("runroot").display(),
            dir.join("root").display()
        );
        std::fs::write(dir.join("storage.conf"), storage).expect("storage.conf");
        rig.env.write(
            ".config/containers/policy.json",
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        );
        let s = |p: PathBuf| p.to_str().expect("UTF-8 temp path").to_string();
        rig.env.remove_var("REGISTRY_AUTH_FILE");
        rig.env.remove_var("DOCKER_CONFIG");
        rig.env.set_var("XDG_RUNTIME_DIR", &s(dir.join("run")));
        rig.env.set_var("CONTAINERS_CONF", &s(dir.join("containers.conf")));
        rig.env
            .set_var("CONTAINERS_REGISTRIES_CONF", &s(dir.join("registries.conf")));
        rig.env.set_var("CONTAINERS_STORAGE_CONF", &s(dir.join("storage.conf")));
        rig.env.set_var("TMPDIR", &s(dir.join("tmp")));
        Containers { dir }
    }

    /// The auth file podman logs in to and reads first: `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub fn auth_json(&self) -> PathBuf {
        self.dir.join("run/containers/auth.json")
    }

    /// podman with private storage, no systemd and no event log.
    pub fn podman(&self, rig: &E2e, program: &Path, args: &[&str]) -> Cmd {
        let tmp = self.dir.join("tmp").display().to_string();
        let mut flags = self.storage_flags();
        flags.extend(
            [
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                "--tmpdir",
                &tmp,
            ]
            .map(String::from),
        );
        flags.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = flags.iter().map(String::as_str).collect();
        client(rig.env.program(program, &all))
    }

    /// buildah with private storage.
    pub fn buildah(&self, rig: &E2e, program: &Path, args: &[&str]) -> Cmd {
        let mut flags = self.storage_flags();
        flags.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = flags.iter().map(String::as_str).collect();
        client(rig.env.program(program, &all))
    }

    fn storage_flags(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.dir.join("root").display().to_string(),
            "--runroot".into(),
            self.dir.join("runroot").display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }
}

/// Every call of our helper by any client, through a shim that replaces the rig's
/// `docker-credential-stackit` on PATH: it appends `verb [server|username] -> exit status` to a
/// log and runs the real binary with the same stdin, stdout and stderr. Secrets are not logged.
pub struct HelperCalls {
    log: PathBuf,
}

impl HelperCalls {
    pub fn install(rig: &E2e) -> HelperCalls {
        let shim = rig.env.path("bin/docker-credential-stackit");
        let log = rig.env.path("helper-calls.log");
        std::fs::remove_file(&shim).expect("the rig's helper symlink");
        let script = format!(
            r#"#!/bin/sh
# Logs the call, then runs the real helper. For get and erase the input is the server; for
# store only the username is logged, never the secret.
log='{log}'
real='{real}'
case "$1" in
get|erase|store)
  input=$(cat)
  if [ "$1" = store ]; then
    what=$(printf '%s' "$input" | sed -n 's/.*"Username" *: *"\([^"]*\)".*/\1/p')
  else
    what=$input
  fi
  printf '%s' "$input" | "$real" "$@"
  status=$?
  ;;
*)
  what=
  "$real" "$@"
  status=$?
  ;;
esac
printf '%s %s -> %s\n' "$1" "$what" "$status" >>"$log"
exit $status
"#,
            log = log.display(),
            real = super::bin(),
        );
        std::fs::write(&shim, script).expect("helper shim");
        super::set_mode(&shim, 0o755);
        HelperCalls { log }
    }

    /// Every call so far, one line each.
    pub fn all(&self) -> Vec<String> {
        read(&self.log).lines().map(str::to_string).collect()
    }
}

/// What one client command did: its output, the STACKIT token requests it caused and the
/// helper calls it made.
pub struct Step {
    pub out: Output,
    pub tokens: usize,
    pub calls: Vec<String>,
}

impl Step {
    /// How many calls of `verb` the command made.
    pub fn count(&self, verb: &str) -> usize {
        self.calls.iter().filter(|c| c.split(' ').next() == Some(verb)).count()
    }
}

/// Runs `cmd` (a client command: with the hang guard, its output left to the test), counts
/// what it cost and prints one line about it to the process's stderr (`cargo test` shows it;
/// nextest with `--no-capture`), for docs/e2e.md.
pub fn step(rig: &E2e, calls: &HelperCalls, what: &str, cmd: Cmd) -> Step {
    let (tokens, seen) = (rig.stackit.requests(), calls.all().len());
    let out = client(cmd).run();
    let took = out.elapsed;
    let tokens = rig.stackit.requests() - tokens;
    let calls: Vec<String> = calls.all().split_off(seen);
    let _ = writeln!(
        std::io::stderr(),
        "e2e step: {what}: exit {}, {tokens} token request(s), {:.1} s, helper calls: {calls:?}",
        out.code,
        took.as_secs_f64()
    );
    Step { out, tokens, calls }
}

/// Forgets every cached token, so the next command starts on a cold cache.
pub fn cold_cache(rig: &E2e) {
    for file in rig.env.cache_files() {
        std::fs::remove_file(&file).expect("remove a cache file");
    }
}
