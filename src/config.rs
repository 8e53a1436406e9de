//! Settings from the environment, the STACKIT credentials file and the helper's own config file,
//! and the answer to "which service account key serves this host?".
//!
//! Precedence, most specific first (see the README's "How identity is chosen"):
//! 1. the helper config file's entry for the host (`registries.<host>.serviceAccountKeyPath` or
//!    `registries.<host>.serviceAccountEmail` for a federated identity);
//! 2. a federated identity from the environment: `STACKIT_SERVICE_ACCOUNT_EMAIL` and a federated
//!    token (`STACKIT_FEDERATED_TOKEN_FILE`, the webhook's default file, or GitHub Actions);
//! 3. `STACKIT_SERVICE_ACCOUNT_KEY_PATH`, then `STACKIT_SERVICE_ACCOUNT_KEY`;
//! 4. the STACKIT credentials file (`STACKIT_CREDENTIALS_PATH`, default `~/.stackit/credentials.json`).

use crate::error::{Error, Result};
use crate::federated::{DEFAULT_IDP_TOKEN_ENDPOINT, TokenSource};
use crate::identity::{FederatedSpec, Identity, IdentitySpec, KeySpec, Source};
use crate::log::debug;
use crate::secret::Secret;
use crate::server_url::{self, DEFAULT_REGISTRY};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long after an endpoint was not reached further cold `get`s of the same identity answer
/// with that failure at once instead of waiting out the deadline again.
pub const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(15);

/// The default total deadline of a cold `get`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Name of the helper's own directories under the platform config, cache and data dirs.
pub const APP_DIR: &str = "docker-credential-stackit";

/// Every environment variable the helper reads. The README and `help` list the same set.
pub const ENV_VARS: &[&str] = &[
    "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
    "STACKIT_SERVICE_ACCOUNT_KEY",
    "STACKIT_PRIVATE_KEY_PATH",
    "STACKIT_PRIVATE_KEY",
    "STACKIT_CREDENTIALS_PATH",
    "STACKIT_TOKEN_BASEURL",
    "STACKIT_SERVICE_ACCOUNT_EMAIL",
    "STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN",
    "STACKIT_FEDERATED_TOKEN_FILE",
    "STACKIT_IDP_TOKEN_ENDPOINT",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SYSTEM_OIDCREQUESTURI",
    "SYSTEM_ACCESSTOKEN",
    "STACKIT_SERVICE_CONNECTION_ID",
    "DOCKER_CREDENTIAL_STACKIT_CONFIG",
    "DOCKER_CREDENTIAL_STACKIT_REGISTRIES",
    "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR",
    "DOCKER_CREDENTIAL_STACKIT_NO_CACHE",
    "DOCKER_CREDENTIAL_STACKIT_TIMEOUT",
    "DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW",
    "DOCKER_CREDENTIAL_STACKIT_LOG",
];

/// The identity sources of a host in the order they win (README, "How identity is chosen").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    ConfigFile,
    FederatedEnv,
    EnvKey,
    CredentialsFile,
}

/// Variables of the STACKIT SDKs, CLI and pod identity webhook that this helper does not use
/// but that legitimately sit next to its own: never reported as near misses.
const OTHER_STACKIT_VARS: &[&str] = &[
    "STACKIT_SERVICE_ACCOUNT_TOKEN",
    "STACKIT_IDP_TOKEN_EXPIRATION_SECONDS",
    "STACKIT_USE_OIDC",
    "STACKIT_REGION",
    "STACKIT_PROJECT_ID",
    "STACKIT_ORGANIZATION_ID",
];

/// The keys of the STACKIT credentials file that the SDKs know (the helper reads the four key
/// ones; a token there is the SDKs' deprecated flow).
const CREDENTIALS_FILE_KEYS: &[&str] = &[
    "STACKIT_SERVICE_ACCOUNT_KEY_PATH",
    "STACKIT_SERVICE_ACCOUNT_KEY",
    "STACKIT_PRIVATE_KEY_PATH",
    "STACKIT_PRIVATE_KEY",
    "STACKIT_SERVICE_ACCOUNT_TOKEN",
];

/// The known name closest to `name` (at most a few edits away), for "did you mean" hints.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (name.len() / 6).clamp(2, 4);
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A variable of ours (or nearly) that the helper does not know: `DOCKER_CREDENTIAL_STACKIT_*`
/// or a `STACKIT_*` a few edits from one it reads. With the closest known name, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable {
    /// The name as set.
    pub name: String,
    /// The known name it is closest to.
    pub closest: Option<&'static str>,
}

impl std::fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the variable {} is set but not used by docker-credential-stackit",
            self.name
        )?;
        match self.closest {
            Some(known) => write!(f, "; did you mean {known}?"),
            None => Ok(()),
        }
    }
}

/// `name` as an [`UnknownVariable`], if it is one: ours by prefix but unknown, or a near miss
/// of a `STACKIT_*` name we read.
fn unknown_variable(name: &str) -> Option<UnknownVariable> {
    if ENV_VARS.contains(&name) || OTHER_STACKIT_VARS.contains(&name) {
        return None;
    }
    let closest = closest(name, ENV_VARS);
    if name.starts_with("DOCKER_CREDENTIAL_STACKIT_") || (name.starts_with("STACKIT_") && closest.is_some()) {
        Some(UnknownVariable {
            name: name.to_string(),
            closest,
        })
    } else {
        None
    }
}

/// Variables of the system and of other tools that the helper reads besides its own
/// ([`ENV_VARS`]) and the proxy variables (`http::PROXY_VARS`): the home directory and
/// PATH, and where Docker and containers/image keep their files. Kept as they are (paths need
/// not be UTF-8).
pub const SYSTEM_VARS: &[&str] = &[
    "HOME",
    "PATH",
    "DOCKER_CONFIG",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "APPDATA",
    "LOCALAPPDATA",
];

/// The directory a variable names if it is an absolute path, else `default` under `home`.
#[cfg(not(target_os = "macos"))]
fn absolute_or(system: &Vars<std::ffi::OsString>, name: &str, home: &Path, default: &str) -> PathBuf {
    system
        .get(name)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(default))
}

/// A few variables by name: a list, not a map, for the dozen a snapshot holds.
#[derive(Debug, Clone)]
struct Vars<V>(Vec<(String, V)>);

impl<V> Default for Vars<V> {
    fn default() -> Self {
        Vars(Vec::new())
    }
}

impl<V> Vars<V> {
    fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Sets `name` (the environment holds each name once; a later value wins, as in a map).
    fn insert(&mut self, name: String, value: V) {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value));
    }
}

