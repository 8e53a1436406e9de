//! Permission evaluation: may this robot do this action on this project's resource? And the
//! static checks of a robot's permission list (shape, known pairs, namespaces).
//!
//! [`decide`] follows the validator spec (A4 check 10), which mirrors Harbor's casbin model:
//! `*` namespaces, resources and actions match anything, a deny wins over any allow, and a
//! project robot's push implies pull (Harbor's `filterRobotPolicies`); a system robot's does not.

use super::findings::{Finding, codes};
use super::name::{RobotName, robot_name};
use super::robot::{Access, Effect, Kind, Level, Permission, Robot, display_name};
use serde::Serialize;

/// Something a client needs to be allowed: an action on a resource in a project.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Need {
    /// Project name, e.g. `shop`.
    pub project: String,
    /// Harbor resource, e.g. `repository`.
    pub resource: String,
    /// Harbor action, e.g. `pull`.
    pub action: String,
}

impl Need {
    /// A need for `action` on `resource` in `project`.
    pub fn new(project: impl Into<String>, resource: impl Into<String>, action: impl Into<String>) -> Need {
        Need {
            project: project.into(),
            resource: resource.into(),
            action: action.into(),
        }
    }

    /// A need for `action` (`pull`, `push`, `delete`) on `repository` in `project`.
    pub fn repository(project: impl Into<String>, action: impl Into<String>) -> Need {
        Need::new(project, "repository", action)
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Allowed. `implied` is true when only a project robot's push grants the needed pull.
    Allowed {
        /// Whether the pull is implied by push rather than granted directly.
        implied: bool,
    },
    /// A matching access has `effect: deny`.
    Denied,
    /// No matching access allows it.
    NotGranted,
}

/// Decides whether `robot` may do `need`, ignoring whether the robot is disabled or expired
/// (see [`super::robot::check_status`] for that). A robot whose `level` is missing is not
/// treated as a project robot, so it gets no implied pull.
pub fn decide(robot: &Robot, need: &Need) -> Decision {
    let matching: Vec<&Access> = matching_accesses(&robot.permissions, need).collect();
    if matching.iter().any(|a| a.effect == Effect::Deny) {
        return Decision::Denied;
    }
    if matching.iter().any(|a| a.effect == Effect::Allow) {
        return Decision::Allowed { implied: false };
    }
    if need.action == "pull" && robot.level == Some(Level::Project) && push_allowed(robot, need) {
        return Decision::Allowed { implied: true };
    }
    Decision::NotGranted
}

fn push_allowed(robot: &Robot, need: &Need) -> bool {
    let push = Need::new(need.project.clone(), need.resource.clone(), "push");
    decide(robot, &push) == Decision::Allowed { implied: false }
}

/// The accesses of `kind=project` permissions in `need.project` or `*` whose resource and
/// action match `need` exactly or by `*`.
fn matching_accesses<'a>(permissions: &'a [Permission], need: &'a Need) -> impl Iterator<Item = &'a Access> + 'a {
    permissions
        .iter()
        .filter(move |p| p.kind == Kind::Project && (p.namespace == need.project || p.namespace == "*"))
        .flat_map(|p| p.access.iter())
        .filter(move |a| wildcard_eq(&a.resource, &need.resource) && wildcard_eq(&a.action, &need.action))
}

fn wildcard_eq(granted: &str, needed: &str) -> bool {
    granted == "*" || granted == needed
}

/// Decides every need and reports each: `perm.allowed` (info), `perm.denied`,
/// `perm.not_granted`, or `perm.push_without_pull` for a system robot that may push but not pull.
pub fn check_needs(robot: &Robot, needs: &[Need]) -> Vec<Finding> {
    let who = display_name(robot);
    needs.iter().map(|need| need_finding(robot, &who, need)).collect()
}

