//! `docker-credential-stackit kubelet` run as the kubelet runs it: the compiled binary, a
//! `CredentialProviderRequest` on stdin, a cleared environment plus the provider's `env`, and the
//! in-process fake STACKIT token endpoint.

use crate::support::gate::{Gate, wait_until_all_reach_the_lock};
use crate::support::*;
use docker_credential_stackit::testing::fake::{Account, FakeStackit, Reply};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// A node: a home directory, a service account key file and the fake token endpoint, and the
/// environment of the example CredentialProviderConfig on top of PATH and HOME.
struct Node {
    env: TestEnv,
    fake: FakeStackit,
    account: Account,
}

impl Node {
    fn new() -> Node {
        let fake = FakeStackit::start().unwrap();
        let account = crate::support::keys::account("node-puller", 11);
        fake.register(&account);
        let env = TestEnv::empty();
        let key = env.write("sa-key.json", account.key_json(true, None).expose());
        let cache = env.path("cache");
        let env = env
            .var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap())
            .var("STACKIT_TOKEN_BASEURL", &fake.url())
            .var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", cache.to_str().unwrap());
        Node { env, fake, account }
    }

    fn cache_dir(&self) -> PathBuf {
        self.env.path("cache")
    }

    /// `kubelet` with `stdin`, as the kubelet runs it.
    fn kubelet(&self, stdin: &str) -> Cmd {
        self.env.cmd(&["kubelet"]).stdin(stdin)
    }

    /// Runs a request that must succeed (exit 0, nothing on stderr); returns the strictly
    /// decoded response.
    fn ok(&self, cmd: Cmd) -> UpstreamResponse {
        decode(&cmd.stdout_any().run())
    }
}

/// Checks the shape of stdout, then decodes it as the kubelet would.
fn decode(out: &Output) -> UpstreamResponse {
    assert_eq!(out.stdout.matches('\n').count(), 1, "one line of JSON: {out:?}");
    let r: UpstreamResponse = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}", out.stdout));
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
    let r = node.ok(node.kubelet(&request("registry.onstackit.cloud/shop/app")));
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
    let first = node.ok(node.kubelet(&request("registry.onstackit.cloud/shop/app")));
    let second = node.ok(node.kubelet(&request("registry.onstackit.cloud/shop/other")));
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
    let r = node.ok(node.kubelet(&request("registry.onstackit.cloud/shop/app")));
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
        let cmd = node.kubelet(&request(image)).env(
            "DOCKER_CREDENTIAL_STACKIT_REGISTRIES",
            "reg.example:5000,localhost:5000",
        );
        let r = node.ok(cmd);
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
        let r = node.ok(node.kubelet(&request(image)));
        assert!(auth(&r).is_empty(), "{image}: {:?}", r.auth);
        assert_eq!(r.cache_duration.as_deref(), Some("0s"), "{image}");
    }
    // Not even a key is needed to say "nothing here".
    let cmd = node
        .kubelet(&request("docker.io/library/nginx"))
        .env_remove("STACKIT_SERVICE_ACCOUNT_KEY_PATH");
    let r = node.ok(cmd);
    assert!(auth(&r).is_empty());
    assert_eq!(node.fake.requests(), 0);
}

#[test]
fn many_concurrent_pulls_on_a_node_make_one_token_request() {
    let node = Node::new();
    // The first request is held until every pull waits on the lock, so they really contend.
    let gate = Gate::closed(&node.fake);
    let running: Vec<Running> = (0..24)
        .map(|i| {
            node.kubelet(&request(&format!("registry.onstackit.cloud/shop/app-{i}")))
                .env("STACKIT_TOKEN_BASEURL", gate.url())
                .stdout_any()
                .spawn()
        })
        .collect();
    let pids: Vec<u32> = running.iter().map(Running::pid).collect();
    gate.wait_for_arrivals(1);
    wait_until_all_reach_the_lock(&pids, &node.cache_dir());
    gate.open();
    let passwords: Vec<String> = running
        .into_iter()
        .map(|r| {
            let r = decode(&r.wait());
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
        let r = node.ok(node.kubelet(&request(image)).env_remove("HOME"));
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
        let out = node.kubelet(&stdin).status(1).stderr_has(expect).run();
        assert_eq!(out.stderr.lines().count(), 1, "{stdin:?}: {out:?}");
        assert!(out.stderr.starts_with("docker-credential-stackit: "), "{out:?}");
    }
    // Far too much input is refused before parsing.
    node.kubelet(&" ".repeat(2 * 1024 * 1024))
        .status(1)
        .stderr_has("larger than")
        .run();
    assert_eq!(node.fake.requests(), 0);
}

#[test]
fn a_served_host_without_a_key_fails_naming_the_variable_to_set() {
    let node = Node::new();
    node.kubelet(&request("registry.onstackit.cloud/shop/app"))
        .env_remove("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
        .status(1)
        .stderr_has("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
        .stderr_has("registry.onstackit.cloud")
        .run();
}

#[test]
fn a_refused_key_fails_on_stderr_without_leaking_secrets() {
    let node = Node::new();
    node.fake.script([Reply::Status(
        401,
        r#"{"error":"invalid_grant","message":"Key is not active"}"#.into(),
        Vec::new(),
    )]);
    let key = node.account.key.pkcs8_pem();
    let key_body = key.expose().lines().nth(1).unwrap();
    node.kubelet(&request("registry.onstackit.cloud/shop/app"))
        .status(1)
        .stderr_has("docker-credential-stackit: ")
        .stderr_has("HTTP 401")
        .stderr_lacks(key_body)
        .stderr_lacks("eyJ")
        .run();
}

#[test]
fn a_pod_token_without_the_email_annotation_gets_the_nodes_identity_only_where_allowed() {
    let node = Node::new();
    let stdin = r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"registry.onstackit.cloud/shop/app","serviceAccountToken":"pod-sa-token-do-not-print","serviceAccountAnnotations":{"example.com/registry-role":"puller"}}"#;
    // By default a pod that sent its token is never answered by the node: the reason names the
    // annotation and the argument that allows the fallback, and nothing is requested.
    node.kubelet(stdin)
        .status(1)
        .stdout("")
        .stderr_has("workload-identity.stackit.cloud/service-account-email")
        .stderr_has("--allow-node-fallback")
        .stderr_lacks("pod-sa-token-do-not-print")
        .run();
    assert_eq!(node.fake.requests(), 0);
    // Where the node's configuration allows it, the node's identity answers, quietly.
    let out = node
        .env
        .cmd(&["kubelet", "--allow-node-fallback"])
        .stdin(stdin)
        .stdout_any()
        .stdout_lacks("pod-sa-token-do-not-print")
        .run();
    let r = decode(&out);
    assert_eq!(auth(&r)["registry.onstackit.cloud"].username, node.account.iss);
}

#[test]
fn arguments_are_a_usage_error_on_stderr() {
    let node = Node::new();
    node.env
        .cmd(&["kubelet", "get-credentials"])
        .stdin(request("registry.onstackit.cloud/shop/app"))
        .status(2)
        .stderr_has("args")
        .run();
    assert_eq!(node.fake.requests(), 0);
}

#[test]
fn the_example_provider_config_names_this_binary_and_api_version() {
    // The kubelet requires the provider name to equal the executable's file name.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes/credential-provider-config.yaml");
    let config = std::fs::read_to_string(&path).unwrap();
    let bin_name = Path::new(bin()).file_name().unwrap().to_str().unwrap();
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
