//! End to end with the container engines users run: the Docker engine (its own `dockerd` per
//! test), podman and buildah, against the same real registry, fake Harbor and fake STACKIT
//! endpoint as `e2e.rs`, with our binary as their credential helper. Each step prints the
//! STACKIT token requests and helper calls it caused (docs/e2e.md has the measured numbers).

use crate::support::engines::{
    BUILDAH_HOW, Containers, DOCKER_INIT_HOW, DOCKERD_HOW, Dockerd, HelperCalls, PODMAN_HOW, Step, cold_cache, step,
};
use crate::support::harbor::{project_robot, system_robot};
use crate::support::registry::{E2e, OciImage, tar};
use crate::support::rig::{ROBOT, ROBOT_SECRET, logins};
use crate::support::{sa, tool};
use base64::Engine;
use serde_json::json;
use std::io::Write;

/// `some!(expr)`: the value, or return early when a tool is missing outside CI (`tool()` and
/// `E2e::start()` have already said so loudly; under `CI=true` they panic instead).
macro_rules! some {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}

/// A system robot linked to the SA, allowed to push and pull in project `shop` and only to
/// pull in project `base`.
const CI_ROBOT: &str = "robot$ci";
/// A robot that seeds project `base` with explicit credentials, bypassing the helper.
const BASE_SEEDER: &str = "robot$base+seed";
const BASE_SEEDER_SECRET: &str = "BaseSeed1secret";

fn assert_ok(what: &str, step: &Step, rig: &E2e) {
    assert_ok_with(what, step, rig, None);
}

/// [`assert_ok`] that also shows the Docker engine's log on failure.
fn assert_ok_with(what: &str, step: &Step, rig: &E2e, daemon: Option<&Dockerd>) {
    assert_eq!(
        step.out.code,
        0,
        "{what} failed: {:?}\nhelper calls: {:?}\nfake Harbor saw: {:?}\nregistry log:\n{}\ndockerd log:\n{}",
        step.out,
        step.calls,
        logins(&rig.harbor),
        rig.registry.log(),
        daemon.map(Dockerd::log).unwrap_or_default()
    );
}

/// The SA set-up of the Docker test: key configured, [`CI_ROBOT`] linked, a seeder for `base`.
fn linked_to_shop_and_base() -> Option<E2e> {
    let mut rig = E2e::start()?;
    rig.with_key();
    let repo = |project: &str, actions: &[&str]| {
        let access: Vec<_> = actions
            .iter()
            .map(|a| json!({"resource": "repository", "action": a}))
            .collect();
        json!({"kind": "project", "namespace": project, "access": access})
    };
    let permissions = json!([repo("shop", &["pull", "push"]), repo("base", &["pull"])]);
    rig.harbor.add_robot(system_robot("ci", permissions), "Ci1secret");
    rig.harbor.link(CI_ROBOT, &sa().iss, &sa().sub);
    rig.harbor
        .add_robot(project_robot("base", "seed", &["pull", "push"]), BASE_SEEDER_SECRET);
    Some(rig)
}

/// Every login the fake Harbor saw was the SA's e-mail, mapped to `robot`.
fn assert_all_sa(rig: &E2e, robot: &str) {
    let seen = logins(&rig.harbor);
    assert!(!seen.is_empty());
    for (user, principal) in &seen {
        assert_eq!(
            (user.as_str(), principal.as_str()),
            (sa().iss.as_str(), robot),
            "{seen:?}"
        );
    }
}

/// The digest `docker push` reports (`TAG: digest: sha256:… size: N`).
fn pushed_digest(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {out}"))
        .to_string()
}

fn report(scenario: &str, rig: &E2e, calls: &HelperCalls) {
    let _ = writeln!(
        std::io::stderr(),
        "e2e total: {scenario}: {} token request(s), {} helper call(s)",
        rig.stackit.requests(),
        calls.all().len()
    );
}

