//! Keyless identity (workload identity federation): a federated OIDC token from a file, from
//! GitHub Actions or from the kubelet is exchanged at the fake IdP, which verifies it against a
//! test issuer's key, STACKIT's audience, its expiry and a federation rule.

use crate::support::*;
use docker_credential_stackit::testing::fake::{FakeIssuer, FakeStackit, Reply};
use serde_json::json;
use std::sync::OnceLock;

const EMAIL: &str = "ci-pusher-1a2b3c@sa.stackit.cloud";
const AUDIENCE: &str = "sts.accounts.stackit.cloud";
const SUBJECT: &str = "system:serviceaccount:shop:builder";

/// One issuer for the whole run (RSA generation is slow-ish).
fn issuer() -> &'static FakeIssuer {
    static ISSUER: OnceLock<FakeIssuer> = OnceLock::new();
    ISSUER.get_or_init(|| FakeIssuer::new("https://oidc.cluster.example"))
}

/// The fake IdP, trusting [`issuer`] for [`EMAIL`] with subject [`SUBJECT`]. It also knows the
/// key accounts, so one endpoint can serve both kinds.
fn idp() -> FakeStackit {
    let fake = fake();
    fake.trust(issuer());
    fake.allow(EMAIL, &issuer().url, SUBJECT);
    fake
}

/// A fresh federated token for `subject`, valid for ten minutes.
fn token_for(subject: &str) -> String {
    issuer().token(subject, AUDIENCE, 600)
}

/// An environment with a federated identity from a token file holding `token`.
fn federated_env(idp: &FakeStackit, token: &str) -> TestEnv {
    let env = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_EMAIL", EMAIL)
        .var("STACKIT_IDP_TOKEN_ENDPOINT", &idp.url());
    let file = env.write("oidc/token", token);
    env.var("STACKIT_FEDERATED_TOKEN_FILE", file.to_str().unwrap())
}

/// `cmd`, which must print `secret` nowhere, on top of what else it expects.
fn never_printing(cmd: Cmd, secret: &str) -> Cmd {
    cmd.stdout_lacks(secret).stderr_lacks(secret)
}

#[test]
fn a_token_file_is_exchanged_for_the_service_accounts_credentials() {
    let idp = idp();
    let token = token_for(SUBJECT);
    let env = federated_env(&idp, &token);
    let creds = never_printing(env.get(HOST), &token).json();
    assert_eq!(creds["Username"], EMAIL);
    let claims = idp
        .verify_access_token(creds["Secret"].as_str().unwrap())
        .expect("a token the IdP issued");
    assert_eq!(claims["email"], EMAIL);
    let exchanges = idp.federated_exchanges();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(
        (exchanges[0]["client_id"].as_str(), exchanges[0]["sub"].as_str()),
        (Some(EMAIL), Some(SUBJECT))
    );
    // Warm: the cache answers, and `list` and `token` know the identity too.
    assert_eq!(env.get(HOST).json(), creds);
    assert_eq!(env.cmd(&["list"]).json(), json!({"registry.onstackit.cloud": EMAIL}));
    env.cmd(&["token"])
        .stdout(format!("{}\n", creds["Secret"].as_str().unwrap()))
        .run();
    assert_eq!(idp.requests(), 1);
}

#[test]
fn the_token_file_is_read_again_for_every_exchange() {
    let idp = idp();
    let env = federated_env(&idp, &token_for(SUBJECT));
    env.get(HOST).json();
    // The kubelet rotates the projected token; the next exchange must send the new one.
    let rotated = token_for(SUBJECT);
    env.write("oidc/token", &rotated);
    env.cmd(&["erase"]).stdin(HOST).run();
    env.get(HOST).json();
    let sent = idp.received_assertions();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].expose(), rotated);
    // A rotated token of the same subject keeps using the cached access token.
    env.write("oidc/token", &token_for(SUBJECT));
    env.get(HOST).json();
    assert_eq!(idp.requests(), 2);
}

