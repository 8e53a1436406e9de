//! The GitHub Action (`action.yml`) run the way a runner runs a composite action, and the
//! README's GitLab and Azure Pipelines examples run with the variables those platforms set:
//! against the fake IdP and CI token endpoints, then pushing and pulling through a real registry
//! with skopeo (the same Docker config and credential helper a `docker push` would use).

use crate::support::registry::{E2e, OciImage, layout_manifest_digest};
use crate::support::rig::logins as token_logins;
use crate::support::*;
use docker_credential_stackit::testing::fake::FakeIssuer;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const SUBJECT: &str = "repo:shop/app:ref:refs/heads/main";
const AUDIENCE: &str = "sts.accounts.stackit.cloud";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A YAML file as JSON, through PyYAML (the test harness's YAML reader; .ci/run installs it).
fn yaml(path: &Path) -> Option<Value> {
    let out = Cmd::system("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            path.to_str().unwrap(),
        ])
        .any_status()
        .stdout_any()
        .stderr_any()
        .run();
    if out.code != 0 {
        return skip_or_fail(format!(
            "python3 with PyYAML is needed to read {} (pip install pyyaml)",
            path.display()
        ));
    }
    Some(serde_json::from_str(&out.stdout).unwrap())
}

/// One step of the composite action, its `${{ }}` expressions filled in as the runner would.
struct Step {
    name: String,
    env: Vec<(String, String)>,
    run: String,
}

/// The action's steps with `inputs` (others take their defaults). Checks the rules the action
/// promises: bash `run:` steps only, no `${{ }}` inside a `run:` body, no `if:`.
fn action_steps(inputs: &[(&str, &str)]) -> Option<Vec<Step>> {
    let action = yaml(&repo().join("action.yml"))?;
    assert_eq!(action["runs"]["using"], "composite");
    let defaults: BTreeMap<String, String> = action["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["default"].as_str().unwrap_or_default().to_string()))
        .collect();
    let fill = |text: &str| -> String {
        let mut out = text.to_string();
        while let Some(start) = out.find("${{") {
            let end = start + out[start..].find("}}").expect("closed expression") + 2;
            let expr = out[start + 3..end - 2].trim().to_string();
            let name = expr
                .strip_prefix("inputs.")
                .unwrap_or_else(|| panic!("unexpected expression {expr}"));
            let value = inputs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| defaults.get(name).unwrap_or_else(|| panic!("no input {name}")).clone());
            out.replace_range(start..end, &value);
        }
        out
    };
    let steps = action["runs"]["steps"].as_array().unwrap();
    Some(
        steps
            .iter()
            .map(|s| {
                assert_eq!(s["shell"], "bash", "{s}");
                assert!(s.get("if").is_none(), "no if: on steps: {s}");
                assert!(s.get("uses").is_none(), "run: steps only: {s}");
                let run = s["run"].as_str().unwrap().to_string();
                assert!(!run.contains("${{"), "inputs reach scripts only through env: {run}");
                let env = s["env"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), fill(v.as_str().unwrap()))).collect())
                    .unwrap_or_default();
                Step {
                    name: s["name"].as_str().unwrap().to_string(),
                    env,
                    run,
                }
            })
            .collect(),
    )
}

/// A GitHub runner's job: its temp directory and command files, and the job's environment as
/// the runner keeps it (GITHUB_ENV and GITHUB_PATH applied between steps).
struct Job {
    temp: tempfile::TempDir,
    env: Vec<(String, String)>,
    path: Vec<PathBuf>,
}

