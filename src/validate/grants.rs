//! What a registry bearer token actually grants: its `access` claim
//! (`[{"type":"repository","name":"shop/app","actions":["pull","push"]}]`, the distribution
//! token format Harbor issues), and which needed actions it lacks.
//!
//! The token is decoded without verifying its signature: the registry verifies it, the validator
//! only explains what it says.

use super::findings::{Finding, codes};
use super::scope::{Scope, required_actions};
use crate::jwt::jwt_claims;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The actions a registry token grants, per resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    /// The token's `sub`; empty for the anonymous token Harbor issues on bad credentials.
    pub subject: String,
    /// Granted actions by resource type (`repository`), then name (`shop/app`).
    pub access: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// Why a token could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantsError {
    /// Not three dot-separated parts with a base64url JSON object in the middle.
    #[error("the registry token is not a JWT with a JSON payload")]
    NotAJwt,
    /// The `access` claim is present but not a list.
    #[error("the registry token's access claim is not a list")]
    AccessNotAList,
}

impl GrantsError {
    /// This error as a `scope.token_unreadable` finding.
    pub fn to_finding(&self) -> Finding {
        Finding::error(
            codes::SCOPE_TOKEN_UNREADABLE,
            self.to_string(),
            "check that the registry's token realm is Harbor's /service/token and not a proxy or login page",
        )
    }
}

impl Grants {
    /// Decodes a registry bearer token (unverified).
    pub fn from_token(token: &str) -> Result<Grants, GrantsError> {
        let claims = jwt_claims(token.trim()).ok_or(GrantsError::NotAJwt)?;
        Grants::from_claims(&claims)
    }

    /// Reads `sub` and `access` from decoded claims. A missing or `null` `access` grants nothing;
    /// entries that are not `{type, name, actions}` objects, and non-string actions, are skipped.
    pub fn from_claims(claims: &Map<String, Value>) -> Result<Grants, GrantsError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let entries = match claims.get("access") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(entries)) => entries.as_slice(),
            Some(_) => return Err(GrantsError::AccessNotAList),
        };
        let mut grants = Grants {
            subject,
            access: BTreeMap::new(),
        };
        for entry in entries {
            grants.add_entry(entry);
        }
        Ok(grants)
    }

    fn add_entry(&mut self, entry: &Value) {
        let (Some(kind), Some(name)) = (
            entry.get("type").and_then(Value::as_str),
            entry.get("name").and_then(Value::as_str),
        ) else {
            return;
        };
        let actions = entry.get("actions").and_then(Value::as_array);
        let set = self
            .access
            .entry(kind.to_string())
            .or_default()
            .entry(name.to_string())
            .or_default();
        // Repeated entries for one resource add up, as in the registry's access check.
        set.extend(
            actions
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
    }

    /// The actions granted on `kind` `name` (empty when none).
    pub fn actions(&self, kind: &str, name: &str) -> BTreeSet<String> {
        self.access
            .get(kind)
            .and_then(|names| names.get(name))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `action` is granted on `kind` `name`, directly or through `*`.
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access
            .get(kind)
            .and_then(|names| names.get(name))
            .is_some_and(|set| set.contains(action) || set.contains("*"))
    }

    /// Whether the token was issued to nobody (Harbor's answer to bad credentials with a scope).
    pub fn is_anonymous(&self) -> bool {
        self.subject.is_empty()
    }
}

/// The registry actions `scope` needs that `grants` lacks (pull, push, delete order). A push
/// needs pull and push, as the registry checks both for uploads.
pub fn missing_actions(grants: &Grants, scope: &Scope) -> Vec<&'static str> {
    let (required, _) = required_actions(&scope.actions);
    required
        .into_iter()
        .filter(|action| !grants.allows(&scope.kind, &scope.name, action))
        .collect()
}

/// Compares a token with the scope it was requested for: `scope.granted` (info) or
/// `scope.missing_actions`, preceded by `scope.anonymous_token` when an anonymous token is why.
pub fn check_grants(grants: &Grants, scope: &Scope) -> Vec<Finding> {
    let missing = missing_actions(grants, scope);
    let target = format!("{} {:?}", scope.kind, scope.name);
    if missing.is_empty() {
        let granted: Vec<String> = grants.actions(&scope.kind, &scope.name).into_iter().collect();
        return vec![Finding::info(
            codes::SCOPE_GRANTED,
            format!("the registry token grants {target}: {}", list_or_none(&granted)),
        )];
    }
    let mut findings = Vec::new();
    if grants.is_anonymous() {
        findings.push(Finding::error(
            codes::SCOPE_ANONYMOUS_TOKEN,
            "the registry issued an anonymous token: it did not accept the credentials",
            "check the username (the service account e-mail) and that the password is a fresh STACKIT access token; run `docker-credential-stackit token` to get one",
        ));
    }
    let granted: Vec<String> = grants.actions(&scope.kind, &scope.name).into_iter().collect();
    findings.push(Finding::error(
        codes::SCOPE_MISSING_ACTIONS,
        format!(
            "the registry token for {target} lacks {} (granted: {})",
            missing.join(", "),
            list_or_none(&granted)
        ),
        format!(
            "grant the robot linked to this identity repository:{} in project {:?}",
            missing.join(" and repository:"),
            scope.project().unwrap_or(&scope.name)
        ),
    ));
    findings
}