#[test]
fn e2e_docker_engine_pushes_pulls_builds_and_is_refused_where_it_may_only_read() {
    let dockerd = some!(tool("dockerd", DOCKERD_HOW));
    let docker_init = some!(tool("docker-init", DOCKER_INIT_HOW));
    let rig = some!(linked_to_shop_and_base());
    let calls = HelperCalls::install(&rig);
    let daemon = Dockerd::start(&dockerd);
    let _ = writeln!(std::io::stderr(), "e2e: dockerd answered after {:?}", daemon.startup);
    let docker = |args: &[&str]| {
        rig.docker(args)
            .expect("the Docker CLI comes with dockerd")
            .env("DOCKER_HOST", daemon.host())
    };
    let host = rig.host().to_string();
    let r = |reference: &str| format!("{host}/{reference}");
    let work = tempfile::tempdir().unwrap();

    // Two images made by the engine itself, with no registry involved: an app, and a base
    // image holding a static binary (tini) that a build step can run.
    let app = work.path().join("app.tar");
    std::fs::write(&app, tar(&[("hello.txt", 0o644, b"docker engine\n")])).unwrap();
    let tini = std::fs::read(std::fs::canonicalize(&docker_init).unwrap()).unwrap();
    let base = work.path().join("base.tar");
    std::fs::write(&base, tar(&[("tini", 0o755, &tini)])).unwrap();
    for (file, reference) in [(&app, r("shop/app:1")), (&base, r("base/tini:1"))] {
        let s = step(
            &rig,
            &calls,
            "docker import",
            docker(&["import", file.to_str().unwrap(), &reference]),
        );
        assert_ok_with("docker import", &s, &rig, Some(&daemon));
        assert!(s.calls.is_empty() && s.tokens == 0);
    }
    // The base image goes into the registry with the seeder's explicit credentials, straight
    // from the engine, so the helper is not involved; then the engine forgets it.
    let creds = format!("{BASE_SEEDER}:{BASE_SEEDER_SECRET}");
    let out = rig
        .skopeo(&[
            "copy",
            "--src-daemon-host",
            &daemon.host(),
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("docker-daemon:{}", r("base/tini:1")),
            &rig.docker_ref("base/tini:1"),
        ])
        .run();
    assert_eq!(out.code, 0, "seeding base/tini:1: {out:?}");
    assert_eq!(docker(&["rmi", &r("base/tini:1")]).run().code, 0);
    rig.harbor.clear_requests();

    // docker push on a cold cache: one token for the whole push.
    let push = step(&rig, &calls, "docker push (cold)", docker(&["push", &r("shop/app:1")]));
    assert_ok_with("docker push", &push, &rig, Some(&daemon));
    assert_eq!(push.tokens, 1, "one token request for a whole docker push");
    let digest = pushed_digest(&push.out.stdout);

    // docker pull of it back, again on a cold cache.
    assert_eq!(docker(&["rmi", &r("shop/app:1")]).run().code, 0);
    cold_cache(&rig);
    let pull = step(&rig, &calls, "docker pull (cold)", docker(&["pull", &r("shop/app:1")]));
    assert_ok_with("docker pull", &pull, &rig, Some(&daemon));
    assert_eq!(pull.tokens, 1, "one token request for a whole docker pull");
    let out = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &r("shop/app:1"),
    ])
    .run();
    assert!(out.stdout.contains(&format!("{}@{digest}", r("shop/app"))), "{out:?}");

    // A project the identity may only read: pulling works, pushing is refused by the registry.
    let pull = step(
        &rig,
        &calls,
        "docker pull read-only (warm)",
        docker(&["pull", &r("base/tini:1")]),
    );
    assert_ok_with("docker pull from the read-only project", &pull, &rig, Some(&daemon));
    assert_eq!(pull.tokens, 0);
    assert_eq!(docker(&["tag", &r("shop/app:1"), &r("base/app:1")]).run().code, 0);
    let refused = step(
        &rig,
        &calls,
        "docker push read-only (warm)",
        docker(&["push", &r("base/app:1")]),
    );
    assert_ne!(refused.out.code, 0, "{:?}", refused.out);
    assert!(
        refused
            .out
            .stderr
            .contains("denied: requested access to the resource is denied"),
        "the registry's refusal: {:?}",
        refused.out
    );

    // docker build (the classic builder: no buildx here) FROM the read-only project: the
    // engine pulls the base with the credentials the CLI sends along, runs a step in a
    // container (no network: --bridge=none) and copies a file; then the result is pushed.
    assert_eq!(docker(&["rmi", &r("base/tini:1")]).run().code, 0);
    let context = work.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("built.txt"), "built\n").unwrap();
    let dockerfile = format!(
        "FROM {}\nRUN [\"/tini\", \"--version\"]\nCOPY built.txt /built.txt\n",
        r("base/tini:1")
    );
    std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
    // A second credHelpers entry, as configure-docker writes it: the classic builder asks for
    // the credentials of every configured registry up front, whether the build needs them or not.
    rig.write_docker_config(&json!({"credHelpers": {rig.host(): "stackit", "registry.onstackit.cloud": "stackit"}}));
    let build = step(
        &rig,
        &calls,
        "docker build (warm)",
        docker(&["build", "-t", &r("shop/built:1"), context.to_str().unwrap()]).env("DOCKER_BUILDKIT", "0"),
    );
    assert_ok_with("docker build", &build, &rig, Some(&daemon));
    assert_eq!(build.count("get"), 2, "{:?}", build.calls);
    assert!(
        build
            .calls
            .iter()
            .any(|c| c.starts_with("get registry.onstackit.cloud ")),
        "{:?}",
        build.calls
    );
    assert!(
        build.out.stdout.contains("tini version"),
        "the RUN step ran: {:?}",
        build.out
    );
    let push = step(
        &rig,
        &calls,
        "docker push built (warm)",
        docker(&["push", &r("shop/built:1")]),
    );
    assert_ok_with("docker push of the built image", &push, &rig, Some(&daemon));

    // docker login without -u, through the engine: Docker logs in with what get returns and
    // stores it again, which our store accepts for the SA's own e-mail.
    let login = step(
        &rig,
        &calls,
        "docker login, no -u (warm)",
        docker(&["login", rig.host()]),
    );
    assert_ok_with("docker login", &login, &rig, Some(&daemon));
    assert!(login.out.stdout.contains("Login Succeeded"), "{:?}", login.out);
    assert_eq!(
        (login.count("get"), login.calls.last().map(String::as_str)),
        (1, Some(format!("store {} -> 0", sa().iss).as_str())),
        "{:?}",
        login.calls
    );
    assert_eq!(rig.helper(&["list"]).json()[rig.host()], json!(sa().iss));

    // A broken identity (the key file is gone) is an error, not "not found". The engine's
    // clients carry on anonymously and the registry refuses them; the user sees our reason
    // only because the helper also prints it to stderr (docs/e2e.md).
    let missing = work.path().join("missing-key.json");
    let ours = format!(
        "docker-credential-stackit: error: cannot read the file named by STACKIT_SERVICE_ACCOUNT_KEY_PATH {}",
        missing.display()
    );
    cold_cache(&rig);
    let pull = docker(&["pull", &r("shop/app:1")]).env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &missing);
    let s = step(&rig, &calls, "docker pull, key file missing", pull);
    assert_ne!(s.out.code, 0, "{:?}", s.out);
    assert!(
        s.out.stderr.contains(&ours) && s.out.stderr.contains("denied"),
        "{:?}",
        s.out
    );
    let build = docker(&["build", "--pull", "-t", &r("shop/built:2"), context.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &missing);
    let s = step(&rig, &calls, "docker build, key file missing", build);
    assert_ne!(s.out.code, 0, "{:?}", s.out);
    assert!(
        s.out.stderr.contains(&ours) && s.out.stderr.contains("denied"),
        "{:?}",
        s.out
    );
    assert_eq!(s.tokens, 0);

    // Every login was the SA; two cold starts, two token requests, nothing else.
    assert_all_sa(&rig, CI_ROBOT);
    assert_eq!(rig.stackit.requests(), 2);
    report("docker engine, linked SA", &rig, &calls);
}

