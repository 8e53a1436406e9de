//! `check [IMAGE-OR-REGISTRY] [--pull|--push] [--json] [--robot-file FILE]`: explains, in one
//! run, whether this machine can pull or push an image and, if not, what to change.
//!
//! Six steps run in order; a step whose input an earlier failure took away is reported as
//! skipped, with the reason, instead of adding a confusing second failure:
//!
//! 1. **docker** ([`docker`]): `credHelpers` in Docker's config, shadowing `auths`/`credsStore`
//!    entries, the binary on `PATH`, the host served by this helper.
//! 2. **identity** ([`identity`]): which key source won, file modes, `active`, `validUntil`,
//!    private key usable and matching `publicKey`.
//! 3. **token**: a STACKIT access token (cached or minted), its lifetime, clock skew.
//! 4. **registry** ([`registry`]): the `/v2/` challenge and a login at the token realm without a
//!    scope, where Harbor answers bad credentials with 401.
//! 5. **scopes**: the registry token for the repository, decoded with the validator; Harbor's
//!    own view of the identity's permissions when its API answers.
//! 6. **robot** ([`robot`]): the robot's link and permissions, from `--robot-file` or the
//!    Harbor robots API.
//!
//! Tokens never appear in the report. Plain http is used only towards loopback registries.
//! No credential goes to a registry the helper does not serve (the token and registry steps
//! refuse, as `get` does), nor to a token realm on another host name unless that host is
//! served. Control characters in the report's text are escaped ([`crate::terminal::escape`]).

pub mod docker;
pub mod identity;
pub mod registry;
pub mod report;
pub mod robot;
pub mod target;

pub use report::{Report, Step};
pub use target::Target;

use crate::clock::unix_now;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::validate::{Finding, SaIdentity};
use std::ffi::OsString;
use std::path::PathBuf;

/// `check --help`.
pub const USAGE: &str = "\
Usage: docker-credential-stackit check [IMAGE-OR-REGISTRY] [--pull|--push] [--json] [--robot-file FILE]

Explains whether this machine can pull (default) or push IMAGE, step by step:
Docker wiring, identity (key), token, registry login, granted scopes, robot link.

  IMAGE-OR-REGISTRY  registry.onstackit.cloud/<project>/<repo>[:tag], a bare
                     <project>/<repo> (on registry.onstackit.cloud), or a registry
                     host[:port]; default registry.onstackit.cloud
  --pull, --push     the access to check (push checks pull and push)
  --json             print a machine-readable report with stable finding codes
  --robot-file FILE  the robot's JSON (or a robot list) from the Harbor API, for the
                     link and permission checks when this identity may not list robots

Exit status: 0 nothing failed, 1 a step failed, 2 usage error.
";

/// Stable codes of the findings `check` adds to the validator's (see
/// [`crate::validate::codes`]). Codes are only ever added, never renamed.
pub mod codes {
    /// Docker's config file does not exist.
    pub const DOCKER_CONFIG_MISSING: &str = "docker.config_missing";
    /// Docker's config file cannot be read or is not a JSON object.
    pub const DOCKER_CONFIG_INVALID: &str = "docker.config_invalid";
    /// No `credHelpers` entry for the host: Docker will not call this helper.
    pub const DOCKER_CRED_HELPER_MISSING: &str = "docker.cred_helper_missing";
    /// The host's `credHelpers` entry names another helper.
    pub const DOCKER_CRED_HELPER_OTHER: &str = "docker.cred_helper_other";
    /// A `credHelpers` key that means the host but is not spelt exactly as Docker looks it up.
    pub const DOCKER_CRED_HELPER_KEY: &str = "docker.cred_helper_key";
    /// An `auths` entry for the host holds a stored secret that tools reading only `auths` use.
    pub const DOCKER_STALE_AUTHS: &str = "docker.stale_auths";
    /// A `credsStore` is configured (info when `credHelpers` wins for the host).
    pub const DOCKER_CREDS_STORE: &str = "docker.creds_store";
    /// A containers auth file (podman, skopeo, buildah) stores a login for the host, which those
    /// tools use before Docker's `credHelpers`.
    pub const DOCKER_CONTAINERS_AUTH: &str = "docker.containers_auth";
    /// `docker-credential-stackit` is not on `PATH`, so Docker cannot run it.
    pub const DOCKER_NOT_ON_PATH: &str = "docker.not_on_path";
    /// The binary on `PATH` is not the one running `check`.
    pub const DOCKER_OTHER_BINARY: &str = "docker.other_binary";
    /// The helper does not serve the host, so `get` answers "not found".
    pub const DOCKER_HOST_NOT_SERVED: &str = "docker.host_not_served";

