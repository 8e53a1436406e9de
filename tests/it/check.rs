//! `check`: the real binary against the fake STACKIT token endpoint and the fake Harbor, with
//! an isolated HOME holding Docker's config.

use crate::support::harbor::{FakeHarbor, TokenFields, project_robot, system_robot};
use crate::support::rig::{ROBOT, ROBOT_SECRET, Rig, wired};
use crate::support::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const STEPS: [&str; 6] = ["docker", "identity", "token", "registry", "scopes", "robot"];

/// `check …` and its report, for the rig's image; plus the token-leak check every test can use.
trait Checks {
    fn check_cmd(&self, args: &[&str]) -> Cmd;
    fn check_json(&self, args: &[&str]) -> (Output, Report);
    fn assert_no_tokens(&self, out: &Output);
}

impl Checks for Rig {
    /// `check <image> --json <args>`, with nothing expected on stderr.
    fn check_cmd(&self, args: &[&str]) -> Cmd {
        let image = self.image();
        let mut all = vec![image.as_str(), "--json"];
        all.extend_from_slice(args);
        self.env.check(&all)
    }

    /// [`Checks::check_cmd`] run and parsed.
    fn check_json(&self, args: &[&str]) -> (Output, Report) {
        let out = self.check_cmd(args).run();
        let report = Report::parse(&out);
        (out, report)
    }

    /// Asserts that no output of `out` carries a JWT or any access token the fake endpoint has
    /// issued so far.
    fn assert_no_tokens(&self, out: &Output) {
        assert_no_jwt(out);
        let tokens = self.issued_tokens();
        assert!(!tokens.is_empty(), "the scan has tokens to look for");
        for token in tokens {
            assert!(
                !out.stdout.contains(&token) && !out.stderr.contains(&token),
                "an access token leaked: {out:?}"
            );
        }
    }
}

/// `check` for any environment: its exit status and report are the test's to judge (with
/// [`Report::parse`]); stderr stays empty.
trait CheckCmd {
    fn check(&self, args: &[&str]) -> Cmd;
}

impl CheckCmd for TestEnv {
    fn check(&self, args: &[&str]) -> Cmd {
        self.cmd(&[&["check"], args].concat()).any_status().stdout_any()
    }
}

fn assert_no_jwt(out: &Output) {
    // Every JWT starts with the base64url of `{"`.
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!text.contains("eyJ"), "a JWT appears on {name}: {out:?}");
    }
}

/// The JSON report.
struct Report(Value);

impl Report {
    fn parse(out: &Output) -> Report {
        let v: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {out:?}"));
        let ids: Vec<&str> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        assert_eq!(ids, STEPS, "{out:?}");
        assert_eq!(
            out.code,
            if v["ok"] == true { 0 } else { 1 },
            "exit code vs ok: {out:?}"
        );
        Report(v)
    }