#[test]
fn bad_federated_tokens_are_errors_that_cost_no_request() {
    let idp = idp();
    let expired = issuer().token(SUBJECT, AUDIENCE, -120);
    let cases: [(&str, Option<&str>, &[&str]); 4] = [
        (
            "missing file",
            None,
            &[
                "STACKIT_FEDERATED_TOKEN_FILE",
                "no such file",
                "mount the projected service-account token",
            ],
        ),
        ("not a JWT", Some("hello, I am not a token"), &["not a JWT"]),
        ("empty", Some("\n"), &["empty"]),
        ("expired", Some(&expired), &["expired", "ago"]),
    ];
    for (what, content, fragments) in cases {
        let mut env = federated_env(&idp, "placeholder");
        match content {
            Some(text) => {
                env.write("oidc/token", text);
            }
            None => env.set_var(
                "STACKIT_FEDERATED_TOKEN_FILE",
                env.path("oidc/missing").to_str().unwrap(),
            ),
        }
        // assert_error also wants the reason repeated on stderr, and nothing else there.
        let line = never_printing(env.get(HOST), &expired).assert_error(fragments);
        assert!(line.contains(fragments[0]), "{what}: {line}");
    }
    // A directory where the file should be.
    let env = federated_env(&idp, "x");
    let dir = env.path("oidc/dir");
    std::fs::create_dir_all(&dir).unwrap();
    let env = env.var("STACKIT_FEDERATED_TOKEN_FILE", dir.to_str().unwrap());
    let line = env.get(HOST).assert_error(&["federated token"]);
    assert!(
        !line.contains("no such file") && !line.contains("mount the projected"),
        "{line}"
    );
    assert_eq!(idp.requests(), 0, "no bad token reaches the IdP");
}

#[test]
fn a_refused_exchange_names_the_federation_rules_and_prints_no_token() {
    let idp = idp();
    let stranger = token_for("system:serviceaccount:other:intruder");
    let env = federated_env(&idp, &stranger);
    never_printing(env.get(HOST), &stranger).assert_error(&[
        "HTTP 400",
        EMAIL,
        "federated identity provider",
        "subject",
        "audience",
    ]);
    assert_eq!(idp.requests(), 1, "4xx is final");
    // The wrong audience is refused the same way.
    let env = federated_env(&idp, &issuer().token(SUBJECT, "kubernetes", 600));
    env.get(HOST).assert_error(&["HTTP 400"]);
}

#[test]
fn another_subject_claiming_the_same_email_never_gets_the_cached_token() {
    let idp = idp();
    // Two workloads on one machine, one cache directory, the same e-mail.
    let allowed = federated_env(&idp, &token_for(SUBJECT));
    let cache = allowed.cache_dir();
    allowed.get(HOST).json();
    let intruder = federated_env(&idp, &token_for("system:serviceaccount:other:intruder"))
        .var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", cache.to_str().unwrap());
    intruder.get(HOST).assert_error(&["HTTP 400"]);
    assert_eq!(
        idp.requests(),
        2,
        "the intruder made its own exchange, which STACKIT judged"
    );
}

#[test]
fn parallel_gets_of_two_subjects_make_one_exchange_each() {
    let idp = idp();
    let second = "system:serviceaccount:shop:deployer";
    idp.allow(EMAIL, &issuer().url, second);
    let one = federated_env(&idp, &token_for(SUBJECT));
    let cache = one.cache_dir();
    let two =
        federated_env(&idp, &token_for(second)).var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", cache.to_str().unwrap());
    let running: Vec<_> = (0..16)
        .map(|i| {
            let env = if i % 2 == 0 { &one } else { &two };
            (i % 2, env.get(HOST).expect_json().spawn())
        })
        .collect();
    let mut tokens = [std::collections::BTreeSet::new(), std::collections::BTreeSet::new()];
    for (which, process) in running {
        tokens[which].insert(secret_of(&process.wait().json()));
    }
    assert_eq!(idp.requests(), 2, "one exchange per subject");
    assert_eq!((tokens[0].len(), tokens[1].len()), (1, 1));
    assert_ne!(tokens[0], tokens[1], "each subject got its own token");
    let subjects: std::collections::BTreeSet<_> = idp
        .federated_exchanges()
        .iter()
        .map(|c| c["sub"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects.len(), 2);
}

#[test]
fn github_actions_tokens_are_requested_with_stackits_audience() {
    let idp = idp();
    let subject = "repo:shop/app:ref:refs/heads/main";
    let github = FakeIssuer::new("https://token.actions.githubusercontent.com");
    idp.trust(&github);
    idp.allow(EMAIL, &github.url, subject);
    idp.serve_github("gh-request-token-do-not-print", &github.token(subject, AUDIENCE, 300));
    let env = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_EMAIL", EMAIL)
        .var("STACKIT_IDP_TOKEN_ENDPOINT", &idp.url())
        .var("ACTIONS_ID_TOKEN_REQUEST_URL", &idp.github_url())
        .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-request-token-do-not-print");
    let answer = never_printing(env.get(HOST), "gh-request-token-do-not-print").json();
    assert_eq!(answer["Username"], EMAIL);
    let asked = idp.github_requests();
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0].contains("api-version=2.0") && asked[0].contains("audience=sts.accounts.stackit.cloud"),
        "the existing query is kept and the audience added: {asked:?}"
    );
    // Warm: neither GitHub nor the IdP is asked again.
    env.get(HOST).json();
    assert_eq!((idp.github_requests().len(), idp.requests()), (1, 1));

    // Another job (another request token) does not share the cached token.
    let other = env.var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong-request-token");
    never_printing(other.get(HOST), "wrong-request-token").assert_error(&[
        "GitHub Actions",
        "HTTP 401",
        "id-token: write",
    ]);
    assert_eq!(idp.requests(), 1);
}

