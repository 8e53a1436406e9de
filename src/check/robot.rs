//! Step 6: the robot behind the login — its link to the service account and its permissions —
//! from `--robot-file` or, when the identity may list robots, the Harbor robots API.

use super::codes;
use super::registry::Session;
use super::{Step, Target};
use crate::validate::{
    self, Finding, LinkLookup, LinkPointers, LinkSource, Options, Robot, SaIdentity, check_link, check_needs,
    needs_for_scope, read_link,
};
use std::path::Path;

/// Robot files larger than this are not robot JSON.
const MAX_ROBOT_FILE: u64 = 4 * 1024 * 1024;

/// Where the robots came from, for messages.
enum Origin {
    File(String),
    Api(String),
}

impl Origin {
    fn describe(&self) -> &str {
        match self {
            Origin::File(s) | Origin::Api(s) => s,
        }
    }
}

/// Runs step 6. `expected` is the service account from the key (`None` for a robot login).
pub fn step(
    robot_file: Option<&Path>,
    target: &Target,
    session: Option<&Session>,
    project_id: Option<i64>,
    expected: Option<&SaIdentity>,
    pointers: &LinkPointers,
    now: u64,
) -> Step {
    let (robots, origin) = match robot_file {
        Some(path) => match read_robot_file(path) {
            Ok(robots) => (robots, Origin::File(path.display().to_string())),
            Err(why) => {
                return Step::ran(
                    "robot",
                    format!("cannot use --robot-file {}", path.display()),
                    vec![Finding::error(
                        codes::CHECK_ROBOT_FILE_INVALID,
                        format!("--robot-file {} {why}", path.display()),
                        "save the robot's JSON from the Harbor API (GET /api/v2.0/robots/<id>) or a robot list",
                    )],
                );
            }
        },
        None => match list_robots(session, target, project_id, expected, pointers) {
            Ok(found) => found,
            Err(why) => return Step::skipped("robot", format!("skipped: {why}")),
        },
    };

    let login_name = session.filter(|s| s.is_robot()).map(Session::username);
    let Some(robot) = select(&robots, expected, login_name, pointers) else {
        let who = expected
            .map(|sa| sa.email.clone())
            .or(login_name.map(str::to_string))
            .unwrap_or_else(|| "this identity".into());
        return Step::ran(
            "robot",
            format!("{} robots from {}; none is {who}'s", robots.len(), origin.describe()),
            vec![Finding::warning(
                codes::HARBOR_NO_LINKED_ROBOT,
                format!(
                    "none of the {} robots from {} is linked to {who}",
                    robots.len(),
                    origin.describe()
                ),
                "link the robot that should serve this identity (STACKIT portal: Robot accounts > Edit), or pass --robot-file with that robot's JSON",
            )],
        );
    };

    let findings = judge(robot, target, expected, pointers, now);
    let level = match robot.level {
        Some(validate::Level::Project) => "project robot",
        Some(validate::Level::System) => "system robot",
        _ => "robot",
    };
    Step::ran(
        "robot",
        format!("{level} {} from {}", robot.name, origin.describe()),
        findings,
    )
}

/// What is wrong with the chosen robot: its own state, its link, and its scopes for the target.
fn judge(
    robot: &Robot,
    target: &Target,
    expected: Option<&SaIdentity>,
    pointers: &LinkPointers,
    now: u64,
) -> Vec<Finding> {
    let mut findings = validate::check_robot(robot, &Options::default(), now as i64);
    match expected {
        Some(sa) => {
            let link = check_link(robot, &LinkSource::Pointers(pointers.clone()), sa);
            findings.extend(link.findings);
        }
        None => {
            if let LinkLookup::Link(sa) = read_link(robot, pointers) {
                findings.push(Finding::error(
                    codes::HARBOR_ROBOT_LINKED,
                    format!(
                        "robot {} is linked to service account {}, so its secret no longer works",
                        robot.name, sa.email
                    ),
                    "log in with the service account key instead: set STACKIT_SERVICE_ACCOUNT_KEY_PATH",
                ));
            }
        }
    }
    if let Some(scope) = target.scope() {
        let needs = needs_for_scope(&scope);
        findings.extend(check_needs(robot, &needs.needs));
    }
    findings
}

fn read_robot_file(path: &Path) -> Result<Vec<Robot>, String> {
    let deadline = std::time::Instant::now() + crate::config::DEFAULT_TIMEOUT;
    let text = crate::fs::read_text_file(path, MAX_ROBOT_FILE, deadline).map_err(super::docker::unreadable)?;
    parse_robots(&text)
}

/// One robot object or a list of them.
fn parse_robots(text: &str) -> Result<Vec<Robot>, String> {
    let why = |e: serde_json::Error| format!("is not robot JSON (line {} column {})", e.line(), e.column());
    let robots = if text.trim_start().starts_with('[') {
        Robot::list_from_json(text).map_err(why)?
    } else {
        vec![Robot::from_json(text).map_err(why)?]
    };
    if robots.is_empty() {
        return Err("holds an empty list".into());
    }
    Ok(robots)
}

