//! The report `check` prints: one [`Step`] per stage, each with a status, a one-line summary
//! and the findings behind it, rendered for people or as JSON with the stable finding codes.

use crate::terminal::escape_in_place;
use crate::validate::{Finding, Severity};
use serde::Serialize;

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing wrong.
    Ok,
    /// Works, but something should be fixed.
    Warn,
    /// Blocks the pull or push; `check` exits 1.
    Fail,
    /// Not run, because an earlier step failed or its input is missing; the summary says why.
    Skip,
}

/// One stage of the check.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Stable id: `docker`, `identity`, `token`, `registry`, `scopes` or `robot`.
    pub step: &'static str,
    /// The outcome; derived from the worst finding unless skipped.
    pub status: Status,
    /// One line: what was checked and the result, or why the step was skipped.
    pub summary: String,
    /// What was found, with codes and fix hints.
    pub findings: Vec<Finding>,
}

impl Step {
    /// A step that ran; its status is the worst finding's (no findings: ok).
    pub fn ran(step: &'static str, summary: impl Into<String>, findings: Vec<Finding>) -> Step {
        let status = match crate::validate::worst(&findings) {
            Some(Severity::Error) => Status::Fail,
            Some(Severity::Warning) => Status::Warn,
            _ => Status::Ok,
        };
        Step {
            step,
            status,
            summary: summary.into(),
            findings,
        }
    }

    /// A step that did not run, and why.
    pub fn skipped(step: &'static str, why: impl Into<String>) -> Step {
        Step {
            step,
            status: Status::Skip,
            summary: why.into(),
            findings: Vec::new(),
        }
    }

    /// Whether the step ran and found nothing that blocks.
    pub fn passed(&self) -> bool {
        matches!(self.status, Status::Ok | Status::Warn)
    }

    /// The step with [`crate::terminal::escape`] applied to every text in it.
    fn escaped(mut self) -> Step {
        escape_in_place(&mut self.summary);
        for f in &mut self.findings {
            escape_in_place(&mut f.message);
            if let Some(hint) = &mut f.hint {
                escape_in_place(hint);
            }
        }
        self
    }

    fn title(&self) -> &'static str {
        match self.step {
            "docker" => "Docker wiring",
            "identity" => "Identity",
            "token" => "Token",
            "registry" => "Registry auth",
            "scopes" => "Scopes",
            "robot" => "Robot and link",
            other => other,
        }
    }
}

/// Counts of step outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Steps that failed.
    pub failed: usize,
    /// Steps with warnings.
    pub warnings: usize,
    /// Steps that did not run.
    pub skipped: usize,
}

/// The whole report. Serialises to
/// `{"version":1,"registry":…,"repository":…,"actions":[…],"ok":…,"counts":{…},"steps":[…]}`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Format version of the JSON report; bumped only for incompatible changes.
    pub(crate) version: u32,
    /// The registry host checked (`host[:port]`).
    pub(crate) registry: String,
    /// The repository checked, if an image was given.
    pub(crate) repository: Option<String>,
    /// The registry actions checked: `["pull"]` or `["pull","push"]`.
    pub(crate) actions: Vec<&'static str>,
    /// True when no step failed.
    pub(crate) ok: bool,
    /// Outcome counts.
    pub(crate) counts: Counts,
    /// The steps in the order they ran.
    pub(crate) steps: Vec<Step>,
}

impl Report {
    /// Builds the report and its counts from the steps.
    ///
    /// Summaries, messages and hints quote registry answers, Harbor API JSON, the challenge and
    /// robot files, so every text is passed through [`crate::terminal::escape`] here, the one place all
    /// of it enters the report: neither the human report nor the JSON (whose strings scripts
    /// print) carries a raw control character, whichever step forgot to clean its input.
    pub(crate) fn new(
        mut registry: String,
        mut repository: Option<String>,
        actions: Vec<&'static str>,
        steps: Vec<Step>,
    ) -> Report {
        escape_in_place(&mut registry);
        if let Some(repository) = &mut repository {
            escape_in_place(repository);
        }
        let steps: Vec<Step> = steps.into_iter().map(Step::escaped).collect();
        let count = |s: Status| steps.iter().filter(|step| step.status == s).count();
        let counts = Counts {
            failed: count(Status::Fail),
            warnings: count(Status::Warn),
            skipped: count(Status::Skip),
        };
        Report {
            version: 1,
            registry,
            repository,
            actions,
            ok: counts.failed == 0,
            counts,
            steps,
        }
    }

    /// Whether any step failed (exit status 1).
    pub fn failed(&self) -> bool {
        !self.ok
    }