#[test]
fn the_github_request_token_never_goes_over_plain_http_to_another_host() {
    let env = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_EMAIL", EMAIL)
        .var("ACTIONS_ID_TOKEN_REQUEST_URL", "http://192.0.2.1/token?api-version=2.0")
        .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-request-token-do-not-print");
    never_printing(env.get(HOST), "gh-request-token-do-not-print")
        .assert_error(&["plain http", "ACTIONS_ID_TOKEN_REQUEST_URL"]);
}

#[test]
fn which_identity_wins() {
    let idp = idp();
    let fed = federated_env(&idp, &token_for(SUBJECT));
    let key = fed.write("sa.json", sa().key_json(true, None).expose());
    // Federated from the environment wins over a key from the environment.
    let both = fed
        .var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap())
        .var("STACKIT_TOKEN_BASEURL", &idp.url());
    assert_eq!(both.get(HOST).json()["Username"], EMAIL);
    // The e-mail alone (no token source) leaves a key user on the key.
    let email_only = both.unset("STACKIT_FEDERATED_TOKEN_FILE");
    assert_eq!(email_only.get(HOST).json()["Username"], sa().iss.as_str());
    // A config file entry for the host wins over the environment, either way round.
    let cfg = email_only.write(
        "cfg.json",
        &json!({"registries": {
            "registry.onstackit.cloud": {"serviceAccountEmail": EMAIL, "federatedTokenFile": "oidc/token"},
            "127.0.0.1:5000": {"serviceAccountKeyPath": "sa.json"}
        }})
        .to_string(),
    );
    let token_file = email_only.path("oidc/token");
    // The entry's federated identity wins over the key in the environment...
    let configured = email_only.var("DOCKER_CREDENTIAL_STACKIT_CONFIG", cfg.to_str().unwrap());
    assert_eq!(configured.get(HOST).json()["Username"], EMAIL);
    // ...and the entry's key wins over a federated identity in the environment.
    let configured = configured.var("STACKIT_FEDERATED_TOKEN_FILE", token_file.to_str().unwrap());
    assert_eq!(configured.get("127.0.0.1:5000").json()["Username"], sa().iss.as_str());
    // Both kinds in one entry is a configuration error, not a guess.
    configured.write(
        "cfg.json",
        &json!({"registries": {"registry.onstackit.cloud": {"serviceAccountEmail": EMAIL, "serviceAccountKeyPath": "sa.json"}}})
            .to_string(),
    );
    configured
        .get(HOST)
        .assert_error(&["serviceAccountKeyPath and serviceAccountEmail"]);
}

