//! End to end: real clients (skopeo, the Docker CLI) against a real CNCF distribution registry
//! whose token service is the fake Harbor, with our binary as their credential helper through
//! a real `credHelpers` entry. Every assertion is about what a real client did. The rig is in
//! `tests/support/registry.rs` on top of `tests/support/rig.rs`; docs/e2e.md says what is
//! needed and how to run only these. skopeo and the registry are required (outside CI a missing
//! one skips the test loudly); the Docker CLI only for the parts that use it.

use crate::support::harbor::project_robot;
use crate::support::registry::{E2e, OciImage, layout_manifest_digest, other_registry, read_blob, sha256_hex};
use crate::support::rig::{ROBOT, ROBOT_SECRET, logins as token_logins};
use crate::support::{Output, sa};
use base64::Engine;
use docker_credential_stackit::testing::fake::{FakeIssuer, Reply};
use serde_json::{Value, json};
use std::time::Duration;

/// `let rig = rig!(E2e::…);` or `let docker = rig!(rig.docker(…));`: the value, or return early
/// when a tool is missing outside CI (it has already said so loudly; under `CI=true` it panics
/// instead).
macro_rules! rig {
    ($start:expr) => {
        match $start {
            Some(value) => value,
            None => return,
        }
    };
}

fn assert_ok(what: &str, out: &Output, rig: &E2e) {
    assert_eq!(
        out.code,
        0,
        "{what} failed: {out:?}\nfake Harbor saw: {:?}\nregistry log:\n{}",
        token_logins(&rig.harbor),
        rig.registry.log()
    );
}

/// The registry refused the client: skopeo reports the registry's `denied` or `unauthorized`.
fn assert_refused(what: &str, out: &Output) {
    assert_ne!(out.code, 0, "{what} should have been refused: {out:?}");
    assert!(
        out.stderr.contains("denied") || out.stderr.contains("unauthorized"),
        "{what}: expected the registry's refusal: {out:?}"
    );
}

/// Pushes `image` in the Docker v2 schema 2 format as well: Docker CLI 20.10 (Debian's
/// docker.io) cannot show OCI manifests, newer ones can; this tag works with both.
fn push_v2s2(rig: &E2e, image: &OciImage, reference: &str) {
    let out = rig
        .skopeo(&[
            "copy",
            "--format",
            "v2s2",
            "--dest-tls-verify=false",
            &image.reference(),
            &rig.docker_ref(reference),
        ])
        .run();
    assert_ok("v2s2 push", &out, rig);
}

/// `docker manifest inspect` through the helper; returns the manifest, or `None` (loudly)
/// outside CI without the Docker CLI.
fn docker_manifest(rig: &E2e, reference: &str) -> Option<Value> {
    let out = rig
        .docker(&[
            "manifest",
            "inspect",
            "--insecure",
            &format!("{}/{reference}", rig.host()),
        ])?
        .run();
    assert_ok("docker manifest inspect", &out, rig);
    Some(serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("manifest is not JSON ({e}): {out:?}")))
}

fn docker_login_robot(rig: &E2e, secret: &str) -> Option<Output> {
    Some(
        rig.docker(&["login", "-u", ROBOT, "--password-stdin", rig.host()])?
            .stdin(format!("{secret}\n"))
            .run(),
    )
}

#[test]
fn e2e_linked_sa_pushes_and_pulls_back_byte_identical() {
    let rig = rig!(E2e::linked(&["pull", "push"]));
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "scenario 1\n");

    assert_ok("push", &rig.push(&image, "shop/app:1"), &rig);
    let pulled = work.path().join("pulled");
    assert_ok("pull", &rig.pull("shop/app:1", &pulled), &rig);

    assert_eq!(layout_manifest_digest(&pulled), image.manifest_digest);
    for digest in &image.blobs {
        assert_eq!(read_blob(&pulled, digest), image.blob(digest), "blob {digest}");
    }
    let out = rig
        .skopeo(&["inspect", "--raw", "--tls-verify=false", &rig.docker_ref("shop/app:1")])
        .run();
    assert_ok("inspect", &out, &rig);
    assert_eq!(
        format!("sha256:{}", sha256_hex(out.stdout.as_bytes())),
        image.manifest_digest
    );

    // The Docker CLI gets in with the same helper.
    push_v2s2(&rig, &image, "shop/app:v2s2");
    if let Some(manifest) = docker_manifest(&rig, "shop/app:v2s2") {
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
    }

    // Every login was the SA's e-mail with a STACKIT token, mapped to the linked robot; the
    // whole run needed one token, handed out from the cache to each later client.
    let logins = token_logins(&rig.harbor);
    assert!(!logins.is_empty());
    for (user, principal) in &logins {
        assert_eq!((user.as_str(), principal.as_str()), (sa().iss.as_str(), ROBOT));
    }
    assert_eq!(rig.stackit.requests(), 1);
}