impl<V> FromIterator<(String, V)> for Vars<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut vars = Vars::default();
        for (name, value) in iter {
            vars.insert(name, value);
        }
        vars
    }
}

/// The platform's per-user config, cache and data directories (the helper's own are
/// [`APP_DIR`] under them), worked out from the snapshot,
/// so that no other code reads the XDG variables behind it.
struct UserDirs {
    config: PathBuf,
    cache: PathBuf,
    data: PathBuf,
}

impl UserDirs {
    /// macOS: `~/Library/Application Support` (config and data) and `~/Library/Caches`.
    #[cfg(target_os = "macos")]
    fn of(home: &Path, _system: &Vars<std::ffi::OsString>) -> UserDirs {
        let support = home.join("Library/Application Support");
        UserDirs {
            config: support.clone(),
            cache: home.join("Library/Caches"),
            data: support,
        }
    }

    /// The XDG base directories: `$XDG_CONFIG_HOME`, `$XDG_CACHE_HOME`, `$XDG_DATA_HOME` when
    /// set to an absolute path (the specification ignores relative ones), else `~/.config`,
    /// `~/.cache` and `~/.local/share`.
    #[cfg(not(any(target_os = "macos", windows)))]
    fn of(home: &Path, system: &Vars<std::ffi::OsString>) -> UserDirs {
        let base = |name, default| absolute_or(system, name, home, default);
        UserDirs {
            config: base("XDG_CONFIG_HOME", ".config"),
            cache: base("XDG_CACHE_HOME", ".cache"),
            data: base("XDG_DATA_HOME", ".local/share"),
        }
    }

    /// Windows: `%APPDATA%` (config and data) and `%LOCALAPPDATA%` (cache), else their usual
    /// places under the profile.
    #[cfg(windows)]
    fn of(home: &Path, system: &Vars<std::ffi::OsString>) -> UserDirs {
        let folder = |name, default| absolute_or(system, name, home, default);
        let roaming = folder("APPDATA", "AppData/Roaming");
        UserDirs {
            config: roaming.clone(),
            cache: folder("LOCALAPPDATA", "AppData/Local"),
            data: roaming,
        }
    }
}

/// Whether the snapshot keeps `name` as a system variable ([`Env::os`]).
fn is_system_var(name: &str) -> bool {
    SYSTEM_VARS.contains(&name) || crate::http::PROXY_VARS.contains(&name) || crate::http::NO_PROXY_VARS.contains(&name)
}

/// A snapshot of the environment, the only reader of the process environment: only non-empty
/// values count, as in the STACKIT SDKs.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vars<String>,
    /// [`SYSTEM_VARS`] that are set and non-empty.
    system: Vars<std::ffi::OsString>,
    /// Our variables (or near misses of them) that are set but not used.
    unknown: Vec<UnknownVariable>,
    home: Option<PathBuf>,
    config_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    /// The federated token file used when `STACKIT_FEDERATED_TOKEN_FILE` is unset.
    default_token_file: PathBuf,
}

impl Env {
    /// Reads the process environment (in one pass) and the platform's per-user directories.
    pub fn from_process() -> Env {
        let mut vars = Vars::default();
        let mut unknown = Vec::new();
        let mut system = Vars::default();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if is_system_var(name) {
                if !value.is_empty() {
                    system.insert(name.to_string(), value);
                }
            } else if ENV_VARS.contains(&name) {
                if let Some(value) = value.to_str().filter(|v| !v.is_empty()) {
                    vars.insert(name.to_string(), value.to_string());
                }
            } else if name.starts_with("STACKIT_") || name.starts_with("DOCKER_CREDENTIAL_STACKIT_") {
                unknown.extend(unknown_variable(name));
            }
        }
        let home = system.get("HOME").map(PathBuf::from).or_else(|| {
            // Only now: std then asks the user database (see the module docs of nss).
            crate::nss::builtin_services_only(crate::nss::Database::Passwd);
            std::env::home_dir().filter(|h| !h.as_os_str().is_empty())
        });
        let dirs = home.as_deref().map(|home| UserDirs::of(home, &system));
        Env {
            vars,
            system,
            unknown,
            config_dir: dirs.as_ref().map(|d| d.config.join(APP_DIR)),
            cache_dir: dirs.as_ref().map(|d| d.cache.join(APP_DIR)),
            data_dir: dirs.map(|d| d.data.join(APP_DIR)),
            home,
            default_token_file: PathBuf::from(crate::federated::DEFAULT_TOKEN_FILE),
        }
    }

    /// An environment made of the given variables and a home directory (for tests).
    #[doc(hidden)]
    pub fn from_pairs(pairs: &[(&str, &str)], home: &Path) -> Env {
        Env {
            vars: pairs
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            unknown: pairs.iter().filter_map(|(k, _)| unknown_variable(k)).collect(),
            system: pairs
                .iter()
                .filter(|(k, v)| is_system_var(k) && !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect(),
            home: Some(home.to_path_buf()),
            config_dir: Some(home.join(".config").join(APP_DIR)),
            cache_dir: Some(home.join(".cache").join(APP_DIR)),
            data_dir: Some(home.join(".local/share").join(APP_DIR)),
            default_token_file: home.join("federated-token"),
        }
    }

    /// The value of a variable, if set and non-empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// A `SYSTEM_VARS` variable, if set and non-empty.
    pub(crate) fn os(&self, name: &str) -> Option<&std::ffi::OsStr> {
        debug_assert!(is_system_var(name), "{name} is not a system variable of the snapshot");
        self.system.get(name).map(|v| v.as_os_str())
    }

    /// The home directory (from HOME, else the user database).
    pub(crate) fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }

    /// The STACKIT credentials file: `STACKIT_CREDENTIALS_PATH` (and `true`: named
    /// explicitly), else `~/.stackit/credentials.json`; `None` without a home directory.
    fn credentials_path(&self) -> Result<Option<(PathBuf, bool)>> {
        Ok(match self.var("STACKIT_CREDENTIALS_PATH") {
            Some(p) => Some((path_value(p, "STACKIT_CREDENTIALS_PATH", None, self)?, true)),
            None => self
                .home
                .as_ref()
                .map(|h| (h.join(".stackit").join("credentials.json"), false)),
        })
    }

    /// The proxy variables, for the HTTP client.
    pub(crate) fn proxies(&self) -> crate::http::Proxies {
        crate::http::Proxies::from_lookup(|name| self.system.get(name).cloned())
    }

    /// Our variables, or near misses of them, that are set but not used.
    pub(crate) fn unknown_variables(&self) -> &[UnknownVariable] {
        &self.unknown
    }

    fn no_home(&self) -> Error {
        Error::Config("cannot find the home directory; set HOME".into())
    }
}