    fn step(&self, id: &str) -> &Value {
        self.0["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == id)
            .unwrap()
    }

    fn status(&self, id: &str) -> &str {
        self.step(id)["status"].as_str().unwrap()
    }

    fn statuses(&self) -> Vec<&str> {
        STEPS.iter().map(|s| self.status(s)).collect()
    }

    fn codes(&self, id: &str) -> Vec<&str> {
        self.step(id)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect()
    }

    fn finding(&self, code: &str) -> &Value {
        self.0["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["findings"].as_array().unwrap())
            .find(|f| f["code"] == code)
            .unwrap_or_else(|| panic!("no finding {code} in {:#}", self.0))
    }

    fn summary(&self, id: &str) -> &str {
        self.step(id)["summary"].as_str().unwrap()
    }
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

#[test]
fn linked_robot_with_push_passes_every_step() {
    let rig = Rig::linked(&["pull", "push"]);
    let robot_file = rig.robot_file("robot$shop+ci");
    let (out, r) = rig.check_json(&["--push", "--robot-file", &robot_file]);
    assert_eq!(r.statuses(), ["ok"; 6], "{r:?}");
    assert!(r.summary("scopes").contains("granted pull, push"), "{r:?}");
    assert!(r.codes("scopes").contains(&"scope.granted"), "{r:?}");
    assert!(r.codes("robot").contains(&"link.ok"), "{r:?}");
    assert!(r.summary("registry").contains(&sa().iss), "{r:?}");
    rig.assert_no_tokens(&out);

    // The fake saw the SA e-mail with a STACKIT token and served it as the linked robot.
    let logins: Vec<_> = rig
        .harbor
        .requests()
        .into_iter()
        .filter(|q| q.path == "/service/token")
        .collect();
    assert_eq!(logins.len(), 2, "one login without scope, one with: {logins:?}");
    assert!(
        logins
            .iter()
            .all(|q| q.user.as_deref() == Some(sa().iss.as_str()) && q.principal == "robot$shop+ci")
    );
    assert!(logins[0].query.iter().all(|(k, _)| k != "scope"));
    assert!(
        logins[1]
            .query
            .contains(&("scope".into(), "repository:shop/app:pull,push".into()))
    );

    // The human report says the same, one line per step.
    let out = rig
        .env
        .check(&[&rig.image(), "--push", "--robot-file", &robot_file])
        .run();
    assert_eq!(out.code, 0, "{out:?}");
    for title in [
        "Docker wiring",
        "Identity",
        "Token",
        "Registry auth",
        "Scopes",
        "Robot and link",
    ] {
        assert_eq!(
            out.stdout
                .lines()
                .filter(|l| l.starts_with("[ ok ] ") && l.contains(title))
                .count(),
            1,
            "{title}: {out:?}"
        );
    }
    assert!(out.stdout.contains("Result: OK"), "{out:?}");
    rig.assert_no_tokens(&out);
}

#[test]
fn pull_only_robot_asked_to_push_names_the_missing_scope() {
    let rig = Rig::linked(&["pull"]);
    let (out, r) = rig.check_json(&["--pull"]);
    assert_eq!(out.code, 0, "pull is fine: {r:?}");

    let (out, r) = rig.check_json(&["--push"]);
    assert_eq!(r.statuses(), ["ok", "ok", "ok", "ok", "fail", "skip"], "{r:?}");
    let missing = r.finding("scope.missing_actions");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("lacks push (granted: pull)"),
        "{r:?}"
    );
    assert!(missing["hint"].as_str().unwrap().contains("repository:push"), "{r:?}");
    // This robot may not list robots, so the robot step says how to provide one.
    assert!(r.summary("robot").contains("--robot-file"), "{r:?}");
    // Harbor's own view of the permissions, from the API.
    let perms = r.finding("harbor.permissions")["message"].as_str().unwrap().to_string();
    assert!(perms.ends_with("may, in project \"shop\", repository: pull"), "{perms}");
    rig.assert_no_tokens(&out);

    let robot_file = rig.robot_file("robot$shop+ci");
    let (_, r) = rig.check_json(&["--push", "--robot-file", &robot_file]);
    assert_eq!(r.status("robot"), "fail", "{r:?}");
    assert_eq!(
        r.codes("robot"),
        ["link.ok", "perm.allowed", "perm.not_granted"],
        "{r:?}"
    );
}

#[test]
fn robots_are_listed_through_the_api_when_the_identity_may() {
    let rig = Rig::new();
    let mut robot = project_robot("shop", "ci", &["pull", "push"]);
    robot["permissions"][0]["access"]
        .as_array_mut()
        .unwrap()
        .push(json!({"resource": "robot", "action": "list"}));
    rig.harbor.add_robot(robot, "Secret123");
    rig.harbor
        .add_robot(project_robot("shop", "other", &["pull"]), "Secret456");
    rig.link();
    let (_, r) = rig.check_json(&["--push"]);
    assert_eq!(r.statuses(), ["ok"; 6], "{r:?}");
    assert!(
        r.summary("robot").contains("robot$shop+ci") && r.summary("robot").contains("Harbor API"),
        "{r:?}"
    );
    assert!(r.codes("robot").contains(&"link.ok"), "{r:?}");
    assert!(rig.harbor.count("/api/v2.0/robots") >= 1);
}

#[test]
fn system_robot_with_push_but_no_pull() {
    let rig = Rig::new();
    rig.harbor.add_robot(
        system_robot(
            "ci",
            json!([{"kind": "project", "namespace": "shop", "access": [{"resource": "repository", "action": "push"}]}]),
        ),
        "Secret123",
    );
    rig.link_robot("robot$ci");
    let robot_file = rig.robot_file("robot$ci");
    let (_, r) = rig.check_json(&["--push", "--robot-file", &robot_file]);
    assert_eq!(r.status("scopes"), "fail", "{r:?}");
    assert!(
        r.finding("scope.missing_actions")["message"]
            .as_str()
            .unwrap()
            .contains("lacks pull (granted: push)")
    );
    assert_eq!(r.status("robot"), "fail", "{r:?}");
    assert!(r.codes("robot").contains(&"perm.push_without_pull"), "{r:?}");
}

#[test]
fn deny_effect_wins() {
    let rig = Rig::new();
    let mut robot = project_robot("shop", "ci", &["pull", "push"]);
    robot["permissions"][0]["access"]
        .as_array_mut()
        .unwrap()
        .push(json!({"resource": "repository", "action": "push", "effect": "deny"}));
    rig.harbor.add_robot(robot, "Secret123");
    rig.link();
    let robot_file = rig.robot_file("robot$shop+ci");
    let (_, r) = rig.check_json(&["--push", "--robot-file", &robot_file]);
    assert!(r.summary("scopes").contains("missing push"), "{r:?}");
    assert!(r.codes("robot").contains(&"perm.denied"), "{r:?}");
    assert!(r.finding("perm.denied")["hint"].as_str().unwrap().contains("deny"));
}

#[test]
fn expired_and_disabled_robots_are_refused_and_explained() {
    let rig = Rig::linked(&["pull", "push"]);
    rig.harbor.set_expires_at("robot$shop+ci", 1_000_000);
    let robot_file = rig.robot_file("robot$shop+ci");
    let (out, r) = rig.check_json(&["--robot-file", &robot_file]);
    assert_eq!(r.statuses(), ["ok", "ok", "ok", "fail", "skip", "fail"], "{r:?}");
    assert!(
        r.finding("registry.auth_rejected")["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 401")
    );
    assert!(r.codes("robot").contains(&"robot.expired"), "{r:?}");
    assert!(r.codes("robot").contains(&"link.ok"), "the link itself is fine: {r:?}");
    rig.assert_no_tokens(&out);

    rig.harbor.set_expires_at("robot$shop+ci", -1);
    rig.harbor.set_disabled("robot$shop+ci", true);
    let robot_file = rig.robot_file("robot$shop+ci");
    let (_, r) = rig.check_json(&["--robot-file", &robot_file]);
    assert_eq!(r.status("registry"), "fail", "{r:?}");
    assert!(r.codes("robot").contains(&"robot.disabled"), "{r:?}");
    assert!(!r.codes("robot").contains(&"robot.expired"), "{r:?}");
}

#[test]
fn link_email_and_id_mismatches() {
    let rig = Rig::new();
    rig.harbor
        .add_robot(project_robot("shop", "ci", &["pull"]), "Secret123");

    rig.harbor
        .link("robot$shop+ci", "someone-else@sa.stackit.cloud", &sa().sub);
    let robot_file = rig.robot_file("robot$shop+ci");
    let (_, r) = rig.check_json(&["--robot-file", &robot_file]);
    assert_eq!(r.status("registry"), "fail", "{r:?}");
    assert_eq!(r.codes("robot"), ["link.email_mismatch", "perm.allowed"], "{r:?}");
    let hint = r.finding("link.email_mismatch")["hint"].as_str().unwrap();
    assert!(hint.contains(&sa().iss), "{hint}");

    rig.harbor.link("robot$shop+ci", &sa().iss, &accounts()[1].sub);
    let robot_file = rig.robot_file("robot$shop+ci");
    let (_, r) = rig.check_json(&["--robot-file", &robot_file]);
    assert_eq!(r.codes("robot"), ["link.id_mismatch", "perm.allowed"], "{r:?}");

    rig.harbor.unlink("robot$shop+ci");
    let robot_file = rig.robot_file("robot$shop+ci");
    let (_, r) = rig.check_json(&["--robot-file", &robot_file]);
    assert_eq!(r.codes("robot"), ["link.unlinked", "perm.allowed"], "{r:?}");
    assert!(r.finding("link.unlinked")["hint"].as_str().unwrap().contains(&sa().sub));
}

#[test]
fn missing_cred_helpers_entry_fails_the_docker_step_only() {
    let rig = Rig::linked(&["pull"]);
    rig.env
        .write(".docker/config.json", r#"{"credsStore":"desktop","auths":{}}"#);
    let (out, r) = rig.check_json(&[]);
    assert_eq!(r.statuses(), ["fail", "ok", "ok", "ok", "ok", "skip"], "{r:?}");
    let f = r.finding("docker.cred_helper_missing");
    assert!(f["message"].as_str().unwrap().contains("credsStore \"desktop\""), "{f}");
    assert!(f["hint"].as_str().unwrap().contains("configure-docker"), "{f}");
    assert_eq!(out.code, 1);

    rig.env
        .path(".docker/config.json")
        .exists()
        .then(|| std::fs::remove_file(rig.env.path(".docker/config.json")));
    let (_, r) = rig.check_json(&[]);
    assert_eq!(r.codes("docker"), ["docker.config_missing"], "{r:?}");
}

#[test]
fn stale_auths_entry_is_a_warning() {
    let rig = Rig::linked(&["pull"]);
    let host = rig.harbor.host();
    rig.env.write(
        ".docker/config.json",
        &json!({"credHelpers": {&host: "stackit"}, "auths": {&host: {"auth": "cm9ib3QkeDp5"}}}).to_string(),
    );
    let (out, r) = rig.check_json(&[]);
    assert_eq!(r.status("docker"), "warn", "{r:?}");
    assert_eq!(r.codes("docker"), ["docker.stale_auths"], "{r:?}");
    assert!(
        r.finding("docker.stale_auths")["hint"]
            .as_str()
            .unwrap()
            .contains("docker logout")
    );
    assert_eq!(out.code, 0, "a warning does not fail: {out:?}");
    assert!(!out.stdout.contains("cm9ib3QkeDp5"), "the stored secret is not printed");
}

#[test]
fn helper_missing_from_path_and_unserved_host() {
    let rig = Rig::linked(&["pull"]);
    let out = rig
        .env
        .check(&[&rig.image(), "--json"])
        .env("PATH", "/usr/bin:/bin")
        .env("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "other.example")
        .run();
    let r = Report::parse(&out);
    assert_eq!(
        r.codes("docker"),
        ["docker.not_on_path", "docker.host_not_served"],
        "{r:?}"
    );
}

/// Asserts that no request `harbor` saw carried an `Authorization` header.
fn assert_no_credentials(harbor: &FakeHarbor) {
    let sent: Vec<_> = harbor
        .requests()
        .into_iter()
        .filter(|q| q.user.is_some() || q.principal != "anonymous")
        .collect();
    assert!(sent.is_empty(), "credentials were sent: {sent:?}");
}

#[test]
fn unserved_host_gets_no_credentials() {
    // The fake Harbor would accept the key's token and the robot's secret, but the helper no
    // longer serves it: check has a key, a stored robot login and a robot file with a secret
    // at hand, and sends none of them.
    let rig = Rig::linked(&["pull"]);
    let host = rig.harbor.host();
    let mut robot: Value = serde_json::from_str(&rig.harbor.robot_json("robot$shop+ci")).unwrap();
    robot["secret"] = json!("FileSecret123");
    let robot_file = rig.env.write("robot.json", &robot.to_string());
    let robot_file = robot_file.to_str().unwrap();

    let out = rig
        .env
        .check(&[&rig.image(), "--json", "--robot-file", robot_file])
        .env("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "other.example")
        .run();
    let r = Report::parse(&out);
    assert_no_credentials(&rig.harbor);
    assert_eq!(rig.stackit.requests(), 0, "no token is minted for an unserved host");
    assert_eq!(r.codes("docker"), ["docker.host_not_served"], "{r:?}");
    // No identity is loaded for it at all (not even the key file is read).
    assert_eq!(r.status("identity"), "skip", "{r:?}");
    assert!(r.summary("identity").contains("not served"), "{r:?}");
    assert_eq!(r.status("token"), "skip", "{r:?}");
    assert_eq!(r.status("registry"), "fail", "{r:?}");
    assert_eq!(r.codes("registry"), ["registry.not_served"], "{r:?}");
    let f = r.finding("registry.not_served");
    assert!(f["message"].as_str().unwrap().contains(&host), "{f}");
    let hint = f["hint"].as_str().unwrap();
    assert!(
        hint.contains("DOCKER_CREDENTIAL_STACKIT_REGISTRIES") && hint.contains(&host),
        "{f}"
    );
    // The robot file is still read, locally.
    assert!(r.summary("robot").contains("robot$shop+ci"), "{r:?}");
    assert!(!out.stdout.contains("FileSecret123"), "{out:?}");

    // A robot login stored while the host was served is not sent once it is not.
    rig.harbor.unlink("robot$shop+ci");
    let env = wired(TestEnv::empty(), &host);
    let store = json!({"ServerURL": host, "Username": "robot$shop+ci", "Secret": "Secret123"});
    env.cmd(&["store"]).stdin(store.to_string()).run();
    let out = env
        .check(&[&rig.image()])
        .env("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "other.example")
        .run();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("error registry.not_served: "), "{out:?}");
    assert_no_credentials(&rig.harbor);
}

#[test]
fn token_realm_on_another_host_gets_no_credentials() {
    let stackit = Arc::new(fake());
    let tokens = FakeHarbor::with_stackit(stackit.clone());
    tokens.add_robot(project_robot("shop", "ci", &["pull"]), "Secret123");
    tokens.link("robot$shop+ci", &sa().iss, &sa().sub);
    let registry = FakeHarbor::with_stackit(stackit.clone());
    let env = wired(TestEnv::with_key(&stackit), &registry.host());
    let image = format!("{}/shop/app", registry.host());
    let check = |env: &TestEnv| Report::parse(&env.check(&[&image, "--json"]).run());

    // A token service on another port of the same host, as registries often run it.
    registry.set_realm(Some(&tokens.realm()));
    let r = check(&env);
    assert_eq!(r.statuses()[3..5], ["ok", "ok"], "{r:?}");
    assert!(
        tokens
            .requests()
            .iter()
            .any(|q| q.path == "/service/token" && q.user.as_deref() == Some(sa().iss.as_str())),
        "{:?}",
        tokens.requests()
    );

    // The same token service under another host name: localhost is not 127.0.0.1.
    let port = tokens.host().rsplit_once(':').unwrap().1.to_string();
    let foreign = format!("http://localhost:{port}/service/token");
    registry.set_realm(Some(&foreign));
    tokens.clear_requests();
    let r = check(&env);
    assert_no_credentials(&tokens);
    assert_eq!(r.status("registry"), "fail", "{r:?}");
    assert_eq!(r.codes("registry"), ["registry.realm_not_served"], "{r:?}");
    let f = r.finding("registry.realm_not_served");
    assert!(f["message"].as_str().unwrap().contains(&foreign), "{f}");
    assert!(
        f["hint"].as_str().unwrap().contains(&format!("localhost:{port}")),
        "{f}"
    );
    assert_eq!(r.status("scopes"), "skip", "{r:?}");

    // Unless the realm's host is served too.
    let served = format!("{},localhost:{port}", registry.host());
    let env = env.var("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", &served);
    let r = check(&env);
    assert_eq!(r.statuses()[3..5], ["ok", "ok"], "{r:?}");
}

#[test]
fn outside_text_is_printed_with_control_characters_escaped() {
    // A robot name, as the Harbor API and a robot file carry it, that printed raw would clear
    // the screen, retitle the terminal window and fake a passing line.
    const EVIL: &str = "robot$ci\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\r\n[ ok ] Scopes          all good\u{7f}";
    let rig = Rig::new();
    let mut robot = system_robot(
        "ci",
        json!([
            {"kind": "system", "namespace": "/", "access": [{"resource": "robot", "action": "list"}]},
            {"kind": "project", "namespace": "shop", "access": [{"resource": "repository", "action": "pull"}]},
        ]),
    );
    robot["name"] = json!(EVIL);
    rig.harbor.add_robot(robot, "Secret123");
    rig.link_robot(EVIL);
    let robot_file = rig.robot_file(EVIL);
    let no_raw_controls = |out: &Output| {
        let raw: Vec<char> = out.stdout.chars().filter(|c| *c != '\n' && c.is_control()).collect();
        assert!(raw.is_empty(), "raw control characters {raw:?}: {out:?}");
    };

    // From the Harbor robots API, then from --robot-file.
    for extra in [&[][..], &["--robot-file", robot_file.as_str()]] {
        let image = rig.image();
        let mut args = vec!["check", image.as_str()];
        args.extend_from_slice(extra);
        let out = rig.env.cmd(&args).any_status().stdout_any().run();
        no_raw_controls(&out);
        assert!(
            out.stdout.contains(
                "Robot and link  system robot robot$ci\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{9b}31m\\r\\n[ ok ] Scopes          all good\\u{7f} from "
            ),
            "{out:?}"
        );
        let step_lines = out.stdout.lines().filter(|l| l.starts_with('[')).count();
        assert_eq!(step_lines, STEPS.len(), "one line per step, none faked: {out:?}");
    }

    // The JSON report stays valid JSON and says the same.
    let (out, r) = rig.check_json(&["--robot-file", &robot_file]);
    no_raw_controls(&out);
    let summary = r.summary("robot");
    assert!(summary.contains("robot$ci\\u{1b}[2J"), "{r:?}");
    assert!(!summary.chars().any(char::is_control), "{r:?}");
}

#[test]
fn bad_keys_are_explained() {
    let rig = Rig::linked(&["pull"]);
    // The test account's key JSON, but with another account's private key inside.
    let mut key: Value = serde_json::from_str(sa().key_json(true, None).expose()).unwrap();
    key["credentials"]["privateKey"] = json!(accounts()[1].key.pkcs8_pem().expose());
    let path = rig.env.write("sa-key.json", &key.to_string());
    set_mode(&path, 0o644);
    let out = rig.check_cmd(&[]).stderr_has("readable by other users").run();
    let r = Report::parse(&out);
    assert_eq!(r.status("identity"), "fail", "{r:?}");
    assert_eq!(
        r.codes("identity"),
        ["key.shared_mode", "key.public_key_mismatch"],
        "{r:?}"
    );
    assert!(
        r.finding("key.shared_mode")["hint"]
            .as_str()
            .unwrap()
            .starts_with("chmod 600 ")
    );
    // The endpoint refuses the assertion too; everything after the token is skipped.
    assert_eq!(r.statuses()[2..], ["fail", "skip", "skip", "skip"], "{r:?}");
    assert!(
        r.finding("token.failed")["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 400"),
        "{r:?}"
    );
    // The fix names the identity and where its endpoint came from.
    let hint = r.finding("token.failed")["hint"].as_str().unwrap();
    assert!(
        hint.contains("the service account key from STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            && hint.contains("(from STACKIT_TOKEN_BASEURL)"),
        "{hint}"
    );
    assert!(!out.stdout.contains("PRIVATE KEY"), "{out:?}");

    // An inactive, expired key.
    let mut key: Value = serde_json::from_str(sa().key_json(true, None).expose()).unwrap();
    key["active"] = json!(false);
    key["validUntil"] = json!("2020-01-01T00:00:00Z");
    rig.env.write("sa-key.json", &key.to_string());
    let (_, r) = rig.check_json(&[]);
    assert_eq!(r.codes("identity"), ["key.inactive", "key.expired"], "{r:?}");

    rig.env.write("sa-key.json", "{not json");
    let (_, r) = rig.check_json(&[]);
    assert_eq!(r.codes("identity"), ["key.unreadable"], "{r:?}");
    assert!(
        r.finding("key.unreadable")["message"]
            .as_str()
            .unwrap()
            .contains("sa-key.json"),
        "{r:?}"
    );
    assert_eq!(r.statuses()[2..], ["skip"; 4], "{r:?}");

    let env = wired(TestEnv::empty(), &rig.harbor.host());
    let out = env.check(&[&rig.image(), "--json"]).run();
    let r = Report::parse(&out);
    assert_eq!(r.codes("identity"), ["key.none"], "{r:?}");
}

#[test]
fn token_endpoint_down_fails_within_the_deadline() {
    let rig = Rig::linked(&["pull"]);
    let refused = refused_port();
    let closed = refused.addr;
    // The deadline is 3 s (time for a first attempt however slowly the process starts); the
    // builder's, 20 s, bounds what a broken deadline would cost.
    let out = rig
        .check_cmd(&[])
        .env("STACKIT_TOKEN_BASEURL", format!("http://{closed}/token"))
        .env("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3")
        .deadline(Duration::from_secs(20))
        .stderr_any()
        .run();
    let r = Report::parse(&out);
    assert_eq!(r.statuses()[2..], ["fail", "skip", "skip", "skip"], "{r:?}");
    // A network failure is named as one, with a network fix, not "check the key".
    let f = r.finding("token.unreachable");
    assert!(f["message"].as_str().unwrap().contains("unreachable"), "{f}");
    let hint = f["hint"].as_str().unwrap();
    assert!(
        hint.contains(&closed.to_string()) && hint.contains("DNS") && hint.contains("HTTPS_PROXY"),
        "{f}"
    );
    assert!(!hint.contains("service account key"), "{f}");
    assert_eq!(
        rig.harbor.requests().len(),
        0,
        "the registry is not asked without a token"
    );
}

#[test]
fn unreachable_registry() {
    let rig = Rig::linked(&["pull"]);
    let refused = refused_port();
    let closed = refused.addr.to_string();
    let env = wired(TestEnv::with_key(&rig.stackit), &closed);
    let out = env.check(&[&format!("{closed}/shop/app"), "--json"]).run();
    let r = Report::parse(&out);
    assert_eq!(r.statuses()[3..], ["fail", "skip", "skip"], "{r:?}");
    let f = r.finding("registry.unreachable");
    assert!(
        f["message"].as_str().unwrap().contains(&format!("http://{closed}/v2/")),
        "{f}"
    );
}

#[test]
fn clock_skew_against_the_token_endpoint_is_a_warning() {
    let rig = Rig::linked(&["pull"]);
    rig.stackit.set_clock_offset(-600);
    let out = rig
        .check_cmd(&[])
        .stderr_has("this machine's clock differs from the token endpoint's by 600s")
        .run();
    let r = Report::parse(&out);
    assert_eq!(r.status("token"), "warn", "{r:?}");
    let f = r.finding("token.clock_skew");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("10m ahead of the token endpoint's"),
        "{f}"
    );
    assert_eq!(out.code, 0);

    // With the token cached, the registry's Date is used instead (and agrees).
    rig.stackit.set_clock_offset(0);
    let (_, r) = rig.check_json(&[]);
    assert!(r.summary("token").contains("cached"), "{r:?}");
    assert_eq!(r.status("token"), "ok", "{r:?}");
    assert_eq!(rig.stackit.requests(), 1, "the second check used the cache");
}

#[test]
fn a_failed_registry_login_still_reports_the_clock_skew_it_measured() {
    // With the token cached, only the registry's Date can show a skewed clock; when the login
    // then fails (here: the registry rejects the token), the skew may be why, so it must be in
    // the report next to the error, not dropped with the successful path's findings.
    let rig = Rig::linked(&["pull"]);
    let (_, r) = rig.check_json(&[]);
    assert_eq!(r.status("registry"), "ok", "{r:?}");
    let token = rig.issued_tokens().pop().unwrap();
    rig.expire_at_harbor(&token);
    rig.harbor.set_clock_offset(900);
    let (out, r) = rig.check_json(&[]);
    assert_ne!(out.code, 0, "{r:?}");
    assert!(r.summary("token").contains("cached"), "{r:?}");
    assert_eq!(r.status("registry"), "fail", "{r:?}");
    r.finding("registry.auth_rejected");
    let skew = r.finding("token.clock_skew");
    assert!(skew["message"].as_str().unwrap().contains("the registry"), "{skew}");
}

#[test]
fn every_token_answer_shape_is_understood() {
    let rig = Rig::linked(&["pull"]);
    for fields in [
        TokenFields::TokenOnly,
        TokenFields::AccessTokenOnly,
        TokenFields::EmptyToken,
    ] {
        rig.harbor.set_token_fields(fields);
        let (out, r) = rig.check_json(&[]);
        assert_eq!(out.code, 0, "{fields:?}: {r:?}");
        assert!(r.summary("scopes").contains("granted pull"), "{fields:?}: {r:?}");
    }
}

#[test]
fn stored_robot_login_for_an_unlinked_robot() {
    let rig = Rig::new();
    rig.harbor
        .add_robot(project_robot("shop", "ci", &["pull", "push"]), "Secret123");
    let env = wired(TestEnv::empty(), &rig.harbor.host());
    let store = json!({"ServerURL": rig.harbor.host(), "Username": "robot$shop+ci", "Secret": "Secret123"});
    env.cmd(&["store"]).stdin(store.to_string()).run();

    let out = env.check(&[&rig.image(), "--push", "--json"]).run();
    let r = Report::parse(&out);
    assert_eq!(r.statuses(), ["ok", "ok", "skip", "ok", "ok", "skip"], "{r:?}");
    assert!(r.summary("identity").contains("robot$shop+ci"), "{r:?}");
    assert!(!out.stdout.contains("Secret123"), "{out:?}");

    // Once linked, the robot's secret stops working, and the robot step says why.
    rig.link();
    let robot_file = env.write("robot.json", &rig.harbor.robot_json("robot$shop+ci"));
    let out = env
        .check(&[&rig.image(), "--json", "--robot-file", robot_file.to_str().unwrap()])
        .run();
    let r = Report::parse(&out);
    assert_eq!(r.status("registry"), "fail", "{r:?}");
    assert!(
        r.finding("registry.auth_rejected")["hint"]
            .as_str()
            .unwrap()
            .contains("linked")
    );
    assert!(r.codes("robot").contains(&"harbor.robot_linked"), "{r:?}");
}

#[test]
fn json_report_is_stable() {
    let rig = Rig::linked(&["pull"]);
    let (out, r) = rig.check_json(&["--push"]);
    assert_eq!(out.code, 1);
    let v = &r.0;
    assert_eq!(v["version"], 1);
    assert_eq!(v["ok"], false);
    assert_eq!(v["registry"], rig.harbor.host());
    assert_eq!(v["repository"], "shop/app");
    assert_eq!(v["actions"], json!(["pull", "push"]));
    assert_eq!(v["counts"], json!({"failed": 1, "warnings": 0, "skipped": 1}));
    for step in v["steps"].as_array().unwrap() {
        assert!(
            ["ok", "warn", "fail", "skip"].contains(&step["status"].as_str().unwrap()),
            "{step}"
        );
        assert!(step["summary"].is_string());
        for f in step["findings"].as_array().unwrap() {
            assert!(
                ["info", "warning", "error"].contains(&f["severity"].as_str().unwrap()),
                "{f}"
            );
            let code = f["code"].as_str().unwrap();
            assert!(code.contains('.') && !code.contains(' '), "{code}");
            if f["severity"] == "error" {
                assert!(f["hint"].is_string(), "errors carry a fix hint: {f}");
            }
        }
    }
    assert_eq!(
        r.codes("scopes"),
        ["scope.missing_actions", "harbor.permissions"],
        "{r:?}"
    );
    rig.assert_no_tokens(&out);
}

#[test]
fn exit_codes() {
    let rig = Rig::linked(&["pull"]);
    assert_eq!(rig.env.check(&[&rig.image()]).run().code, 0);
    assert_eq!(rig.env.check(&[&rig.image(), "--push"]).run().code, 1);
    for bad in [
        &["check", "a.example", "b.example"][..],
        &["check", "--pull", "--push"],
        &["check", "--frobnicate"],
        &["check", "--robot-file"],
        &["check", "Not A Host!"],
    ] {
        let out = rig.env.cmd(bad).status(2).stdout("").stderr_has("for usage").run();
        assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    }
    let out = rig.env.check(&["--help"]).run();
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("--robot-file FILE"), "{out:?}");

    let robot_file = rig.env.write("robot.json", "[]");
    let out = rig
        .env
        .check(&[&rig.image(), "--json", "--robot-file", robot_file.to_str().unwrap()])
        .run();
    let r = Report::parse(&out);
    assert_eq!(r.codes("robot"), ["check.robot_file_invalid"], "{r:?}");
}

#[test]
fn registry_only_skips_the_scopes() {
    let rig = Rig::linked(&["pull"]);
    let out = rig.env.check(&[&rig.harbor.host(), "--json"]).run();
    let r = Report::parse(&out);
    assert_eq!(r.statuses(), ["ok", "ok", "ok", "ok", "skip", "skip"], "{r:?}");
    assert!(r.summary("scopes").contains("no image given"), "{r:?}");
    assert_eq!(r.0["repository"], Value::Null);
    rig.assert_no_tokens(&out);
}

#[test]
fn open_registry_needs_no_login() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = docker_credential_stackit::testing::fake::read_request(&mut conn);
            docker_credential_stackit::testing::fake::write_response(&mut conn, 200, "application/json", b"{}", &[]);
        }
    });
    let stackit = fake();
    let env = wired(TestEnv::with_key(&stackit), &host);
    let out = env.check(&[&format!("{host}/shop/app"), "--json"]).run();
    let r = Report::parse(&out);
    assert_eq!(r.statuses(), ["ok", "ok", "ok", "ok", "skip", "skip"], "{r:?}");
    assert_eq!(r.codes("registry"), ["registry.open"], "{r:?}");
    assert!(r.summary("scopes").contains("needs no login"), "{r:?}");
}