    /// Every finding code in the report, in order (for the tests).
    #[cfg(test)]
    pub(crate) fn codes(&self) -> Vec<&'static str> {
        self.steps
            .iter()
            .flat_map(|s| s.findings.iter().map(|f| f.code))
            .collect()
    }

    /// The machine-readable report.
    pub fn to_json(&self) -> String {
        // Plain strings, numbers and enums: serialisation cannot fail; an empty object is a
        // visible fallback should that ever change.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The human report: a header, one line per step, indented findings with fix hints, and a
    /// result line.
    pub fn render(&self) -> String {
        let target = match &self.repository {
            Some(repo) => format!("{}/{repo} for {}", self.registry, self.actions.join(",")),
            None => self.registry.clone(),
        };
        let mut out = format!("docker-credential-stackit check: {target}\n\n");
        for step in &self.steps {
            let mark = match step.status {
                Status::Ok => "[ ok ]",
                Status::Warn => "[warn]",
                Status::Fail => "[FAIL]",
                Status::Skip => "[skip]",
            };
            out.push_str(&format!("{mark} {:<15} {}\n", step.title(), step.summary));
            for f in &step.findings {
                let sev = match f.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warn ",
                    Severity::Info => "info ",
                };
                out.push_str(&format!("       {sev} {}: {}\n", f.code, f.message));
                if let Some(hint) = &f.hint {
                    out.push_str(&format!("             fix: {hint}\n"));
                }
            }
        }
        let c = self.counts;
        out.push_str(&format!(
            "\nResult: {} ({} failed, {} with warnings, {} skipped)\n",
            if self.ok { "OK" } else { "FAILED" },
            c.failed,
            c.warnings,
            c.skipped
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::codes;

    fn report() -> Report {
        Report::new(
            "r.example".into(),
            Some("shop/app".into()),
            vec!["pull", "push"],
            vec![
                Step::ran("docker", "fine", vec![]),
                Step::ran(
                    "identity",
                    "key",
                    vec![Finding::warning(codes::KEY_SHARED_MODE, "shared", "chmod 600 k")],
                ),
                Step::ran(
                    "token",
                    "no",
                    vec![Finding::error(codes::TOKEN_FAILED, "refused", "fix the key")],
                ),
                Step::skipped("registry", "no token"),
            ],
        )
    }

    #[test]
    fn status_and_counts_follow_the_findings() {
        let r = report();
        let statuses: Vec<Status> = r.steps.iter().map(|s| s.status).collect();
        assert_eq!(statuses, [Status::Ok, Status::Warn, Status::Fail, Status::Skip]);
        assert_eq!(
            r.counts,
            Counts {
                failed: 1,
                warnings: 1,
                skipped: 1
            }
        );
        assert!(r.failed());
        assert_eq!(r.codes(), [codes::KEY_SHARED_MODE, codes::TOKEN_FAILED]);
    }

    #[test]
    fn renders_one_line_per_step_with_hints() {
        let text = report().render();
        assert!(text.starts_with("docker-credential-stackit check: r.example/shop/app for pull,push\n"));
        assert!(text.contains("[ ok ] Docker wiring   fine\n"), "{text}");
        assert!(text.contains("[FAIL] Token           no\n"), "{text}");
        assert!(
            text.contains("error token.failed: refused\n             fix: fix the key\n"),
            "{text}"
        );
        assert!(text.contains("[skip] Registry auth   no token\n"), "{text}");
        assert!(
            text.ends_with("Result: FAILED (1 failed, 1 with warnings, 1 skipped)\n"),
            "{text}"
        );
    }

    #[test]
    fn control_characters_are_escaped_in_both_outputs() {
        let evil = "robot$a\u{1b}[2J\u{1b}]0;t\u{7}\u{9b}1m\u{7f}\r\n[ ok ] faked\tx";
        let r = Report::new(
            "r.example".into(),
            None,
            vec!["pull"],
            vec![
                Step::ran(
                    "robot",
                    format!("robot {evil}"),
                    vec![Finding::error(codes::HARBOR_ROBOT_LINKED, evil, evil)],
                ),
                Step::skipped("scopes", evil),
            ],
        );
        let escaped = r"robot$a\u{1b}[2J\u{1b}]0;t\u{7}\u{9b}1m\u{7f}\r\n[ ok ] faked\tx";
        let text = r.render();
        assert!(!text.chars().any(|c| c != '\n' && c.is_control()), "{text:?}");
        assert!(
            text.contains(&format!("[FAIL] Robot and link  robot {escaped}\n")),
            "{text}"
        );
        assert!(text.contains(&format!("fix: {escaped}\n")), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with('[')).count(), 2, "{text}");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["steps"][0]["findings"][0]["message"], escaped);
        assert_eq!(v["steps"][1]["summary"], escaped);
        assert_eq!(crate::terminal::escape("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn json_has_stable_fields() {
        let v: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["ok"], false);
        assert_eq!(v["actions"], serde_json::json!(["pull", "push"]));
        assert_eq!(v["steps"][2]["status"], "fail");
        assert_eq!(v["steps"][2]["findings"][0]["code"], "token.failed");
        assert_eq!(v["steps"][3]["status"], "skip");
        assert_eq!(v["counts"]["failed"], 1);
    }
}