/// The helper's config file (`DOCKER_CREDENTIAL_STACKIT_CONFIG`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFile {
    /// Token endpoint for every identity without its own.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Registry host -> how to authenticate there. Every listed host is served.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryEntry>,
    /// Where `check` finds a robot's linked service account in Harbor's robot JSON. STACKIT does
    /// not document the field names, so the defaults are guesses; set these once they are known.
    #[serde(default)]
    pub robot_link: Option<RobotLink>,
}

/// JSON pointers (RFC 6901) into a Harbor robot's JSON, e.g. `/service_account/email`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RobotLink {
    /// Pointer to the linked service account's e-mail.
    pub email_pointer: String,
    /// Pointer to the linked service account's id.
    pub id_pointer: String,
}

/// Every field name of the config file: top level, a registry entry, `robotLink`. The
/// documentation (README, man page) is tested against this list, and this list against the
/// structs below.
pub const CONFIG_FIELDS: &[&str] = &[
    "tokenEndpoint",
    "registries",
    "robotLink",
    "serviceAccountKeyPath",
    "privateKeyPath",
    "serviceAccountEmail",
    "federatedTokenFile",
    "username",
    "emailPointer",
    "idPointer",
];

/// One registry in the config file. An empty entry serves the host with the default identity.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryEntry {
    /// SA key JSON for this host; wins over the environment.
    #[serde(default)]
    pub service_account_key_path: Option<String>,
    /// PEM private key for this host's key, if not embedded in it.
    #[serde(default)]
    pub private_key_path: Option<String>,
    /// A federated identity for this host: the service account's e-mail.
    #[serde(default)]
    pub service_account_email: Option<String>,
    /// The federated token file of that identity (default: as in the environment).
    #[serde(default)]
    pub federated_token_file: Option<String>,
    /// Token endpoint for this host's key, or the IdP token endpoint of its federated identity.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Username to answer instead of the key's `credentials.iss`.
    #[serde(default)]
    pub username: Option<String>,
}

impl RegistryEntry {
    /// The configured username, unless it is blank (blank means "not configured").
    fn username(&self) -> Option<String> {
        self.username.clone().filter(|u| !u.trim().is_empty())
    }
}

/// A registry `host[:port]` that the settings serve. Only [`Settings::served_host`] makes one,
/// and everything that hands out or uses a credential (the identity of a host, its token, the
/// robot login kept for it) takes one: "no credential for a host we do not serve" holds by
/// construction instead of by every caller remembering to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedHost(String);

impl ServedHost {
    /// The normalised `host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything the verbs need to know, loaded once per process.
#[derive(Debug)]
pub struct Settings {
    /// Served hosts, normalised, in a stable order.
    pub(crate) served: Vec<String>,
    /// Token cache directory, or `None` when disabled.
    pub(crate) cache_dir: Option<PathBuf>,
    /// Directory for stored legacy robot credentials.
    pub(crate) data_dir: Option<PathBuf>,
    /// Total deadline of a cold token fetch, including lock waits and retries.
    pub(crate) timeout: Duration,
    /// When this command's time is up: loaded + `timeout`. Waiting for a key, token or config
    /// file that is a pipe ends here.
    pub(crate) deadline: Instant,
    /// How long a recorded network failure of an identity answers for it without a new try
    /// (`DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW`; zero: always try).
    pub(crate) failure_window: Duration,
    env: Env,
    file: ConfigFile,
    file_dir: PathBuf,
    registries: BTreeMap<String, RegistryEntry>,
}

/// The flat STACKIT credentials file: keys are the env var names.
#[derive(Debug, Default, Deserialize)]
struct CredentialsFile {
    #[serde(rename = "STACKIT_SERVICE_ACCOUNT_KEY_PATH")]
    key_path: Option<String>,
    #[serde(rename = "STACKIT_SERVICE_ACCOUNT_KEY")]
    key: Option<String>,
    #[serde(rename = "STACKIT_PRIVATE_KEY_PATH")]
    private_key_path: Option<String>,
    #[serde(rename = "STACKIT_PRIVATE_KEY")]
    private_key: Option<String>,
}

impl Settings {
    /// Loads settings from a given environment snapshot.
    pub fn from_env(env: Env) -> Result<Settings> {
        let timeout = match env.var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT") {
            None => DEFAULT_TIMEOUT,
            Some(v) => parse_timeout(v)?,
        };
        let deadline = Instant::now() + timeout;
        let failure_window = match env.var("DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW") {
            None => DEFAULT_FAILURE_WINDOW,
            Some(v) => parse_failure_window(v)?,
        };
        let (config_path, explicit) = match env.var("DOCKER_CREDENTIAL_STACKIT_CONFIG") {
            Some(p) => (path_value(p, "DOCKER_CREDENTIAL_STACKIT_CONFIG", None, &env)?, true),
            None => (env.config_dir.clone().unwrap_or_default().join("config.json"), false),
        };
        let file = read_config_file(&config_path, explicit, deadline)?;
        let file_dir = config_path.parent().map(Path::to_path_buf).unwrap_or_default();

