//! The Harbor API v2.0 `Robot` model, as `GET /api/v2.0/robots[/{id}]` returns it, and the checks
//! on the robot as a whole (disabled, expired, legacy).
//!
//! Deserialisation is tolerant on purpose: fields may be missing or `null` (older Harbor versions,
//! hand-written robot files), and unknown fields are kept in [`Robot::extra`] because STACKIT's
//! service-account link lives in fields upstream Harbor does not have.

use super::findings::{Finding, codes};
use serde::{Deserialize, Deserializer, Serialize};

/// A Harbor robot account (API v2.0 `Robot`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Robot {
    /// Robot id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Full name including the prefix, e.g. `robot$shop+ci`. Empty when missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `system` or `project`; Harbor derives it from the project id (0 = system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Lifetime in days; `-1` = never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Expiry in unix seconds; `-1` = never. Harbor treats `expires_at <= now` as expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Whether the robot is disabled (the API spells it `disable`). `false` when missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub disable: bool,
    /// `false` marks a legacy v1 robot. `None` when missing, which is treated as a v2 robot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub editable: Option<bool>,
    /// The robot's scopes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub permissions: Vec<Permission>,
    /// Every other field (`creator_type`, `creation_time`, STACKIT extensions, …), kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A robot's level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Level {
    /// `system`: not bound to a project.
    System,
    /// `project`: bound to the one project in its name.
    Project,
    /// Anything else, kept verbatim.
    Unknown(String),
}

/// One `RobotPermission`: a set of accesses in a namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    /// `system` or `project`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub kind: Kind,
    /// A project name, `*` for all projects (present and future), or `/` for `kind=system`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub namespace: String,
    /// The granted (or denied) accesses.
    #[serde(default, deserialize_with = "null_as_default")]
    pub access: Vec<Access>,
}

/// A permission's kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Kind {
    /// System resources (namespace `/`).
    System,
    /// Project resources (namespace = a project name or `*`).
    Project,
    /// Anything else, kept verbatim; empty when missing.
    Unknown(String),
}

/// One `Access`: an action on a resource, allowed or denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Resource, e.g. `repository`; `*` matches every resource.
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource: String,
    /// Action, e.g. `pull`; `*` matches every action.
    #[serde(default, deserialize_with = "null_as_default")]
    pub action: String,
    /// Allow or deny; Harbor's portal never sends it, so missing means allow.
    #[serde(default, deserialize_with = "null_as_default")]
    pub effect: Effect,
}

/// An access's effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Effect {
    /// `allow`, or missing/empty.
    #[default]
    Allow,
    /// `deny`: wins over any allow.
    Deny,
    /// Anything else: neither allows nor denies (Harbor's casbin model only knows the two).
    Unknown(String),
}

impl Robot {
    /// Parses one robot from JSON text. Fails (never panics) on JSON that is not an object or
    /// whose known fields have the wrong type.
    pub fn from_json(text: &str) -> Result<Robot, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Parses a robot list (`GET /api/v2.0/robots`).
    pub fn list_from_json(text: &str) -> Result<Vec<Robot>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether this is a legacy v1 robot (`editable: false`).
    pub fn is_legacy(&self) -> bool {
        self.editable == Some(false)
    }

    /// Whether the robot has expired at `now` (unix seconds), exactly as Harbor decides it:
    /// `expires_at != -1 && expires_at <= now`. A missing `expires_at` never expires.
    pub fn is_expired(&self, now: i64) -> bool {
        matches!(self.expires_at, Some(at) if at != -1 && at <= now)
    }