#[test]
fn robot_link_pointers_come_from_the_config_file() {
    let rig = Rig::linked(&["pull"]);
    // A robot JSON whose link fields have names the guessed defaults do not know.
    let mut robot: Value = serde_json::from_str(&rig.harbor.robot_json("robot$shop+ci")).unwrap();
    let obj = robot.as_object_mut().unwrap();
    let email = obj.remove("service_account_email").unwrap();
    let id = obj.remove("service_account_id").unwrap();
    obj.insert("stackit".into(), json!({"saMail": email, "saUuid": id}));
    let file = rig.env.write("renamed-robot.json", &robot.to_string());
    let file = file.to_str().unwrap();

    let (_, r) = rig.check_json(&["--pull", "--robot-file", file]);
    assert!(
        r.codes("robot").contains(&"link.unknown"),
        "defaults do not find the link: {r:?}"
    );

    let cfg = rig.env.write(
        "helper-config.json",
        &json!({"robotLink": {"emailPointer": "/stackit/saMail", "idPointer": "/stackit/saUuid"}}).to_string(),
    );
    let mut rig = rig;
    rig.env
        .set_var("DOCKER_CREDENTIAL_STACKIT_CONFIG", cfg.to_str().unwrap());
    let (_, r) = rig.check_json(&["--pull", "--robot-file", file]);
    assert!(
        r.codes("robot").contains(&"link.ok"),
        "configured pointers find it: {r:?}"
    );

    // A robot without the configured fields (a registry that hides them): unknown, never
    // "not linked", with the fields looked for and how to set the pointers.
    let plain = rig
        .env
        .write("plain-robot.json", &rig.harbor.robot_json("robot$shop+ci"));
    let (_, r) = rig.check_json(&["--pull", "--robot-file", plain.to_str().unwrap()]);
    assert!(r.codes("robot").contains(&"link.unknown"), "{r:?}");
    assert!(!r.codes("robot").contains(&"link.unlinked"), "{r:?}");
    assert!(
        r.finding("link.unknown")["message"]
            .as_str()
            .unwrap()
            .contains("robotLink.emailPointer"),
        "{r:?}"
    );
}