#[test]
fn e2e_docker_engine_robot_login_then_pull() {
    let dockerd = some!(tool("dockerd", DOCKERD_HOW));
    let rig = some!(E2e::start());
    rig.robot(&["pull", "push"]);
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "docker engine, robot\n");
    rig.seed(&image, "shop/app:1");
    let calls = HelperCalls::install(&rig);
    let daemon = Dockerd::start(&dockerd);
    let docker = |args: &[&str]| {
        rig.docker(args)
            .expect("the Docker CLI comes with dockerd")
            .env("DOCKER_HOST", daemon.host())
    };
    let reference = format!("{}/shop/app:1", rig.host());
    rig.harbor.clear_requests();

    // With a daemon, docker login has the engine check the secret at the registry, then
    // hands it to our store.
    let login = step(
        &rig,
        &calls,
        "docker login robot",
        docker(&["login", "-u", ROBOT, "--password-stdin", rig.host()]).stdin(format!("{ROBOT_SECRET}\n")),
    );
    assert_ok_with("docker login", &login, &rig, Some(&daemon));
    assert!(login.out.stdout.contains("Login Succeeded"), "{:?}", login.out);
    assert_eq!(login.count("store"), 1, "{:?}", login.calls);
    assert_eq!(rig.helper(&["list"]).json()[rig.host()], json!(ROBOT));
    let config = std::fs::read_to_string(rig.docker_config()).unwrap();
    assert!(!config.contains(ROBOT_SECRET), "{config}");

    let pull = step(&rig, &calls, "docker pull robot", docker(&["pull", &reference]));
    assert_ok_with("docker pull", &pull, &rig, Some(&daemon));
    let seen = logins(&rig.harbor);
    assert!(
        !seen.is_empty() && seen.iter().all(|(u, p)| u == ROBOT && p == ROBOT),
        "{seen:?}"
    );
    assert_eq!(rig.stackit.requests(), 0, "no SA key, no STACKIT token");

    let logout = step(&rig, &calls, "docker logout", docker(&["logout", rig.host()]));
    assert_ok_with("docker logout", &logout, &rig, Some(&daemon));
    assert!(logout.count("erase") >= 1, "{:?}", logout.calls);
    assert_eq!(rig.helper(&["list"]).json().get(rig.host()), None);
    report("docker engine, robot login", &rig, &calls);
}