impl Job {
    fn new(base: &[(&str, &str)]) -> Job {
        let temp = tempfile::tempdir().unwrap();
        for file in ["env", "path", "output"] {
            std::fs::write(temp.path().join(file), "").unwrap();
        }
        let mut env: Vec<(String, String)> = base.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let t = |name: &str| temp.path().join(name).to_str().unwrap().to_string();
        for (k, v) in [
            ("RUNNER_TEMP", t("runner-temp")),
            ("GITHUB_ENV", t("env")),
            ("GITHUB_PATH", t("path")),
            ("GITHUB_OUTPUT", t("output")),
            ("GITHUB_ACTION_PATH", repo().to_str().unwrap().to_string()),
            ("GITHUB_ACTION_REPOSITORY", "your-org/docker-credential-stackit".into()),
            ("GITHUB_SERVER_URL", "https://github.com".into()),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", "X64".into()),
        ] {
            env.push((k.into(), v));
        }
        std::fs::create_dir_all(temp.path().join("runner-temp")).unwrap();
        Job {
            temp,
            env,
            path: Vec::new(),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn runner_temp(&self) -> PathBuf {
        self.temp.path().join("runner-temp")
    }

    /// Runs one step (bash --noprofile --norc -eo pipefail, as GitHub runs `shell: bash`), then
    /// applies what it wrote to GITHUB_ENV and GITHUB_PATH, as the runner does.
    /// The job's PATH as the runner builds it: GITHUB_PATH entries (newest first) before the
    /// runner's own.
    fn search_path(&self, system_path: &str) -> String {
        let path: Vec<String> = self
            .path
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .chain([system_path.to_string()])
            .collect();
        path.join(":")
    }

    fn run(&mut self, step: &Step, system_path: &str) -> Output {
        let mut cmd = Cmd::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &step.run])
            .env("PATH", self.search_path(system_path))
            .current_dir(self.temp.path())
            .deadline(std::time::Duration::from_secs(120))
            .any_status()
            .stdout_any()
            .stderr_any();
        for (k, v) in self.env.iter().chain(&step.env) {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run();
        let written = std::fs::read_to_string(self.temp.path().join("env")).unwrap();
        for line in written.lines() {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: not NAME=VALUE: {line:?}", step.name));
            self.env.push((k.to_string(), v.to_string()));
        }
        std::fs::write(self.temp.path().join("env"), "").unwrap();
        for line in std::fs::read_to_string(self.temp.path().join("path")).unwrap().lines() {
            self.path.push(PathBuf::from(line));
        }
        std::fs::write(self.temp.path().join("path"), "").unwrap();
        out
    }
}

/// A directory holding only this build's helper, as a runner with the right version installed.
fn helper_on_path(dir: &Path) -> String {
    let bin = dir.join("preinstalled");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(bin_path(), bin.join("docker-credential-stackit")).unwrap();
    bin.display().to_string()
}

fn bin_path() -> PathBuf {
    PathBuf::from(bin())
}

/// Runs the whole action in `job` with `inputs`; returns every step's output.
fn run_action(job: &mut Job, inputs: &[(&str, &str)], system_path: &str) -> Option<Vec<Output>> {
    let steps = action_steps(inputs)?;
    let mut outs = Vec::new();
    for step in &steps {
        let out = job.run(step, system_path);
        let failed = out.code != 0;
        outs.push(out);
        if failed {
            break;
        }
    }
    Some(outs)
}

/// The E2e rig without its own wiring: a runner's machine where nothing is configured yet, with
/// an earlier `docker login` to some other registry in the runner's Docker config.
fn runner_machine() -> Option<E2e> {
    let mut rig = E2e::start()?;
    rig.robot(&["pull", "push"]);
    rig.link();
    for var in [
        "DOCKER_CONFIG",
        "DOCKER_CREDENTIAL_STACKIT_REGISTRIES",
        "STACKIT_TOKEN_BASEURL",
        "PATH",
    ] {
        rig.env.remove_var(var);
    }
    rig.env.write(
        ".docker/config.json",
        r#"{"auths": {"other.example": {"auth": "b3RoZXI6c2VjcmV0"}}}"#,
    );
    Some(rig)
}

/// Pushes an image and pulls it back through the registry with skopeo, using the Docker config
/// the job's environment names; asserts both worked as the service account.
fn push_and_pull(rig: &mut E2e, job: &Job, reference: &str, system_path: &str) {
    for var in [
        "DOCKER_CONFIG",
        "DOCKER_CREDENTIAL_STACKIT_REGISTRIES",
        "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR",
        "STACKIT_SERVICE_ACCOUNT_EMAIL",
        "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
        "STACKIT_IDP_TOKEN_ENDPOINT",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "STACKIT_TOKEN_BASEURL",
    ] {
        match job.var(var) {
            Some(v) => rig.env.set_var(var, v),
            None => rig.env.remove_var(var),
        }
    }
    let config = format!("{}/config.json", job.var("DOCKER_CONFIG").unwrap());
    rig.env.set_var("REGISTRY_AUTH_FILE", &config);
    rig.env.set_var("PATH", &job.search_path(system_path));
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), reference);
    let out = rig.push(&image, reference);
    assert_eq!(out.code, 0, "push: {out:?}\nregistry log:\n{}", rig.registry.log());
    let pulled = work.path().join("pulled");
    let out = rig.pull(reference, &pulled);
    assert_eq!(out.code, 0, "pull: {out:?}");
    assert_eq!(layout_manifest_digest(&pulled), image.manifest_digest);
    let logins = token_logins(&rig.harbor);
    assert!(logins.iter().all(|(user, _)| user == &sa().iss), "{logins:?}");
}

