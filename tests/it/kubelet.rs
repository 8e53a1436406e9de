//! `docker-credential-stackit kubelet` run as the kubelet runs it: the compiled binary, a
//! `CredentialProviderRequest` on stdin, a cleared environment plus the provider's `env`, and the
//! in-process fake STACKIT token endpoint.

use docker_credential_stackit::fake::{Account, FakeStackit, Reply};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_docker-credential-stackit");

/// Upstream `CredentialProviderResponse` (k8s.io/kubelet pkg/apis/credentialprovider/v1),
/// decoded strictly like the kubelet does: unknown or duplicate fields fail.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpstreamResponse {
    api_version: String,
    kind: String,
    cache_key_type: String,
    #[serde(default)]
    cache_duration: Option<String>,
    #[serde(default)]
    service_account_token_cache_type: Option<String>,
    #[serde(default)]
    auth: Option<BTreeMap<String, UpstreamAuthConfig>>,
}

/// Upstream `AuthConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamAuthConfig {
    username: String,
    password: String,
}

/// The request the kubelet writes for `image` (field order as its encoder emits them).
fn request(image: &str) -> String {
    format!(
        r#"{{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"{image}"}}"#
    )
}

/// Seconds in a Go duration string of the `1h2m3s` form our plugin emits.
fn go_seconds(text: &str) -> u64 {
    let mut total = 0;
    let mut n = 0;
    for c in text.chars() {
        match c {
            '0'..='9' => n = n * 10 + c.to_digit(10).unwrap() as u64,
            'h' => (total, n) = (total + n * 3600, 0),
            'm' => (total, n) = (total + n * 60, 0),
            's' => (total, n) = (total + n, 0),
            _ => panic!("unexpected unit in {text:?}"),
        }
    }
    assert_eq!(n, 0, "{text:?} ends without a unit");
    total
}

/// A node: a home directory, a service account key file and the fake token endpoint.
struct Node {
    home: tempfile::TempDir,
    key: PathBuf,
    fake: FakeStackit,
    account: Account,
}

impl Node {
    fn new() -> Node {
        let home = tempfile::tempdir().unwrap();
        let fake = FakeStackit::start().unwrap();
        let account = Account::generate("node-puller");
        fake.register(&account);
        let key = home.path().join("sa-key.json");
        write_private(&key, account.key_json(true, None).expose());
        Node {
            home,
            key,
            fake,
            account,
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.home.path().join("cache")
    }

    /// The environment of the example CredentialProviderConfig, on top of PATH and HOME.
    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("kubelet")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &self.key)
            .env("STACKIT_TOKEN_BASEURL", self.fake.url())
            .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", self.cache_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, stdin: &str) -> Output {
        self.run_with(self.command(), stdin)
    }

    fn run_with(&self, mut cmd: Command, stdin: &str) -> Output {
        finish(feed(cmd.spawn().unwrap(), stdin))
    }

    /// Runs a request that must succeed; returns the strictly decoded response.
    fn ok(&self, cmd: Command, stdin: &str) -> UpstreamResponse {
        let out = self.run_with(cmd, stdin);
        decode(&out)
    }
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn feed(mut child: Child, stdin: &str) -> Child {
    // The plugin stops reading an oversized request early; a broken pipe is its answer, not ours.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child
}

