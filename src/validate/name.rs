//! Robot names: `<prefix><project>+<name>` for project robots, `<prefix><name>` for system
//! robots. The prefix is Harbor's `robot_name_prefix` (default `robot$`; some installations use
//! `robot_`). Neither part may contain `+` or `$`, so parsing is unambiguous once the prefix is known.

use super::findings::{Finding, codes};
use super::robot::{Level, Robot, display_name};
use serde::Serialize;

/// Harbor's default robot name prefix.
pub const DEFAULT_PREFIX: &str = "robot$";

/// Harbor's project names are at most this long.
const MAX_PROJECT_LEN: usize = 255;

/// A parsed robot name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", rename_all = "lowercase")]
pub enum RobotName {
    /// `<prefix><name>`: a system robot.
    System {
        /// The short name.
        name: String,
    },
    /// `<prefix><project>+<name>`: a project robot.
    Project {
        /// The project the robot belongs to.
        project: String,
        /// The short name within the project.
        name: String,
    },
    /// A legacy v1 robot (`editable: false`): the stored name, not parsed.
    Legacy {
        /// The name as Harbor returned it.
        raw: String,
    },
}

/// Why a name could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The name does not start with the prefix.
    PrefixMissing,
    /// The rest is not `project+name` or `name` in Harbor's character class; the text says why.
    Malformed(String),
}

/// Parses a full robot name with `prefix`. Legacy robots are not recognised here (that needs
/// the `editable` flag); see [`robot_name`].
pub fn parse_name(full: &str, prefix: &str) -> Result<RobotName, NameError> {
    let rest = full.strip_prefix(prefix).ok_or(NameError::PrefixMissing)?;
    let parts: Vec<&str> = rest.split('+').collect();
    match parts.as_slice() {
        [name] => {
            check_part("name", name, usize::MAX)?;
            Ok(RobotName::System { name: name.to_string() })
        }
        [project, name] => {
            check_part("project", project, MAX_PROJECT_LEN)?;
            check_part("name", name, usize::MAX)?;
            Ok(RobotName::Project {
                project: project.to_string(),
                name: name.to_string(),
            })
        }
        _ => Err(NameError::Malformed(format!(
            "{} '+' after the prefix; expected at most one (project+name)",
            parts.len() - 1
        ))),
    }
}

/// The robot's parsed name: [`RobotName::Legacy`] for legacy robots, else [`parse_name`].
pub fn robot_name(robot: &Robot, prefix: &str) -> Result<RobotName, NameError> {
    if robot.is_legacy() {
        return Ok(RobotName::Legacy {
            raw: robot.name.clone(),
        });
    }
    parse_name(&robot.name, prefix)
}

/// Whether `s` matches Harbor's `^[a-z0-9]+(?:[._-][a-z0-9]+)*$`.
pub fn is_harbor_name(s: &str) -> bool {
    // `after_separator` starts true so a leading separator is refused.
    let mut after_separator = true;
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' => after_separator = false,
            b'.' | b'_' | b'-' if !after_separator => after_separator = true,
            _ => return false,
        }
    }
    !s.is_empty() && !after_separator
}

fn check_part(what: &str, part: &str, max_len: usize) -> Result<(), NameError> {
    if part.len() > max_len {
        return Err(NameError::Malformed(format!(
            "the {what} is longer than {max_len} characters"
        )));
    }
    if !is_harbor_name(part) {
        return Err(NameError::Malformed(format!(
            "the {what} {part:?} is not lower-case letters and digits separated by single '.', '_' or '-'"
        )));
    }
    Ok(())
}

/// Checks the robot's name against `prefix` and its level: `name.prefix_missing`,
/// `name.malformed`, `name.level_mismatch`. Legacy robots are skipped (their names predate the rules).
pub fn check_name(robot: &Robot, prefix: &str) -> Vec<Finding> {
    let who = display_name(robot);
    match robot_name(robot, prefix) {
        Ok(RobotName::Legacy { .. }) => Vec::new(),
        Ok(parsed) => level_mismatch(&who, &parsed, robot.level.as_ref())
            .into_iter()
            .collect(),
        Err(NameError::PrefixMissing) => vec![Finding::error(
            codes::NAME_PREFIX_MISSING,
            format!("robot name {who} does not start with the prefix {prefix:?}"),
            format!(
                "use the full name Harbor shows (e.g. {prefix}project+name), or set the prefix your Harbor uses (robot_name_prefix)"
            ),
        )],
        Err(NameError::Malformed(why)) => vec![Finding::error(
            codes::NAME_MALFORMED,
            format!("robot name {who} is malformed: {why}"),
            format!("use the name exactly as Harbor shows it: {prefix}<project>+<name> or {prefix}<name>"),
        )],
    }
}

