//! Step 1, Docker wiring: will Docker (and podman/skopeo) actually ask this helper for the host?
//!
//! Docker looks the registry host up in `credHelpers` by exact key and runs
//! `docker-credential-<value>` from `PATH`; without an entry it falls back to `credsStore`, then
//! to `auths`. podman, skopeo and buildah read their own auth files first, so a stored login
//! there wins over Docker's `credHelpers`.

use super::codes;
use super::{Environment, Step};
use crate::server_url;
use crate::validate::Finding;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub use crate::configure_docker::{BINARY, HELPER_NAME};

/// Config files larger than this are not Docker configs.
const MAX_CONFIG: u64 = 1024 * 1024;

/// Runs step 1 for `host`. `served` is whether the helper serves the host (`None` if the
/// helper's settings could not be loaded).
pub fn step(host: &str, env: &Environment, served: Option<bool>) -> Step {
    let mut findings = Vec::new();
    let mut summary = Vec::new();

    config_findings(host, env, &mut findings, &mut summary);
    containers_findings(host, env, &mut findings);
    path_findings(env, &mut findings, &mut summary);

    if served == Some(false) {
        findings.push(Finding::error(
            codes::DOCKER_HOST_NOT_SERVED,
            format!("{BINARY} does not serve {host}, so `get` answers \"credentials not found\""),
            format!(
                "add {host} to DOCKER_CREDENTIAL_STACKIT_REGISTRIES or to the registries of the helper's config file"
            ),
        ));
    }

    let summary = if summary.is_empty() {
        format!("Docker will not use {BINARY} for {host} as configured")
    } else {
        summary.join("; ")
    };
    Step::ran("docker", summary, findings)
}

/// Whether Docker's config exists, parses and maps `host` to us.
fn config_findings(host: &str, env: &Environment, findings: &mut Vec<Finding>, summary: &mut Vec<String>) {
    match docker_config_path(env) {
        None => findings.push(Finding::error(
            codes::DOCKER_CONFIG_MISSING,
            "cannot find Docker's config: neither DOCKER_CONFIG nor a home directory is set",
            "set DOCKER_CONFIG to the directory holding config.json",
        )),
        Some(path) => match read_json(&path) {
            Ok(None) => findings.push(Finding::error(
                codes::DOCKER_CONFIG_MISSING,
                format!("Docker's config {} does not exist", path.display()),
                format!(
                    "run `{BINARY} configure-docker`, or create it with {{\"credHelpers\": {{\"{host}\": \"{HELPER_NAME}\"}}}}"
                ),
            )),
            Err(why) => findings.push(Finding::error(
                codes::DOCKER_CONFIG_INVALID,
                format!("Docker's config {} {why}", path.display()),
                "fix the file (it must be a JSON object), or move it away and run configure-docker",
            )),
            Ok(Some(doc)) => {
                let before = findings.len();
                check_docker_config(&doc, host, &path, findings);
                if !findings[before..].iter().any(is_error) {
                    summary.push(format!(
                        "{} maps {host} to {HELPER_NAME}",
                        path.display()
                    ));
                }
            }
        },
    }
}

/// Logins stored in containers' auth files, which podman, skopeo and buildah prefer to credHelpers.
fn containers_findings(host: &str, env: &Environment, findings: &mut Vec<Finding>) {
    for path in containers_auth_files(env) {
        if let Ok(Some(doc)) = read_json(&path)
            && let Some(key) = stored_login(&doc, host)
        {
            findings.push(Finding::warning(
                codes::DOCKER_CONTAINERS_AUTH,
                format!(
                    "{} stores a login for {key:?}; podman, skopeo and buildah use it instead of Docker's credHelpers",
                    path.display()
                ),
                format!("remove it: podman logout {host} (or delete the \"{key}\" entry under auths)"),
            ));
        }
    }
}