/// The auth file, parsed (`{}` while it does not exist).
fn read_json(path: &std::path::Path) -> serde_json::Value {
    std::fs::read_to_string(path)
        .map(|t| serde_json::from_str(&t).expect("auth file is JSON"))
        .unwrap_or_else(|_| json!({}))
}

#[test]
fn e2e_podman_pulls_and_pushes_with_credhelpers_from_docker_config() {
    let podman = some!(tool("podman", PODMAN_HOW));
    let mut rig = some!(E2e::linked(&["pull", "push"]));
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "podman, docker config\n");
    rig.seed(&image, "shop/app:1");
    let c = Containers::new(&mut rig);
    let calls = HelperCalls::install(&rig);
    let podman = |args: &[&str]| c.podman(&rig, &podman, args);
    let r = |reference: &str| format!("{}/{reference}", rig.host());
    rig.harbor.clear_requests();

    // Only Docker's config.json maps the registry to us (the rig's credHelpers entry); there is
    // no containers auth file.
    let pull = step(
        &rig,
        &calls,
        "podman pull (cold)",
        podman(&["pull", "--tls-verify=false", &r("shop/app:1")]),
    );
    assert_ok("podman pull", &pull, &rig);
    assert_eq!(pull.tokens, 1, "one token request for a whole podman pull");
    let tagged = podman(&["tag", &r("shop/app:1"), &r("shop/app:2")]).run();
    assert_eq!(tagged.code, 0, "{tagged:?}");
    cold_cache(&rig);
    let push = step(
        &rig,
        &calls,
        "podman push (cold)",
        podman(&["push", "--tls-verify=false", &r("shop/app:2")]),
    );
    assert_ok("podman push", &push, &rig);
    assert_eq!(push.tokens, 1, "one token request for a whole podman push");

    // A broken identity (the key file is gone): podman stops before asking the registry and
    // quotes our one-line reason (as skopeo does), after our own stderr line.
    let missing = work.path().join("missing-key.json");
    let reason = format!(
        "cannot read the file named by STACKIT_SERVICE_ACCOUNT_KEY_PATH {}",
        missing.display()
    );
    cold_cache(&rig);
    let pull =
        podman(&["pull", "--tls-verify=false", &r("shop/app:1")]).env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", &missing);
    let s = step(&rig, &calls, "podman pull, key file missing", pull);
    assert_ne!(s.out.code, 0, "{:?}", s.out);
    assert!(
        s.out.stderr.contains(&format!(
            "error getting credentials - err: exit status 1, out: `{reason}"
        )),
        "{:?}",
        s.out
    );
    assert_eq!(s.tokens, 0);
    assert!(!c.auth_json().exists(), "podman wrote no auth file of its own");
    assert_all_sa(&rig, ROBOT);
    assert_eq!(rig.stackit.requests(), 2);
    report("podman, Docker config", &rig, &calls);
}