#[test]
fn e2e_pull_only_sa_pulls_but_cannot_push_and_check_names_the_missing_scope() {
    let rig = rig!(E2e::linked(&["pull"]));
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "scenario 2\n");
    rig.seed(&image, "shop/app:1");

    let pulled = work.path().join("pulled");
    assert_ok("pull", &rig.pull("shop/app:1", &pulled), &rig);
    assert_eq!(layout_manifest_digest(&pulled), image.manifest_digest);

    let other = OciImage::write(&work.path().join("other"), "not allowed\n");
    assert_refused("push", &rig.push(&other, "shop/app:2"));
    // The login itself worked: it is the robot's scopes that refuse the push.
    assert!(
        token_logins(&rig.harbor)
            .iter()
            .any(|(u, p)| u == &sa().iss && p == ROBOT)
    );

    let image_ref = format!("{}/shop/app", rig.host());
    rig.helper(&["check", &image_ref, "--push"])
        .status(1)
        .stdout_has("lacks push")
        .run();
    let out = rig
        .helper(&["check", &image_ref, "--push", "--json"])
        .status(1)
        .stdout_any()
        .run();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let codes: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap())
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"scope.missing_actions"), "{codes:?}");
    // Pulling is fine.
    rig.helper(&["check", &image_ref, "--pull"]).stdout_any().run();
}

#[test]
fn e2e_unlinked_robot_docker_login_push_logout() {
    let rig = rig!(E2e::start());
    rig.robot(&["pull", "push"]);
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "scenario 3\n");

    let out = rig!(docker_login_robot(&rig, ROBOT_SECRET));
    assert_ok("docker login", &out, &rig);
    assert!(out.stdout.contains("Login Succeeded"), "{out:?}");
    // Docker handed the secret to our `store`: it is in our robot store, not in config.json.
    assert_eq!(rig.helper(&["list"]).json()[rig.host()], json!(ROBOT));
    let config = std::fs::read_to_string(rig.docker_config()).unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ROBOT}:{ROBOT_SECRET}"));
    assert!(!config.contains(ROBOT_SECRET) && !config.contains(&basic), "{config}");
    assert_eq!(rig.docker_config_json()["credHelpers"][rig.host()], "stackit");

    assert_ok("push", &rig.push(&image, "shop/app:1"), &rig);
    let logins = token_logins(&rig.harbor);
    assert!(!logins.is_empty());
    assert!(logins.iter().all(|(u, p)| u == ROBOT && p == ROBOT), "{logins:?}");
    assert_eq!(rig.stackit.requests(), 0, "no SA key, no STACKIT token");

    let out = rig!(rig.docker(&["logout", rig.host()])).run();
    assert_ok("docker logout", &out, &rig);
    assert_eq!(rig.helper(&["list"]).json().get(rig.host()), None);
    let robots = std::fs::read_to_string(rig.robots_file()).unwrap_or_default();
    assert!(!robots.contains(ROBOT), "{robots}");
    // Logged out means anonymous, and anonymous may not push.
    rig.harbor.clear_requests();
    assert_refused("push after logout", &rig.push(&image, "shop/app:2"));
    assert!(token_logins(&rig.harbor).is_empty(), "{:?}", rig.harbor.requests());
}