        let mut served = vec![DEFAULT_REGISTRY.to_string()];
        let mut registries = BTreeMap::new();
        for (host, entry) in &file.registries {
            let norm = server_url::normalize(host).ok_or_else(|| {
                Error::Config(format!(
                    "config file {}: \"{host}\" is not a registry host[:port]",
                    config_path.display()
                ))
            })?;
            push_unique(&mut served, norm.clone());
            registries.insert(norm, entry.clone());
        }
        if let Some(list) = env.var("DOCKER_CREDENTIAL_STACKIT_REGISTRIES") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let norm = server_url::normalize(item).ok_or_else(|| {
                    Error::Config(format!(
                        "DOCKER_CREDENTIAL_STACKIT_REGISTRIES: \"{item}\" is not a registry host[:port]"
                    ))
                })?;
                push_unique(&mut served, norm);
            }
        }

        let no_cache = env.var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE").is_some_and(truthy);
        let cache_dir = match (no_cache, env.var("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR")) {
            (true, _) => None,
            (false, Some(dir)) => Some(path_value(dir, "DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", None, &env)?),
            (false, None) => env.cache_dir.clone(),
        };
        let data_dir = env.data_dir.clone();
        debug!(
            "config file {} ({})",
            config_path.display(),
            if file.registries.is_empty() && file.token_endpoint.is_none() {
                "absent or empty"
            } else {
                "loaded"
            }
        );
        debug!("served hosts: {}", served.join(", "));
        for unknown in env.unknown_variables() {
            crate::log::warn!("{unknown}");
        }
        Ok(Settings {
            served,
            cache_dir,
            data_dir,
            timeout,
            deadline,
            failure_window,
            env,
            file,
            file_dir,
            registries,
        })
    }

    /// True if `host` (already normalised) is served.
    pub(crate) fn serves(&self, host: &str) -> bool {
        self.served.iter().any(|h| h == host)
    }

    /// `server_url` as a `ServedHost` when it names a served host (any form clients send:
    /// `host`, `host:port`, `https://host/v2/`); `None` otherwise.
    pub fn served_host(&self, server_url: &str) -> Option<ServedHost> {
        server_url::normalize(server_url)
            .filter(|host| self.serves(host))
            .map(ServedHost)
    }

    /// Every served host.
    pub(crate) fn served_hosts(&self) -> impl Iterator<Item = ServedHost> + '_ {
        self.served.iter().cloned().map(ServedHost)
    }

    /// What the token service needs of these settings.
    pub(crate) fn token_policy(&self) -> crate::token::Policy {
        crate::token::Policy {
            cache_dir: self.cache_dir.clone(),
            deadline: self.deadline,
            timeout: self.timeout,
            failure_window: self.failure_window,
            proxies: self.env.proxies(),
        }
    }

    /// The environment snapshot these settings came from.
    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    /// The config file's `robotLink` pointers, if set.
    pub(crate) fn robot_link(&self) -> Option<&RobotLink> {
        self.file.robot_link.as_ref()
    }

    /// Which identity serves `host`, or `None` if none is configured anywhere.
    pub(crate) fn identity_spec(&self, host: &ServedHost) -> Result<Option<IdentitySpec>> {
        let host = host.as_str();
        let entry = self.registries.get(host).cloned().unwrap_or_default();
        // The sources in the order they win (README, "How identity is chosen").
        if let Some(spec) = self.config_entry_identity(host, &entry)? {
            return Ok(Some(spec));
        }
        if let Some(spec) = self.env_federated_identity(host, &entry)? {
            return Ok(Some(spec));
        }
        self.env_key_identity(host, &entry)
    }

    /// The host's entry in the config file: a key or a federated identity, if it names one.
    fn config_entry_identity(&self, host: &str, entry: &RegistryEntry) -> Result<Option<IdentitySpec>> {
        let username = entry.username();
        let field = format!("registries.\"{host}\"");
        if let Some(email) = entry.service_account_email.as_deref().filter(|e| !e.trim().is_empty()) {
            if entry.service_account_key_path.is_some() {
                return Err(Error::Config(format!(
                    "config file: {field} has both serviceAccountKeyPath and serviceAccountEmail; keep one (a key, or a federated identity)"
                )));
            }
            let source = match &entry.federated_token_file {
                Some(path) => {
                    let origin = format!("{field}.federatedTokenFile");
                    TokenSource::File {
                        path: self.config_relative(path, &origin)?,
                        origin,
                    }
                }
                None => self.env_token_source()?.ok_or_else(|| {
                    Error::Config(format!(
                        "config file: {field}.serviceAccountEmail is set but there is no federated token; set {field}.federatedTokenFile or STACKIT_FEDERATED_TOKEN_FILE"
                    ))
                })?,
            };
            debug!("{host}: federated identity {email} from the config file ({field}); it wins over the environment");
            self.debug_losers(host, Rank::ConfigFile);
            let (endpoint, endpoint_origin) = match &entry.token_endpoint {
                Some(url) => (url.clone(), format!("{field}.tokenEndpoint")),
                None => self.idp_endpoint(),
            };
            return Ok(Some(IdentitySpec::Federated(FederatedSpec {
                email: email.trim().to_string(),
                email_origin: format!("{field}.serviceAccountEmail"),
                source,
                endpoint,
                endpoint_origin,
                username,
            })));
        }
        let Some(path) = &entry.service_account_key_path else {
            return Ok(None);
        };
        let origin = format!("{field}.serviceAccountKeyPath");
        debug!("{host}: key from the config file ({origin}); it wins over the environment");
        self.debug_losers(host, Rank::ConfigFile);
        let private_key = match &entry.private_key_path {
            Some(p) => {
                let origin = format!("{field}.privateKeyPath");
                Some(Source::File {
                    path: self.config_relative(p, &origin)?,
                    origin,
                })
            }
            None => None,
        };
        Ok(Some(IdentitySpec::Key(KeySpec {
            key: Source::File {
                path: self.config_relative(path, &origin)?,
                origin,
            },
            private_key,
            endpoint: self.configured_endpoint(entry),
            username,
        })))
    }

    /// A federated identity from the environment: `STACKIT_SERVICE_ACCOUNT_EMAIL` and a token
    /// source. The e-mail alone does not switch a key user to keyless.
    fn env_federated_identity(&self, host: &str, entry: &RegistryEntry) -> Result<Option<IdentitySpec>> {
        let Some(email) = self.env.var("STACKIT_SERVICE_ACCOUNT_EMAIL") else {
            return Ok(None);
        };
        let Some(source) = self.env_token_source()? else {
            debug!(
                "{host}: STACKIT_SERVICE_ACCOUNT_EMAIL is set but there is no federated token (STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN, STACKIT_FEDERATED_TOKEN_FILE, {}, GitHub Actions, Azure Pipelines); looking for a key",
                self.env.default_token_file.display()
            );
            return Ok(None);
        };
        debug!(
            "{host}: federated identity {email} (STACKIT_SERVICE_ACCOUNT_EMAIL) with the token from {}; it wins over service account keys",
            source.describe()
        );
        for loser in self.passed_over_token_sources() {
            debug!("{host}: {loser}");
        }
        self.debug_losers(host, Rank::FederatedEnv);
        let (endpoint, endpoint_origin) = self.idp_endpoint();
        Ok(Some(IdentitySpec::Federated(FederatedSpec {
            email: email.trim().to_string(),
            email_origin: "STACKIT_SERVICE_ACCOUNT_EMAIL".into(),
            source,
            endpoint,
            endpoint_origin,
            username: entry.username(),
        })))
    }

    /// A key from the environment, else from the STACKIT credentials file; `None` without one.
    fn env_key_identity(&self, host: &str, entry: &RegistryEntry) -> Result<Option<IdentitySpec>> {
        let creds = CredentialsLoader::new(&self.env, self.deadline);
        let in_env = self.key_in_env();
        if self.env.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH").is_some()
            && self.env.var("STACKIT_SERVICE_ACCOUNT_KEY").is_some()
        {
            debug!(
                "STACKIT_SERVICE_ACCOUNT_KEY_PATH wins over STACKIT_SERVICE_ACCOUNT_KEY (path before content, as in the STACKIT SDK)"
            );
        }
        let key = match self.env_source("STACKIT_SERVICE_ACCOUNT_KEY_PATH", "STACKIT_SERVICE_ACCOUNT_KEY")? {
            Some(source) => Some(source),
            None => creds.key()?,
        };
        let Some(key) = key else {
            debug!(
                "{host}: no service account key in the config file, STACKIT_SERVICE_ACCOUNT_KEY_PATH, STACKIT_SERVICE_ACCOUNT_KEY or the credentials file"
            );
            if self.env.var("STACKIT_PRIVATE_KEY_PATH").is_some() || self.env.var("STACKIT_PRIVATE_KEY").is_some() {
                crate::log::warn!(
                    "a STACKIT private key is set but no service account key; set STACKIT_SERVICE_ACCOUNT_KEY_PATH to the key JSON"
                );
            }
            return Ok(None);
        };
        debug!("{host}: key from {}", key.describe());
        self.debug_losers(host, if in_env { Rank::EnvKey } else { Rank::CredentialsFile });
        let private_key = match self.env_source("STACKIT_PRIVATE_KEY_PATH", "STACKIT_PRIVATE_KEY")? {
            Some(source) => Some(source),
            None => creds.private_key()?,
        };
        if let Some(p) = &private_key {
            debug!(
                "{host}: private key from {} (overrides credentials.privateKey)",
                p.describe()
            );
        }
        Ok(Some(IdentitySpec::Key(KeySpec {
            key,
            private_key,
            endpoint: self.configured_endpoint(entry),
            username: entry.username(),
        })))
    }

    /// The federated token source the environment names, in the STACKIT CLI's order:
    /// `STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN` (the token itself, as GitLab's `id_tokens:`
    /// provides it), then `STACKIT_FEDERATED_TOKEN_FILE` when set (a missing file is then an
    /// error, not a reason to fall back), else the webhook's default file if it exists, else
    /// GitHub Actions, else Azure Pipelines.
    pub(crate) fn env_token_source(&self) -> Result<Option<TokenSource>> {
        if let Some(token) = self.env.var("STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN") {
            return Ok(Some(TokenSource::Inline {
                token: Secret::new(token.trim()),
                origin: "STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN".into(),
            }));
        }
        if let Some(path) = self.env.var("STACKIT_FEDERATED_TOKEN_FILE") {
            return Ok(Some(TokenSource::File {
                path: path_value(
                    path,
                    "STACKIT_FEDERATED_TOKEN_FILE",
                    Some("STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN"),
                    &self.env,
                )?,
                origin: "STACKIT_FEDERATED_TOKEN_FILE".into(),
            }));
        }
        if self.env.default_token_file.exists() {
            return Ok(Some(TokenSource::File {
                path: self.env.default_token_file.clone(),
                origin: "the pod identity webhook's token file".into(),
            }));
        }
        Ok(
            match (
                self.env.var("ACTIONS_ID_TOKEN_REQUEST_URL"),
                self.env.var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
            ) {
                (Some(url), Some(token)) => Some(TokenSource::GithubActions {
                    url: url.to_string(),
                    request_token: Secret::new(token),
                }),
                _ => match (
                    self.env.var("SYSTEM_OIDCREQUESTURI"),
                    self.env.var("SYSTEM_ACCESSTOKEN"),
                ) {
                    (Some(url), Some(token)) => Some(TokenSource::AzurePipelines {
                        url: url.to_string(),
                        access_token: Secret::new(token),
                        service_connection: self.env.var("STACKIT_SERVICE_CONNECTION_ID").map(str::to_string),
                    }),
                    _ => None,
                },
            },
        )
    }

    /// At debug level: the identity sources for `host` that are present but lose to `winner`,
    /// each named (the README promises the winner and the losers).
    fn debug_losers(&self, host: &str, winner: Rank) {
        if !crate::log::enabled(crate::log::Level::Debug) {
            return;
        }
        let federated =
            self.env.var("STACKIT_SERVICE_ACCOUNT_EMAIL").is_some() && !self.present_token_sources().is_empty();
        let credentials_file = self.env.credentials_path().ok().flatten().map(|(p, _)| p);
        let present = [
            (
                Rank::FederatedEnv,
                federated,
                "a federated identity from STACKIT_SERVICE_ACCOUNT_EMAIL",
            ),
            (
                Rank::EnvKey,
                self.key_in_env(),
                "the key from STACKIT_SERVICE_ACCOUNT_KEY_PATH/STACKIT_SERVICE_ACCOUNT_KEY",
            ),
            (
                Rank::CredentialsFile,
                credentials_file.is_some_and(|p| p.exists()),
                "the STACKIT credentials file",
            ),
        ];
        for (_, _, loser) in present.iter().filter(|(rank, set, _)| *set && *rank > winner) {
            debug!("{host}: {loser} is present but not used: a source earlier in the order wins");
        }
    }

    /// The federated token sources present in the environment that [`Settings::env_token_source`]
    /// passed over, each with why: a source earlier in the STACKIT CLI's order won.
    pub(crate) fn passed_over_token_sources(&self) -> Vec<String> {
        let present = self.present_token_sources();
        let Some((winner, losers)) = present.split_first() else {
            return Vec::new();
        };
        losers
            .iter()
            .map(|name| format!("{name} is present but not used: {winner} comes first"))
            .collect()
    }

    /// Whether the environment names a service account key (its path or its content).
    fn key_in_env(&self) -> bool {
        self.env.var("STACKIT_SERVICE_ACCOUNT_KEY_PATH").is_some()
            || self.env.var("STACKIT_SERVICE_ACCOUNT_KEY").is_some()
    }

    /// The federated token sources the environment provides, named, in the order
    /// [`Settings::env_token_source`] tries them (the first one is the one it uses).
    fn present_token_sources(&self) -> Vec<&'static str> {
        let present = [
            (
                "STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN",
                self.env.var("STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN").is_some(),
            ),
            (
                "STACKIT_FEDERATED_TOKEN_FILE",
                self.env.var("STACKIT_FEDERATED_TOKEN_FILE").is_some(),
            ),
            (
                "the pod identity webhook's token file",
                self.env.var("STACKIT_FEDERATED_TOKEN_FILE").is_none() && self.env.default_token_file.exists(),
            ),
            (
                "GitHub Actions (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN)",
                self.env.var("ACTIONS_ID_TOKEN_REQUEST_URL").is_some()
                    && self.env.var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").is_some(),
            ),
            (
                "Azure Pipelines (SYSTEM_OIDCREQUESTURI/SYSTEM_ACCESSTOKEN)",
                self.env.var("SYSTEM_OIDCREQUESTURI").is_some() && self.env.var("SYSTEM_ACCESSTOKEN").is_some(),
            ),
        ];
        present.iter().filter(|(_, set)| *set).map(|(name, _)| *name).collect()
    }

    /// The IdP token endpoint of federated identities from the environment and its origin.
    pub(crate) fn idp_endpoint(&self) -> (String, String) {
        match self.env.var("STACKIT_IDP_TOKEN_ENDPOINT") {
            Some(url) => (url.to_string(), "STACKIT_IDP_TOKEN_ENDPOINT".into()),
            None => (DEFAULT_IDP_TOKEN_ENDPOINT.to_string(), "the default".into()),
        }
    }

    /// The identity serving `host`, loaded, or `None` if none is configured.
    pub fn identity(&self, host: &ServedHost) -> Result<Option<Identity>> {
        match self.identity_spec(host)? {
            Some(spec) => crate::identity::load(&spec, self.deadline).map(Some),
            None => Ok(None),
        }
    }

    /// A file named by `path_var`, else the content of `content_var` (path wins, as in the SDKs).
    fn env_source(&self, path_var: &str, content_var: &str) -> Result<Option<Source>> {
        if let Some(p) = self.env.var(path_var) {
            return Ok(Some(Source::File {
                path: path_value(p, path_var, Some(content_var), &self.env)?,
                origin: path_var.into(),
            }));
        }
        Ok(self.env.var(content_var).map(|text| Source::Inline {
            text: Secret::new(text),
            origin: content_var.into(),
        }))
    }

    fn configured_endpoint(&self, entry: &RegistryEntry) -> Option<(String, String)> {
        if let Some(url) = &entry.token_endpoint {
            return Some((url.clone(), "the config file's registry entry (tokenEndpoint)".into()));
        }
        if let Some(url) = self.env.var("STACKIT_TOKEN_BASEURL") {
            return Some((url.to_string(), "STACKIT_TOKEN_BASEURL".into()));
        }
        self.file
            .token_endpoint
            .as_ref()
            .map(|url| (url.clone(), "the config file (tokenEndpoint)".into()))
    }

    /// A path entry of the config file (`origin`), relative to the file's directory. The
    /// config file holds paths only; content there is refused unquoted.
    fn config_relative(&self, path: &str, origin: &str) -> Result<PathBuf> {
        let p = path_value(path, &format!("the config file's {origin}"), None, &self.env)?;
        Ok(if p.is_relative() { self.file_dir.join(p) } else { p })
    }
}

