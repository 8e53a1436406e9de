//! Registry scope strings (`repository:shop/app:pull,push`, `registry:catalog:*`) and what a
//! robot must be allowed for them.
//!
//! Parsing follows Harbor's token service: one part is a type, two parts are type and name, three
//! or more parts are type, name (the middle parts re-joined with `:` so `host:port/x` survives) and
//! actions (the last part split on `,`). The registry needs pull *and* push for a push, so a
//! push scope needs both.

use super::findings::{Finding, codes};
use super::permissions::Need;
use serde::Serialize;

/// Registry actions in the order needs are reported.
const REGISTRY_ACTIONS: [&str; 3] = ["pull", "push", "delete"];

/// A parsed registry scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// The resource type: `repository`, `registry`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource name, e.g. `shop/app`; empty when the scope has only a type.
    pub name: String,
    /// The requested actions, e.g. `["pull", "push"]`; empty entries dropped.
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses one scope. Never fails: whether the parts make sense is for [`needs_for_scope`].
    pub fn parse(scope: &str) -> Scope {
        let parts: Vec<&str> = scope.split(':').collect();
        let (kind, name, actions) = match parts.as_slice() {
            [] | [_] => (scope, String::new(), ""),
            [kind, name] => (*kind, name.to_string(), ""),
            [kind, middle @ .., last] => (*kind, middle.join(":"), *last),
        };
        Scope {
            kind: kind.to_string(),
            name,
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Parses several scopes separated by whitespace, as one `scope=` parameter may carry them.
    pub fn parse_all(scopes: &str) -> Vec<Scope> {
        scopes.split_whitespace().map(Scope::parse).collect()
    }

    /// The scope as a string again (`type:name:a,b`).
    pub fn render(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }

    /// The project of a repository scope: the first path segment, if the name has at least two.
    pub fn project(&self) -> Option<&str> {
        let (project, repo) = self.name.split_once('/')?;
        (!project.is_empty() && !repo.is_empty()).then_some(project)
    }
}

/// The registry actions a token must grant for the requested `actions`: `pull` -> pull,
/// `push` -> pull and push, `delete` -> delete, `*` -> all three. `scanner-pull` is ignored.
/// Returns them in the order pull, push, delete, plus the actions that were not understood.
pub fn required_actions(actions: &[String]) -> (Vec<&'static str>, Vec<String>) {
    let mut wanted = [false; 3];
    let mut unknown = Vec::new();
    for action in actions {
        match action.as_str() {
            "pull" => wanted[0] = true,
            "push" => wanted[..2].fill(true),
            "delete" => wanted[2] = true,
            "*" => wanted.fill(true),
            "scanner-pull" => {}
            _ => unknown.push(action.clone()),
        }
    }
    let required = REGISTRY_ACTIONS
        .iter()
        .zip(wanted)
        .filter_map(|(action, w)| w.then_some(*action))
        .collect();
    (required, unknown)
}

/// What a scope needs from a robot, and anything wrong with the scope itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeNeeds {
    /// The parsed scope.
    pub scope: Scope,
    /// The robot permissions needed, in the order pull, push, delete. Empty when the scope is
    /// unusable (see `findings`).
    pub needs: Vec<Need>,
    /// Problems with the scope: `scope.catalog_admin_only`, `scope.malformed`,
    /// `scope.no_project`, `scope.unknown_type` (errors), `scope.unknown_action` (warning).
    pub findings: Vec<Finding>,
}

/// Turns a registry scope string into the robot permissions it needs (A4 check 11).
pub fn needs_for_scope(scope: &str) -> ScopeNeeds {
    let parsed = Scope::parse(scope);
    let (needs, findings) = match scope_problem(scope, &parsed) {
        Some(problem) => (Vec::new(), vec![problem]),
        None => repository_needs(&parsed),
    };
    ScopeNeeds {
        scope: parsed,
        needs,
        findings,
    }
}

/// The reason a scope cannot yield needs, if any.
fn scope_problem(raw: &str, scope: &Scope) -> Option<Finding> {
    match scope.kind.as_str() {
        "registry" if scope.name == "catalog" => Some(Finding::error(
            codes::SCOPE_CATALOG_ADMIN_ONLY,
            format!("scope {raw:?} lists the whole registry; Harbor grants it to system administrators only"),
            "robots never get registry:catalog; list repositories through the Harbor API (GET /api/v2.0/projects/<project>/repositories)",
        )),
        "repository" if scope.name.is_empty() || scope.actions.is_empty() => Some(malformed(raw)),
        "repository" if scope.project().is_none() => Some(Finding::error(
            codes::SCOPE_NO_PROJECT,
            format!(
                "repository {:?} has no project; Harbor repositories are <project>/<repository>",
                scope.name
            ),
            format!(
                "use <project>/{} (e.g. registry.onstackit.cloud/<project>/{})",
                scope.name, scope.name
            ),
        )),
        "repository" => None,
        "" => Some(malformed(raw)),
        other => Some(Finding::error(
            codes::SCOPE_UNKNOWN_TYPE,
            format!("scope {raw:?} has type {other:?}; Harbor grants nothing for types other than repository"),
            "request a repository:<project>/<repository>:<actions> scope",
        )),
    }
}