fn finish(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks the exit status and the shape of stdout, then decodes it as the kubelet would.
fn decode(out: &Output) -> UpstreamResponse {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(stdout.matches('\n').count(), 1, "one line of JSON: {stdout:?}");
    let r: UpstreamResponse = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{stdout}: {e}"));
    assert_eq!(r.api_version, "credentialprovider.kubelet.k8s.io/v1");
    assert_eq!(r.kind, "CredentialProviderResponse");
    assert_eq!(r.cache_key_type, "Registry");
    assert!(r.service_account_token_cache_type.is_none());
    r
}

fn auth(r: &UpstreamResponse) -> &BTreeMap<String, UpstreamAuthConfig> {
    r.auth.as_ref().expect("auth present")
}

#[test]
fn served_image_gets_the_service_account_and_a_fresh_token() {
    let node = Node::new();
    let r = node.ok(node.command(), &request("registry.onstackit.cloud/shop/app"));
    let auth = auth(&r);
    assert_eq!(auth.keys().collect::<Vec<_>>(), ["registry.onstackit.cloud"]);
    let creds = &auth["registry.onstackit.cloud"];
    assert_eq!(creds.username, node.account.iss);
    let claims = node
        .fake
        .verify_access_token(&creds.password)
        .expect("a token the endpoint issued");
    assert_eq!(claims["email"], node.account.iss.as_str());
    // Half of a fresh one-hour token, give or take the seconds the run took.
    let secs = go_seconds(r.cache_duration.as_deref().unwrap());
    assert!((1790..=1800).contains(&secs), "{secs}s");
    assert_eq!(node.fake.requests(), 1);
}

#[test]
fn warm_calls_use_the_cache_and_never_extend_the_duration() {
    let node = Node::new();
    let first = node.ok(node.command(), &request("registry.onstackit.cloud/shop/app"));
    let second = node.ok(node.command(), &request("registry.onstackit.cloud/shop/other"));
    assert_eq!(node.fake.requests(), 1, "the second pull must be served from the cache");
    let (a, b) = (auth(&first), auth(&second));
    assert_eq!(
        a["registry.onstackit.cloud"].password,
        b["registry.onstackit.cloud"].password
    );
    let (d1, d2) = (
        go_seconds(first.cache_duration.as_deref().unwrap()),
        go_seconds(second.cache_duration.as_deref().unwrap()),
    );
    assert!(d2 <= d1, "{d1} then {d2}");
}

#[test]
fn short_lived_tokens_are_cached_by_the_kubelet_for_less_than_they_live() {
    let node = Node::new();
    node.fake.set_lifetime(120);
    let r = node.ok(node.command(), &request("registry.onstackit.cloud/shop/app"));
    let secs = go_seconds(r.cache_duration.as_deref().unwrap());
    assert!((50..=60).contains(&secs), "{secs}s for a 120s token");
}

#[test]
fn a_port_in_the_image_is_in_the_auth_key() {
    let node = Node::new();
    for (image, key) in [
        ("reg.example:5000/team/app", "reg.example:5000"),
        ("localhost:5000/team/app", "localhost:5000"),
        // :443 is the served default host, but the kubelet only matches keys with the same port.
        ("registry.onstackit.cloud:443/shop/app", "registry.onstackit.cloud:443"),
    ] {
        let mut cmd = node.command();
        cmd.env(
            "DOCKER_CREDENTIAL_STACKIT_REGISTRIES",
            "reg.example:5000,localhost:5000",
        );
        let r = node.ok(cmd, &request(image));
        assert_eq!(auth(&r).keys().collect::<Vec<_>>(), [key], "{image}");
        assert_eq!(auth(&r)[key].username, node.account.iss);
    }
    assert_eq!(node.fake.requests(), 1, "one identity, one token");
}

#[test]
fn hosts_we_do_not_serve_get_an_empty_uncached_answer_without_a_token_request() {
    let node = Node::new();
    for image in [
        "docker.io/library/nginx",
        "ghcr.io/org/app",
        "registry.onstackit.cloud.evil.example/shop/app",
        "evilregistry.onstackit.cloud/shop/app",
        "registry.onstackit.cloud:5000/shop/app",
        "reg.example/team/app",
        "not a host/x",
    ] {
        let r = node.ok(node.command(), &request(image));
        assert!(auth(&r).is_empty(), "{image}: {:?}", r.auth);
        assert_eq!(r.cache_duration.as_deref(), Some("0s"), "{image}");
    }
    // Not even a key is needed to say "nothing here".
    let mut cmd = node.command();
    cmd.env_remove("STACKIT_SERVICE_ACCOUNT_KEY_PATH");
    let r = node.ok(cmd, &request("docker.io/library/nginx"));
    assert!(auth(&r).is_empty());
    assert_eq!(node.fake.requests(), 0);
}

#[test]
fn many_concurrent_pulls_on_a_node_make_one_token_request() {
    let node = Node::new();
    // Keep the first request in flight while the others start, so they really contend.
    node.fake.set_delay(Duration::from_millis(400));
    let children: Vec<Child> = (0..24)
        .map(|i| {
            let child = node.command().spawn().unwrap();
            feed(child, &request(&format!("registry.onstackit.cloud/shop/app-{i}")))
        })
        .collect();
    let passwords: Vec<String> = children
        .into_iter()
        .map(|c| {
            let r = decode(&finish(c));
            auth(&r)["registry.onstackit.cloud"].password.clone()
        })
        .collect();
    assert_eq!(node.fake.requests(), 1, "exactly one token request for 24 pulls");
    assert!(passwords.iter().all(|p| p == &passwords[0]));
}

#[test]
fn without_home_the_configured_cache_dir_still_shares_the_token() {
    // The kubelet's environment may lack HOME; the example config sets the cache dir for that.
    let node = Node::new();
    for image in ["registry.onstackit.cloud/a", "registry.onstackit.cloud/b"] {
        let mut cmd = node.command();
        cmd.env_remove("HOME");
        let r = node.ok(cmd, &request(image));
        assert_eq!(auth(&r).len(), 1);
    }
    assert_eq!(node.fake.requests(), 1);
    assert!(node.cache_dir().is_dir());
}

#[test]
fn malformed_requests_exit_1_with_one_line_on_stderr_and_nothing_on_stdout() {
    let node = Node::new();
    let v1 = r#""apiVersion":"credentialprovider.kubelet.k8s.io/v1""#;
    let kind = r#""kind":"CredentialProviderRequest""#;
    for (stdin, expect) in [
        (String::new(), "empty"),
        ("registry.onstackit.cloud".to_string(), "not valid JSON"),
        (
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","#.to_string(),
            "not valid JSON",
        ),
        ("\"image\"".to_string(), "not a JSON object"),
        (
            request("registry.onstackit.cloud/a").replace("/v1\"", "/v1alpha1\""),
            "set apiVersion: credentialprovider.kubelet.k8s.io/v1",
        ),
        (
            format!(r#"{{{kind},"image":"registry.onstackit.cloud/a"}}"#),
            "apiVersion missing",
        ),
        (
            format!(r#"{{{v1},"kind":"ExecCredential","image":"registry.onstackit.cloud/a"}}"#),
            "expected CredentialProviderRequest",
        ),
        (format!(r#"{{{v1},{kind}}}"#), "no image"),
        (format!(r#"{{{v1},{kind},"image":""}}"#), "no image"),
        (
            format!(r#"{{{v1},{kind},"image":["registry.onstackit.cloud/a"]}}"#),
            "image is not a string",
        ),
    ] {
        let out = node.run(&stdin);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{stdin:?}: {stdout} {stderr}");
        assert_eq!(stdout, "", "{stdin:?}");
        assert_eq!(stderr.lines().count(), 1, "{stdin:?}: {stderr}");
        assert!(stderr.starts_with("docker-credential-stackit: "), "{stderr}");
        assert!(stderr.contains(expect), "{stdin:?}: {stderr}");
    }
    // Far too much input is refused before parsing.
    let huge = " ".repeat(2 * 1024 * 1024);
    let out = node.run(&huge);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("larger than"));
    assert_eq!(node.fake.requests(), 0);
}

#[test]
fn a_served_host_without_a_key_fails_naming_the_variable_to_set() {
    let node = Node::new();
    let mut cmd = node.command();
    cmd.env_remove("STACKIT_SERVICE_ACCOUNT_KEY_PATH");
    let out = node.run_with(cmd, &request("registry.onstackit.cloud/shop/app"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("STACKIT_SERVICE_ACCOUNT_KEY_PATH") && stderr.contains("registry.onstackit.cloud"),
        "{stderr}"
    );
}

#[test]
fn a_refused_key_fails_on_stderr_without_leaking_secrets() {
    let node = Node::new();
    node.fake.script([Reply::Status(
        401,
        r#"{"error":"invalid_grant","message":"Key is not active"}"#.into(),
        Vec::new(),
    )]);
    let out = node.run(&request("registry.onstackit.cloud/shop/app"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("docker-credential-stackit: "), "{stderr}");
    let key = node.account.key.pkcs8_pem();
    let key_body = key.expose().lines().nth(1).unwrap();
    assert!(!stderr.contains(key_body), "private key material on stderr");
    assert!(!stderr.contains("eyJ"), "a JWT on stderr: {stderr}");
}

#[test]
fn a_pod_token_without_the_email_annotation_gets_the_nodes_identity_and_is_never_echoed() {
    let node = Node::new();
    let stdin = r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"registry.onstackit.cloud/shop/app","serviceAccountToken":"pod-sa-token-do-not-print","serviceAccountAnnotations":{"example.com/registry-role":"puller"}}"#;
    let out = node.run(stdin);
    let r = decode(&out);
    assert_eq!(auth(&r)["registry.onstackit.cloud"].username, node.account.iss);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("pod-sa-token-do-not-print"));
    // Per-pod identity needs the annotation; without it the node's identity is the normal
    // answer, not a misconfiguration worth a warning.
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn arguments_are_a_usage_error_on_stderr() {
    let node = Node::new();
    let mut cmd = node.command();
    cmd.arg("get-credentials");
    let out = node.run_with(cmd, &request("registry.onstackit.cloud/shop/app"));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("args"));
    assert_eq!(node.fake.requests(), 0);
}

#[test]
fn the_example_provider_config_names_this_binary_and_api_version() {
    // The kubelet requires the provider name to equal the executable's file name.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes/credential-provider-config.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    let bin_name = Path::new(BIN).file_name().unwrap().to_str().unwrap();
    assert!(config.contains(&format!("- name: {bin_name}\n")), "{config}");
    assert!(config.contains("apiVersion: credentialprovider.kubelet.k8s.io/v1\n"));
    for var in [
        "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
        "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR",
    ] {
        assert!(config.contains(&format!("name: {var}\n")), "{var}");
    }
    // The kubelet runs `<bin-dir>/<name> <args...>`; the verb must be the only argument.
    assert!(config.contains("    args:\n      - kubelet\n"), "{config}");
}

#[test]
fn the_strict_mirror_rejects_unknown_and_duplicate_fields() {
    // Proves `decode` can fail: our responses pass it because they carry only upstream fields.
    let valid = r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Registry","cacheDuration":"0s","auth":{}}"#;
    assert!(serde_json::from_str::<UpstreamResponse>(valid).is_ok());
    let extra = valid.replacen('{', r#"{"expiresAt":"x","#, 1);
    assert!(serde_json::from_str::<UpstreamResponse>(&extra).is_err());
    let dup = valid.replacen('{', r#"{"kind":"x","#, 1);
    assert!(serde_json::from_str::<UpstreamResponse>(&dup).is_err());
}
