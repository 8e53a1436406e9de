//! Which files `configure-docker` edits (Docker's config, the containers auth file), resolved
//! from the environment snapshot as the clients resolve them, and where Docker finds the helper.

use super::BINARY;
use crate::config::Env;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Which client a file belongs to: it decides the default path and which warnings apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Docker's `config.json`.
    Docker,
    /// The containers/image auth file read by podman, buildah, skopeo and CRI-O.
    Containers,
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as docker/cli resolves it.
pub(crate) fn docker_config_path(env: &Env) -> Result<PathBuf> {
    let dir = env.os("DOCKER_CONFIG").map(PathBuf::from);
    config_path_in(dir.as_deref(), env.home()).ok_or_else(|| {
        Error::Config("cannot find the home directory for ~/.docker/config.json; set HOME or DOCKER_CONFIG".into())
    })
}

/// Docker's config file given `$DOCKER_CONFIG` and the home directory; `None` without either.
pub(crate) fn config_path_in(docker_config: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    match (docker_config, home) {
        (Some(dir), _) => Some(dir.join("config.json")),
        (None, Some(home)) => Some(home.join(".docker").join("config.json")),
        (None, None) => None,
    }
}

/// The first executable [`BINARY`] in the `PATH` value `path`: the one Docker will run.
pub(crate) fn find_on_path(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let name = format!("{BINARY}{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(&name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// `$REGISTRY_AUTH_FILE`, else `${XDG_RUNTIME_DIR}/containers/auth.json`: the file podman
/// writes on `podman login` and reads first.
pub(crate) fn containers_auth_path(env: &Env) -> Result<PathBuf> {
    if let Some(file) = env.os("REGISTRY_AUTH_FILE") {
        return Ok(PathBuf::from(file));
    }
    if let Some(dir) = env.os("XDG_RUNTIME_DIR") {
        return Ok(PathBuf::from(dir).join("containers").join("auth.json"));
    }
    Err(Error::Config(
        "--containers: neither REGISTRY_AUTH_FILE nor XDG_RUNTIME_DIR is set; set REGISTRY_AUTH_FILE to the containers auth file (e.g. ~/.config/containers/auth.json)".into(),
    ))
}