/// The same job's Docker engine: `docker push` and `docker pull` of an image it made itself,
/// through the Docker config and helper the action set up.
fn engine_push_and_pull(rig: &E2e, reference: &str) {
    let Some(dockerd) = tool("dockerd", crate::support::engines::DOCKERD_HOW) else {
        return;
    };
    let daemon = crate::support::engines::Dockerd::start(&dockerd);
    let image = format!("{}/{reference}", rig.host());
    let docker = |args: &[&str]| {
        rig.docker(args)
            .expect("the Docker CLI comes with dockerd")
            .env("DOCKER_HOST", daemon.host())
            .run()
    };
    let work = tempfile::tempdir().unwrap();
    let tarball = work.path().join("image.tar");
    std::fs::write(
        &tarball,
        crate::support::registry::tar(&[("hello.txt", 0o644, b"from the action\n")]),
    )
    .unwrap();
    for (what, args) in [
        ("import", vec!["import", tarball.to_str().unwrap(), image.as_str()]),
        ("push", vec!["push", image.as_str()]),
        ("rmi", vec!["rmi", image.as_str()]),
        ("pull", vec!["pull", image.as_str()]),
    ] {
        let out = docker(&args);
        assert_eq!(out.code, 0, "docker {what}: {out:?}\ndockerd log:\n{}", daemon.log());
    }
}

fn assert_nothing_secret(outs: &[Output], secrets: &[&str]) {
    for out in outs {
        for secret in secrets {
            for piece in secret.as_bytes().chunks(24).filter(|c| c.len() == 24) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(
                    !out.stdout.contains(piece) && !out.stderr.contains(piece),
                    "{piece} printed: {out:?}"
                );
            }
        }
    }
}