fn malformed(raw: &str) -> Finding {
    Finding::error(
        codes::SCOPE_MALFORMED,
        format!("scope {raw:?} is not type:name:actions"),
        "write scopes as repository:<project>/<repository>:pull,push",
    )
}

fn repository_needs(scope: &Scope) -> (Vec<Need>, Vec<Finding>) {
    // `scope_problem` guarantees a project; the fallback keeps this total without a panic.
    let project = scope.project().unwrap_or_default();
    let (required, unknown) = required_actions(&scope.actions);
    let needs = required
        .into_iter()
        .map(|action| Need::repository(project, action))
        .collect();
    let findings = unknown
        .into_iter()
        .map(|action| {
            Finding::warning(
                codes::SCOPE_UNKNOWN_ACTION,
                format!(
                    "scope {:?} asks for unknown action {action:?}; it is ignored",
                    scope.render()
                ),
                "use pull, push, delete or *",
            )
        })
        .collect();
    (needs, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(needs: &ScopeNeeds) -> Vec<&str> {
        needs.needs.iter().map(|n| n.action.as_str()).collect()
    }

    fn codes_of(needs: &ScopeNeeds) -> Vec<&'static str> {
        needs.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn parses_like_harbor() {
        assert_eq!(
            Scope::parse("repository:shop/app:pull,push"),
            Scope {
                kind: "repository".into(),
                name: "shop/app".into(),
                actions: vec!["pull".into(), "push".into()]
            }
        );
        let s = Scope::parse("repository:localhost:5000/shop/app:pull");
        assert_eq!(
            (s.name.as_str(), s.actions.as_slice()),
            ("localhost:5000/shop/app", &["pull".to_string()][..])
        );
        let s = Scope::parse("registry:catalog:*");
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.actions.len()),
            ("registry", "catalog", 1)
        );
        assert_eq!(Scope::parse("repository").name, "");
        assert_eq!(Scope::parse("repository:shop/app").actions.len(), 0);
        assert_eq!(Scope::parse("repository:shop/app:").actions.len(), 0);
        assert_eq!(Scope::parse("").kind, "");
        let all = Scope::parse_all(" repository:a/b:pull  repository:a/c:* ");
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].render(), "repository:a/c:*");
    }

    #[test]
    fn push_needs_pull_and_push() {
        let n = needs_for_scope("repository:shop/app:push");
        assert_eq!(actions(&n), ["pull", "push"]);
        assert!(
            n.needs
                .iter()
                .all(|n| n.project == "shop" && n.resource == "repository")
        );
        assert!(n.findings.is_empty());
        assert_eq!(actions(&needs_for_scope("repository:shop/app:pull")), ["pull"]);
        assert_eq!(
            actions(&needs_for_scope("repository:shop/app:pull,push")),
            ["pull", "push"]
        );
        assert_eq!(
            actions(&needs_for_scope("repository:shop/app:push,pull,pull")),
            ["pull", "push"]
        );
        assert_eq!(actions(&needs_for_scope("repository:shop/app:delete")), ["delete"]);
        assert_eq!(
            actions(&needs_for_scope("repository:shop/app:*")),
            ["pull", "push", "delete"]
        );
        assert_eq!(actions(&needs_for_scope("repository:shop/team/app:pull")), ["pull"]);
    }

    #[test]
    fn scanner_pull_is_ignored_and_unknown_actions_warn() {
        let n = needs_for_scope("repository:shop/app:scanner-pull");
        assert!(n.needs.is_empty() && n.findings.is_empty());
        let n = needs_for_scope("repository:shop/app:pull,fly");
        assert_eq!(actions(&n), ["pull"]);
        assert_eq!(codes_of(&n), [codes::SCOPE_UNKNOWN_ACTION]);
    }

    #[test]
    fn catalog_is_admin_only() {
        let n = needs_for_scope("registry:catalog:*");
        assert!(n.needs.is_empty());
        assert_eq!(codes_of(&n), [codes::SCOPE_CATALOG_ADMIN_ONLY]);
    }

    #[test]
    fn repository_needs_a_project() {
        for scope in ["repository:app:pull", "repository:/app:pull", "repository:shop/:pull"] {
            assert_eq!(codes_of(&needs_for_scope(scope)), [codes::SCOPE_NO_PROJECT], "{scope}");
        }
    }

    #[test]
    fn malformed_and_unknown_types() {
        for scope in [
            "",
            "repository",
            "repository:shop/app",
            "repository:shop/app:",
            ":x:pull",
        ] {
            let n = needs_for_scope(scope);
            assert_eq!(codes_of(&n), [codes::SCOPE_MALFORMED], "{scope:?}");
            assert!(n.needs.is_empty());
        }
        assert_eq!(
            codes_of(&needs_for_scope("registry:other:*")),
            [codes::SCOPE_UNKNOWN_TYPE]
        );
        assert_eq!(codes_of(&needs_for_scope("plugin:x:pull")), [codes::SCOPE_UNKNOWN_TYPE]);
    }
}