fn need_finding(robot: &Robot, who: &str, need: &Need) -> Finding {
    let what = format!("{}:{} in project {:?}", need.resource, need.action, need.project);
    match decide(robot, need) {
        Decision::Allowed { implied: false } => {
            Finding::info(codes::PERM_ALLOWED, format!("robot {who} is allowed {what}"))
        }
        Decision::Allowed { implied: true } => Finding::info(
            codes::PERM_ALLOWED,
            format!("robot {who} is allowed {what} (implied by push: it is a project robot)"),
        ),
        Decision::Denied => Finding::error(
            codes::PERM_DENIED,
            format!("robot {who} is explicitly denied {what} (an access with effect \"deny\")"),
            format!(
                "remove the deny access for {}:{} from the robot's permissions",
                need.resource, need.action
            ),
        ),
        Decision::NotGranted if is_system_push_without_pull(robot, need) => Finding::error(
            codes::PERM_PUSH_WITHOUT_PULL,
            format!(
                "robot {who} may push but not pull in project {:?}, and only project robots get pull implied by push; the registry needs both for a push",
                need.project
            ),
            format!(
                "add {}:pull for project {:?} to the robot's permissions",
                need.resource, need.project
            ),
        ),
        Decision::NotGranted => Finding::error(
            codes::PERM_NOT_GRANTED,
            format!("robot {who} is not granted {what}"),
            format!(
                "add {}:{} for project {:?} to the robot's permissions (Harbor: Robot accounts > Edit > Permissions)",
                need.resource, need.action, need.project
            ),
        ),
    }
}

fn is_system_push_without_pull(robot: &Robot, need: &Need) -> bool {
    need.action == "pull" && robot.level != Some(Level::Project) && push_allowed(robot, need)
}

/// The `(resource, actions)` pairs Harbor (HEAD) accepts in `kind=project` permissions.
pub const PROJECT_PAIRS: &[(&str, &[&str])] = &[
    ("repository", &["read", "update", "delete", "list", "pull", "push"]),
    ("artifact", &["read", "create", "list", "delete"]),
    ("tag", &["create", "list", "delete"]),
    ("scan", &["create", "read", "stop"]),
    ("sbom", &["create", "stop", "read"]),
    ("accessory", &["list"]),
    ("artifact-addition", &["read"]),
    ("artifact-label", &["create", "delete"]),
    ("scanner", &["create", "read"]),
    ("label", &["read", "create", "delete", "list", "update"]),
    ("preheat-policy", CRUDL),
    ("notification-policy", CRUDL),
    ("tag-retention", CRUDL),
    ("immutable-tag", &["create", "delete", "list", "update"]),
    ("metadata", &["read", "create", "delete", "list", "update"]),
    ("project", &["read", "update", "delete"]),
    ("log", &["list"]),
    ("quota", &["read"]),
    ("robot", &["create", "read", "list", "delete"]),
    ("member", &["create", "read", "update", "list", "delete"]),
    ("export-cve", &["create", "read"]),
];

/// The `(resource, actions)` pairs Harbor (HEAD) accepts in `kind=system` permissions.
pub const SYSTEM_PAIRS: &[(&str, &[&str])] = &[
    ("audit-log", &["list"]),
    ("preheat-instance", CRUDL),
    ("replication-policy", CRUDL),
    ("registry", CRUDL),
    ("scanner", CRUDL),
    ("project", &["list", "create"]),
    ("replication", &["read", "create", "list"]),
    ("replication-adapter", &["list"]),
    ("scan-all", &["read", "update", "stop", "create"]),
    ("system-volumes", &["read"]),
    ("garbage-collection", GC_LIKE),
    ("purge-audit", GC_LIKE),
    ("jobservice-monitor", &["list", "stop"]),
    ("label", &["read", "create", "delete", "update"]),
    ("security-hub", &["read", "list"]),
    ("catalog", &["read"]),
    ("quota", &["read", "list", "update"]),
    ("robot", CRUDL),
    ("user", CRUDL),
    ("user-group", CRUDL),
    ("ldap-user", &["create", "list"]),
];

/// "CRUD+list" in the reference.
const CRUDL: &[&str] = &["create", "read", "update", "delete", "list"];
const GC_LIKE: &[&str] = &["read", "create", "list", "update", "stop"];

/// Whether Harbor (HEAD) accepts `(resource, action)` for `kind`. Wildcards are not in Harbor's
/// list; [`decide`] honours them anyway because stored policies may carry them.
pub fn is_known_pair(kind: &Kind, resource: &str, action: &str) -> bool {
    let pairs = match kind {
        Kind::Project => PROJECT_PAIRS,
        Kind::System => SYSTEM_PAIRS,
        Kind::Unknown(_) => return false,
    };
    pairs
        .iter()
        .any(|(r, actions)| *r == resource && actions.contains(&action))
}

/// Checks the permission list: `perm.project_robot_shape` (project robots), `perm.system_namespace`,
/// `perm.unknown_kind`, `perm.unknown_pair` and `perm.unknown_effect` (both warnings).
/// `prefix` is needed to find a project robot's project in its name.
pub fn check_permissions(robot: &Robot, prefix: &str) -> Vec<Finding> {
    let who = display_name(robot);
    let mut findings = Vec::new();
    if robot.level == Some(Level::Project) && !robot.is_legacy() {
        findings.extend(project_robot_shape(robot, &who, prefix));
    }
    for permission in &robot.permissions {
        findings.extend(permission_findings(&who, permission));
    }
    findings
}