    /// The helper's settings cannot be loaded: a bad environment variable (a timeout that is no
    /// number, a registry list entry that is no host) or an unusable config file.
    pub const SETTINGS_INVALID: &str = "settings.invalid";
    /// A variable of ours (or nearly) or a credentials file key that is set but not used: a
    /// typo, named with the closest known name.
    pub const SETTINGS_UNKNOWN_NAME: &str = "settings.unknown_name";

    /// No service account key (and no stored robot login) for the host.
    pub const KEY_NONE: &str = "key.none";
    /// Which key source won, and which were ignored (info).
    pub const KEY_SOURCE: &str = "key.source";
    /// The host has no key but a stored legacy robot login, which is used (info).
    pub const KEY_ROBOT_LOGIN: &str = "key.robot_login";
    /// The key (or the settings naming it) cannot be read or parsed.
    pub const KEY_UNREADABLE: &str = "key.unreadable";
    /// A key file is readable by other users.
    pub const KEY_SHARED_MODE: &str = "key.shared_mode";
    /// The key file says `"active": false`.
    pub const KEY_INACTIVE: &str = "key.inactive";
    /// The key's `validUntil` has passed.
    pub const KEY_EXPIRED: &str = "key.expired";
    /// The key's `validUntil` is within 7 days.
    pub const KEY_EXPIRES_SOON: &str = "key.expires_soon";
    /// The key's `validUntil` is not an RFC 3339 time (warning: expiry not checked).
    pub const KEY_VALID_UNTIL_UNREADABLE: &str = "key.valid_until_unreadable";
    /// The private key is missing, encrypted or not an RSA key.
    pub const KEY_PRIVATE_KEY_INVALID: &str = "key.private_key_invalid";
    /// The private key does not belong to the key file's `publicKey`.
    pub const KEY_PUBLIC_KEY_MISMATCH: &str = "key.public_key_mismatch";
    /// `publicKey` is present but not a PEM public key or certificate (warning: not compared).
    pub const KEY_PUBLIC_KEY_UNREADABLE: &str = "key.public_key_unreadable";

    /// The federated identity: e-mail, token source and the token's claims (info).
    pub const FEDERATED_IDENTITY: &str = "federated.identity";
    /// The federated token is missing, unreadable, not a JWT or expired.
    pub const FEDERATED_TOKEN_INVALID: &str = "federated.token_invalid";
    /// The federated token's audience is not STACKIT's usual one (warning).
    pub const FEDERATED_AUDIENCE: &str = "federated.audience";

    /// No access token: the token endpoint (or a CI provider's) was not reached (DNS,
    /// connection, no answer in time); a network problem, not the key's.
    pub const TOKEN_UNREACHABLE: &str = "token.unreachable";
    /// No access token: the exchange failed and no usable cached token exists.
    pub const TOKEN_FAILED: &str = "token.failed";
    /// This machine's clock differs from the server's by more than a minute.
    pub const TOKEN_CLOCK_SKEW: &str = "token.clock_skew";

    /// The registry cannot be reached, or `/v2/` answered something unexpected.
    pub const REGISTRY_UNREACHABLE: &str = "registry.unreachable";
    /// `/v2/` does not challenge for a bearer token (not a Harbor or distribution registry).
    pub const REGISTRY_UNEXPECTED_CHALLENGE: &str = "registry.unexpected_challenge";
    /// The registry needs no authentication (info).
    pub const REGISTRY_OPEN: &str = "registry.open";
    /// The token realm is plain http to a non-loopback host; credentials are not sent there.
    pub const REGISTRY_REALM_INSECURE: &str = "registry.realm_insecure";
    /// The helper does not serve the registry, so `check` sends it no credentials and does
    /// not log in.
    pub const REGISTRY_NOT_SERVED: &str = "registry.not_served";
    /// The token realm is on another host name than the registry, and the helper does not
    /// serve that host; credentials are not sent there.
    pub const REGISTRY_REALM_NOT_SERVED: &str = "registry.realm_not_served";
    /// The token service refused the credentials (HTTP 401 without a scope).
    pub const REGISTRY_AUTH_REJECTED: &str = "registry.auth_rejected";
    /// The token service failed (5xx, unreachable) or answered without a token.
    pub const REGISTRY_TOKEN_SERVICE_FAILED: &str = "registry.token_service_failed";