#[test]
fn check_explains_a_federated_identity_without_printing_the_token() {
    let idp = idp();
    let token = token_for(SUBJECT);
    let env = federated_env(&idp, &token);
    let check = env.cmd(&["check", HOST, "--json"]).any_status().stdout_any();
    let out = never_printing(check, &token).run();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let text = report.to_string();
    for fragment in [
        "federated.identity",
        EMAIL,
        SUBJECT,
        &issuer().url,
        &format!("audience {AUDIENCE},"),
        "expires in",
    ] {
        assert!(text.contains(fragment), "the report lacks {fragment:?}: {text}");
    }
    assert!(
        !text.contains("federated.audience"),
        "STACKIT's audience is no finding: {text}"
    );
    // `aud` as a list (Kubernetes writes one): every entry shown, STACKIT's among them is fine.
    let listed = issuer().token_with(
        SUBJECT,
        AUDIENCE,
        600,
        json!({"aud": ["https://kubernetes.default.svc", AUDIENCE]}),
    );
    let out = federated_env(&idp, &listed)
        .cmd(&["check", HOST, "--json"])
        .any_status()
        .stdout_any()
        .run();
    assert!(
        out.stdout
            .contains(&format!("audience https://kubernetes.default.svc, {AUDIENCE},")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("federated.audience"), "{}", out.stdout);
    // A refused exchange is explained with the federation hint.
    let env = federated_env(&idp, &token_for("someone:else"));
    env.cmd(&["check", HOST])
        .status(1)
        .stdout_has("token.failed")
        .stdout_has("federated identity provider")
        .run();
}

#[test]
fn a_real_shaped_key_file_works_and_a_revoked_key_is_explained() {
    // Key files from 2026 carry the accounts.stackit.cloud audience and endpoint and extra fields.
    let fake = fake();
    let mut key: serde_json::Value = serde_json::from_str(sa().key_json(true, None).expose()).unwrap();
    key["projectId"] = json!("5c3f1a4e-0000-4000-8000-000000000000");
    key["credentials"]["tokenEndpoint"] = json!("https://accounts.stackit.cloud/oauth/v2/token");
    let env = TestEnv::empty().var("STACKIT_TOKEN_BASEURL", &fake.url());
    let path = env.write("sa.json", &key.to_string());
    let env = env.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", path.to_str().unwrap());
    assert_eq!(env.get(HOST).json()["Username"], sa().iss.as_str());
    // A revoked key: STACKIT answers a bare 400 invalid_grant.
    fake.script([Reply::Status(400, r#"{"error":"invalid_grant"}"#.into(), Vec::new())]);
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1");
    env.get(HOST).assert_error(&["HTTP 400", "revoked, expired or deleted"]);
}

/// A kubelet `CredentialProviderRequest` for a served image, with the pod's service account
/// `token` (if any) and the annotations the kubelet passed on.
fn pod_request(token: Option<&str>, annotations: serde_json::Value) -> String {
    let mut request = json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "kind": "CredentialProviderRequest", "image": "registry.onstackit.cloud/shop/app",
        "serviceAccountAnnotations": annotations});
    if let Some(token) = token {
        request["serviceAccountToken"] = json!(token);
    }
    request.to_string()
}

/// A JWT-shaped token whose payload is `claims`, unsigned (the plugin reads claims unverified).
fn unsigned_jwt(claims: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2ln", b64(&json!({"alg": "RS256", "typ": "JWT"})), b64(&claims))
}

/// How the contract's table of per-pod cases must end.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PodAnswer {
    /// The node's own identity (the key's e-mail).
    Node,
    /// The pod's own federated identity (the annotation's e-mail).
    Pod,
    /// Exit 1, nothing on stdout, the reason on stderr naming this text; no request anywhere.
    ErrorNoRequest(&'static str),
    /// Exit 1, nothing on stdout: the IdP refused the pod's own exchange (one request, none to
    /// the key endpoint).
    Refused,
}

/// The contract's per-pod table, written from the contract rather than the code: token or not;
/// annotation absent, blank, malformed or valid; the pod's token valid, refused by the IdP or
/// failing to load; the node allowing the fallback or not. Only two rows may ever end with the
/// node's credentials: no token at all, or no annotation key on a node that allows it.
#[test]
fn per_pod_requests_follow_the_contracts_table() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let valid = token_for(SUBJECT);
    let refused = token_for("system:serviceaccount:other:intruder");
    let expired = issuer().token(SUBJECT, AUDIENCE, -120);
    let no_sub = unsigned_jwt(json!({"iss": issuer().url, "aud": AUDIENCE, "exp": now + 600}));
    let no_iss = unsigned_jwt(json!({"sub": SUBJECT, "aud": AUDIENCE, "exp": now + 600}));
    let annotation = "workload-identity.stackit.cloud/service-account-email";
    let annotated = |value: &str| json!({ annotation: value });
    let unrelated = json!({"example.com/registry-role": "puller"});
    use PodAnswer::*;
    let mut cases: Vec<(&str, Option<&str>, serde_json::Value, PodAnswer, PodAnswer)> = vec![
        // (what, pod token, annotations, answer with the fallback refused, with it allowed)
        ("no token, no annotation", None, json!({}), Node, Node),
        ("no token, annotated", None, annotated(EMAIL), Node, Node),
        (
            "token, annotation key absent",
            Some(&valid),
            unrelated.clone(),
            ErrorNoRequest(annotation),
            Node,
        ),
        (
            "token, no annotations at all",
            Some(&valid),
            json!({}),
            ErrorNoRequest(annotation),
            Node,
        ),
        ("token, valid annotation", Some(&valid), annotated(EMAIL), Pod, Pod),
        (
            "token refused by the IdP",
            Some(&refused),
            annotated(EMAIL),
            Refused,
            Refused,
        ),
        (
            "expired token",
            Some(&expired),
            annotated(EMAIL),
            ErrorNoRequest("expired"),
            ErrorNoRequest("expired"),
        ),
        (
            "token not a JWT",
            Some("not-a-jwt"),
            annotated(EMAIL),
            ErrorNoRequest("JWT"),
            ErrorNoRequest("JWT"),
        ),
        (
            "token without sub",
            Some(&no_sub),
            annotated(EMAIL),
            ErrorNoRequest("sub"),
            ErrorNoRequest("sub"),
        ),
        (
            "token without iss",
            Some(&no_iss),
            annotated(EMAIL),
            ErrorNoRequest("iss"),
            ErrorNoRequest("iss"),
        ),
    ];
    for blank in [
        "",
        " ",
        "\t",
        "not-an-email",
        "sa@",
        "@sa.stackit.cloud",
        "a b@sa.stackit.cloud",
        "sa@localhost",
    ] {
        cases.push((
            "malformed annotation",
            Some(&valid),
            annotated(blank),
            ErrorNoRequest(annotation),
            ErrorNoRequest(annotation),
        ));
    }
    // A malformed annotation with a bad token as well: still the annotation's error, no request.
    cases.push((
        "blank annotation, expired token",
        Some(&expired),
        annotated(""),
        ErrorNoRequest(annotation),
        ErrorNoRequest(annotation),
    ));
    for (what, token, annotations, refused_answer, allowed_answer) in cases {
        for (args, expected) in [
            (&["kubelet"][..], refused_answer),
            (&["kubelet", "--allow-node-fallback"][..], allowed_answer),
        ] {
            let idp = idp();
            // The node has a key of its own, and a cache each run starts without.
            let node = TestEnv::with_key(&idp).var("STACKIT_IDP_TOKEN_ENDPOINT", &idp.url());
            let mut cmd = node.cmd(args).stdin(pod_request(token, annotations.clone()));
            if let Some(token) = token {
                cmd = never_printing(cmd, token);
            }
            let context = format!("{what} ({annotations}), {args:?}");
            match expected {
                Node | Pod => {
                    let answer = cmd.json();
                    let want = if expected == Node { sa().iss.as_str() } else { EMAIL };
                    assert_eq!(
                        answer["auth"]["registry.onstackit.cloud"]["username"], want,
                        "{context}"
                    );
                    let federated = idp.federated_exchanges().len();
                    assert_eq!(federated, usize::from(expected == Pod), "{context}");
                    assert_eq!(idp.requests(), 1, "{context}");
                }
                ErrorNoRequest(fragment) => {
                    cmd.status(1).stdout("").stderr_has(fragment).run();
                    assert_eq!(idp.requests(), 0, "{context}: no request to anyone");
                }
                Refused => {
                    cmd.status(1).stdout("").stderr_has("HTTP 400").run();
                    assert_eq!(idp.requests(), 1, "{context}: the node's key is never used");
                    assert!(idp.assertions().is_empty(), "{context}: no key assertion");
                }
            }
        }
    }
}

#[test]
fn the_demo_uses_none_of_the_callers_identity_or_network_settings() {
    // Run inside a CI job or a pod with workload identity, a proxy and settings of its own: the
    // demo's child must still use only the demo's key and endpoint.
    let idp = idp();
    let env = federated_env(&idp, &token_for(SUBJECT));
    let hostile = env.write(
        "helper.json",
        r#"{"registries": {"registry.onstackit.cloud": {"serviceAccountEmail": "x@sa.stackit.cloud"}}}"#,
    );
    let env = env
        .var("STACKIT_TOKEN_BASEURL", &idp.url())
        .var("DOCKER_CREDENTIAL_STACKIT_CONFIG", hostile.to_str().unwrap())
        .var("ALL_PROXY", "socks5://127.0.0.1:9")
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "soon")
        .var("ACTIONS_ID_TOKEN_REQUEST_URL", &idp.github_url())
        .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "job-token");
    env.cmd(&["demo"]).stdout_has("Demo passed").stderr_any().run();
    assert_eq!(idp.requests(), 0, "nothing of the caller's identity reached its IdP");
    assert!(idp.github_requests().is_empty());
}