    /// The robot as a JSON value, extras included (for reading link fields by JSON pointer).
    pub fn to_value(&self) -> serde_json::Value {
        // Serialising a struct of strings, numbers and a string-keyed map cannot fail; fall back
        // to null rather than panic should that ever change.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Checks the robot as a whole at `now` (unix seconds): `robot.disabled`, `robot.expired`,
/// `robot.expires_soon` (when it expires within `soon` seconds) and `robot.legacy`.
pub fn check_status(robot: &Robot, now: i64, soon: i64) -> Vec<Finding> {
    let mut findings = Vec::new();
    let who = display_name(robot);
    if robot.disable {
        findings.push(Finding::error(
            codes::ROBOT_DISABLED,
            format!("robot {who} is disabled; Harbor refuses its logins"),
            "enable the robot in Harbor (Robot accounts > Enable) or use another robot",
        ));
    }
    if let Some(at) = robot.expires_at {
        findings.extend(expiry(&who, at, now, soon));
    }
    if robot.is_legacy() {
        findings.push(Finding::warning(
            codes::ROBOT_LEGACY,
            format!("robot {who} is a legacy v1 robot (editable: false) without v2 permissions"),
            "create a v2 robot account with the needed permissions; Harbor removed v1 robots in v2.13",
        ));
    }
    findings
}

fn expiry(who: &str, at: i64, now: i64, soon: i64) -> Option<Finding> {
    if at == -1 {
        return None;
    }
    if at <= now {
        return Some(Finding::error(
            codes::ROBOT_EXPIRED,
            format!(
                "robot {who} expired {} ago (expires_at {at})",
                human_duration(now.saturating_sub(at))
            ),
            "extend the robot's duration in Harbor (Robot accounts > Edit > Expiration) or create a new robot",
        ));
    }
    let left = at.saturating_sub(now);
    (left <= soon).then(|| {
        Finding::warning(
            codes::ROBOT_EXPIRES_SOON,
            format!("robot {who} expires in {} (expires_at {at})", human_duration(left)),
            "extend the robot's duration in Harbor (Robot accounts > Edit > Expiration) before it lapses",
        )
    })
}

/// The robot's name for messages; `(unnamed)` when empty.
pub(crate) fn display_name(robot: &Robot) -> String {
    if robot.name.is_empty() {
        "(unnamed)".to_string()
    } else {
        format!("{:?}", robot.name)
    }
}

/// `90061` -> `1d 1h`; coarse on purpose, messages need orientation, not precision.
pub(crate) fn human_duration(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Deserialises `null` as the type's default, so `"permissions": null` reads as no permissions.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl From<String> for Level {
    fn from(s: String) -> Level {
        match s.as_str() {
            "system" => Level::System,
            "project" => Level::Project,
            _ => Level::Unknown(s),
        }
    }
}

impl From<Level> for String {
    fn from(level: Level) -> String {
        match level {
            Level::System => "system".into(),
            Level::Project => "project".into(),
            Level::Unknown(s) => s,
        }
    }
}

impl Default for Kind {
    fn default() -> Kind {
        Kind::Unknown(String::new())
    }
}

impl From<String> for Kind {
    fn from(s: String) -> Kind {
        match s.as_str() {
            "system" => Kind::System,
            "project" => Kind::Project,
            _ => Kind::Unknown(s),
        }
    }
}

impl From<Kind> for String {
    fn from(kind: Kind) -> String {
        match kind {
            Kind::System => "system".into(),
            Kind::Project => "project".into(),
            Kind::Unknown(s) => s,
        }
    }
}

impl From<String> for Effect {
    fn from(s: String) -> Effect {
        match s.as_str() {
            "" | "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            _ => Effect::Unknown(s),
        }
    }
}

impl From<Effect> for String {
    fn from(effect: Effect) -> String {
        match effect {
            Effect::Allow => "allow".into(),
            Effect::Deny => "deny".into(),
            Effect::Unknown(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"id":7,"name":"robot$shop+ci","description":"CI pusher","level":"project","duration":30,
 "expires_at":1790000000,"disable":false,"editable":true,"creator_type":"local","creator_ref":3,
 "creation_time":"2026-05-01T10:00:00.000Z","update_time":"2026-05-01T10:00:00.000Z",
 "permissions":[{"kind":"project","namespace":"shop",
   "access":[{"resource":"repository","action":"pull"},{"resource":"repository","action":"push"}]}]}"#;

    fn codes_of(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn parses_the_reference_example_and_keeps_extras() {
        let r = Robot::from_json(EXAMPLE).unwrap();
        assert_eq!(r.id, Some(7));
        assert_eq!(r.name, "robot$shop+ci");
        assert_eq!(r.level, Some(Level::Project));
        assert_eq!(r.expires_at, Some(1_790_000_000));
        assert!(!r.disable && !r.is_legacy());
        assert_eq!(r.permissions.len(), 1);
        let p = &r.permissions[0];
        assert_eq!((p.kind.clone(), p.namespace.as_str()), (Kind::Project, "shop"));
        assert_eq!(p.access[1].action, "push");
        assert_eq!(p.access[1].effect, Effect::Allow, "missing effect means allow");
        assert_eq!(r.extra["creator_type"], "local");
        assert_eq!(r.extra["creator_ref"], 3);
        assert!(
            !r.extra.contains_key("name"),
            "known fields are not duplicated into extras"
        );
    }

    #[test]
    fn round_trips_through_json_with_extras() {
        let r = Robot::from_json(EXAMPLE).unwrap();
        let again = Robot::from_json(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(r, again);
        assert_eq!(r.to_value()["creation_time"], "2026-05-01T10:00:00.000Z");
    }

    #[test]
    fn tolerates_missing_and_null_fields() {
        let r = Robot::from_json("{}").unwrap();
        assert_eq!(r, Robot::default());
        let r = Robot::from_json(
            r#"{"name":null,"permissions":null,"disable":null,"level":null,
                "extension":{"x":1}}"#,
        )
        .unwrap();
        assert!(r.name.is_empty() && r.permissions.is_empty() && !r.disable && r.level.is_none());
        let r = Robot::from_json(
            r#"{"permissions":[{"kind":null,"namespace":null,"access":[{"resource":null,"action":null,"effect":null}]},{}]}"#,
        )
        .unwrap();
        assert_eq!(r.permissions[0].access[0].effect, Effect::Allow);
        assert_eq!(r.permissions[1].kind, Kind::Unknown(String::new()));
    }

    #[test]
    fn keeps_unknown_enum_values_verbatim() {
        let r = Robot::from_json(
            r#"{"level":"global","permissions":[{"kind":"team","access":[{"resource":"r","action":"a","effect":"audit"},{"effect":""},{"effect":"deny"}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.level, Some(Level::Unknown("global".into())));
        assert_eq!(r.permissions[0].kind, Kind::Unknown("team".into()));
        let effects: Vec<_> = r.permissions[0].access.iter().map(|a| a.effect.clone()).collect();
        assert_eq!(effects, [Effect::Unknown("audit".into()), Effect::Allow, Effect::Deny]);
        assert_eq!(r.to_value()["level"], "global");
    }

    #[test]
    fn hostile_json_is_an_error_not_a_panic() {
        for text in [
            "",
            "[]",
            "null",
            "\"robot\"",
            r#"{"id":"seven"}"#,
            r#"{"id":1e400}"#,
            r#"{"expires_at":18446744073709551616}"#,
            r#"{"permissions":{"kind":"project"}}"#,
            r#"{"permissions":[{"access":"all"}]}"#,
            r#"{"disable":"yes"}"#,
            r#"{"name":"robot$a""#,
            &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            &format!("{{\"x\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000)),
        ] {
            assert!(Robot::from_json(text).is_err(), "{text:.60}");
        }
        assert!(Robot::list_from_json(r#"[{"name":"robot$a"},{}]"#).unwrap().len() == 2);
    }

    #[test]
    fn vector_expires_at_minus_one_never_and_now_is_expired() {
        let now = 1_000_000;
        let robot = |at| Robot {
            name: "robot$ci".into(),
            expires_at: Some(at),
            ..Robot::default()
        };
        assert!(!robot(-1).is_expired(now), "-1 never expires");
        assert!(robot(now).is_expired(now), "expires_at == now is expired");
        assert!(!robot(now + 1).is_expired(now));
        assert!(robot(-2).is_expired(now), "only -1 means never");
        assert!(!Robot::default().is_expired(now), "missing expires_at never expires");

        assert!(check_status(&robot(-1), now, 7 * 86_400).is_empty());
        assert_eq!(codes_of(&check_status(&robot(now), now, 0)), [codes::ROBOT_EXPIRED]);
        assert_eq!(
            codes_of(&check_status(&robot(now + 3600), now, 7 * 86_400)),
            [codes::ROBOT_EXPIRES_SOON]
        );
        assert!(check_status(&robot(now + 8 * 86_400), now, 7 * 86_400).is_empty());
        let f = &check_status(&robot(now - 90_061), now, 0)[0];
        assert!(f.message.contains("1d 1h ago"), "{}", f.message);
    }

    #[test]
    fn disabled_and_legacy_robots() {
        let r = Robot {
            name: "robot$shop+ci".into(),
            disable: true,
            editable: Some(false),
            ..Robot::default()
        };
        let findings = check_status(&r, 0, 0);
        assert_eq!(codes_of(&findings), [codes::ROBOT_DISABLED, codes::ROBOT_LEGACY]);
        assert!(findings[0].message.contains("\"robot$shop+ci\""));
        assert!(findings[0].hint.is_some());
    }
}