#[test]
fn e2e_podman_login_logout_and_pull_push_through_containers_auth_json() {
    let podman = some!(tool("podman", PODMAN_HOW));
    let mut rig = some!(E2e::start());
    rig.robot(&["pull", "push"]);
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "podman, auth.json\n");
    rig.seed(&image, "shop/app:1");
    let c = Containers::new(&mut rig);
    let calls = HelperCalls::install(&rig);
    let host = rig.host().to_string();
    let app = format!("{host}/shop/app:1");
    let podman = |rig: &E2e, args: &[&str]| c.podman(rig, &podman, args);
    let login = |rig: &E2e| {
        podman(
            rig,
            &["login", "--tls-verify=false", "-u", ROBOT, "--password-stdin", &host],
        )
        .stdin(format!("{ROBOT_SECRET}\n"))
    };
    let logout = |rig: &E2e| podman(rig, &["logout", &host]);
    let pull = |rig: &E2e| podman(rig, &["pull", "--tls-verify=false", &app]);

    // With the helper only in Docker's config, podman login does not call store: it writes the
    // secret into its own auth file, and logout deletes it there (docs/e2e.md).
    let s = step(&rig, &calls, "podman login robot (Docker config only)", login(&rig));
    assert_ok("podman login", &s, &rig);
    assert_eq!(s.count("store"), 0, "{:?}", s.calls);
    assert!(read_json(&c.auth_json())["auths"][&host]["auth"].is_string());
    let s = step(&rig, &calls, "podman logout (Docker config only)", logout(&rig));
    assert_ok("podman logout", &s, &rig);
    assert_eq!(s.count("erase"), 0, "{:?}", s.calls);
    assert_eq!(read_json(&c.auth_json())["auths"].get(&host), None);

    // configure-docker --containers maps the registry in the containers auth file too; then
    // Docker's config is emptied, so from here on only auth.json sends podman to us.
    rig.helper(&["configure-docker", "--containers"])
        .stdout_any()
        .stderr_any()
        .run();
    assert_eq!(read_json(&c.auth_json())["credHelpers"][&host], "stackit");
    rig.write_docker_config(&json!({}));

    // podman login hands the robot secret to our store, a pull gets it back from get, and
    // podman logout calls erase; the secret is never in podman's or Docker's files.
    let s = step(&rig, &calls, "podman login robot (auth.json)", login(&rig));
    assert_ok("podman login", &s, &rig);
    assert_eq!(s.count("store"), 1, "{:?}", s.calls);
    assert_eq!(rig.helper(&["list"]).json()[&host], json!(ROBOT));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ROBOT}:{ROBOT_SECRET}"));
    for file in [c.auth_json(), rig.docker_config()] {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            !text.contains(ROBOT_SECRET) && !text.contains(&basic),
            "{}: {text}",
            file.display()
        );
    }
    rig.harbor.clear_requests();
    let s = step(&rig, &calls, "podman pull robot (auth.json)", pull(&rig));
    assert_ok("podman pull with the stored robot", &s, &rig);
    let seen = logins(&rig.harbor);
    assert!(
        !seen.is_empty() && seen.iter().all(|(u, p)| u == ROBOT && p == ROBOT),
        "{seen:?}"
    );
    let s = step(&rig, &calls, "podman logout (auth.json)", logout(&rig));
    assert_ok("podman logout", &s, &rig);
    assert!(s.count("erase") >= 1, "{:?}", s.calls);
    assert_eq!(rig.helper(&["list"]).json().get(&host), None);
    assert_eq!(rig.stackit.requests(), 0, "no SA key, no STACKIT token");

    // With DOCKER_CONFIG set, podman takes $DOCKER_CONFIG/config.json as its only auth file and
    // never reads auth.json: the login lands in Docker's (now empty) config as a stored secret.
    let docker_config = rig.env.path(".docker");
    let s = step(
        &rig,
        &calls,
        "podman login robot (DOCKER_CONFIG set)",
        login(&rig).env("DOCKER_CONFIG", &docker_config),
    );
    assert_ok("podman login", &s, &rig);
    assert_eq!(s.count("store"), 0, "{:?}", s.calls);
    assert!(rig.docker_config_json()["auths"][&host]["auth"].is_string());
    let s = step(
        &rig,
        &calls,
        "podman logout (DOCKER_CONFIG set)",
        logout(&rig).env("DOCKER_CONFIG", &docker_config),
    );
    assert_ok("podman logout", &s, &rig);
    assert_eq!(rig.docker_config_json()["auths"].get(&host), None);

    // The robot is linked and the SA key configured: the same auth.json entry now gets the SA.
    rig.link();
    rig.with_key();
    let removed = podman(&rig, &["rmi", &app]).run();
    assert_eq!(removed.code, 0, "{removed:?}");
    rig.harbor.clear_requests();
    let s = step(&rig, &calls, "podman pull SA (auth.json, cold)", pull(&rig));
    assert_ok("podman pull as the SA", &s, &rig);
    assert_eq!(s.tokens, 1, "one token request for a whole podman pull");
    let app2 = format!("{host}/shop/app:2");
    let tagged = podman(&rig, &["tag", &app, &app2]).run();
    assert_eq!(tagged.code, 0, "{tagged:?}");
    cold_cache(&rig);
    let args = ["push", "--tls-verify=false", &app2];
    let s = step(&rig, &calls, "podman push SA (auth.json, cold)", podman(&rig, &args));
    assert_ok("podman push as the SA", &s, &rig);
    assert_eq!(s.tokens, 1, "one token request for a whole podman push");
    assert_all_sa(&rig, ROBOT);
    report("podman, containers auth.json", &rig, &calls);
}