fn project_robot_shape(robot: &Robot, who: &str, prefix: &str) -> Option<Finding> {
    // Without a parsable project in the name only the count and kind can be checked; the
    // name finding already explains the rest.
    let project = match robot_name(robot, prefix) {
        Ok(RobotName::Project { project, .. }) => Some(project),
        _ => None,
    };
    let problem = match robot.permissions.as_slice() {
        [] => "has no permission entry".to_string(),
        [p] if p.kind != Kind::Project => format!("has a permission of kind {:?}", String::from(p.kind.clone())),
        [p] => match &project {
            Some(project) if p.namespace != *project => {
                format!(
                    "has a permission for namespace {:?}, not its own project {project:?}",
                    p.namespace
                )
            }
            _ => return None,
        },
        many => format!("has {} permission entries", many.len()),
    };
    let own = project.map_or_else(|| "its project".to_string(), |p| format!("{p:?}"));
    Some(Finding::error(
        codes::PERM_PROJECT_ROBOT_SHAPE,
        format!("project robot {who} {problem}; Harbor requires exactly one, of kind \"project\" for {own}"),
        format!(
            "give the robot exactly one permission with kind \"project\" and namespace {own}, or use a system robot"
        ),
    ))
}

fn permission_findings(who: &str, permission: &Permission) -> Vec<Finding> {
    let mut findings = Vec::new();
    match &permission.kind {
        Kind::Unknown(kind) => findings.push(Finding::error(
            codes::PERM_UNKNOWN_KIND,
            format!("robot {who} has a permission of unknown kind {kind:?}; it grants nothing"),
            "use kind \"project\" (namespace = a project or \"*\") or \"system\" (namespace \"/\")",
        )),
        Kind::System if permission.namespace != "/" => findings.push(Finding::error(
            codes::PERM_SYSTEM_NAMESPACE,
            format!(
                "robot {who} has a system permission with namespace {:?}; system permissions use \"/\"",
                permission.namespace
            ),
            "set the namespace of kind \"system\" permissions to \"/\"",
        )),
        _ => {}
    }
    for access in &permission.access {
        findings.extend(access_findings(who, &permission.kind, access));
    }
    findings
}