/// Reads the STACKIT credentials file at most once, and only if a value is needed from it.
struct CredentialsLoader<'a> {
    env: &'a Env,
    deadline: Instant,
    /// The file once read; an error is not kept (it ends the caller's work, keeping its type).
    loaded: std::cell::OnceCell<Option<(CredentialsFile, PathBuf)>>,
}

impl<'a> CredentialsLoader<'a> {
    fn new(env: &'a Env, deadline: Instant) -> Self {
        CredentialsLoader {
            env,
            deadline,
            loaded: std::cell::OnceCell::new(),
        }
    }

    fn file(&self) -> Result<Option<&(CredentialsFile, PathBuf)>> {
        if let Some(loaded) = self.loaded.get() {
            return Ok(loaded.as_ref());
        }
        let read = self.read()?;
        Ok(self.loaded.get_or_init(|| read).as_ref())
    }

    fn read(&self) -> Result<Option<(CredentialsFile, PathBuf)>> {
        let Some((path, explicit)) = self.env.credentials_path()? else {
            return Ok(None);
        };
        let origin = if explicit {
            "STACKIT_CREDENTIALS_PATH"
        } else {
            "the STACKIT credentials file"
        };
        let (text, shared_mode) = match crate::key::read_private_file(&path, origin, self.deadline) {
            Ok(read) => read,
            Err(Error::File(e)) if !explicit && e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        for (key, closest) in unknown_credentials_keys(text.expose()) {
            crate::log::warn!("{}", unknown_key_message(&path, &key, closest));
        }
        let file: CredentialsFile = serde_json::from_str(text.expose()).map_err(|e| {
            Error::Config(format!(
                "credentials file {} is not a JSON object of STACKIT_* strings (line {} column {})",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        debug!("credentials file {} loaded", path.display());
        // Only a file that holds a key needs to be private; one that names a key file does not.
        let holds_a_key = [&file.key, &file.private_key]
            .iter()
            .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()));
        if let Some(mode) = shared_mode.filter(|_| holds_a_key) {
            crate::key::warn_shared("credentials file (it holds a key)", &path, mode);
        }
        Ok(Some((file, path)))
    }

    fn key(&self) -> Result<Option<Source>> {
        match self.file()? {
            Some((file, path)) => self.source(path, &file.key_path, &file.key, "STACKIT_SERVICE_ACCOUNT_KEY"),
            None => Ok(None),
        }
    }

    fn private_key(&self) -> Result<Option<Source>> {
        // A broken credentials file only matters if it is the source of the key itself.
        match self.file() {
            Ok(Some((file, path))) => {
                self.source(path, &file.private_key_path, &file.private_key, "STACKIT_PRIVATE_KEY")
            }
            _ => Ok(None),
        }
    }

    /// The file named by the `<name>_PATH` entry (relative to the credentials file), else the
    /// content of the `<name>` entry.
    fn source(
        &self,
        file: &Path,
        path: &Option<String>,
        content: &Option<String>,
        name: &str,
    ) -> Result<Option<Source>> {
        if let Some(p) = path.as_deref().filter(|s| !s.is_empty()) {
            let origin = format!("{name}_PATH in {}", file.display());
            let content = format!("{name} (in the same file)");
            let p = path_value(p, &origin, Some(&content), self.env)?;
            let dir = file.parent().unwrap_or(Path::new("."));
            return Ok(Some(Source::File {
                path: if p.is_relative() { dir.join(p) } else { p },
                origin,
            }));
        }
        Ok(content.as_deref().filter(|s| !s.is_empty()).map(|t| Source::Inline {
            text: Secret::new(t),
            origin: format!("{name} in {}", file.display()),
        }))
    }
}

/// The keys of a credentials file's JSON that no STACKIT tool knows, each with the closest
/// known key. Text that is no JSON object yields none (its parse error is reported instead).
fn unknown_credentials_keys(text: &str) -> Vec<(String, Option<&'static str>)> {
    let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) else {
        return Vec::new();
    };
    map.keys()
        .filter(|k| !CREDENTIALS_FILE_KEYS.contains(&k.as_str()))
        .map(|k| (k.clone(), closest(k, CREDENTIALS_FILE_KEYS)))
        .collect()
}

/// The warning for an unknown key in the credentials file at `path`.
fn unknown_key_message(path: &Path, key: &str, closest: Option<&str>) -> String {
    let hint = closest.map(|c| format!("; did you mean {c}?")).unwrap_or_default();
    format!(
        "credentials file {}: the entry {} is not used{hint}",
        path.display(),
        crate::terminal::escape(&format!("{key:?}"))
    )
}

impl Settings {
    /// Near misses a person should hear about: our variables that are set but unknown, and
    /// unknown keys in the STACKIT credentials file (read again, cheaply, for `check`).
    pub(crate) fn near_misses(&self) -> Vec<String> {
        let mut found: Vec<String> = self.env.unknown_variables().iter().map(ToString::to_string).collect();
        if let Some((path, _)) = self.env.credentials_path().ok().flatten()
            && let Ok((text, _)) = crate::key::read_private_file(&path, "the STACKIT credentials file", self.deadline)
        {
            for (key, closest) in unknown_credentials_keys(text.expose()) {
                found.push(unknown_key_message(&path, &key, closest));
            }
        }
        found
    }
}

/// Config files larger than this are refused: a real one is a few hundred bytes, and an
/// unbounded read of `/dev/zero` or a runaway file would eat memory on every `docker pull`.
const MAX_CONFIG_FILE: u64 = 1024 * 1024;

fn read_config_file(path: &Path, explicit: bool, deadline: Instant) -> Result<ConfigFile> {
    let text = match crate::fs::read_text_file(path, MAX_CONFIG_FILE, deadline) {
        Ok(text) => text,
        Err(e) if e.is_not_found() && !explicit => return Ok(ConfigFile::default()),
        Err(e) => {
            let file = path.display();
            return Err(Error::Config(format!(
                "cannot read config file {file} (DOCKER_CREDENTIAL_STACKIT_CONFIG): {}",
                e.reason_for("docker-credential-stackit config")
            )));
        }
    };
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    // The config file holds paths and host names, never secrets, so serde's message is safe and
    // names the offending field (e.g. a misspelt key).
    serde_json::from_str(&text).map_err(|e| Error::Config(format!("config file {} is invalid: {e}", path.display())))
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn parse_timeout(v: &str) -> Result<Duration> {
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::Config(format!(
            "DOCKER_CREDENTIAL_STACKIT_TIMEOUT={v:?} is not a number of seconds greater than 0 and at most 3600 (default 20)"
        ))),
    }
}

fn parse_failure_window(v: &str) -> Result<Duration> {
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::Config(format!(
            "DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW={v:?} is not a number of seconds from 0 (off) to 3600 (default {})",
            DEFAULT_FAILURE_WINDOW.as_secs()
        ))),
    }
}