    /// Harbor's own list of the identity's permissions in the project (info).
    pub const HARBOR_PERMISSIONS: &str = "harbor.permissions";
    /// The Harbor API did not answer a question; the step goes on without it (info).
    pub const HARBOR_API_UNAVAILABLE: &str = "harbor.api_unavailable";
    /// Robots were listed, but none is linked to this identity.
    pub const HARBOR_NO_LINKED_ROBOT: &str = "harbor.no_linked_robot";
    /// The robot of a stored robot login is linked to a service account, so its secret no
    /// longer works.
    pub const HARBOR_ROBOT_LINKED: &str = "harbor.robot_linked";

    /// `--robot-file` cannot be read or is not robot JSON.
    pub const CHECK_ROBOT_FILE_INVALID: &str = "check.robot_file_invalid";

    /// Every code above, for the test that they are unique.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        DOCKER_CONFIG_MISSING,
        DOCKER_CONFIG_INVALID,
        DOCKER_CRED_HELPER_MISSING,
        DOCKER_CRED_HELPER_OTHER,
        DOCKER_CRED_HELPER_KEY,
        DOCKER_STALE_AUTHS,
        DOCKER_CREDS_STORE,
        DOCKER_CONTAINERS_AUTH,
        DOCKER_NOT_ON_PATH,
        DOCKER_OTHER_BINARY,
        DOCKER_HOST_NOT_SERVED,
        SETTINGS_INVALID,
        SETTINGS_UNKNOWN_NAME,
        KEY_NONE,
        KEY_SOURCE,
        KEY_ROBOT_LOGIN,
        KEY_UNREADABLE,
        KEY_SHARED_MODE,
        KEY_INACTIVE,
        KEY_EXPIRED,
        KEY_EXPIRES_SOON,
        KEY_VALID_UNTIL_UNREADABLE,
        KEY_PRIVATE_KEY_INVALID,
        KEY_PUBLIC_KEY_MISMATCH,
        KEY_PUBLIC_KEY_UNREADABLE,
        FEDERATED_IDENTITY,
        FEDERATED_TOKEN_INVALID,
        FEDERATED_AUDIENCE,
        TOKEN_UNREACHABLE,
        TOKEN_FAILED,
        TOKEN_CLOCK_SKEW,
        REGISTRY_UNREACHABLE,
        REGISTRY_UNEXPECTED_CHALLENGE,
        REGISTRY_OPEN,
        REGISTRY_REALM_INSECURE,
        REGISTRY_NOT_SERVED,
        REGISTRY_REALM_NOT_SERVED,
        REGISTRY_AUTH_REJECTED,
        REGISTRY_TOKEN_SERVICE_FAILED,
        HARBOR_PERMISSIONS,
        HARBOR_API_UNAVAILABLE,
        HARBOR_NO_LINKED_ROBOT,
        HARBOR_ROBOT_LINKED,
        CHECK_ROBOT_FILE_INVALID,
    ];
}

/// The parsed command line of `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// What to check: the registry, the repository if an image was given, and the actions.
    pub(crate) target: Target,
    /// Print the JSON report.
    pub json: bool,
    /// Robot JSON to check instead of asking the Harbor API.
    pub(crate) robot_file: Option<PathBuf>,
    /// Print [`USAGE`] and do nothing else.
    pub help: bool,
}