#[test]
fn a_robot_with_neither_pull_nor_push_is_not_granted_either() {
    // A system robot that may only read artifacts in the project: it lacks pull, and since it
    // cannot push either, the finding is plain "not granted", not "push without pull".
    let rig = Rig::new();
    rig.harbor.add_robot(
        system_robot(
            "ci",
            json!([{"kind": "project", "namespace": "shop", "access": [{"resource": "artifact", "action": "read"}]}]),
        ),
        ROBOT_SECRET,
    );
    rig.link_robot("robot$ci");
    let robot_file = rig.robot_file("robot$ci");
    for (action, codes) in [
        ("--pull", &["link.ok", "perm.not_granted"][..]),
        ("--push", &["link.ok", "perm.not_granted", "perm.not_granted"][..]),
    ] {
        let (_, r) = rig.check_json(&[action, "--robot-file", &robot_file]);
        assert_eq!(r.status("robot"), "fail", "{r:?}");
        assert_eq!(r.codes("robot"), codes, "{action}: {r:?}");
    }
}

/// The first ```text block after `marker` in the README.
fn readme_block(marker: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = &readme[readme.find(marker).unwrap_or_else(|| panic!("README lacks {marker:?}"))..];
    let start = after.find("```text\n").expect("a text block") + "```text\n".len();
    let end = start + after[start..].find("```").expect("the block's end");
    after[start..end].to_string()
}