fn list_or_none(actions: &[String]) -> String {
    if actions.is_empty() {
        "nothing".to_string()
    } else {
        actions.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(payload: &Value) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b(r#"{"alg":"RS256"}"#), b(&payload.to_string()))
    }

    fn codes_of(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    fn token(sub: &str, access: Value) -> Grants {
        Grants::from_token(&jwt(&serde_json::json!({"sub": sub, "access": access}))).unwrap()
    }

    #[test]
    fn decodes_access_per_repository() {
        let g = token(
            "robot$shop+ci",
            serde_json::json!([
                {"type":"repository","name":"shop/app","actions":["pull","push"]},
                {"type":"repository","name":"shop/lib","actions":["pull"]},
                {"type":"repository","name":"shop/lib","actions":["delete"]},
                {"type":"registry","name":"catalog","actions":[]}
            ]),
        );
        assert_eq!(g.subject, "robot$shop+ci");
        assert!(g.allows("repository", "shop/app", "push"));
        assert!(!g.allows("repository", "shop/app", "delete"));
        assert_eq!(
            g.actions("repository", "shop/lib").into_iter().collect::<Vec<_>>(),
            ["delete", "pull"]
        );
        assert!(g.actions("repository", "other/x").is_empty());
        assert!(g.access["registry"]["catalog"].is_empty());
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(
            json["access"]["repository"]["shop/app"],
            serde_json::json!(["pull", "push"])
        );
    }

    #[test]
    fn missing_actions_for_push_include_pull() {
        let pull_only = token(
            "sa@sa.stackit.cloud",
            serde_json::json!([{"type":"repository","name":"shop/app","actions":["pull"]}]),
        );
        let push = Scope::parse("repository:shop/app:push");
        assert_eq!(missing_actions(&pull_only, &push), ["push"]);
        let push_only = token(
            "x",
            serde_json::json!([{"type":"repository","name":"shop/app","actions":["push"]}]),
        );
        assert_eq!(missing_actions(&push_only, &push), ["pull"]);
        let findings = check_grants(&pull_only, &push);
        assert_eq!(codes_of(&findings), [codes::SCOPE_MISSING_ACTIONS]);
        assert!(
            findings[0].message.contains("lacks push (granted: pull)"),
            "{}",
            findings[0].message
        );
        assert!(findings[0].hint.as_deref().unwrap().contains("\"shop\""));
    }

    #[test]
    fn star_grants_everything_and_all_granted_is_info() {
        let g = token(
            "x",
            serde_json::json!([{"type":"repository","name":"shop/app","actions":["*"]}]),
        );
        let scope = Scope::parse("repository:shop/app:*");
        assert!(missing_actions(&g, &scope).is_empty());
        assert_eq!(codes_of(&check_grants(&g, &scope)), [codes::SCOPE_GRANTED]);
    }

    #[test]
    fn anonymous_token_explains_the_denial() {
        for g in [
            token(
                "",
                serde_json::json!([{"type":"repository","name":"shop/app","actions":[]}]),
            ),
            Grants::from_token(&jwt(&serde_json::json!({"iss":"harbor-token-issuer"}))).unwrap(),
        ] {
            assert!(g.is_anonymous());
            let findings = check_grants(&g, &Scope::parse("repository:shop/app:pull"));
            assert_eq!(
                codes_of(&findings),
                [codes::SCOPE_ANONYMOUS_TOKEN, codes::SCOPE_MISSING_ACTIONS]
            );
            assert!(findings[1].message.contains("granted: nothing"));
        }
    }

    #[test]
    fn hostile_tokens_are_errors_or_skipped_entries() {
        assert_eq!(Grants::from_token("not a jwt"), Err(GrantsError::NotAJwt));
        assert_eq!(Grants::from_token("a.!!!.c"), Err(GrantsError::NotAJwt));
        assert_eq!(
            Grants::from_token(&jwt(&serde_json::json!([1, 2]))),
            Err(GrantsError::NotAJwt)
        );
        let e = Grants::from_token(&jwt(&serde_json::json!({"access": {"type":"repository"}}))).unwrap_err();
        assert_eq!(e, GrantsError::AccessNotAList);
        assert_eq!(e.to_finding().code, codes::SCOPE_TOKEN_UNREADABLE);
        let g = token(
            "x",
            serde_json::json!([
                1, null, "repository", {"type":"repository"}, {"name":"a/b"},
                {"type":"repository","name":"shop/app","actions":"pull"},
                {"type":"repository","name":"shop/lib","actions":["pull", 7, null]}
            ]),
        );
        assert!(g.actions("repository", "shop/app").is_empty());
        assert_eq!(g.actions("repository", "shop/lib").len(), 1);
        let g = Grants::from_token(&jwt(&serde_json::json!({"sub": 5, "access": null}))).unwrap();
        assert!(g.is_anonymous() && g.access.is_empty());
    }
}