#[test]
fn the_github_action_signs_in_keyless_and_pushes_and_pulls() {
    let Some(mut rig) = runner_machine() else { return };
    let github = FakeIssuer::new("https://token.actions.githubusercontent.com");
    rig.stackit.trust(&github);
    rig.stackit.allow(&sa().iss, &github.url, SUBJECT);
    rig.stackit
        .serve_github("job-request-token-do-not-print", &github.token(SUBJECT, AUDIENCE, 300));
    let preinstalled = helper_on_path(rig.env.home.path());
    let system_path = format!("{preinstalled}:{}", std::env::var("PATH").unwrap());
    let home = rig.env.home.path().to_str().unwrap().to_string();
    let github_url = rig.stackit.github_url();
    let mut job = Job::new(&[
        ("HOME", &home),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", &github_url),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "job-request-token-do-not-print"),
    ]);
    let idp = rig.stackit.url();
    let host = rig.host().to_string();
    let registries = format!("registry.onstackit.cloud,{host}");
    let Some(outs) = run_action(
        &mut job,
        &[
            ("service-account-email", sa().iss.as_str()),
            ("registries", &registries),
            ("idp-token-endpoint", &idp),
        ],
        &system_path,
    ) else {
        return;
    };
    for out in &outs {
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert!(
        outs[0].stdout.contains("already on PATH"),
        "the same version is not installed again: {:?}",
        outs[0]
    );
    // Everything it wrote is under RUNNER_TEMP; Docker's config maps the registries, with the
    // runner's earlier login kept and no static login added.
    let temp = job.runner_temp();
    let docker_config = job.var("DOCKER_CONFIG").unwrap().to_string();
    assert!(Path::new(&docker_config).starts_with(&temp), "{docker_config}");
    assert!(
        job.var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR")
            .unwrap()
            .starts_with(temp.to_str().unwrap())
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{docker_config}/config.json")).unwrap()).unwrap();
    assert_eq!(config["credHelpers"][&host], "stackit");
    assert_eq!(config["credHelpers"]["registry.onstackit.cloud"], "stackit");
    assert_eq!(
        config["auths"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["other.example"]
    );
    assert_eq!(job.var("STACKIT_SERVICE_ACCOUNT_EMAIL"), Some(sa().iss.as_str()));
    let output = std::fs::read_to_string(job.temp.path().join("output")).unwrap();
    assert_eq!(output.trim(), format!("docker-config={docker_config}"));

    push_and_pull(&mut rig, &job, "shop/action:keyless", &system_path);
    engine_push_and_pull(&rig, "shop/action:engine");
    // One GitHub token and one exchange for all the pushes and pulls together.
    assert_eq!(rig.stackit.github_requests().len(), 1);
    assert_eq!(rig.stackit.federated_exchanges().len(), 1);
    assert!(rig.stackit.assertions().is_empty(), "no key anywhere");
    assert_nothing_secret(&outs, &["job-request-token-do-not-print"]);
}

#[test]
fn the_github_action_with_a_key_from_a_secret() {
    let Some(mut rig) = runner_machine() else { return };
    let preinstalled = helper_on_path(rig.env.home.path());
    let system_path = format!("{preinstalled}:{}", std::env::var("PATH").unwrap());
    let home = rig.env.home.path().to_str().unwrap().to_string();
    let token_url = rig.stackit.url();
    let mut job = Job::new(&[("HOME", &home), ("STACKIT_TOKEN_BASEURL", &token_url)]);
    let key = sa().key_json(true, None);
    let host = rig.host().to_string();
    let Some(outs) = run_action(
        &mut job,
        &[("service-account-key", key.expose()), ("registries", &host)],
        &system_path,
    ) else {
        return;
    };
    for out in &outs {
        assert_eq!(out.code, 0, "{out:?}");
    }
    let key_file = PathBuf::from(job.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH").unwrap());
    assert!(key_file.starts_with(job.runner_temp()), "{key_file:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    push_and_pull(&mut rig, &job, "shop/action:key", &system_path);
    assert_eq!(rig.stackit.requests(), 1, "one token for the push and the pull");
    let private_key = serde_json::from_str::<Value>(key.expose()).unwrap()["credentials"]["privateKey"]
        .as_str()
        .unwrap()
        .replace("\n", "");
    assert_nothing_secret(&outs, &[private_key.as_str()]);
}

#[test]
fn the_github_action_refuses_inputs_that_would_smuggle_in_variables() {
    let dir = tempfile::tempdir().unwrap();
    let preinstalled = helper_on_path(dir.path());
    let system_path = format!("{preinstalled}:{}", std::env::var("PATH").unwrap());
    let home = dir.path().to_str().unwrap().to_string();
    for (inputs, problem) in [
        (
            vec![
                ("service-account-email", "ci@sa.stackit.cloud"),
                ("idp-token-endpoint", "https://idp.example\nEVIL=1"),
            ],
            "line break",
        ),
        (
            vec![
                ("service-account-email", "ci@sa.stackit.cloud"),
                ("audience", "x\nEVIL=1"),
            ],
            "audience",
        ),
        (
            vec![
                ("service-account-email", "ci@sa.stackit.cloud"),
                ("registries", "a.example\nEVIL=1"),
            ],
            "EVIL=1",
        ),
        (vec![("service-account-email", "ci@sa.stackit.cloud\nEVIL=1")], "e-mail"),
        (vec![], "service-account-email"),
        (
            vec![
                ("service-account-email", "ci@sa.stackit.cloud"),
                ("service-account-key", "{}"),
            ],
            "not both",
        ),
    ] {
        let mut job = Job::new(&[
            ("HOME", &home),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://gh.example/token"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
        ]);
        let Some(outs) = run_action(&mut job, &inputs, &system_path) else {
            return;
        };
        let last = outs.last().unwrap();
        assert_ne!(last.code, 0, "{inputs:?}: {last:?}");
        assert!(
            last.stderr.contains("::error") && last.stderr.contains(problem),
            "{inputs:?}: {last:?}"
        );
        assert!(job.var("EVIL").is_none(), "{inputs:?} smuggled a variable in");
    }
    // Keyless without the job's OIDC permission says what to add.
    let mut job = Job::new(&[("HOME", &home)]);
    let outs = run_action(
        &mut job,
        &[("service-account-email", "ci@sa.stackit.cloud")],
        &system_path,
    )
    .unwrap();
    assert!(
        outs.last().unwrap().stderr.contains("id-token: write"),
        "{:?}",
        outs.last()
    );
}

/// Serves the files of `dir` over plain HTTP on loopback until the returned guard is dropped.
fn serve_files(dir: PathBuf) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let name = line
                .split(' ')
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let reply = match std::fs::read(dir.join(&name)) {
                Ok(body) if !name.contains('/') && !name.is_empty() => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&reply);
        }
    });
    (url, stop)
}

#[test]
fn the_github_action_installs_the_release_tarball_when_the_helper_is_missing() {
    // A release mirror (release-base-url) with this build packed as a release would pack it.
    let dist = tempfile::tempdir().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let stem = format!("docker-credential-stackit-{version}-x86_64-unknown-linux-gnu");
    let staging = dist.path().join(&stem);
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::copy(bin(), staging.join("docker-credential-stackit")).unwrap();
    let tarball = dist.path().join(format!("{stem}.tar.gz"));
    Cmd::system("tar")
        .args([
            "-C",
            dist.path().to_str().unwrap(),
            "-czf",
            tarball.to_str().unwrap(),
            &stem,
        ])
        .run();
    let digest = crate::support::registry::sha256_hex(&std::fs::read(&tarball).unwrap());
    std::fs::write(
        dist.path().join(format!("{stem}.tar.gz.sha256")),
        format!("{digest}  {stem}.tar.gz\n"),
    )
    .unwrap();
    let (base, stop) = serve_files(dist.path().to_path_buf());

    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap().to_string();
    let mut job = Job::new(&[("HOME", &home_str)]);
    let steps = match action_steps(&[("release-base-url", &base)]) {
        Some(s) => s,
        None => return,
    };
    // The install step alone, on a PATH without the helper.
    let out = job.run(&steps[0], "/usr/local/bin:/usr/bin:/bin");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(job.path, [job.runner_temp().join("docker-credential-stackit/bin")]);
    assert!(
        out.stdout.contains(&format!("docker-credential-stackit {version}")),
        "{out:?}"
    );
    assert!(
        job.runner_temp()
            .join("docker-credential-stackit/bin/docker-credential-stackit")
            .exists()
    );
}

/// The README's example marked `<!-- ci:NAME -->`, parsed.
fn readme_example(name: &str) -> Option<Value> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let marker = format!("<!-- ci:{name} -->\n```yaml\n");
    let start = readme.find(&marker).unwrap_or_else(|| panic!("README lacks {marker}")) + marker.len();
    let end = start + readme[start..].find("```").unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &readme[start..end]).unwrap();
    yaml(file.path())
}