#[test]
fn e2e_robot_linked_later_legacy_secret_stops_and_sa_takes_over() {
    let mut rig = rig!(E2e::start());
    rig.robot(&["pull", "push"]);
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "scenario 4\n");
    match docker_login_robot(&rig, ROBOT_SECRET) {
        Some(out) => assert_ok("docker login", &out, &rig),
        // Without the Docker CLI, what `docker login` would do: hand the login to `store`.
        None => {
            rig.helper(&["store"])
                .stdin(json!({"ServerURL": rig.host(), "Username": ROBOT, "Secret": ROBOT_SECRET}).to_string())
                .run();
        }
    }
    assert_ok("legacy push", &rig.push(&image, "shop/app:1"), &rig);

    // Linked in Harbor, SA key configured on the machine.
    rig.link();
    rig.with_key();

    // The registry refuses the legacy secret, whichever client presents it.
    let out = rig.push_as(ROBOT, ROBOT_SECRET, &image, "shop/app:legacy");
    assert_refused("push with the legacy secret", &out);
    if let Some(out) = docker_login_robot(&rig, ROBOT_SECRET) {
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("is linked"), "{out:?}");
    }

    // Through the helper, the clients now log in as the SA; the stored secret is gone.
    rig.harbor.clear_requests();
    assert_ok("SA push", &rig.push(&image, "shop/app:2"), &rig);
    let pulled = work.path().join("pulled");
    assert_ok("SA pull", &rig.pull("shop/app:2", &pulled), &rig);
    assert_eq!(layout_manifest_digest(&pulled), image.manifest_digest);
    push_v2s2(&rig, &image, "shop/app:v2s2");
    let _ = docker_manifest(&rig, "shop/app:v2s2");
    let logins = token_logins(&rig.harbor);
    assert!(!logins.is_empty());
    assert!(logins.iter().all(|(u, p)| u == &sa().iss && p == ROBOT), "{logins:?}");
    let robots = std::fs::read_to_string(rig.robots_file()).unwrap_or_default();
    assert!(!robots.contains(ROBOT_SECRET), "{robots}");
    assert_eq!(rig.helper(&["list"]).json()[rig.host()], json!(sa().iss));
}

#[test]
fn e2e_expired_access_token_is_replaced_before_the_registry_sees_it() {
    let rig = rig!(E2e::linked(&["pull", "push"]));
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "scenario 5\n");

    assert_ok("first push", &rig.push(&image, "shop/app:1"), &rig);
    assert_eq!(rig.stackit.requests(), 1);
    let first = rig.tokens_seen().last().cloned().expect("the fake Harbor saw a token");
    assert_eq!(rig.env.cache_entry()["access_token"], first.as_str(), "cached");

    // An hour later, without waiting an hour: the cached token has run out by this machine's
    // clock, and the fake Harbor (like STACKIT's) now refuses it.
    rig.env.age_cache(3700, -100);
    rig.expire_at_harbor(&first);

    rig.harbor.clear_requests();
    let pulled = work.path().join("pulled");
    assert_ok("second operation", &rig.pull("shop/app:1", &pulled), &rig);
    assert_eq!(rig.stackit.requests(), 2, "a new token was minted");
    let second = rig.tokens_seen().last().cloned().unwrap();
    assert_ne!(second, first);
    let logins = token_logins(&rig.harbor);
    assert!(
        !logins.is_empty() && logins.iter().all(|(_, p)| p == ROBOT),
        "the expired token never reached the registry: {logins:?}"
    );
}