#[test]
fn check_asks_no_ci_provider_for_a_token_for_a_host_it_does_not_serve() {
    // In a GitHub Actions job, `check ghcr.io/org/img` must not ask the runner for an ID token:
    // nothing that costs a request or mints a credential happens for an unserved host.
    let idp = idp();
    let github = FakeIssuer::new("https://token.actions.githubusercontent.com");
    idp.serve_github(
        "gh-request-token-do-not-print",
        &github.token("repo:o/r:ref:refs/heads/main", AUDIENCE, 300),
    );
    let env = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_EMAIL", EMAIL)
        .var("STACKIT_IDP_TOKEN_ENDPOINT", &idp.url())
        .var("ACTIONS_ID_TOKEN_REQUEST_URL", &idp.github_url())
        .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-request-token-do-not-print");
    for args in [
        &["check", "ghcr.io/org/img"][..],
        &["check", "--json", "docker.io/library/alpine"],
    ] {
        let out = never_printing(env.cmd(args), "gh-request-token-do-not-print")
            .status(1)
            .stdout_has("not served")
            .stderr_any()
            .run();
        assert!(out.stdout.contains("no identity is loaded"), "{args:?}: {}", out.stdout);
    }
    assert!(
        idp.github_requests().is_empty(),
        "GitHub was asked: {:?}",
        idp.github_requests()
    );
    assert_eq!(idp.requests(), 0);
}

