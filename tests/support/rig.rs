//! The fakes wired together, as `check` and the end-to-end tests both need them: the fake STACKIT
//! token endpoint, the fake Harbor whose logins it verifies, and a HOME whose Docker config sends
//! the served registry host to our helper, found on `PATH` as a real client would find it.
//! docs/harbor.md says how the fake Harbor models Harbor; docs/e2e.md how the real registry and
//! clients are added on top ([`super::registry`]).

use super::harbor::{FakeHarbor, HarborConfig, Verifier, project_robot};
use super::{Cmd, TestEnv, bin, sa};
use docker_credential_stackit::testing::fake::FakeStackit;
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The robot whose permissions the tests vary, and its legacy secret.
pub const ROBOT: &str = "robot$shop+ci";
pub const ROBOT_SECRET: &str = "Secret123";

/// The fakes and an environment wired to them.
pub struct Rig {
    pub stackit: Arc<FakeStackit>,
    pub harbor: FakeHarbor,
    /// HOME, DOCKER_CONFIG and the variables every client and helper run with.
    pub env: TestEnv,
    /// The registry host the environment serves and maps to the helper.
    host: String,
    /// Every STACKIT access token the fake Harbor was shown, in order.
    seen: Arc<Mutex<Vec<String>>>,
    /// Tokens the fake Harbor treats as expired (see [`Rig::expire_at_harbor`]).
    expired: Arc<Mutex<Vec<String>>>,
}

impl Rig {
    /// The fakes, with the fake Harbor's own host served and wired; no key configured.
    pub fn bare() -> Rig {
        let fakes = Rig::fakes();
        let host = fakes.harbor.host();
        Rig::assemble(fakes, &host)
    }

    /// [`Rig::bare`] with the first test account's key configured.
    pub fn new() -> Rig {
        let mut rig = Rig::bare();
        rig.with_key();
        rig
    }

    /// A rig whose robot [`ROBOT`] may do `actions` and is linked to the test account.
    pub fn linked(actions: &[&str]) -> Rig {
        let rig = Rig::new();
        rig.robot(actions);
        rig.link();
        rig
    }

    /// A fake STACKIT endpoint and a fake Harbor that checks its tokens (and records them).
    pub fn fakes() -> Fakes {
        let stackit = Arc::new(super::fake());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let expired: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let verifier: Verifier = {
            let (stackit, seen, expired) = (stackit.clone(), seen.clone(), expired.clone());
            Arc::new(move |token: &str| {
                seen.lock().unwrap_or_else(|p| p.into_inner()).push(token.to_string());
                if expired
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .any(|t| t == token)
                {
                    return None;
                }
                stackit.verify_access_token(token)
            })
        };
        let harbor = FakeHarbor::start(HarborConfig::default(), Some(verifier));
        Fakes {
            stackit,
            harbor,
            seen,
            expired,
        }
    }

    /// A rig from its fakes, serving and wiring `host` (e.g. a real registry's).
    pub fn assemble(fakes: Fakes, host: &str) -> Rig {
        let env = wired(TestEnv::empty(), host).var("STACKIT_TOKEN_BASEURL", &fakes.stackit.url());
        Rig {
            stackit: fakes.stackit,
            harbor: fakes.harbor,
            env,
            host: host.to_string(),
            seen: fakes.seen,
            expired: fakes.expired,
        }
    }

    /// From now on the fake Harbor refuses `token` as expired, as it would once the token's
    /// `exp` has passed (without the test waiting for that).
    pub fn expire_at_harbor(&self, token: &str) {
        self.expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(token.to_string());
    }

    /// The served registry host, `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Configures the first test account's SA key for the helper (the robot's link is a
    /// separate, Harbor-side step: [`Rig::link`]).
    pub fn with_key(&mut self) {
        let path = self.env.write("sa-key.json", sa().key_json(true, None).expose());
        self.env
            .set_var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", path.to_str().unwrap());
    }

    /// Adds [`ROBOT`] with `actions` on repositories of project `shop`, unlinked.
    pub fn robot(&self, actions: &[&str]) {
        self.harbor
            .add_robot(project_robot("shop", "ci", actions), ROBOT_SECRET);
    }

    /// Links [`ROBOT`] to the first test account.
    pub fn link(&self) {
        self.link_robot(ROBOT);
    }

    /// Links `robot` to the first test account.
    pub fn link_robot(&self, robot: &str) {
        self.harbor.link(robot, &sa().iss, &sa().sub);
    }

    /// Writes `robot` as the Harbor API shows it to `robot.json` under HOME; returns the path.
    pub fn robot_file(&self, robot: &str) -> String {
        let path = self.env.write("robot.json", &self.harbor.robot_json(robot));
        path.to_str().unwrap().to_string()
    }