/// `text` with what differs between runs replaced by placeholders: the fake Harbor's port, the
/// temporary HOME, the key id and the token's remaining life.
fn normalized(text: &str, host: &str, home: &str, kid: &str) -> String {
    let mut out = text
        .replace(host, "127.0.0.1:PORT")
        .replace(home, "/tmp/HOME")
        .replace(kid, "KEY-ID");
    if let Some(i) = out.find("valid for ") {
        let end = i + out[i..].find(" more").expect("valid for … more");
        out.replace_range(i..end, "valid for LIFE");
    }
    out
}

#[test]
fn the_readme_shows_the_real_check_output() {
    let rig = Rig::linked(&["pull"]);
    let robot_file = rig.robot_file(ROBOT);
    // The README shows the second run: the token is cached by then.
    rig.check_json(&["--push", "--robot-file", &robot_file]);
    let out = rig
        .env
        .check(&[&rig.image().replace(":v1", ""), "--push", "--robot-file", &robot_file])
        .status(1)
        .run();
    let actual = normalized(
        &out.stdout,
        rig.host(),
        rig.env.home.path().to_str().unwrap(),
        &sa().kid,
    );

    let readme = readme_block("Real output, from the test suite's fake Harbor");
    let field = |after: &str, end: char| {
        let i = readme
            .find(after)
            .unwrap_or_else(|| panic!("README block lacks {after:?}"))
            + after.len();
        readme[i..i + readme[i..].find(end).unwrap()].to_string()
    };
    let host = format!("127.0.0.1:{}", field("127.0.0.1:", '/'));
    let home = format!("/tmp/{}", field("/tmp/", '/'));
    let kid = field("(key ", ')');
    let expected = normalized(&readme, &host, &home, &kid);
    assert_eq!(
        actual, expected,
        "README.md's sample `check` output differs from what check prints now; update the README"
    );
}