impl Options {
    /// Parses the arguments after `check`; errors are [`Error::Usage`] (exit status 2).
    pub fn parse(args: &[String]) -> Result<Options> {
        let (mut target, mut json, mut help, mut robot_file) = (None, false, false, None);
        let (mut pull, mut push) = (false, false);
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--pull" => pull = true,
                "--push" => push = true,
                "--json" => json = true,
                "-h" | "--help" => help = true,
                "--robot-file" => {
                    let file = args
                        .next()
                        .ok_or_else(|| Error::Usage("--robot-file needs a FILE argument".into()))?;
                    robot_file = Some(PathBuf::from(file));
                }
                a if a.starts_with("--robot-file=") => {
                    robot_file = Some(PathBuf::from(&a["--robot-file=".len()..]));
                }
                a if a.starts_with('-') && a.len() > 1 => {
                    return Err(Error::Usage(format!("check: unknown option {a:?}")));
                }
                a => {
                    if target.is_some() {
                        return Err(Error::Usage(format!(
                            "check takes one IMAGE-OR-REGISTRY argument, got a second one: {a:?}"
                        )));
                    }
                    target = Some(a.to_string());
                }
            }
        }
        if pull && push {
            return Err(Error::Usage(
                "check: give --pull or --push, not both (--push checks pull too)".into(),
            ));
        }
        if robot_file
            .as_deref()
            .is_some_and(|p: &std::path::Path| p.as_os_str().is_empty())
        {
            return Err(Error::Usage("--robot-file needs a FILE argument".into()));
        }
        Ok(Options {
            target: Target::parse(target.as_deref(), push)?,
            json,
            robot_file,
            help,
        })
    }
}