    /// `HOST/shop/app:v1`.
    pub fn image(&self) -> String {
        format!("{}/shop/app:v1", self.host)
    }

    /// Our binary, as a user would run it, with the rig's environment.
    pub fn helper(&self, args: &[&str]) -> Cmd {
        self.env.cmd(args)
    }

    /// The STACKIT access tokens the fake Harbor has been shown so far.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// (username, principal) of every token-service request to the fake Harbor that carried
    /// Basic credentials: who each client logged in as, and which robot that was mapped to.
    pub fn logins(&self) -> Vec<(String, String)> {
        logins(&self.harbor)
    }

    /// Every access token the fake STACKIT endpoint has issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.stackit
            .issued_tokens()
            .iter()
            .map(|t| t.expose().to_string())
            .collect()
    }

    /// Docker's config file (`$DOCKER_CONFIG/config.json`).
    pub fn docker_config(&self) -> PathBuf {
        self.env.path(".docker/config.json")
    }

    /// Docker's config, parsed.
    pub fn docker_config_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.docker_config()).expect("read config.json");
        serde_json::from_str(&text).expect("config.json is JSON")
    }

    /// Rewrites Docker's config.
    pub fn write_docker_config(&self, config: &serde_json::Value) {
        self.env.write(".docker/config.json", &config.to_string());
    }

    /// The helper's stored robot credentials file.
    pub fn robots_file(&self) -> PathBuf {
        self.env.path(".local/share/docker-credential-stackit/robots.json")
    }
}

/// (username, principal) of every token-service request `harbor` saw with Basic credentials.
pub fn logins(harbor: &FakeHarbor) -> Vec<(String, String)> {
    harbor
        .requests()
        .into_iter()
        .filter(|r| r.path == "/service/token")
        .filter_map(|r| r.user.map(|u| (u, r.principal)))
        .collect()
}

/// The fakes before they are wired to a host ([`Rig::fakes`], [`Rig::assemble`]).
pub struct Fakes {
    pub stackit: Arc<FakeStackit>,
    pub harbor: FakeHarbor,
    seen: Arc<Mutex<Vec<String>>>,
    expired: Arc<Mutex<Vec<String>>>,
}

/// Serves `host` and maps it to the helper in Docker's config (`$DOCKER_CONFIG/config.json`
/// under HOME), with `PATH` starting with a directory that holds only
/// `docker-credential-stackit`, as a user's set-up would.
pub fn wired(env: TestEnv, host: &str) -> TestEnv {
    let home = env.home.path().to_path_buf();
    let bin_dir = home.join("bin");
    if !bin_dir.exists() {
        std::fs::create_dir_all(&bin_dir).expect("bin dir");
        std::os::unix::fs::symlink(bin(), bin_dir.join("docker-credential-stackit")).expect("symlink the helper");
    }
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let env = env
        .var("PATH", &path)
        .var("DOCKER_CONFIG", home.join(".docker").to_str().expect("UTF-8 temp path"))
        .var("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", host);
    env.write(
        ".docker/config.json",
        &json!({"credHelpers": {host: "stackit"}}).to_string(),
    );
    env
}

/// Isolates real clients (skopeo, the Docker CLI) from the machine's own credentials and state:
/// - XDG_* under the temp HOME, so neither client can find a credential file outside the test;
/// - REGISTRY_AUTH_FILE = Docker's config.json: skopeo then reads only that file (its
///   `credHelpers` included) and never the machine-wide `/run/containers/0/auth.json`;
/// - `_CONTAINERS_ROOTLESS_UID` makes containers/image treat the (root) test like a user and
///   keep its blob-info cache under XDG_DATA_HOME instead of the machine-wide
///   `/var/lib/containers/cache`, which would be shared between tests and runs;
/// - DOCKER_HOST points at a socket that does not exist, so `docker login` always takes its
///   client-side path (which calls the credential helper) even where a daemon runs.
pub fn isolate_clients(env: TestEnv) -> TestEnv {
    let home = env.home.path().to_path_buf();
    let s = |p: PathBuf| p.to_str().expect("UTF-8 temp path").to_string();
    env.var("REGISTRY_AUTH_FILE", &s(home.join(".docker/config.json")))
        .var("XDG_CONFIG_HOME", &s(home.join(".config")))
        .var("XDG_DATA_HOME", &s(home.join(".local/share")))
        .var("XDG_CACHE_HOME", &s(home.join(".cache")))
        .var("_CONTAINERS_ROOTLESS_UID", "1000")
        .var(
            "DOCKER_HOST",
            &format!("unix://{}", home.join("no-daemon.sock").display()),
        )
}