#[test]
fn e2e_token_endpoint_down_fails_fast_with_our_reason() {
    let mut rig = rig!(E2e::linked(&["pull", "push"]));
    // 3 s: long enough that the first retry (backoff < 0.4 s) always happens, so the retry
    // warning the Docker CLI shows below is always there.
    rig.env.set_var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3");
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "scenario 6\n");
    rig.seed(&image, "shop/app:1");

    // A hanging endpoint: accepts, never answers for ten minutes.
    rig.stackit
        .script((0..20).map(|_| Reply::Hang(Duration::from_secs(600))));
    let before = rig.stackit.requests();
    let out = rig.pull("shop/app:1", &work.path().join("pulled"));
    assert_ne!(out.code, 0, "{out:?}");
    // Fast: each helper call skopeo made (one hanging request each) gave up at its 3 s
    // deadline; the rest is skopeo and process start-up, generously bounded.
    let calls = (rig.stackit.requests() - before) as u32;
    assert!(calls >= 1, "skopeo asked the helper");
    let bound = Duration::from_secs(3) * calls + Duration::from_secs(20);
    assert!(
        out.elapsed < bound,
        "took {:?} for {calls} helper call(s); a helper that honours its deadline needs less than {bound:?}",
        out.elapsed
    );
    // skopeo quotes the helper's stdout: our one line, naming the endpoint and the knob.
    let quoted = out
        .stderr
        .split_once("error getting credentials - err: exit status 1, out: `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(line, _)| line)
        .unwrap_or_else(|| panic!("skopeo does not quote the helper: {out:?}"));
    assert!(!quoted.contains("\\n"), "one line: {quoted}");
    assert!(quoted.contains(&rig.stackit.url()), "{quoted}");
    assert!(
        quoted.contains("the 3s that DOCKER_CREDENTIAL_STACKIT_TIMEOUT allows"),
        "{quoted}"
    );
    assert!(rig.stackit.requests() >= 1);

    // Nothing listening at all, through the Docker CLI. Docker ignores a failing `get` for
    // `manifest inspect` and goes on anonymously, so its error is the registry's refusal;
    // our reason reaches the user only as the error line the helper repeats on stderr, which
    // Docker passes through (see docs/e2e.md); the retries themselves are debug detail.
    let refused = crate::support::refused_port();
    let closed = refused.addr;
    let down = format!("http://{closed}/token");
    rig.env.set_var("STACKIT_TOKEN_BASEURL", &down);
    let out = rig!(rig.docker(&[
        "manifest",
        "inspect",
        "--insecure",
        &format!("{}/shop/app:1", rig.host()),
    ]))
    .run();
    assert_refused("docker manifest inspect", &out);
    assert!(
        out.stderr.contains(&format!(
            "docker-credential-stackit: error: token endpoint {down} unreachable: connection refused"
        )),
        "{out:?}"
    );
    assert!(!out.stderr.contains("retrying"), "{out:?}");
    // No credentials means no SA login reached the token service.
    assert!(token_logins(&rig.harbor).iter().all(|(u, _)| u != &sa().iss));
}

#[test]
fn e2e_eight_parallel_copies_share_one_token() {
    let rig = rig!(E2e::linked(&["pull", "push"]));
    // Slow token answers keep all eight helpers waiting on the cold cache at once, so one
    // request means they waited on the lock rather than happened not to overlap.
    rig.stackit.set_delay(Duration::from_millis(300));
    let work = tempfile::tempdir().unwrap();
    // Eight different images into eight repositories: distribution 2.8's filesystem storage
    // can fail concurrent uploads of the same blob to one repository (HTTP 500, "blob
    // unknown"), a registry race that has nothing to do with credentials.
    let images: Vec<OciImage> = (0..8)
        .map(|i| {
            OciImage::write(
                &work.path().join(format!("src{i}")),
                &format!("scenario 7, image {i}\n"),
            )
        })
        .collect();

    let running: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            rig.skopeo(&[
                "copy",
                "--dest-tls-verify=false",
                &image.reference(),
                &rig.docker_ref(&format!("shop/app{i}:1")),
            ])
            .spawn()
        })
        .collect();
    for (i, r) in running.into_iter().enumerate() {
        assert_ok(&format!("copy {i}"), &r.wait(), &rig);
    }
    assert_eq!(rig.stackit.requests(), 1);

    // Every image arrived intact, read back with the now warm cache.
    for (i, image) in images.iter().enumerate() {
        let out = rig
            .skopeo(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &rig.docker_ref(&format!("shop/app{i}:1")),
            ])
            .run();
        assert_ok("inspect", &out, &rig);
        assert_eq!(
            format!("sha256:{}", sha256_hex(out.stdout.as_bytes())),
            image.manifest_digest
        );
    }
    assert_eq!(rig.stackit.requests(), 1);
}