/// Runs the example's lines that call the helper (the rest install it or build the image), in
/// `env`, then asks for credentials the way Docker does for a push: the Docker config's
/// `credHelpers` entry for the registry, then `get`. Returns the answer's username.
fn run_helper_lines(lines: &[String], env: &TestEnv) -> String {
    let helper_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("docker-credential-stackit "))
        .collect();
    assert!(!helper_lines.is_empty(), "no helper line in {lines:?}");
    let bin_dir = Path::new(bin()).parent().unwrap().display().to_string();
    for line in helper_lines {
        env.program("sh", &["-c", line])
            .env("PATH", format!("{bin_dir}:{}", std::env::var("PATH").unwrap()))
            .stdout_any()
            .stderr_any()
            .run();
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path(".docker/config.json")).unwrap()).unwrap();
    assert_eq!(config["credHelpers"]["registry.onstackit.cloud"], "stackit", "{config}");
    env.get("registry.onstackit.cloud").json()["Username"]
        .as_str()
        .unwrap()
        .to_string()
}

fn script_lines(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(|v| v.as_str()).map(str::to_string).collect(),
        Value::String(s) => s.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn the_readme_gitlab_pipeline_signs_in_keyless_and_with_a_key() {
    let Some(pipeline) = readme_example("gitlab") else {
        return;
    };
    let template = &pipeline[".registry-login"];
    let fake = fake();
    let gitlab = FakeIssuer::new("https://gitlab.example");
    let subject = "project_path:shop/app:ref_type:branch:ref:main";
    fake.trust(&gitlab);
    let job = &pipeline["push-keyless"];
    assert_eq!(job["extends"], ".registry-login");
    let email = job["variables"]["STACKIT_SERVICE_ACCOUNT_EMAIL"].as_str().unwrap();
    fake.allow(email, &gitlab.url, subject);
    // GitLab puts each id_token into the variable named by its key, for the audience it names.
    let (variable, spec) = job["id_tokens"].as_object().unwrap().iter().next().unwrap();
    let audience = spec["aud"].as_str().unwrap();
    let mut env = TestEnv::empty()
        .var(variable, &gitlab.token(subject, audience, 600))
        .var("STACKIT_IDP_TOKEN_ENDPOINT", &fake.url());
    for (k, v) in job["variables"].as_object().unwrap() {
        env.set_var(k, v.as_str().unwrap());
    }
    let mut lines = script_lines(&template["before_script"]);
    lines.extend(script_lines(&job["script"]));
    assert_eq!(run_helper_lines(&lines, &env), email);
    env.get("registry.onstackit.cloud").json();
    assert_eq!(
        (fake.federated_exchanges().len(), fake.requests()),
        (1, 1),
        "one exchange, then the cache"
    );

    // The key job: the key from a masked variable, base64-encoded as the README says.
    use base64::Engine;
    let job = &pipeline["push-with-a-key"];
    let key = base64::engine::general_purpose::STANDARD.encode(sa().key_json(true, None).expose());
    let env = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_KEY", &key)
        .var("STACKIT_TOKEN_BASEURL", &fake.url());
    let mut lines = script_lines(&template["before_script"]);
    lines.extend(script_lines(&job["script"]));
    assert_eq!(run_helper_lines(&lines, &env), sa().iss);
}

#[test]
fn the_readme_azure_pipeline_signs_in_keyless() {
    let Some(pipeline) = readme_example("azure") else {
        return;
    };
    let fake = fake();
    let azure = FakeIssuer::new("https://vstoken.dev.azure.com/00000000-0000-0000-0000-000000000000");
    let subject = "sc://org/shop/stackit";
    let steps = pipeline["steps"].as_array().unwrap();
    let step = steps
        .iter()
        .find(|s| s["env"]["SYSTEM_ACCESSTOKEN"].is_string())
        .expect("a step with the job's token");
    assert_eq!(
        step["env"]["SYSTEM_ACCESSTOKEN"], "$(System.AccessToken)",
        "the job's token is passed explicitly"
    );
    let email = step["env"]["STACKIT_SERVICE_ACCOUNT_EMAIL"].as_str().unwrap();
    fake.trust(&azure);
    fake.allow_audience(email, &azure.url, subject, "api://AzureADTokenExchange");
    fake.serve_azure(
        "azure-job-token",
        &azure.token(subject, "api://AzureADTokenExchange", 600),
    );
    // What Azure Pipelines sets: the request URI for every job, the access token where the
    // step maps $(System.AccessToken).
    let env = TestEnv::empty()
        .var("SYSTEM_OIDCREQUESTURI", &fake.azure_url())
        .var("SYSTEM_ACCESSTOKEN", "azure-job-token")
        .var("STACKIT_SERVICE_ACCOUNT_EMAIL", email)
        .var("STACKIT_IDP_TOKEN_ENDPOINT", &fake.url());
    let lines = script_lines(&step["script"]);
    assert_eq!(run_helper_lines(&lines, &env), email);
    env.get("registry.onstackit.cloud").json();
    assert_eq!(
        (fake.azure_requests().len(), fake.requests()),
        (1, 1),
        "one Azure token and one exchange, then the cache"
    );
}