/// What `check` reads from the process environment besides the helper's own settings.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `DOCKER_CONFIG`: the directory of Docker's `config.json`.
    pub(crate) docker_config: Option<PathBuf>,
    /// The home directory (for `~/.docker` and `~/.config`).
    pub(crate) home: Option<PathBuf>,
    /// `PATH`, to find the binary Docker will run.
    pub(crate) path: Option<OsString>,
    /// The running binary, to compare with the one on `PATH`.
    pub(crate) current_exe: Option<PathBuf>,
    /// `REGISTRY_AUTH_FILE` (podman, skopeo, buildah).
    pub(crate) registry_auth_file: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR` (for `containers/auth.json`).
    pub(crate) xdg_runtime_dir: Option<PathBuf>,
    /// `XDG_CONFIG_HOME` (for `containers/auth.json`).
    pub(crate) xdg_config_home: Option<PathBuf>,
}

impl Environment {
    /// What the environment snapshot says. Empty variables count as unset.
    pub fn from_env(env: &crate::config::Env) -> Environment {
        let path_var = |name: &str| env.os(name).map(PathBuf::from);
        Environment {
            docker_config: path_var("DOCKER_CONFIG"),
            home: env.home().map(PathBuf::from),
            path: env.os("PATH").map(std::ffi::OsStr::to_os_string),
            current_exe: std::env::current_exe().ok(),
            registry_auth_file: path_var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: path_var("XDG_RUNTIME_DIR"),
            xdg_config_home: path_var("XDG_CONFIG_HOME"),
        }
    }
}

/// Runs every step and returns the report. `settings` is passed in already loaded so that a
/// broken helper configuration becomes a failed step rather than an early exit.
pub fn run(options: &Options, env: &Environment, settings: Result<Settings>) -> Report {
    let target = &options.target;
    let now = unix_now();
    let settings = settings.map_err(|e| (e.code(), e.to_string()));
    let served = settings.as_ref().ok().map(|s| s.serves(&target.host));
    let mut steps = vec![docker::step(&target.host, env, served)];

    let settings = match settings {
        Ok(s) => s,
        Err((code, e)) => {
            steps.extend(settings_failed(code, e));
            return finish(target, steps);
        }
    };

    // `get` answers "not found" for a host it does not serve, so check must not hand that
    // host (or whoever answers for it) a token or robot secret either: it gets no ServedHost,
    // so no identity is loaded, no token fetched, no CI provider asked, and nothing logs in.
    let served_host = settings.served_host(&target.host);
    let served = served_host.is_some();
    let identity = identity::step(&settings, served_host.as_ref(), now);
    steps.push(with_near_misses(identity.step, &settings));
    let expected: Option<SaIdentity> = identity.expected;

    let (token_step, login) = if served {
        identity::token_step(&settings, identity.credential)
    } else {
        (token_not_fetched(&target.host), None)
    };
    let skew_measured = token_step.skew_measured;
    steps.push(token_step.step);

    let mut session = None;
    let mut no_session = "skipped: not logged in to the registry";
    match login {
        _ if !served => steps.push(registry::not_served_step(&target.host)),
        Some(login) => {
            let outcome = registry::login_step(&settings, target, login, !skew_measured);
            if outcome.step.passed() && outcome.session.is_none() {
                no_session = "skipped: the registry needs no login, so it grants everything it serves";
            }
            steps.push(outcome.step);
            session = outcome.session;
        }
        None => steps.push(Step::skipped(
            "registry",
            "skipped: no credentials to log in with (see the steps above)",
        )),
    }

    let (scopes, project_id) = scopes_step(session.as_ref(), target, no_session);
    steps.push(scopes);

    // Configured or guessed, pointers that find none of the fields say "unknown", never
    // "unlinked": a registry may hide them.
    let pointers = match settings.robot_link() {
        Some(link) => crate::validate::LinkPointers::new(link.email_pointer.clone(), link.id_pointer.clone()),
        None => crate::validate::LinkPointers::default(),
    };
    steps.push(robot::step(
        options.robot_file.as_deref(),
        target,
        session.as_ref(),
        project_id,
        expected.as_ref(),
        &pointers,
        now,
    ));
    finish(target, steps)
}

/// The token step for a host that is not served: skipped, since nothing may be fetched for it.
fn token_not_fetched(host: &str) -> identity::TokenOutcome {
    identity::TokenOutcome {
        step: Step::skipped(
            "token",
            format!("skipped: {host} is not served, so no token is fetched for it"),
        ),
        skew_measured: false,
    }
}

/// The scopes step (and the Harbor project id it found), or why it was skipped.
fn scopes_step(session: Option<&registry::Session>, target: &Target, no_session: &str) -> (Step, Option<i64>) {
    match (session, &target.repository) {
        (_, None) => (
            Step::skipped(
                "scopes",
                "skipped: no image given; run check <registry>/<project>/<repo> to check a repository's scopes",
            ),
            None,
        ),
        (None, Some(_)) => (Step::skipped("scopes", no_session), None),
        (Some(session), Some(repo)) => {
            let outcome = registry::scopes_step(session, repo, &target.actions);
            (outcome.step, outcome.project_id)
        }
    }
}

/// The steps after the identity step when the settings cannot be loaded: one failure naming the
/// problem, and the rest skipped.
fn settings_failed(code: &'static str, message: String) -> Vec<Step> {
    let mut steps = vec![Step::ran(
        "identity",
        "the helper's settings cannot be loaded",
        vec![Finding::error(
            code,
            message,
            "fix the variable or file named in the message",
        )],
    )];
    for step in ["token", "registry", "scopes", "robot"] {
        steps.push(Step::skipped(step, "no identity"));
    }
    steps
}

/// The identity step with the near misses (unknown variables and credentials-file keys) added.
fn with_near_misses(step: Step, settings: &Settings) -> Step {
    let misses = settings.near_misses();
    if misses.is_empty() {
        // A skipped step stays skipped.
        return step;
    }
    let mut findings = step.findings;
    findings.extend(misses.into_iter().map(|miss| {
        Finding::warning(
            codes::SETTINGS_UNKNOWN_NAME,
            miss,
            "fix the name: the helper ignores what it does not know",
        )
    }));
    Step::ran(step.step, step.summary, findings)
}

fn finish(target: &Target, steps: Vec<Step>) -> Report {
    Report::new(
        target.host.clone(),
        target.repository.clone(),
        target.actions.clone(),
        steps,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags_and_one_target() {
        let o = Options::parse(&args(&[
            "r.example/shop/app",
            "--push",
            "--json",
            "--robot-file",
            "r.json",
        ]))
        .unwrap();
        assert_eq!(o.target.host, "r.example");
        assert_eq!(o.target.repository.as_deref(), Some("shop/app"));
        assert_eq!(o.target.actions, ["pull", "push"]);
        assert!(o.json && !o.help);
        assert_eq!(o.robot_file, Some(PathBuf::from("r.json")));
        let o = Options::parse(&args(&["--robot-file=x.json", "--pull"])).unwrap();
        assert_eq!(o.robot_file, Some(PathBuf::from("x.json")));
        assert_eq!(o.target.host, "registry.onstackit.cloud");
        assert_eq!(o.target.actions, ["pull"]);
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["--pull", "--push"][..],
            &["a", "b"],
            &["--robot-file"],
            &["--robot-file="],
            &["--verbose"],
            &["bad host!/x/y"],
        ] {
            let err = Options::parse(&args(bad)).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn codes_are_unique_and_distinct_from_the_validators() {
        let mut seen = std::collections::HashSet::new();
        for code in codes::ALL.iter().chain(crate::validate::codes::ALL) {
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{code}"
            );
        }
    }
}
