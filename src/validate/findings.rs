//! Findings: what a check found, with a stable code scripts can match on, a severity, a message
//! and a hint saying what to change.

use serde::Serialize;

/// How bad a finding is. Ordered from least to most severe, so `max()` gives the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational: something that is fine, or that could not be determined.
    Info,
    /// Works today, but likely to bite (expiring soon, an unknown permission pair).
    Warning,
    /// Blocks the pull or push, or makes the robot unusable.
    Error,
}

/// One result of a check. Serialises to
/// `{"code":"robot.expired","severity":"error","message":"…","hint":"…"}`
/// (`hint` is omitted when there is none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable code such as `perm.not_granted`; see [`codes`]. Never changes meaning.
    pub code: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What was found, in one line, naming the robot, project or field concerned.
    pub message: String,
    /// What to change to fix it, when there is something to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    /// An error finding with a fix hint.
    pub fn error(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Finding {
        Finding::new(code, Severity::Error, message, Some(hint.into()))
    }

    /// A warning finding with a fix hint.
    pub fn warning(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Finding {
        Finding::new(code, Severity::Warning, message, Some(hint.into()))
    }

    /// An informational finding; there is nothing to fix.
    pub fn info(code: &'static str, message: impl Into<String>) -> Finding {
        Finding::new(code, Severity::Info, message, None)
    }

    fn new(code: &'static str, severity: Severity, message: impl Into<String>, hint: Option<String>) -> Finding {
        Finding {
            code,
            severity,
            message: message.into(),
            hint,
        }
    }
}

/// The worst severity among `findings`, or `None` when there are none.
pub fn worst(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}

/// Whether any finding is an [`Severity::Error`].
pub fn has_errors(findings: &[Finding]) -> bool {
    worst(findings) == Some(Severity::Error)
}

/// The stable finding codes. The `name.*`, `perm.*`, `robot.*`, `scope.*` and `link.*` families
/// follow the validator rules in docs/harbor.md; codes are only ever added, never renamed.
pub mod codes {
    /// The robot name does not start with the configured prefix (error; skipped for legacy robots).
    pub const NAME_PREFIX_MISSING: &str = "name.prefix_missing";
    /// The name after the prefix is neither `project+name` nor `name` in Harbor's character class.
    pub const NAME_MALFORMED: &str = "name.malformed";
    /// A `project+name` robot is not `level=project`, or a plain `name` robot is not `level=system`.
    pub const NAME_LEVEL_MISMATCH: &str = "name.level_mismatch";

    /// A project robot does not have exactly one `kind=project` permission for its own project.
    pub const PERM_PROJECT_ROBOT_SHAPE: &str = "perm.project_robot_shape";
    /// A `(resource, action)` pair Harbor does not know for that kind (warning: versions drift).
    pub const PERM_UNKNOWN_PAIR: &str = "perm.unknown_pair";
    /// A `kind=system` permission whose namespace is not `/`.
    pub const PERM_SYSTEM_NAMESPACE: &str = "perm.system_namespace";
    /// A permission whose kind is neither `system` nor `project` (Harbor refuses these).
    pub const PERM_UNKNOWN_KIND: &str = "perm.unknown_kind";
    /// An access whose effect is neither `allow` (or empty) nor `deny`; it neither allows nor denies.
    pub const PERM_UNKNOWN_EFFECT: &str = "perm.unknown_effect";
    /// A needed action is allowed (info; the message says when pull is only implied by push).
    pub const PERM_ALLOWED: &str = "perm.allowed";
    /// A needed action is explicitly denied by a `deny` access.
    pub const PERM_DENIED: &str = "perm.denied";
    /// A needed action is not granted by any permission.
    pub const PERM_NOT_GRANTED: &str = "perm.not_granted";
    /// A system robot may push but not pull: Harbor implies pull only for project robots, and the
    /// registry needs both for a push, so pushes fail.
    pub const PERM_PUSH_WITHOUT_PULL: &str = "perm.push_without_pull";

    /// The robot is disabled (`disable: true`).
    pub const ROBOT_DISABLED: &str = "robot.disabled";
    /// The robot has expired (`expires_at != -1 && expires_at <= now`).
    pub const ROBOT_EXPIRED: &str = "robot.expired";
    /// The robot expires within the configured warning window.
    pub const ROBOT_EXPIRES_SOON: &str = "robot.expires_soon";
    /// A legacy v1 robot (`editable: false`): no v2 permissions, name rules do not apply.
    pub const ROBOT_LEGACY: &str = "robot.legacy";

    /// `registry:catalog:*` was asked for; Harbor grants it to system administrators only.
    pub const SCOPE_CATALOG_ADMIN_ONLY: &str = "scope.catalog_admin_only";
    /// A registry scope string that cannot be parsed (no name, no actions).
    pub const SCOPE_MALFORMED: &str = "scope.malformed";
    /// A repository without a project (`app` instead of `project/app`); Harbor rejects it.
    pub const SCOPE_NO_PROJECT: &str = "scope.no_project";
    /// A scope type other than `repository` or `registry`; Harbor grants nothing for it.
    pub const SCOPE_UNKNOWN_TYPE: &str = "scope.unknown_type";
    /// An action other than `pull`, `push`, `delete`, `*` or `scanner-pull`; ignored.
    pub const SCOPE_UNKNOWN_ACTION: &str = "scope.unknown_action";
    /// The registry token grants every needed action for a repository (info).
    pub const SCOPE_GRANTED: &str = "scope.granted";
    /// The registry token lacks actions needed for a repository.
    pub const SCOPE_MISSING_ACTIONS: &str = "scope.missing_actions";
    /// The registry token was issued to nobody: Harbor gives scoped requests with bad credentials
    /// an anonymous token instead of a 401.
    pub const SCOPE_ANONYMOUS_TOKEN: &str = "scope.anonymous_token";
    /// The registry token could not be decoded (not a JWT, or its `access` claim is not a list).
    pub const SCOPE_TOKEN_UNREADABLE: &str = "scope.token_unreadable";

    /// The robot is linked to the expected service account (info).
    pub const LINK_OK: &str = "link.ok";
    /// The robot is not linked to any service account.
    pub const LINK_UNLINKED: &str = "link.unlinked";
    /// The link state cannot be read: no link given and no configured field found (info).
    pub const LINK_UNKNOWN: &str = "link.unknown";
    /// The linked e-mail is missing or not an e-mail address.
    pub const LINK_EMAIL_MALFORMED: &str = "link.email_malformed";
    /// The linked id is missing or not a canonical UUID.
    pub const LINK_ID_MALFORMED: &str = "link.id_malformed";
    /// The linked e-mail differs from the key's `credentials.iss` (compared case-insensitively).
    pub const LINK_EMAIL_MISMATCH: &str = "link.email_mismatch";
    /// The linked id differs from the key's `credentials.sub` (compared in lower case).
    pub const LINK_ID_MISMATCH: &str = "link.id_mismatch";

    /// Every code above, for documentation and for tests that check codes stay unique.
    pub const ALL: &[&str] = &[
        NAME_PREFIX_MISSING,
        NAME_MALFORMED,
        NAME_LEVEL_MISMATCH,
        PERM_PROJECT_ROBOT_SHAPE,
        PERM_UNKNOWN_PAIR,
        PERM_SYSTEM_NAMESPACE,
        PERM_UNKNOWN_KIND,
        PERM_UNKNOWN_EFFECT,
        PERM_ALLOWED,
        PERM_DENIED,
        PERM_NOT_GRANTED,
        PERM_PUSH_WITHOUT_PULL,
        ROBOT_DISABLED,
        ROBOT_EXPIRED,
        ROBOT_EXPIRES_SOON,
        ROBOT_LEGACY,
        SCOPE_CATALOG_ADMIN_ONLY,
        SCOPE_MALFORMED,
        SCOPE_NO_PROJECT,
        SCOPE_UNKNOWN_TYPE,
        SCOPE_UNKNOWN_ACTION,
        SCOPE_GRANTED,
        SCOPE_MISSING_ACTIONS,
        SCOPE_ANONYMOUS_TOKEN,
        SCOPE_TOKEN_UNREADABLE,
        LINK_OK,
        LINK_UNLINKED,
        LINK_UNKNOWN,
        LINK_EMAIL_MALFORMED,
        LINK_ID_MALFORMED,
        LINK_EMAIL_MISMATCH,
        LINK_ID_MISMATCH,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_lowercase_severity_and_optional_hint() {
        let f = Finding::error(codes::ROBOT_EXPIRED, "expired", "renew it");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code":"robot.expired","severity":"error","message":"expired","hint":"renew it"})
        );
        let json = serde_json::to_value(Finding::info(codes::LINK_OK, "ok")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code":"link.ok","severity":"info","message":"ok"})
        );
        let w = serde_json::to_value(Finding::warning(codes::ROBOT_EXPIRES_SOON, "m", "h")).unwrap();
        assert_eq!(w["severity"], "warning");
    }

    #[test]
    fn worst_orders_error_above_warning_above_info() {
        let fs = vec![
            Finding::info(codes::LINK_OK, "a"),
            Finding::warning(codes::PERM_UNKNOWN_PAIR, "b", "c"),
        ];
        assert_eq!(worst(&fs), Some(Severity::Warning));
        assert!(!has_errors(&fs));
        assert_eq!(worst(&[]), None);
    }

    #[test]
    fn codes_are_unique_and_in_known_families() {
        let mut seen = std::collections::HashSet::new();
        for code in codes::ALL {
            assert!(seen.insert(code), "duplicate code {code}");
            let family = code.split('.').next().unwrap();
            assert!(["name", "perm", "robot", "scope", "link"].contains(&family), "{code}");
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{code}"
            );
        }
    }
}