fn level_mismatch(who: &str, parsed: &RobotName, level: Option<&Level>) -> Option<Finding> {
    let (expected, form) = match parsed {
        RobotName::Project { .. } => (Level::Project, "a project+name"),
        RobotName::System { .. } => (Level::System, "a system"),
        RobotName::Legacy { .. } => return None,
    };
    // A missing level cannot contradict the name; Harbor always sends it.
    let level = level?;
    (*level != expected).then(|| {
        Finding::error(
            codes::NAME_LEVEL_MISMATCH,
            format!(
                "robot {who} has {form} name but level {:?}",
                String::from(level.clone())
            ),
            format!(
                "check that the robot JSON is unmodified; Harbor gives such names level {:?}",
                String::from(expected)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn robot(name: &str, level: Option<Level>) -> Robot {
        Robot {
            name: name.into(),
            level,
            ..Robot::default()
        }
    }

    fn codes_of(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn parses_project_and_system_names() {
        assert_eq!(
            parse_name("robot$shop+ci", DEFAULT_PREFIX),
            Ok(RobotName::Project {
                project: "shop".into(),
                name: "ci".into()
            })
        );
        assert_eq!(
            parse_name("robot$deployer", DEFAULT_PREFIX),
            Ok(RobotName::System {
                name: "deployer".into()
            })
        );
        assert_eq!(
            parse_name("robot$my-team.web+ci_1", DEFAULT_PREFIX),
            Ok(RobotName::Project {
                project: "my-team.web".into(),
                name: "ci_1".into()
            })
        );
    }

    #[test]
    fn vector_custom_prefix_robot_underscore_parses() {
        assert_eq!(
            parse_name("robot_shop+ci", "robot_"),
            Ok(RobotName::Project {
                project: "shop".into(),
                name: "ci".into()
            })
        );
        assert_eq!(parse_name("robot$shop+ci", "robot_"), Err(NameError::PrefixMissing));
        assert!(check_name(&robot("robot_shop+ci", Some(Level::Project)), "robot_").is_empty());
    }

    #[test]
    fn vector_two_plus_signs_are_malformed() {
        assert!(matches!(
            parse_name("robot$a+b+c", DEFAULT_PREFIX),
            Err(NameError::Malformed(_))
        ));
        assert_eq!(
            codes_of(&check_name(&robot("robot$a+b+c", Some(Level::Project)), DEFAULT_PREFIX)),
            [codes::NAME_MALFORMED]
        );
    }

    #[test]
    fn vector_project_name_with_system_level_mismatches() {
        let findings = check_name(&robot("robot$shop+ci", Some(Level::System)), DEFAULT_PREFIX);
        assert_eq!(codes_of(&findings), [codes::NAME_LEVEL_MISMATCH]);
        assert!(findings[0].message.contains("\"system\""), "{}", findings[0].message);
        assert_eq!(
            codes_of(&check_name(&robot("robot$ci", Some(Level::Project)), DEFAULT_PREFIX)),
            [codes::NAME_LEVEL_MISMATCH]
        );
        assert_eq!(
            codes_of(&check_name(
                &robot("robot$ci", Some(Level::Unknown("x".into()))),
                DEFAULT_PREFIX
            )),
            [codes::NAME_LEVEL_MISMATCH]
        );
        assert!(check_name(&robot("robot$ci", None), DEFAULT_PREFIX).is_empty());
        assert!(check_name(&robot("robot$ci", Some(Level::System)), DEFAULT_PREFIX).is_empty());
    }

    #[test]
    fn malformed_parts() {
        for bad in [
            "robot$",
            "robot$+ci",
            "robot$shop+",
            "robot$Shop+ci",
            "robot$shop+c i",
            "robot$shop+-ci",
            "robot$shop+ci.",
            "robot$shop+c..i",
            "robot$robot$x",
            "robot$sh\u{f6}p+ci",
        ] {
            assert!(
                matches!(parse_name(bad, DEFAULT_PREFIX), Err(NameError::Malformed(_))),
                "{bad}"
            );
        }
        let long = format!("robot${}+ci", "a".repeat(256));
        assert!(matches!(
            parse_name(&long, DEFAULT_PREFIX),
            Err(NameError::Malformed(_))
        ));
        let ok = format!("robot${}+ci", "a".repeat(255));
        assert!(parse_name(&ok, DEFAULT_PREFIX).is_ok());
    }

    #[test]
    fn prefix_missing_is_an_error_unless_legacy() {
        assert_eq!(
            codes_of(&check_name(&robot("shop+ci", Some(Level::Project)), DEFAULT_PREFIX)),
            [codes::NAME_PREFIX_MISSING]
        );
        assert_eq!(
            codes_of(&check_name(&robot("", None), DEFAULT_PREFIX)),
            [codes::NAME_PREFIX_MISSING]
        );
        let mut legacy = robot("ci-robot", Some(Level::System));
        legacy.editable = Some(false);
        assert!(check_name(&legacy, DEFAULT_PREFIX).is_empty());
        assert_eq!(
            robot_name(&legacy, DEFAULT_PREFIX),
            Ok(RobotName::Legacy { raw: "ci-robot".into() })
        );
    }

    #[test]
    fn harbor_character_class() {
        for ok in ["a", "a1", "a.b", "a_b-c.d", "0"] {
            assert!(is_harbor_name(ok), "{ok}");
        }
        for bad in ["", ".", "a.", ".a", "a__b", "A", "a+b", "a$b", "a b"] {
            assert!(!is_harbor_name(bad), "{bad}");
        }
    }
}