/// The path a `*_PATH`/`*_FILE` setting (or a config or credentials file's path entry) names,
/// `~/` expanded. A value that is clearly content rather than a path (the key JSON, a PEM
/// block, a JWT, several lines, more than a path can hold: an easy mistake with CI secrets) is
/// an error that says what it looks like and where content goes (`content`), and never quotes
/// it: messages about a path print the path, and clients like skopeo copy them into CI logs.
fn path_value(value: &str, origin: &str, content: Option<&str>, env: &Env) -> Result<PathBuf> {
    if let Some(what) = looks_like_content(value) {
        let instead = match content {
            Some(var) => format!("put the content in {var} instead, or set {origin} to the file's path"),
            None => format!("set {origin} to a file's path"),
        };
        return Err(Error::Config(format!(
            "{origin} holds {what}, not a file path (not shown, it may be secret); {instead}"
        )));
    }
    expand_home(value, env)
}

/// What `value` looks like when it cannot be a path but looks like a key, token or other
/// content; `None` for anything that may be a path.
fn looks_like_content(value: &str) -> Option<&'static str> {
    let trimmed = value.trim();
    if trimmed.contains("-----BEGIN") || trimmed.contains("PRIVATE KEY") {
        Some("a PEM block (a private key)")
    } else if trimmed.starts_with('{') || trimmed.contains("\"privateKey\"") {
        Some("JSON (the key file's content)")
    } else if crate::redact::contains_jwt(trimmed) {
        Some("a JWT (a token)")
    } else if value.contains(['\n', '\r']) {
        Some("several lines of text")
    } else if value.len() > 4096 {
        Some("more text than a path can hold")
    } else {
        None
    }
}