#[test]
fn a_bad_setting_is_reported_as_a_settings_problem_not_an_unreadable_key() {
    // A script acting on codes must not be sent to fix a key that is fine.
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let config = env.write("helper.json", r#"{"registries": {"not a host!": {}}}"#);
    for (name, value) in [
        ("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "soon"),
        ("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "a b"),
        ("DOCKER_CREDENTIAL_STACKIT_CONFIG", config.to_str().unwrap()),
    ] {
        let out = env
            .cmd(&["check", "--json", HOST])
            .env(name, value)
            .status(1)
            .stderr_any()
            .stdout_any()
            .run();
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let codes: Vec<&str> = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["findings"].as_array().unwrap().iter())
            .filter_map(|f| f["code"].as_str())
            .collect();
        assert!(codes.contains(&"settings.invalid"), "{name}: {codes:?}");
        assert!(!codes.contains(&"key.unreadable"), "{name}: {codes:?}");
        assert!(
            out.stdout.contains(name) || name == "DOCKER_CREDENTIAL_STACKIT_CONFIG",
            "{name}: {}",
            out.stdout
        );
    }
    assert_eq!(fake.requests(), 0);
}

#[test]
fn a_redirect_names_where_the_endpoint_was_configured() {
    // The config file's tokenEndpoint redirects: the fix names that entry, not
    // STACKIT_TOKEN_BASEURL, which would not change anything.
    let fake = fake();
    fake.script([docker_credential_stackit::testing::fake::Reply::Status(
        302,
        String::new(),
        vec![("Location".into(), "https://elsewhere.example/token".into())],
    )]);
    let env = TestEnv::with_key(&fake);
    let config = env.write(
        "helper.json",
        &serde_json::json!({"registries": {HOST: {"tokenEndpoint": fake.url()}}}).to_string(),
    );
    let line = env
        .var("DOCKER_CREDENTIAL_STACKIT_CONFIG", config.to_str().unwrap())
        .get(HOST)
        .assert_error(&["redirected", "tokenEndpoint", "config file"]);
    assert!(!line.contains("STACKIT_TOKEN_BASEURL"), "{line}");
}