/// Whether Docker finds this binary (and not another one) on PATH.
fn path_findings(env: &Environment, findings: &mut Vec<Finding>, summary: &mut Vec<String>) {
    match crate::configure_docker::find_on_path(env.path.as_deref()) {
        None => findings.push(Finding::error(
            codes::DOCKER_NOT_ON_PATH,
            format!("{BINARY} is not on PATH, so Docker cannot run it"),
            format!("install {BINARY} into a directory on PATH, such as /usr/local/bin"),
        )),
        Some(found) => {
            let same = match (&env.current_exe, &found) {
                (Some(me), it) => same_file(me, it),
                (None, _) => true,
            };
            if same {
                summary.push(format!("{BINARY} is on PATH"));
            } else {
                findings.push(Finding::warning(
                    codes::DOCKER_OTHER_BINARY,
                    format!(
                        "Docker will run {}, not this binary ({}); the two may differ",
                        found.display(),
                        env.current_exe.as_deref().unwrap_or(Path::new("?")).display()
                    ),
                    format!("replace {} with this version, or run that one's check", found.display()),
                ));
            }
        }
    }
}

fn is_error(f: &Finding) -> bool {
    f.severity == crate::validate::Severity::Error
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path(env: &Environment) -> Option<PathBuf> {
    crate::configure_docker::config_path_in(env.docker_config.as_deref(), env.home.as_deref())
}

/// The containers auth files in the order containers/image reads them (before Docker's).
fn containers_auth_files(env: &Environment) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = &env.registry_auth_file {
        files.push(f.clone());
    } else if let Some(dir) = &env.xdg_runtime_dir {
        files.push(dir.join("containers").join("auth.json"));
    }
    let config_home = env
        .xdg_config_home
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".config")));
    if let Some(dir) = config_home {
        files.push(dir.join("containers").join("auth.json"));
    }
    files
}

/// `Ok(None)` when the file does not exist; `Err` says what is wrong with it.
fn read_json(path: &Path) -> Result<Option<Map<String, Value>>, String> {
    let deadline = std::time::Instant::now() + crate::config::DEFAULT_TIMEOUT;
    let text = match crate::fs::read_text_file(path, MAX_CONFIG, deadline) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    if text.trim().is_empty() {
        return Ok(Some(Map::new()));
    }
    // Report the position only: the file may hold stored secrets, and serde can quote them.
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err("is not a JSON object".into()),
        Err(e) => Err(format!("is not valid JSON (line {} column {})", e.line(), e.column())),
    }
}

/// How a JSON file that cannot be read is described after its name.
pub(super) fn unreadable(e: crate::fs::ReadError) -> String {
    format!("cannot be read: {e}")
}