fn expand_home(path: &str, env: &Env) -> Result<PathBuf> {
    match path.strip_prefix("~/") {
        Some(rest) => Ok(env.home.as_ref().ok_or_else(|| env.no_home())?.join(rest)),
        None => Ok(PathBuf::from(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_spec(spec: IdentitySpec) -> KeySpec {
        match spec {
            IdentitySpec::Key(k) => k,
            IdentitySpec::Federated(f) => panic!("expected a key identity, got {f:?}"),
        }
    }

    fn settings(pairs: &[(&str, &str)], home: &Path) -> Settings {
        Settings::from_env(Env::from_pairs(pairs, home)).unwrap()
    }

    #[test]
    fn config_fields_lists_exactly_the_fields_the_file_accepts() {
        // Every listed name is accepted somewhere, and a name that is not listed is refused.
        for field in CONFIG_FIELDS {
            let accepted = [serde_json::json!(null), serde_json::json!({}), serde_json::json!("/c")]
                .iter()
                .flat_map(|v| {
                    [
                        serde_json::json!({ *field: v }),
                        serde_json::json!({"registries": {"r.example": { *field: v }}}),
                        serde_json::json!({"robotLink": {"emailPointer": "/a", "idPointer": "/b", *field: v}}),
                    ]
                })
                .any(|doc| serde_json::from_value::<ConfigFile>(doc).is_ok());
            assert!(accepted, "{field} is not a config file field");
        }
        // Every field of every struct is listed: an unlisted spelling of each is refused.
        let doc = serde_json::json!({"registries": {"r.example": {"notAField": "x"}}});
        assert!(serde_json::from_value::<ConfigFile>(doc).is_err());
        // A new field of a registry entry stops this from compiling: add it to CONFIG_FIELDS.
        let entry = RegistryEntry::default();
        let RegistryEntry {
            service_account_key_path: _,
            private_key_path: _,
            service_account_email: _,
            federated_token_file: _,
            token_endpoint: _,
            username: _,
        } = entry;
    }

    #[test]
    fn content_is_told_apart_from_paths() {
        for path in [
            "/etc/docker-credential-stackit/sa-key.json",
            "~/.stackit/sa key (1).json",
            "relative/dir/key.json",
            "/var/run/secrets/stackit.cloud/serviceaccount/token",
            "/tmp/eyJ-not-a-token.json",
        ] {
            assert_eq!(looks_like_content(path), None, "{path}");
        }
        for (content, what) in [
            ("{ \"id\": \"x\", \"credentials\": {} }", "JSON"),
            ("-----BEGIN PRIVATE KEY-----\nMIIE", "PEM"),
            ("MIIEvQIB\\n-----BEGIN RSA PRIVATE KEY", "PEM"),
            ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "JWT"),
            ("line one\nline two", "lines"),
        ] {
            assert!(
                looks_like_content(content).is_some_and(|w| w.contains(what)),
                "{content}"
            );
        }
        assert!(looks_like_content(&"a/".repeat(2100)).is_some());
    }

    #[test]
    fn served_hosts_come_from_default_config_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.json");
        std::fs::write(
            &cfg,
            r#"{"registries":{"HTTPS://Other.Example:443/":{},"b.example:5000":{}}}"#,
        )
        .unwrap();
        let s = settings(
            &[
                ("DOCKER_CREDENTIAL_STACKIT_CONFIG", cfg.to_str().unwrap()),
                ("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", " c.example , localhost:5000,"),
            ],
            dir.path(),
        );
        assert_eq!(
            s.served,
            [
                "registry.onstackit.cloud",
                "other.example",
                "b.example:5000",
                "c.example",
                "localhost:5000"
            ]
        );
        assert!(!s.serves("registry.onstackit.cloud.evil.example"));
    }

    #[test]
    fn bad_settings_name_the_variable_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Settings::from_env(Env::from_pairs(
            &[("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "soon")],
            dir.path(),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("DOCKER_CREDENTIAL_STACKIT_TIMEOUT"));
        let err = Settings::from_env(Env::from_pairs(
            &[("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "a b")],
            dir.path(),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("DOCKER_CREDENTIAL_STACKIT_REGISTRIES"));
        let cfg = dir.path().join("c.json");
        std::fs::write(&cfg, r#"{"registries":{"r.example":{"serviceAccountKeyPth":"x"}}}"#).unwrap();
        let err = Settings::from_env(Env::from_pairs(
            &[("DOCKER_CREDENTIAL_STACKIT_CONFIG", cfg.to_str().unwrap())],
            dir.path(),
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("serviceAccountKeyPth") && err.to_string().contains("c.json"),
            "{err}"
        );
        let err = Settings::from_env(Env::from_pairs(
            &[("DOCKER_CREDENTIAL_STACKIT_CONFIG", "/nonexistent/c.json")],
            dir.path(),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.json"));
    }

    #[test]
    fn key_source_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir_all(home.join(".stackit")).unwrap();
        std::fs::write(
            home.join(".stackit/credentials.json"),
            r#"{"STACKIT_SERVICE_ACCOUNT_KEY_PATH":"from-creds.json","STACKIT_PRIVATE_KEY_PATH":"/creds/pk.pem"}"#,
        )
        .unwrap();
        let desc = |s: &Settings| {
            let spec = key_spec(
                s.identity_spec(&s.served_host("registry.onstackit.cloud").unwrap())
                    .unwrap()
                    .unwrap(),
            );
            (spec.key.describe(), spec.private_key.map(|p| p.describe()))
        };
        let (k, p) = desc(&settings(&[], home));
        assert!(
            k.contains("credentials.json") && k.contains(".stackit/from-creds.json"),
            "{k}"
        );
        assert!(p.unwrap().contains("/creds/pk.pem"));
        let (k, _) = desc(&settings(&[("STACKIT_SERVICE_ACCOUNT_KEY", "{}")], home));
        assert_eq!(k, "STACKIT_SERVICE_ACCOUNT_KEY");
        let (k, p) = desc(&settings(
            &[
                ("STACKIT_SERVICE_ACCOUNT_KEY", "{}"),
                ("STACKIT_SERVICE_ACCOUNT_KEY_PATH", "/k.json"),
                ("STACKIT_PRIVATE_KEY", "pem"),
            ],
            home,
        ));
        assert_eq!(k, "STACKIT_SERVICE_ACCOUNT_KEY_PATH (/k.json)");
        assert_eq!(p.unwrap(), "STACKIT_PRIVATE_KEY");
        let cfg = home.join("c.json");
        std::fs::write(&cfg, r#"{"registries":{"registry.onstackit.cloud":{"serviceAccountKeyPath":"keys/a.json","username":"robot-user"}}}"#).unwrap();
        let s = settings(
            &[
                ("STACKIT_SERVICE_ACCOUNT_KEY_PATH", "/k.json"),
                ("DOCKER_CREDENTIAL_STACKIT_CONFIG", cfg.to_str().unwrap()),
            ],
            home,
        );
        let spec = key_spec(
            s.identity_spec(&s.served_host("registry.onstackit.cloud").unwrap())
                .unwrap()
                .unwrap(),
        );
        assert!(
            spec.key.describe().contains(&format!("{}/keys/a.json", home.display())),
            "{}",
            spec.key.describe()
        );
        assert!(spec.private_key.is_none());
        assert_eq!(spec.username.as_deref(), Some("robot-user"));
    }

    #[test]
    fn no_key_anywhere_is_no_identity() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(&[], dir.path());
        let host = s.served_host("registry.onstackit.cloud").unwrap();
        assert!(s.identity_spec(&host).unwrap().is_none());
        let err = settings(&[("STACKIT_CREDENTIALS_PATH", "/nope/creds.json")], dir.path())
            .identity_spec(&host)
            .unwrap_err();
        assert!(err.to_string().contains("/nope/creds.json"), "{err}");
    }
}