#[test]
fn a_federated_token_in_the_environment_wins_over_the_token_file() {
    // GitLab's `id_tokens:` puts the token itself into a variable: the STACKIT CLI's
    // STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN comes first, before STACKIT_FEDERATED_TOKEN_FILE.
    let idp = idp();
    let stranger = token_for("system:serviceaccount:other:intruder");
    let env = federated_env(&idp, &stranger).var("STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN", &token_for(SUBJECT));
    let answer = never_printing(env.get(HOST), &stranger).json();
    assert_eq!(answer["Username"], EMAIL);
    assert_eq!(idp.federated_exchanges().len(), 1);
    // Warm: no request; and the cache entry is the subject's, as for a file.
    env.get(HOST).json();
    assert_eq!(idp.requests(), 1);
    // A bad token there is an error naming the variable, with no request.
    let bad = env.var("STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN", "not-a-token");
    let line = bad.get(HOST).assert_error(&["STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN"]);
    assert!(!line.contains("not-a-token"), "{line}");
    assert_eq!(idp.requests(), 1);
}

#[test]
fn azure_pipelines_tokens_are_requested_once_and_never_printed() {
    // SYSTEM_OIDCREQUESTURI + SYSTEM_ACCESSTOKEN (a pipeline passes $(System.AccessToken)):
    // a POST with the job's token as bearer, api-version 7.1, Azure's audience and the service
    // connection; the answer's `oidcToken` is exchanged at the IdP. One request each cold, none
    // warm, and neither the job's token nor the federated token is printed.
    let idp = idp();
    let subject = "sc://org/project/stackit-connection";
    let azure = FakeIssuer::new("https://vstoken.dev.azure.com/0000");
    idp.trust(&azure);
    idp.allow_audience(EMAIL, &azure.url, subject, "api://AzureADTokenExchange");
    let federated = azure.token(subject, "api://AzureADTokenExchange", 300);
    idp.serve_azure("azure-job-token-do-not-print", &federated);
    let env = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_EMAIL", EMAIL)
        .var("STACKIT_IDP_TOKEN_ENDPOINT", &idp.url())
        .var("SYSTEM_OIDCREQUESTURI", &idp.azure_url())
        .var("SYSTEM_ACCESSTOKEN", "azure-job-token-do-not-print")
        .var("STACKIT_SERVICE_CONNECTION_ID", "5f1c6b0e-0000-4000-8000-00000000abcd");
    let cmd = never_printing(env.get(HOST), "azure-job-token-do-not-print");
    let answer = never_printing(cmd, &federated).json();
    assert_eq!(answer["Username"], EMAIL);
    let asked = idp.azure_requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    for part in [
        "POST ",
        "api-version=7.1",
        "serviceConnectionId=5f1c6b0e-0000-4000-8000-00000000abcd",
        "audience=api%3A%2F%2FAzureADTokenExchange",
    ] {
        assert!(asked[0].contains(part), "{part} in {asked:?}");
    }
    assert_eq!(idp.federated_exchanges().len(), 1);
    // Warm: neither Azure nor the IdP is asked again.
    env.get(HOST).json();
    env.cmd(&["token"]).stdout_any().run();
    assert_eq!((idp.azure_requests().len(), idp.requests()), (1, 1));
    // check shows the Azure token's claims and expects Azure's audience there, not STACKIT's.
    let out = env
        .cmd(&["check", "--json", HOST])
        .any_status()
        .stdout_any()
        .stderr_any()
        .run();
    assert!(out.stdout.contains("Azure Pipelines OIDC token"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("federated.audience"),
        "no audience warning for Azure's own: {}",
        out.stdout
    );
    let wrong = azure.token(subject, AUDIENCE, 300);
    idp.serve_azure("azure-job-token-do-not-print", &wrong);
    let out = env
        .cmd(&["check", "--json", HOST])
        .env("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
        .any_status()
        .stdout_any()
        .stderr_any()
        .run();
    assert!(
        out.stdout.contains("federated.audience") && out.stdout.contains("not api://AzureADTokenExchange"),
        "a token with another audience is flagged: {}",
        out.stdout
    );
    idp.serve_azure("azure-job-token-do-not-print", &federated);
    let asked_so_far = idp.azure_requests().len();
    // Another job's token does not share the cache; a wrong one is refused by name.
    let mut env = env;
    env.set_var("SYSTEM_ACCESSTOKEN", "wrong-job-token");
    never_printing(env.get(HOST), "wrong-job-token").assert_error(&[
        "Azure Pipelines",
        "HTTP 401",
        "SYSTEM_ACCESSTOKEN",
    ]);
    assert_eq!(idp.azure_requests().len(), asked_so_far + 1);
    // GitHub's variables win when both are present (the STACKIT CLI's order).
    idp.serve_github("gh-token", &token_for(SUBJECT));
    env.set_var("ACTIONS_ID_TOKEN_REQUEST_URL", &idp.github_url());
    env.set_var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-token");
    env.get(HOST).json();
    assert_eq!(
        (idp.github_requests().len(), idp.azure_requests().len()),
        (1, asked_so_far + 1)
    );
    // check names the source it used and why the other one was not.
    let out = env.cmd(&["check", HOST]).any_status().stdout_any().stderr_any().run();
    assert!(out.stdout.contains("GitHub Actions OIDC token"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "Azure Pipelines (SYSTEM_OIDCREQUESTURI/SYSTEM_ACCESSTOKEN) is present but not used: GitHub Actions"
        ),
        "{}",
        out.stdout
    );
    assert_eq!(
        idp.azure_requests().len(),
        asked_so_far + 1,
        "check did not ask Azure either"
    );
}

#[test]
fn a_real_sized_federated_token_is_read_whole() {
    // Real federated tokens are 1-2 KiB (Kubernetes adds pod and node claims, GitHub a dozen
    // repository claims); the size cap must leave room for them.
    let idp = idp();
    let padding = "x".repeat(1500);
    let token = issuer().token_with(
        SUBJECT,
        AUDIENCE,
        600,
        serde_json::json!({"kubernetes.io": {"pod": padding}}),
    );
    assert!((1500..4096).contains(&token.len()), "{}", token.len());
    let env = federated_env(&idp, &token);
    assert_eq!(never_printing(env.get(HOST), &token).json()["Username"], EMAIL);
    // And through the environment variable and the kubelet.
    let env = TestEnv::empty()
        .var("STACKIT_SERVICE_ACCOUNT_EMAIL", EMAIL)
        .var("STACKIT_IDP_TOKEN_ENDPOINT", &idp.url())
        .var("STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN", &token);
    assert_eq!(env.get(HOST).json()["Username"], EMAIL);
}