fn check_docker_config(doc: &Map<String, Value>, host: &str, path: &Path, findings: &mut Vec<Finding>) {
    let file = path.display();
    let helpers = doc.get("credHelpers").and_then(Value::as_object);
    let creds_store = doc.get("credsStore").and_then(Value::as_str).filter(|s| !s.is_empty());
    match helpers.and_then(|h| h.get(host)) {
        Some(Value::String(name)) if name == HELPER_NAME => {
            if let Some(store) = creds_store {
                findings.push(Finding::info(
                    codes::DOCKER_CREDS_STORE,
                    format!("credsStore {store:?} serves other hosts; credHelpers wins for {host}"),
                ));
            }
        }
        Some(other) => findings.push(Finding::error(
            codes::DOCKER_CRED_HELPER_OTHER,
            format!("{file}: credHelpers[\"{host}\"] is {other}, so Docker runs another helper for {host}"),
            format!("set credHelpers[\"{host}\"] to \"{HELPER_NAME}\" (or run `{BINARY} configure-docker`)"),
        )),
        None => {
            let near = helpers.and_then(|h| {
                h.keys()
                    .find(|k| k.as_str() != host && server_url::normalize(k).as_deref() == Some(host))
            });
            match near {
                Some(key) => findings.push(Finding::error(
                    codes::DOCKER_CRED_HELPER_KEY,
                    format!(
                        "{file}: credHelpers has {key:?}, but Docker looks {host:?} up by exact name and will not find it"
                    ),
                    format!("rename the key {key:?} to {host:?}"),
                )),
                None => {
                    let fallback = match creds_store {
                        Some(store) => format!("; Docker asks credsStore {store:?} instead"),
                        None => String::new(),
                    };
                    findings.push(Finding::error(
                        codes::DOCKER_CRED_HELPER_MISSING,
                        format!("{file} has no credHelpers entry for {host}{fallback}"),
                        format!(
                            "run `{BINARY} configure-docker`, or add \"credHelpers\": {{\"{host}\": \"{HELPER_NAME}\"}}"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(key) = stored_login(doc, host) {
        findings.push(Finding::warning(
            codes::DOCKER_STALE_AUTHS,
            format!(
                "{file}: auths[{key:?}] holds a stored login; Docker uses the helper, but tools that read only auths send that stale secret"
            ),
            format!("remove it: docker logout {host} (or delete the \"{key}\" entry under auths)"),
        ));
    }
}

/// The `auths` key for `host` whose entry holds a secret (`auth`, `password`, `identitytoken`,
/// `registrytoken`). An empty `{}` entry, which `docker login` leaves behind, is fine.
fn stored_login(doc: &Map<String, Value>, host: &str) -> Option<String> {
    let auths = doc.get("auths")?.as_object()?;
    auths.iter().find_map(|(key, entry)| {
        let holds_secret = ["auth", "password", "identitytoken", "registrytoken"]
            .iter()
            .any(|f| entry.get(f).and_then(Value::as_str).is_some_and(|v| !v.is_empty()));
        (holds_secret && server_url::normalize(key).as_deref() == Some(host)).then(|| key.clone())
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Severity;

    fn codes_for(config: &str, host: &str) -> Vec<(&'static str, Severity)> {
        let doc: Map<String, Value> = serde_json::from_str(config).unwrap();
        let mut findings = Vec::new();
        check_docker_config(&doc, host, Path::new("/c.json"), &mut findings);
        findings.iter().map(|f| (f.code, f.severity)).collect()
    }

    #[test]
    fn cred_helpers_entry_rules() {
        assert!(codes_for(r#"{"credHelpers":{"r.example":"stackit"}}"#, "r.example").is_empty());
        assert_eq!(
            codes_for(r#"{"credHelpers":{"r.example":"ecr-login"}}"#, "r.example"),
            [(codes::DOCKER_CRED_HELPER_OTHER, Severity::Error)]
        );
        assert_eq!(
            codes_for(r#"{"credHelpers":{"https://r.example/":"stackit"}}"#, "r.example"),
            [(codes::DOCKER_CRED_HELPER_KEY, Severity::Error)]
        );
        assert_eq!(
            codes_for(r#"{"credsStore":"desktop"}"#, "r.example"),
            [(codes::DOCKER_CRED_HELPER_MISSING, Severity::Error)]
        );
        assert_eq!(
            codes_for(
                r#"{"credsStore":"desktop","credHelpers":{"r.example":"stackit"}}"#,
                "r.example"
            ),
            [(codes::DOCKER_CREDS_STORE, Severity::Info)]
        );
    }

    #[test]
    fn only_auths_entries_with_secrets_are_stale() {
        let ok = r#"{"credHelpers":{"r.example":"stackit"},"auths":{"r.example":{},"other.example":{"auth":"eDp5"}}}"#;
        assert!(codes_for(ok, "r.example").is_empty());
        let stale = r#"{"credHelpers":{"r.example":"stackit"},"auths":{"https://r.example":{"auth":"eDp5"}}}"#;
        assert_eq!(
            codes_for(stale, "r.example"),
            [(codes::DOCKER_STALE_AUTHS, Severity::Warning)]
        );
    }
}
