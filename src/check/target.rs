//! What `check` looks at: a registry host, optionally a repository on it, and the actions.

use crate::error::{Error, Result};
use crate::server_url::{self, DEFAULT_REGISTRY};

/// The registry, repository and actions to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The registry as `host[:port]`, normalised as `get` matches it.
    pub host: String,
    /// The repository (`project/repo`), without tag or digest, if an image was given.
    pub repository: Option<String>,
    /// `["pull"]`, or `["pull", "push"]` for `--push`.
    pub actions: Vec<&'static str>,
}

impl Target {
    /// Parses `IMAGE-OR-REGISTRY`. Without `/` it is a registry host. With `/`, the first
    /// component is the registry when it looks like a host (contains `.` or `:`, or is
    /// `localhost`), as in Docker's reference grammar; otherwise the whole is a repository on
    /// `registry.onstackit.cloud` (not Docker Hub: this helper serves STACKIT). A scheme
    /// (`https://`, `docker://`) and a tag or digest are dropped.
    pub fn parse(input: Option<&str>, push: bool) -> Result<Target> {
        let actions = if push { vec!["pull", "push"] } else { vec!["pull"] };
        let Some(raw) = input.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Target {
                host: DEFAULT_REGISTRY.to_string(),
                repository: None,
                actions,
            });
        };
        let bad = || {
            Error::Usage(format!(
                "{raw:?} is neither a registry host[:port] nor an image like registry.onstackit.cloud/<project>/<repo>[:tag]"
            ))
        };
        let rest = raw.split_once("://").map_or(raw, |(_, r)| r).trim_end_matches('/');
        let (host, repo) = match rest.split_once('/') {
            None => (rest, None),
            Some((first, repo)) if looks_like_host(first) => (first, Some(repo)),
            Some(_) => (DEFAULT_REGISTRY, Some(rest)),
        };
        let host = server_url::normalize(host).ok_or_else(bad)?;
        let repository = match repo.map(strip_reference) {
            None => None,
            Some(r) if valid_repository(r) => Some(r.to_string()),
            Some(_) => return Err(bad()),
        };
        Ok(Target {
            host,
            repository,
            actions,
        })
    }

    /// The registry scope for the repository, e.g. `repository:shop/app:pull,push`.
    pub fn scope(&self) -> Option<String> {
        self.repository
            .as_ref()
            .map(|r| format!("repository:{r}:{}", self.actions.join(",")))
    }
}

fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost" || component.starts_with('[')
}

/// Drops `@digest`, then a `:tag` on the last path component.
fn strip_reference(repo: &str) -> &str {
    let repo = repo.split_once('@').map_or(repo, |(r, _)| r);
    let last_slash = repo.rfind('/').map_or(0, |i| i + 1);
    match repo[last_slash..].find(':') {
        Some(i) => &repo[..last_slash + i],
        None => repo,
    }
}

/// Path components of lower-case letters, digits and `._-`, as the distribution grammar allows.
fn valid_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (String, Option<String>) {
        let t = Target::parse(Some(s), false).unwrap();
        (t.host, t.repository)
    }

    #[test]
    fn images_and_registries() {
        let reg = |h: &str| (h.to_string(), None);
        let img = |h: &str, r: &str| (h.to_string(), Some(r.to_string()));
        assert_eq!(parse("registry.onstackit.cloud"), reg("registry.onstackit.cloud"));
        assert_eq!(
            parse("https://registry.onstackit.cloud/"),
            reg("registry.onstackit.cloud")
        );
        assert_eq!(parse("127.0.0.1:5000"), reg("127.0.0.1:5000"));
        assert_eq!(
            parse("registry.onstackit.cloud/shop/app:1.2"),
            img("registry.onstackit.cloud", "shop/app")
        );
        assert_eq!(
            parse("docker://localhost:5000/shop/team/app@sha256:abcd"),
            img("localhost:5000", "shop/team/app")
        );
        assert_eq!(parse("localhost/shop/app"), img("localhost", "shop/app"));
        assert_eq!(parse("[::1]:5000/shop/app:v1"), img("[::1]:5000", "shop/app"));
        assert_eq!(parse("shop/app:v1"), img("registry.onstackit.cloud", "shop/app"));
        assert_eq!(parse("r.example:443/a/b"), img("r.example", "a/b"));
    }

    #[test]
    fn scope_and_default() {
        let t = Target::parse(Some("r.example/shop/app"), true).unwrap();
        assert_eq!(t.scope().as_deref(), Some("repository:shop/app:pull,push"));
        let t = Target::parse(None, false).unwrap();
        assert_eq!((t.host.as_str(), t.scope()), ("registry.onstackit.cloud", None));
    }

    #[test]
    fn garbage_is_a_usage_error() {
        for bad in [
            "bad host!",
            "r.example/Shop/App",
            "r.example//x",
            "r.example/a b",
            "ftp://:0/x",
        ] {
            let err = Target::parse(Some(bad), false).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{bad}: {err}");
        }
    }
}