#[test]
fn e2e_unrelated_registry_never_sees_stackit_credentials() {
    let rig = rig!(E2e::linked(&["pull", "push"]));
    let (other_harbor, other) = other_registry(&rig, project_robot("other", "ci", &["pull", "push"]), "Other1secret");
    // The usual Docker config of someone using two registries: ours through the helper, the
    // other with its own stored login.
    let auth = base64::engine::general_purpose::STANDARD.encode("robot$other+ci:Other1secret");
    rig.write_docker_config(&json!({
        "credHelpers": {rig.host(): "stackit"},
        "auths": {other.host(): {"auth": auth}},
    }));
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "scenario 8\n");
    assert_ok("push", &rig.push(&image, "shop/app:1"), &rig);

    // One command, both registries: skopeo asks for credentials for each.
    let out = rig
        .skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &rig.docker_ref("shop/app:1"),
            &format!("docker://{}/other/app:1", other.host()),
        ])
        .run();
    assert_ok("copy across registries", &out, &rig);
    let other_logins = token_logins(&other_harbor);
    assert!(!other_logins.is_empty());
    assert!(
        other_logins
            .iter()
            .all(|(u, p)| u == "robot$other+ci" && p == "robot$other+ci"),
        "{other_logins:?}"
    );
    rig.helper(&["get"]).stdin(other.host()).assert_not_found();

    // Even a credHelpers entry sending the other host to us gets nothing: it is not served.
    rig.write_docker_config(&json!({"credHelpers": {rig.host(): "stackit", other.host(): "stackit"}}));
    other_harbor.clear_requests();
    let out = rig
        .skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/other/app:1", other.host()),
            &format!("oci:{}:x", work.path().join("pulled").display()),
        ])
        .run();
    assert_refused("anonymous pull from the other registry", &out);
    assert!(token_logins(&other_harbor).is_empty(), "{:?}", other_harbor.requests());
    // Nothing the other side saw ever carried the SA's e-mail.
    assert!(
        other_harbor
            .requests()
            .iter()
            .all(|r| r.user.as_deref() != Some(sa().iss.as_str()))
    );
}

#[test]
fn e2e_keyless_identity_pushes_and_pulls_without_a_key_file() {
    // A CI job with a federated OIDC token in a file (GitLab's id_tokens, a pod's projected
    // token) and no key anywhere: skopeo pushes and pulls through the helper.
    let mut rig = rig!(E2e::start());
    rig.robot(&["pull", "push"]);
    rig.link();
    let issuer = FakeIssuer::new("https://gitlab.example");
    let subject = "project_path:shop/app:ref_type:branch:ref:main";
    rig.stackit.trust(&issuer);
    rig.stackit.allow(&sa().iss, &issuer.url, subject);
    let token_file = rig.env.write(
        "ci/oidc-token",
        &issuer.token(subject, "sts.accounts.stackit.cloud", 600),
    );
    rig.env.set_var("STACKIT_SERVICE_ACCOUNT_EMAIL", &sa().iss);
    rig.env
        .set_var("STACKIT_FEDERATED_TOKEN_FILE", token_file.to_str().unwrap());
    let idp = rig.stackit.url();
    rig.env.set_var("STACKIT_IDP_TOKEN_ENDPOINT", &idp);

    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "keyless\n");
    assert_ok("push", &rig.push(&image, "shop/keyless:1"), &rig);
    let pulled = work.path().join("pulled");
    assert_ok("pull", &rig.pull("shop/keyless:1", &pulled), &rig);
    assert_eq!(layout_manifest_digest(&pulled), image.manifest_digest);

    let logins = token_logins(&rig.harbor);
    assert!(!logins.is_empty());
    for (user, principal) in &logins {
        assert_eq!((user.as_str(), principal.as_str()), (sa().iss.as_str(), ROBOT));
    }
    // One exchange of the federated token for the whole push and pull.
    assert_eq!(rig.stackit.requests(), 1);
    assert_eq!(rig.stackit.federated_exchanges().len(), 1);
    assert!(rig.stackit.assertions().is_empty(), "no key assertion was ever signed");
}