/// Lists robots through the Harbor API: the project's, then the system robots, stopping at the
/// first list that has a robot linked to `expected`.
fn list_robots(
    session: Option<&Session>,
    target: &Target,
    project_id: Option<i64>,
    expected: Option<&SaIdentity>,
    pointers: &LinkPointers,
) -> Result<(Vec<Robot>, Origin), String> {
    let hint = "pass --robot-file FILE with the robot's JSON to check its link and permissions";
    let Some(session) = session else {
        return Err(format!("no registry login to ask Harbor with; {hint}"));
    };
    let Some(id) = project_id else {
        return Err(match target.repository {
            None => format!("no image given, so no project to list robots in; {hint}"),
            Some(_) => format!("the Harbor API did not give the project's id; {hint}"),
        });
    };
    let mut all = Vec::new();
    let mut refusals = Vec::new();
    let queries = [
        (
            format!("/api/v2.0/robots?q=Level%3Dproject%2CProjectID%3D{id}&page_size=100"),
            "the project's robots",
        ),
        ("/api/v2.0/robots?page_size=100".to_string(), "the system robots"),
    ];
    for (path, what) in &queries {
        match session.api_get(path) {
            Ok(r) if r.status == 200 => match Robot::list_from_json(&r.body) {
                Ok(list) => all.extend(list),
                Err(_) => refusals.push(format!("{what}: not a robot list")),
            },
            Ok(r) => refusals.push(format!("{what}: HTTP {}", r.status)),
            Err(why) => refusals.push(format!("{what}: {why}")),
        }
        if select(&all, expected, None, pointers).is_some() && expected.is_some() {
            break;
        }
    }
    if all.is_empty() {
        return Err(format!(
            "{} may not list robots ({}); {hint}",
            session.username(),
            refusals.join(", ")
        ));
    }
    let origin = Origin::Api(format!("the Harbor API at {}", session.api_base));
    Ok((all, origin))
}

/// The robot to check: the one linked to `expected` (by e-mail or id, so a half-matching link is
/// found and explained), the one named `login_name`, or the only one there is.
fn select<'a>(
    robots: &'a [Robot],
    expected: Option<&SaIdentity>,
    login_name: Option<&str>,
    pointers: &LinkPointers,
) -> Option<&'a Robot> {
    if let Some(name) = login_name {
        return robots.iter().find(|r| r.name == name);
    }
    if let Some(sa) = expected {
        let links: Vec<(&Robot, SaIdentity)> = robots
            .iter()
            .filter_map(|r| match read_link(r, pointers) {
                LinkLookup::Link(l) => Some((r, l)),
                _ => None,
            })
            .collect();
        let email = |l: &SaIdentity| l.email.eq_ignore_ascii_case(&sa.email);
        let id = |l: &SaIdentity| l.id.eq_ignore_ascii_case(&sa.id);
        if let Some((r, _)) = links.iter().find(|(_, l)| email(l) && id(l)) {
            return Some(r);
        }
        if let Some((r, _)) = links.iter().find(|(_, l)| email(l) || id(l)) {
            return Some(r);
        }
    }
    match robots {
        [only] => Some(only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn robot(name: &str, email: Option<&str>, id: Option<&str>) -> Robot {
        let mut v = serde_json::json!({"name": name, "level": "project"});
        if let Some(e) = email {
            v["service_account_email"] = e.into();
        }
        if let Some(i) = id {
            v["service_account_id"] = i.into();
        }
        Robot::from_json(&v.to_string()).unwrap()
    }

    const ID: &str = "2f1c6a0e-1111-4222-8333-444455556666";
    const OTHER: &str = "9f1c6a0e-1111-4222-8333-444455556666";

    #[test]
    fn selects_the_linked_robot_then_a_half_match_then_the_only_one() {
        let sa = SaIdentity::new("ci@sa.stackit.cloud", ID);
        let robots = vec![
            robot("robot$shop+a", None, None),
            robot("robot$shop+b", Some("x@sa.stackit.cloud"), Some(ID)),
            robot("robot$shop+c", Some("CI@sa.stackit.cloud"), Some(ID)),
        ];
        assert_eq!(
            select(&robots, Some(&sa), None, &LinkPointers::default()).unwrap().name,
            "robot$shop+c"
        );
        assert_eq!(
            select(&robots[..2], Some(&sa), None, &LinkPointers::default())
                .unwrap()
                .name,
            "robot$shop+b"
        );
        let unrelated = vec![
            robot("robot$shop+a", None, None),
            robot("robot$shop+d", Some("x@sa.stackit.cloud"), Some(OTHER)),
        ];
        assert!(select(&unrelated, Some(&sa), None, &LinkPointers::default()).is_none());
        assert_eq!(
            select(&unrelated[..1], Some(&sa), None, &LinkPointers::default())
                .unwrap()
                .name,
            "robot$shop+a"
        );
        assert_eq!(
            select(&robots, None, Some("robot$shop+b"), &LinkPointers::default())
                .unwrap()
                .name,
            "robot$shop+b"
        );
    }

    #[test]
    fn robot_files_hold_one_robot_or_a_list() {
        assert_eq!(parse_robots(r#"{"name":"robot$a+b"}"#).unwrap().len(), 1);
        assert_eq!(
            parse_robots(r#" [{"name":"robot$a+b"},{"name":"robot$c"}]"#)
                .unwrap()
                .len(),
            2
        );
        assert!(parse_robots("[]").unwrap_err().contains("empty"));
        assert!(parse_robots("{oops").unwrap_err().contains("line 1"));
        assert!(parse_robots(r#"{"name":5}"#).is_err());
    }
}