fn access_findings(who: &str, kind: &Kind, access: &Access) -> Vec<Finding> {
    let mut findings = Vec::new();
    let pair = format!("{}:{}", access.resource, access.action);
    // An unknown kind is reported once for the whole permission, not once per access.
    if !matches!(kind, Kind::Unknown(_)) && !is_known_pair(kind, &access.resource, &access.action) {
        findings.push(Finding::warning(
            codes::PERM_UNKNOWN_PAIR,
            format!(
                "robot {who} has {pair}, which current Harbor does not offer for kind {:?}",
                String::from(kind.clone())
            ),
            "check the spelling; older or newer Harbor versions may differ (helm-chart was removed in v2.8)",
        ));
    }
    if let Effect::Unknown(effect) = &access.effect {
        findings.push(Finding::warning(
            codes::PERM_UNKNOWN_EFFECT,
            format!("robot {who} has {pair} with unknown effect {effect:?}; it neither allows nor denies"),
            "use effect \"allow\" (or leave it out) or \"deny\"",
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(resource: &str, action: &str, effect: Effect) -> Access {
        Access {
            resource: resource.into(),
            action: action.into(),
            effect,
        }
    }

    fn allow(resource: &str, action: &str) -> Access {
        access(resource, action, Effect::Allow)
    }

    fn perm(kind: Kind, namespace: &str, access: Vec<Access>) -> Permission {
        Permission {
            kind,
            namespace: namespace.into(),
            access,
        }
    }

    fn robot(name: &str, level: Level, permissions: Vec<Permission>) -> Robot {
        Robot {
            name: name.into(),
            level: Some(level),
            permissions,
            ..Robot::default()
        }
    }

    fn codes_of(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    const IMPLIED: Decision = Decision::Allowed { implied: true };
    const ALLOWED: Decision = Decision::Allowed { implied: false };

    #[test]
    fn vector_project_robot_push_only_implies_pull() {
        let r = robot(
            "robot$shop+ci",
            Level::Project,
            vec![perm(Kind::Project, "shop", vec![allow("repository", "push")])],
        );
        assert_eq!(decide(&r, &Need::repository("shop", "pull")), IMPLIED);
        assert_eq!(decide(&r, &Need::repository("shop", "push")), ALLOWED);
        assert_eq!(decide(&r, &Need::repository("other", "pull")), Decision::NotGranted);
        assert_eq!(decide(&r, &Need::repository("shop", "delete")), Decision::NotGranted);
        let findings = check_needs(&r, &[Need::repository("shop", "pull")]);
        assert_eq!(codes_of(&findings), [codes::PERM_ALLOWED]);
        assert!(findings[0].message.contains("implied by push"));
    }

    #[test]
    fn vector_system_robot_push_only_does_not_imply_pull() {
        let r = robot(
            "robot$pusher",
            Level::System,
            vec![perm(Kind::Project, "shop", vec![allow("repository", "push")])],
        );
        assert_eq!(decide(&r, &Need::repository("shop", "pull")), Decision::NotGranted);
        assert_eq!(decide(&r, &Need::repository("shop", "push")), ALLOWED);
        let findings = check_needs(
            &r,
            &[Need::repository("shop", "pull"), Need::repository("shop", "push")],
        );
        assert_eq!(
            codes_of(&findings),
            [codes::PERM_PUSH_WITHOUT_PULL, codes::PERM_ALLOWED]
        );
        assert!(findings[0].hint.as_deref().unwrap().contains("repository:pull"));
    }

    #[test]
    fn a_pull_nobody_granted_is_not_granted_whatever_the_robot() {
        // Neither pull nor push: not the "push without pull" case, for either level.
        for level in [Level::Project, Level::System] {
            let r = robot(
                "robot$shop+idle",
                level,
                vec![perm(Kind::Project, "shop", vec![allow("artifact", "read")])],
            );
            let findings = check_needs(&r, &[Need::repository("shop", "pull")]);
            assert_eq!(codes_of(&findings), [codes::PERM_NOT_GRANTED]);
        }
    }

    #[test]
    fn vector_star_namespace_covers_every_project() {
        let r = robot(
            "robot$reader",
            Level::System,
            vec![perm(Kind::Project, "*", vec![allow("repository", "pull")])],
        );
        for project in ["shop", "anything", "future-project"] {
            assert_eq!(decide(&r, &Need::repository(project, "pull")), ALLOWED, "{project}");
        }
        assert_eq!(decide(&r, &Need::repository("shop", "push")), Decision::NotGranted);
    }

    #[test]
    fn vector_deny_wins_over_allow() {
        let r = robot(
            "robot$shop+ci",
            Level::Project,
            vec![perm(
                Kind::Project,
                "shop",
                vec![allow("repository", "pull"), access("repository", "pull", Effect::Deny)],
            )],
        );
        assert_eq!(decide(&r, &Need::repository("shop", "pull")), Decision::Denied);
        assert_eq!(
            codes_of(&check_needs(&r, &[Need::repository("shop", "pull")])),
            [codes::PERM_DENIED]
        );
    }

    #[test]
    fn deny_across_permissions_and_wildcards() {
        // A system robot: allow everything everywhere, deny push in one project.
        let r = robot(
            "robot$ops",
            Level::System,
            vec![
                perm(Kind::Project, "*", vec![allow("*", "*")]),
                perm(Kind::Project, "prod", vec![access("repository", "push", Effect::Deny)]),
            ],
        );
        assert_eq!(decide(&r, &Need::repository("prod", "push")), Decision::Denied);
        assert_eq!(decide(&r, &Need::repository("prod", "pull")), ALLOWED);
        assert_eq!(decide(&r, &Need::repository("dev", "push")), ALLOWED);
        assert_eq!(decide(&r, &Need::new("dev", "artifact", "delete")), ALLOWED);
    }

    #[test]
    fn denied_push_implies_nothing_and_denied_pull_beats_implication() {
        let r = robot(
            "robot$shop+ci",
            Level::Project,
            vec![perm(
                Kind::Project,
                "shop",
                vec![allow("repository", "push"), access("repository", "push", Effect::Deny)],
            )],
        );
        assert_eq!(decide(&r, &Need::repository("shop", "pull")), Decision::NotGranted);
        let r = robot(
            "robot$shop+ci",
            Level::Project,
            vec![perm(
                Kind::Project,
                "shop",
                vec![allow("repository", "push"), access("repository", "pull", Effect::Deny)],
            )],
        );
        assert_eq!(decide(&r, &Need::repository("shop", "pull")), Decision::Denied);
    }

    #[test]
    fn only_project_kind_and_known_effects_count() {
        let r = robot(
            "robot$x",
            Level::System,
            vec![
                perm(Kind::System, "shop", vec![allow("repository", "pull")]),
                perm(
                    Kind::Unknown("project ".into()),
                    "shop",
                    vec![allow("repository", "pull")],
                ),
                perm(
                    Kind::Project,
                    "shop",
                    vec![access("repository", "pull", Effect::Unknown("audit".into()))],
                ),
            ],
        );
        assert_eq!(decide(&r, &Need::repository("shop", "pull")), Decision::NotGranted);
        // Missing level: no implied pull (conservative).
        let mut r = robot(
            "robot$shop+ci",
            Level::Project,
            vec![perm(Kind::Project, "shop", vec![allow("repository", "push")])],
        );
        r.level = None;
        assert_eq!(decide(&r, &Need::repository("shop", "pull")), Decision::NotGranted);
    }

    #[test]
    fn decisions_serialise() {
        assert_eq!(
            serde_json::to_value(IMPLIED).unwrap(),
            serde_json::json!({"decision":"allowed","implied":true})
        );
        assert_eq!(
            serde_json::to_value(Decision::NotGranted).unwrap(),
            serde_json::json!({"decision":"not_granted"})
        );
    }

    #[test]
    fn project_robot_shape() {
        let own = |ns: &str| perm(Kind::Project, ns, vec![allow("repository", "pull")]);
        let ok = robot("robot$shop+ci", Level::Project, vec![own("shop")]);
        assert!(check_permissions(&ok, "robot$").is_empty());
        for bad in [
            robot("robot$shop+ci", Level::Project, vec![]),
            robot("robot$shop+ci", Level::Project, vec![own("other")]),
            robot("robot$shop+ci", Level::Project, vec![own("*")]),
            robot("robot$shop+ci", Level::Project, vec![own("shop"), own("shop")]),
            robot(
                "robot$shop+ci",
                Level::Project,
                vec![perm(Kind::System, "/", vec![allow("audit-log", "list")])],
            ),
            // The right namespace does not make a system permission a project one.
            robot(
                "robot$shop+ci",
                Level::Project,
                vec![perm(Kind::System, "shop", vec![allow("repository", "pull")])],
            ),
        ] {
            let codes = codes_of(&check_permissions(&bad, "robot$"));
            assert_eq!(codes.first(), Some(&codes::PERM_PROJECT_ROBOT_SHAPE), "{bad:?}");
        }
        // A system robot may mix entries.
        let sys = robot("robot$ops", Level::System, vec![own("shop"), own("*")]);
        assert!(check_permissions(&sys, "robot$").is_empty());
    }

    #[test]
    fn system_namespace_unknown_kind_pair_and_effect() {
        let r = robot(
            "robot$ops",
            Level::System,
            vec![
                perm(Kind::System, "shop", vec![allow("audit-log", "list")]),
                perm(Kind::System, "/", vec![allow("registry", "list")]),
                perm(Kind::Unknown("team".into()), "x", vec![allow("bogus", "x")]),
                perm(
                    Kind::Project,
                    "*",
                    vec![
                        allow("helm-chart", "read"),
                        allow("repository", "*"),
                        access("repository", "pull", Effect::Unknown("audit".into())),
                    ],
                ),
            ],
        );
        let findings = check_permissions(&r, "robot$");
        assert_eq!(
            codes_of(&findings),
            [
                codes::PERM_SYSTEM_NAMESPACE,
                codes::PERM_UNKNOWN_KIND,
                codes::PERM_UNKNOWN_PAIR,
                codes::PERM_UNKNOWN_PAIR,
                codes::PERM_UNKNOWN_EFFECT,
            ]
        );
        assert_eq!(findings[2].severity, super::super::findings::Severity::Warning);
        // The system permission on "shop" is the one reported, not the one on "/".
        assert!(
            findings[0].message.contains(r#"namespace "shop""#),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn known_pairs_table() {
        assert!(is_known_pair(&Kind::Project, "repository", "push"));
        assert!(is_known_pair(&Kind::Project, "tag-retention", "update"));
        assert!(!is_known_pair(&Kind::Project, "repository", "catalog"));
        assert!(!is_known_pair(&Kind::System, "repository", "pull"));
        assert!(is_known_pair(&Kind::System, "catalog", "read"));
        assert!(is_known_pair(&Kind::System, "purge-audit", "stop"));
        assert!(!is_known_pair(&Kind::Unknown(String::new()), "repository", "pull"));
    }
}
