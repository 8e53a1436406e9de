//! The embedded validator: explains why a pull or push is refused, without network access.
//!
//! It answers four questions from data the caller fetched (a robot's JSON from the Harbor API or
//! a file, a registry token, the service account key):
//!
//! - **Is the robot usable?** [`check_robot`]: its name against the prefix and level
//!   ([`name`]), its permission list ([`permissions`]), disabled/expired ([`robot`]).
//! - **May it do this?** [`decide`] a [`Need`] (an action on a resource in a project), and
//!   [`needs_for_scope`] to turn a registry scope such as `repository:shop/app:push` into needs;
//!   [`check_needs`] reports each.
//! - **Is it linked to this service account?** [`check_link`] compares the robot's linked
//!   e-mail and id (read through [`LinkPointers`] or given explicitly) with the key's.
//! - **What did the registry actually grant?** [`Grants::from_token`] decodes a registry bearer
//!   token's `access` claim; [`check_grants`] names the missing actions.
//!
//! Every answer is a list of [`Finding`]s with a stable code (see [`codes`]), a [`Severity`], a
//! message and a fix hint; findings serialise to JSON for `check --json`. The library reads no
//! clock (callers pass `now` in unix seconds), does no I/O and never panics on hostile JSON.
//!
//! ```
//! use docker_credential_stackit::validate::{self, Decision, Need, Options, Robot};
//!
//! let robot = Robot::from_json(r#"{"name":"robot$shop+ci","level":"project","expires_at":-1,
//!     "permissions":[{"kind":"project","namespace":"shop",
//!                     "access":[{"resource":"repository","action":"push"}]}]}"#)?;
//! assert!(validate::check_robot(&robot, &Options::default(), 1_700_000_000).is_empty());
//! // A project robot's push implies pull.
//! let need = Need::repository("shop", "pull");
//! assert_eq!(validate::decide(&robot, &need), Decision::Allowed { implied: true });
//! # Ok::<(), serde_json::Error>(())
//! ```

#![warn(missing_docs)]

pub mod findings;
pub mod grants;
pub mod link;
pub mod name;
pub mod permissions;
pub mod robot;
pub mod scope;

pub use findings::{Finding, Severity, codes, has_errors, worst};
pub use grants::{Grants, GrantsError, check_grants, missing_actions};
pub use link::{LinkCheck, LinkLookup, LinkPointers, LinkSource, LinkState, SaIdentity, check_link, read_link};
pub use name::{DEFAULT_PREFIX, NameError, RobotName, parse_name};
pub use permissions::{Decision, Need, check_needs, decide};
pub use robot::{Access, Effect, Kind, Level, Permission, Robot};
pub use scope::{Scope, ScopeNeeds, needs_for_scope};

/// Warn about a robot's expiry this long ahead by default: 7 days.
pub const DEFAULT_EXPIRES_SOON: i64 = 7 * 86_400;

/// Settings for [`check_robot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Harbor's robot name prefix (`robot_name_prefix`). Default [`DEFAULT_PREFIX`] (`robot$`).
    pub prefix: String,
    /// `robot.expires_soon` is reported when the robot expires within this many seconds.
    /// Default [`DEFAULT_EXPIRES_SOON`] (7 days); 0 disables the warning.
    pub expires_soon: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            prefix: DEFAULT_PREFIX.to_string(),
            expires_soon: DEFAULT_EXPIRES_SOON,
        }
    }
}

/// Runs every check on the robot itself at `now` (unix seconds): `name.*`, `perm.*` shape and
/// pair checks, and `robot.*`. Returns no findings for a healthy robot. Whether it may do a
/// particular thing is [`check_needs`]'s job; its link is [`check_link`]'s.
pub fn check_robot(robot: &Robot, options: &Options, now: i64) -> Vec<Finding> {
    let mut findings = name::check_name(robot, &options.prefix);
    findings.extend(permissions::check_permissions(robot, &options.prefix));
    findings.extend(robot::check_status(robot, now, options.expires_soon));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_of(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn healthy_robot_has_no_findings() {
        let robot = Robot::from_json(
            r#"{"id":7,"name":"robot$shop+ci","level":"project","expires_at":-1,"editable":true,
                "permissions":[{"kind":"project","namespace":"shop","access":[
                  {"resource":"repository","action":"pull"},{"resource":"repository","action":"push"}]}]}"#,
        )
        .unwrap();
        assert!(check_robot(&robot, &Options::default(), 1_000).is_empty());
    }

    #[test]
    fn collects_findings_from_every_family() {
        let now = 1_000_000;
        let robot = Robot::from_json(&format!(
            r#"{{"name":"robot$shop+ci","level":"system","disable":true,"expires_at":{now},
                "permissions":[{{"kind":"system","namespace":"shop","access":[{{"resource":"audit-log","action":"list"}}]}}]}}"#
        ))
        .unwrap();
        assert_eq!(
            codes_of(&check_robot(&robot, &Options::default(), now)),
            [
                codes::NAME_LEVEL_MISMATCH,
                codes::PERM_SYSTEM_NAMESPACE,
                codes::ROBOT_DISABLED,
                codes::ROBOT_EXPIRED,
            ]
        );
    }

    #[test]
    fn custom_prefix_flows_through_to_the_shape_check() {
        let robot = Robot::from_json(
            r#"{"name":"robot_shop+ci","level":"project","permissions":[{"kind":"project","namespace":"other"}]}"#,
        )
        .unwrap();
        let options = Options {
            prefix: "robot_".into(),
            ..Options::default()
        };
        assert_eq!(
            codes_of(&check_robot(&robot, &options, 0)),
            [codes::PERM_PROJECT_ROBOT_SHAPE]
        );
    }

    #[test]
    fn scope_to_decision_end_to_end() {
        let robot = Robot::from_json(
            r#"{"name":"robot$shop+ci","level":"project","permissions":[{"kind":"project","namespace":"shop",
                "access":[{"resource":"repository","action":"pull"}]}]}"#,
        )
        .unwrap();
        let needs = needs_for_scope("repository:shop/app:pull,push");
        let findings = check_needs(&robot, &needs.needs);
        assert_eq!(codes_of(&findings), [codes::PERM_ALLOWED, codes::PERM_NOT_GRANTED]);
        assert!(has_errors(&findings));
        let json = serde_json::to_string(&findings).unwrap();
        assert!(
            json.contains(r#""code":"perm.not_granted","severity":"error""#),
            "{json}"
        );
    }
}