#[test]
fn e2e_buildah_from_and_push() {
    let buildah = some!(tool("buildah", BUILDAH_HOW));
    let mut rig = some!(E2e::linked(&["pull", "push"]));
    let work = tempfile::tempdir().unwrap();
    let image = OciImage::write(&work.path().join("src"), "buildah\n");
    rig.seed(&image, "shop/app:1");
    let c = Containers::new(&mut rig);
    let calls = HelperCalls::install(&rig);
    let buildah = |args: &[&str]| c.buildah(&rig, &buildah, args);
    let r = |reference: &str| format!("{}/{reference}", rig.host());
    rig.harbor.clear_requests();

    // A working container from the served registry, a file added, committed and pushed back.
    let from = step(
        &rig,
        &calls,
        "buildah from (cold)",
        buildah(&["from", "--name", "work", "--tls-verify=false", &r("shop/app:1")]),
    );
    assert_ok("buildah from", &from, &rig);
    assert_eq!(from.tokens, 1, "one token request for a whole buildah from");
    let file = work.path().join("built.txt");
    std::fs::write(&file, "built by buildah\n").unwrap();
    let out = buildah(&["copy", "work", file.to_str().unwrap(), "/built.txt"]).run();
    assert_eq!(out.code, 0, "{out:?}");
    let commit = step(
        &rig,
        &calls,
        "buildah commit",
        buildah(&["commit", "work", &r("shop/built:1")]),
    );
    assert_ok("buildah commit", &commit, &rig);
    cold_cache(&rig);
    let push = step(
        &rig,
        &calls,
        "buildah push (cold)",
        buildah(&["push", "--tls-verify=false", &r("shop/built:1")]),
    );
    assert_ok("buildah push", &push, &rig);
    assert_eq!(push.tokens, 1, "one token request for a whole buildah push");

    // The pushed image is the base plus the new layer.
    let out = rig
        .skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &rig.docker_ref("shop/built:1"),
        ])
        .run();
    assert_eq!(out.code, 0, "{out:?}");
    let manifest: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(2), "{manifest}");
    assert_all_sa(&rig, ROBOT);
    report("buildah", &rig, &calls);
}
