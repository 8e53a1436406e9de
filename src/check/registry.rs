//! Steps 4 and 5: the registry's token auth, and what it grants for the repository.
//!
//! Harbor answers `GET /v2/` with `401` and `WWW-Authenticate: Bearer realm=…,service=…`. Its
//! token service answers a login **without** a scope with 401 when the credentials are bad,
//! which is what `docker login` relies on; a request **with** a scope gets an anonymous token
//! instead (empty actions), so step 4 must log in without a scope to tell the two apart. The
//! Harbor API (`/api/v2.0`) lives at the realm's origin, so the e2e rig (a distribution
//! registry in front of a separate token service) works like a real Harbor.

use super::codes;
use super::identity::{Login, skew_finding};
use super::{Step, Target};
use crate::clock::{parse_http_date, unix_now};
use crate::config::Settings;
use crate::http::{BodyError, SendError, body_note};
use crate::redact::sanitize;
use crate::secret::Secret;
use crate::server_url;
use crate::validate::{Finding, Grants, GrantsError, Scope, check_grants, missing_actions, needs_for_scope};
use base64::Engine;
use serde_json::Value;
use std::time::Instant;

/// What a path segment escapes: everything but RFC 3986 unreserved characters.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Answers larger than this are refused (a robot list of 100 is far smaller).
const MAX_BODY: u64 = 1024 * 1024;

/// An HTTP answer, reduced to what the checks read.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body (bounded).
    pub body: String,
    /// The `Date` header in unix seconds.
    pub date: Option<u64>,
    /// The `WWW-Authenticate` header.
    pub challenge: Option<String>,
}

/// A logged-in registry: where its token service and API are, and the credentials.
#[derive(Debug)]
pub struct Session {
    agent: crate::http::Client,
    deadline: Instant,
    login: Login,
    /// The token service URL from the challenge.
    pub realm: String,
    /// The `service` from the challenge, if any.
    pub service: Option<String>,
    /// The Harbor API origin (`scheme://host[:port]` of the realm).
    pub api_base: String,
}

impl Session {
    /// The login's username.
    pub fn username(&self) -> &str {
        &self.login.username
    }

    /// Whether the login is a legacy robot login.
    pub fn is_robot(&self) -> bool {
        self.login.robot
    }

    /// GET on the Harbor API (`path` starts with `/api/v2.0/`) with Basic auth.
    pub fn api_get(&self, path: &str) -> Result<Reply, ProbeError> {
        let url = format!("{}{path}", self.api_base);
        get(
            &self.agent,
            self.deadline,
            &url,
            Some(&self.login),
            &[("X-Is-Resource-Name", "true")],
        )
    }

    /// A registry token from the realm for `scope` (`None`: a login without scope).
    fn token(&self, scope: Option<&str>) -> Result<Reply, ProbeError> {
        let mut query = Vec::new();
        if let Some(service) = &self.service {
            query.push(("service", service.as_str()));
        }
        if let Some(scope) = scope {
            query.push(("scope", scope));
        }
        query.push(("account", self.login.username.as_str()));
        let url = crate::http::with_query(&self.realm, &query);
        get(&self.agent, self.deadline, &url, Some(&self.login), &[])
    }

    /// Harbor's numeric id for `project`.
    pub fn project_id(&self, project: &str) -> Result<i64, ProbeError> {
        let reply = self.api_get(&format!(
            "/api/v2.0/projects/{}",
            percent_encoding::utf8_percent_encode(project, PATH_SEGMENT)
        ))?;
        if reply.status != 200 {
            return Err(ProbeError::Status(reply.status));
        }
        serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|v| v.get("project_id").and_then(Value::as_i64))
            .ok_or(ProbeError::NoProjectId)
    }
}

/// The result of step 4.
#[derive(Debug)]
pub struct LoginOutcome {
    /// The step for the report.
    pub step: Step,
    /// The logged-in session, when the login worked.
    pub session: Option<Session>,
}

/// Step 4 for a registry the helper does not serve: nothing is sent to it, and the report
/// says why and how to serve it.
pub fn not_served_step(host: &str) -> Step {
    Step::ran(
        "registry",
        format!("did not log in to {host}: the helper does not serve it"),
        vec![Finding::error(
            codes::REGISTRY_NOT_SERVED,
            format!(
                "{host} is not served by docker-credential-stackit, so check sends it no credentials (no access token, no robot secret), as `get` gives it none"
            ),
            format!(
                "if {host} is a STACKIT registry, add it to DOCKER_CREDENTIAL_STACKIT_REGISTRIES or to the registries of the helper's config file"
            ),
        )],
    )
}

/// What logging in to a registry came to, before any words are put to it.
enum LoginProbe {
    /// `/v2/` answered 200: no login needed.
    Open,
    /// The token service answered.
    TokenService { session: Box<Session>, reply: Reply },
    /// The login stopped before the token service answered.
    Failed(LoginFailure),
}

/// Why a login never got an answer from the token service: each is one error finding.
enum LoginFailure {
    /// No HTTP client (a proxy variable that cannot be used).
    NoClient(String),
    /// `/v2/` could not be reached.
    Unreachable(ProbeError),
    /// `/v2/` answered something other than 200 or 401.
    UnexpectedStatus(Reply),
    /// The 401 challenge is not `Bearer realm=…`.
    UnexpectedChallenge(String),
    /// The realm is plain http to a non-loopback host.
    RealmInsecure(String),
    /// The realm is on a host name the helper does not serve.
    RealmNotServed { realm: String, realm_host: String },
    /// The token service could not be reached.
    TokenServiceUnreachable { realm: String, why: ProbeError },
}

/// Step 4, the probe: `/v2/`, its challenge, the realm checks, and a login without scope.
/// Returns the outcome and the registry's `Date` (for the clock check).
fn probe_login(settings: &Settings, target: &Target, login: Login) -> (LoginProbe, Option<u64>) {
    let deadline = Instant::now() + settings.timeout;
    let v2 = format!("{}/v2/", registry_base(&target.host));
    let agent = match crate::http::Client::new(&settings.env().proxies()) {
        Ok(agent) => agent,
        Err(e) => return (LoginProbe::Failed(LoginFailure::NoClient(e.to_string())), None),
    };
    let reply = match get(&agent, deadline, &v2, None, &[]) {
        Ok(r) => r,
        Err(why) => return (LoginProbe::Failed(LoginFailure::Unreachable(why)), None),
    };
    let date = reply.date;
    let outcome = match reply.status {
        200 => LoginProbe::Open,
        401 => {
            let challenge = reply.challenge.as_deref().unwrap_or("");
            match login_at_realm(settings, target, agent, deadline, login, challenge) {
                Ok((session, reply)) => LoginProbe::TokenService {
                    session: Box::new(session),
                    reply,
                },
                Err(why) => LoginProbe::Failed(why),
            }
        }
        _ => LoginProbe::Failed(LoginFailure::UnexpectedStatus(reply)),
    };
    (outcome, date)
}

/// Step 4 after the 401: the challenge, the realm checks, and a login without scope at the
/// realm. Credentials go out only once the realm passed both checks.
fn login_at_realm(
    settings: &Settings,
    target: &Target,
    agent: crate::http::Client,
    deadline: Instant,
    login: Login,
    challenge: &str,
) -> Result<(Session, Reply), LoginFailure> {
    let (realm, service) =
        parse_bearer_challenge(challenge).ok_or_else(|| LoginFailure::UnexpectedChallenge(challenge.to_string()))?;
    let Some(api_base) = secure_origin(&realm) else {
        return Err(LoginFailure::RealmInsecure(realm));
    };
    let realm_host = server_url::normalize(&realm).unwrap_or_default();
    if !realm_trusted(&target.host, &realm_host, &settings.served) {
        return Err(LoginFailure::RealmNotServed { realm, realm_host });
    }
    let session = Session {
        agent,
        deadline,
        login,
        realm,
        service,
        api_base,
    };
    match session.token(None) {
        Ok(reply) => Ok((session, reply)),
        Err(why) => Err(LoginFailure::TokenServiceUnreachable {
            realm: session.realm,
            why,
        }),
    }
}

/// Runs step 4: `/v2/` challenge, realm, login without scope. Also compares the clock with the
/// registry's `Date` when `measure_skew` (the token step could not).
pub fn login_step(settings: &Settings, target: &Target, login: Login, measure_skew: bool) -> LoginOutcome {
    let v2 = format!("{}/v2/", registry_base(&target.host));
    let (outcome, date) = probe_login(settings, target, login);
    let mut findings = Vec::new();
    if measure_skew && let Some(f) = date.and_then(|d| skew_finding(unix_now(), d, "the registry")) {
        findings.push(f);
    }
    // A failed login keeps what was measured before it: a skewed clock may be the very reason
    // the registry refused.
    let failed = |mut findings: Vec<Finding>, code, message: String, hint: String| {
        findings.push(Finding::error(code, message, hint));
        LoginOutcome {
            step: Step::ran("registry", format!("cannot log in to {v2}"), findings),
            session: None,
        }
    };
    match outcome {
        LoginProbe::Open => {
            findings.push(Finding::info(
                codes::REGISTRY_OPEN,
                format!("{v2} answered 200 without credentials: the registry needs no login"),
            ));
            LoginOutcome {
                step: Step::ran("registry", format!("{v2} needs no authentication"), findings),
                session: None,
            }
        }
        LoginProbe::TokenService { session, reply } => token_service_findings(&v2, *session, reply, findings, failed),
        LoginProbe::Failed(why) => {
            let (code, message, hint) = why.finding(&v2, &target.host);
            failed(findings, code, message, hint)
        }
    }
}

impl LoginFailure {
    /// The error finding's code, message and hint; `v2` is the probed `/v2/` URL.
    fn finding(self, v2: &str, host: &str) -> (&'static str, String, String) {
        match self {
            LoginFailure::NoClient(e) => (
                codes::REGISTRY_UNREACHABLE,
                format!("cannot reach {v2}: {e}"),
                "fix or unset the proxy variable named above".into(),
            ),
            LoginFailure::Unreachable(why) => (
                codes::REGISTRY_UNREACHABLE,
                format!("cannot reach {v2}: {why}"),
                network_hint(host),
            ),
            LoginFailure::UnexpectedStatus(reply) => (
                codes::REGISTRY_UNREACHABLE,
                format!(
                    "{v2} answered HTTP {}{} instead of a 401 challenge",
                    reply.status,
                    body_note(reply.status, &reply.body)
                ),
                format!("check that {host} is the registry host (not a proxy or web page)"),
            ),
            LoginFailure::UnexpectedChallenge(challenge) => (
                codes::REGISTRY_UNEXPECTED_CHALLENGE,
                format!(
                    "{v2} challenges with {:?}, not Bearer realm=…,service=…",
                    sanitize(&challenge)
                ),
                "this helper works with token-auth registries such as Harbor; check the registry host".into(),
            ),
            LoginFailure::RealmInsecure(realm) => (
                codes::REGISTRY_REALM_INSECURE,
                format!(
                    "the token realm {realm} is not https (plain http is only used on loopback); credentials were not sent"
                ),
                "fix the registry's token realm to use https".into(),
            ),
            LoginFailure::RealmNotServed { realm, realm_host } => (
                codes::REGISTRY_REALM_NOT_SERVED,
                format!(
                    "the token realm {realm} is not on {} but on {realm_host}, which the helper does not serve; credentials were not sent",
                    server_url::host_name(host)
                ),
                format!(
                    "if {realm_host} is the registry's own token service, add it to DOCKER_CREDENTIAL_STACKIT_REGISTRIES or to the registries of the helper's config file; otherwise the registry's challenge points elsewhere and should not get your credentials"
                ),
            ),
            LoginFailure::TokenServiceUnreachable { realm, why } => (
                codes::REGISTRY_TOKEN_SERVICE_FAILED,
                format!("cannot reach the token service {realm}: {why}"),
                network_hint(host),
            ),
        }
    }
}

/// The findings for the token service's answer to a login without scope.
fn token_service_findings(
    v2: &str,
    session: Session,
    reply: Reply,
    findings: Vec<Finding>,
    failed: impl FnOnce(Vec<Finding>, &'static str, String, String) -> LoginOutcome,
) -> LoginOutcome {
    let who = session.login.username.clone();
    match reply.status {
        200 if registry_token(&reply.body).is_some() => {
            let service = session
                .service
                .as_deref()
                .map(|s| format!(" (service {s})"))
                .unwrap_or_default();
            let summary = format!("{v2} -> token service {}{service}: {who} accepted", session.realm);
            LoginOutcome {
                step: Step::ran("registry", summary, findings),
                session: Some(session),
            }
        }
        200 => failed(
            findings,
            codes::REGISTRY_TOKEN_SERVICE_FAILED,
            format!(
                "the token service {} answered 200 without a token (neither token nor access_token)",
                session.realm
            ),
            "check that the realm is Harbor's /service/token".into(),
        ),
        401 => {
            let hint = if session.login.robot {
                "the robot secret is wrong, or the robot is disabled, expired or now linked to a service account (its secret then stops working)".to_string()
            } else {
                "link a robot to this service account (STACKIT portal: Container Registry > Robot accounts > Edit, e-mail and ID), and check that it is enabled and not expired; the robot step shows its state".to_string()
            };
            failed(
                findings,
                codes::REGISTRY_AUTH_REJECTED,
                format!(
                    "the token service {} refused {who} (HTTP 401{})",
                    session.realm,
                    body_note(reply.status, &reply.body)
                ),
                hint,
            )
        }
        status => failed(
            findings,
            codes::REGISTRY_TOKEN_SERVICE_FAILED,
            format!(
                "the token service {} answered HTTP {status}{}",
                session.realm,
                body_note(reply.status, &reply.body)
            ),
            "try again later; if it persists, the registry's token service is broken".into(),
        ),
    }
}

/// The result of step 5.
#[derive(Debug)]
pub struct ScopesOutcome {
    /// The step for the report.
    pub step: Step,
    /// Harbor's id of the repository's project, when the API told it.
    pub project_id: Option<i64>,
}

/// What the token service said about a scope, before any words are put to it.
enum ScopeProbe {
    /// It could not be reached.
    Unreachable(ProbeError),
    /// It answered with a status other than 200.
    Refused(Reply),
    /// It answered 200 without a token.
    NoToken,
    /// Its token cannot be read.
    Unreadable(GrantsError),
    /// What its token grants.
    Granted(Grants),
}

/// Step 5, the probe: a registry token for `scope_text`, decoded.
fn probe_scope(session: &Session, scope_text: &str) -> ScopeProbe {
    let reply = match session.token(Some(scope_text)) {
        Err(why) => return ScopeProbe::Unreachable(why),
        Ok(reply) if reply.status != 200 => return ScopeProbe::Refused(reply),
        Ok(reply) => reply,
    };
    match registry_token(&reply.body).map(|t| Grants::from_token(t.expose())) {
        None => ScopeProbe::NoToken,
        Some(Err(e)) => ScopeProbe::Unreadable(e),
        Some(Ok(grants)) => ScopeProbe::Granted(grants),
    }
}

/// Step 5's words for a scope probe: the step summary and its findings.
fn scope_findings(
    probe: ScopeProbe,
    realm: &str,
    scope: &Scope,
    scope_text: &str,
    repository: &str,
) -> (String, Vec<Finding>) {
    // Every way of getting no token is the same finding, in its own words.
    let failed = |message: String, hint: &str| {
        (
            format!("no token for {scope_text}"),
            vec![Finding::error(codes::REGISTRY_TOKEN_SERVICE_FAILED, message, hint)],
        )
    };
    match probe {
        ScopeProbe::Unreachable(why) => failed(
            format!("cannot reach the token service {realm}: {why}"),
            "try again; check the network or proxy",
        ),
        ScopeProbe::Refused(reply) => failed(
            format!(
                "the token service {realm} answered HTTP {} for {scope_text}{}",
                reply.status,
                body_note(reply.status, &reply.body)
            ),
            "try again later; if it persists, the registry's token service is broken",
        ),
        ScopeProbe::NoToken => failed(
            format!("the token service {realm} answered without a token"),
            "check that the realm is Harbor's /service/token",
        ),
        ScopeProbe::Unreadable(e) => (
            format!("the token for {scope_text} cannot be read"),
            vec![e.to_finding()],
        ),
        ScopeProbe::Granted(grants) => {
            let granted: Vec<String> = grants.actions(&scope.kind, &scope.name).into_iter().collect();
            let missing = missing_actions(&grants, scope);
            let granted = if granted.is_empty() {
                "nothing".to_string()
            } else {
                granted.join(", ")
            };
            let summary = if missing.is_empty() {
                format!("repository {repository}: granted {granted}")
            } else {
                format!(
                    "repository {repository}: granted {granted}; missing {}",
                    missing.join(", ")
                )
            };
            (summary, check_grants(&grants, scope))
        }
    }
}

/// Runs step 5: asks the token service for the repository scope and decodes what it granted;
/// adds Harbor's own view of the identity's permissions in the project when the API answers.
pub fn scopes_step(session: &Session, repository: &str, actions: &[&str]) -> ScopesOutcome {
    let scope_text = format!("repository:{repository}:{}", actions.join(","));
    let needs = needs_for_scope(&scope_text);
    if crate::validate::has_errors(&needs.findings) {
        return ScopesOutcome {
            step: Step::ran("scopes", format!("{scope_text} cannot be granted"), needs.findings),
            project_id: None,
        };
    }
    let scope = Scope::parse(&scope_text);
    let probe = probe_scope(session, &scope_text);
    let (summary, granted) = scope_findings(probe, &session.realm, &scope, &scope_text, repository);
    let mut findings = needs.findings;
    findings.extend(granted);
    let mut project_id = None;
    if let Some(project) = scope.project() {
        match session.project_id(project) {
            Ok(id) => {
                project_id = Some(id);
                let permissions = project_permissions(session, id);
                findings.push(harbor_permissions(session.username(), project, permissions));
            }
            Err(why) => findings.push(Finding::info(
                codes::HARBOR_API_UNAVAILABLE,
                format!(
                    "the Harbor API at {} did not return project {project:?} ({why}); Harbor's permission list is not shown",
                    session.api_base
                ),
            )),
        }
    }
    ScopesOutcome {
        step: Step::ran("scopes", summary, findings),
        project_id,
    }
}

/// The probe behind `harbor.permissions`: Harbor's `(resource, action)` pairs for the current
/// identity in project `id`.
fn project_permissions(session: &Session, id: i64) -> Result<Vec<(String, String)>, ProbeError> {
    let path = format!("/api/v2.0/users/current/permissions?scope=/project/{id}&relative=true");
    let reply = session.api_get(&path)?;
    if reply.status != 200 {
        return Err(ProbeError::Status(reply.status));
    }
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&reply.body) else {
        return Err(ProbeError::NotAList);
    };
    Ok(items
        .iter()
        .filter_map(|p| {
            Some((
                p.get("resource")?.as_str()?.to_string(),
                p.get("action")?.as_str()?.to_string(),
            ))
        })
        .collect())
}

/// `harbor.permissions`: what Harbor says `username` may do in the project.
fn harbor_permissions(
    username: &str,
    project: &str,
    permissions: Result<Vec<(String, String)>, ProbeError>,
) -> Finding {
    let pairs = match permissions {
        Ok(pairs) => pairs,
        Err(why) => {
            return Finding::info(
                codes::HARBOR_API_UNAVAILABLE,
                format!("the Harbor API did not list the permissions in project {project:?} ({why})"),
            );
        }
    };
    let mut repository: Vec<&str> = pairs
        .iter()
        .filter(|(r, _)| r == "repository")
        .map(|(_, a)| a.as_str())
        .collect();
    repository.sort_unstable();
    repository.dedup();
    let others = pairs.iter().filter(|(r, _)| r != "repository").count();
    let listed = if repository.is_empty() {
        "no repository actions".to_string()
    } else {
        format!("repository: {}", repository.join(", "))
    };
    let more = if others > 0 {
        format!(" (and {others} other permissions)")
    } else {
        String::new()
    };
    Finding::info(
        codes::HARBOR_PERMISSIONS,
        format!("Harbor says {username} may, in project {project:?}, {listed}{more}"),
    )
}

/// `http://` for loopback registries (as Docker treats them), `https://` for the rest.
pub fn registry_base(host: &str) -> String {
    let scheme = if server_url::is_loopback(server_url::host_name(host)) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}")
}

/// Whether credentials for `registry` (`host[:port]`) may go to a token realm on `realm`
/// (`host[:port]`, normalised): its host name is the registry's or a served host's, whatever
/// the port. Docker itself sends credentials to any realm; check is stricter because it is
/// pointed at hosts nobody vetted.
fn realm_trusted(registry: &str, realm: &str, served: &[String]) -> bool {
    let name = server_url::host_name(realm);
    !name.is_empty()
        && (name == server_url::host_name(registry) || served.iter().any(|s| server_url::host_name(s) == name))
}

/// `scheme://host[:port]` of an https URL, or of an http URL to a loopback host; `None` for
/// anything that would send credentials in the clear over the network.
fn secure_origin(url: &str) -> Option<String> {
    let o = server_url::origin(url).filter(|o| !o.has_userinfo)?;
    match o.scheme.as_str() {
        "https" => Some(format!("https://{}", o.authority)),
        "http" if server_url::is_loopback(&o.host) => Some(format!("http://{}", o.authority)),
        _ => None,
    }
}

/// Parses `Bearer realm="…",service="…"` into (realm, service).
pub fn parse_bearer_challenge(header: &str) -> Option<(String, Option<String>)> {
    let header = header.trim();
    let (scheme, params) = header.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    let realm = params.iter().find(|(k, _)| k == "realm")?.1.clone();
    let service = params.into_iter().find(|(k, _)| k == "service").map(|(_, v)| v);
    (!realm.is_empty()).then_some((realm, service))
}

/// `key=value` or `key="quoted, value"` pairs separated by commas; keys lower-cased.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    out
}

/// The registry token from a token service answer: `token`, else `access_token` (either may be
/// missing or empty).
pub fn registry_token(body: &str) -> Option<Secret> {
    let v: Value = serde_json::from_str(body).ok()?;
    ["token", "access_token"]
        .iter()
        .filter_map(|k| v.get(k).and_then(Value::as_str))
        .map(str::trim)
        .find(|t| !t.is_empty())
        .map(Secret::new)
}

fn get(
    agent: &crate::http::Client,
    deadline: Instant,
    url: &str,
    login: Option<&Login>,
    headers: &[(&str, &str)],
) -> Result<Reply, ProbeError> {
    let mut request = agent.get(url).header("Accept", "application/json");
    let authorization = login.map(basic);
    if let Some(value) = &authorization {
        request = request.header("Authorization", value.expose());
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let answer = match crate::http::bounded(request, deadline, MAX_BODY, |r| r.call()) {
        Ok(answer) => answer,
        Err(SendError::NoTimeLeft) => return Err(ProbeError::NoTimeLeft),
        Err(SendError::Failed(e)) => return Err(ProbeError::from(&e)),
    };
    let status = answer.status;
    let date = answer.header("date").and_then(parse_http_date);
    let challenge = answer.header("www-authenticate").map(str::to_string);
    let body = match answer.body {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(ProbeError::TooLarge),
        // An unreadable error body should not hide the status.
        Err(_) if !(200..300).contains(&status) => String::new(),
        Err(BodyError::Read(e)) => return Err(ProbeError::from(&e)),
    };
    Ok(Reply {
        status,
        body,
        date,
        challenge,
    })
}

fn basic(login: &Login) -> Secret {
    let pair = Secret::new(format!("{}:{}", login.username, login.password.expose()));
    Secret::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair.expose())
    ))
}

/// Why a request of `check` got no usable answer; the text completes "cannot reach …: ".
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The deadline passed before the request could be sent or finished.
    #[error("no time left (DOCKER_CREDENTIAL_STACKIT_TIMEOUT)")]
    NoTimeLeft,
    /// The answer was larger than `MAX_BODY`.
    #[error("it answered with more than {} KiB", MAX_BODY / 1024)]
    TooLarge,
    /// The TLS handshake failed (the text is sanitised).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// Connecting, sending or reading failed (the text is sanitised).
    #[error("{0}")]
    Network(String),
    /// The answer had a status the caller cannot use.
    #[error("HTTP {0}")]
    Status(u16),
    /// A project lookup answered without `project_id`.
    #[error("an answer without project_id")]
    NoProjectId,
    /// A list was asked for and something else came.
    #[error("not a JSON list")]
    NotAList,
}

impl From<&ureq::Error> for ProbeError {
    fn from(e: &ureq::Error) -> ProbeError {
        let text = sanitize(&e.to_string());
        if crate::http::is_tls_error(e) {
            ProbeError::Tls(text)
        } else {
            ProbeError::Network(text)
        }
    }
}

fn network_hint(host: &str) -> String {
    format!(
        "check the host {host} and the network; behind a proxy set HTTPS_PROXY (and NO_PROXY), with a private CA set SSL_CERT_FILE"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_bearer_challenge(r#"Bearer realm="https://r.example/service/token",service="harbor-registry""#),
            Some(("https://r.example/service/token".into(), Some("harbor-registry".into())))
        );
        assert_eq!(
            parse_bearer_challenge(
                r#"bearer service="s", realm="http://127.0.0.1:1/t?x=1,2", scope="repository:a/b:pull""#
            ),
            Some(("http://127.0.0.1:1/t?x=1,2".into(), Some("s".into())))
        );
        assert_eq!(
            parse_bearer_challenge("Bearer realm=https://x/t"),
            Some(("https://x/t".into(), None))
        );
        for bad in ["", "Basic realm=\"x\"", "Bearer service=\"s\"", "Bearer realm=\"\""] {
            assert_eq!(parse_bearer_challenge(bad), None, "{bad}");
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert_eq!(registry_base("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(registry_base("localhost:5000"), "http://localhost:5000");
        assert_eq!(registry_base("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(
            registry_base("registry.onstackit.cloud"),
            "https://registry.onstackit.cloud"
        );
        assert_eq!(
            registry_base("localhost.evil.example:80"),
            "https://localhost.evil.example:80"
        );
        assert_eq!(
            secure_origin("https://r.example/service/token").as_deref(),
            Some("https://r.example")
        );
        assert_eq!(
            secure_origin("http://127.0.0.1:8/service/token").as_deref(),
            Some("http://127.0.0.1:8")
        );
        assert_eq!(secure_origin("http://r.example/service/token"), None);
        assert_eq!(secure_origin("https://user@evil.example/t"), None);
        assert_eq!(secure_origin("ftp://r.example/t"), None);
    }

    #[test]
    fn realms_on_other_host_names_need_serving() {
        let served = ["registry.onstackit.cloud".to_string(), "auth.example:8443".to_string()];
        let trusted = |registry, realm| realm_trusted(registry, realm, &served);
        assert!(trusted("127.0.0.1:5000", "127.0.0.1:5001"));
        assert!(trusted("registry.onstackit.cloud", "registry.onstackit.cloud"));
        assert!(trusted("r.example", "auth.example"));
        assert!(trusted("[::1]:5000", "[::1]:6000"));
        assert!(!trusted("127.0.0.1:5000", "localhost:5000"));
        assert!(!trusted("r.example", "evil.example"));
        assert!(!trusted("r.example", "r.example.evil.example"));
        assert!(!trusted("r.example", ""));
    }

    #[test]
    fn token_or_access_token() {
        assert_eq!(
            registry_token(r#"{"token":"a","access_token":"b"}"#).unwrap().expose(),
            "a"
        );
        assert_eq!(
            registry_token(r#"{"token":"","access_token":"b"}"#).unwrap().expose(),
            "b"
        );
        assert_eq!(registry_token(r#"{"access_token":"b"}"#).unwrap().expose(), "b");
        assert_eq!(
            registry_token(r#"{"token":"a","access_token":""}"#).unwrap().expose(),
            "a"
        );
        assert!(registry_token(r#"{"token":"","access_token":null}"#).is_none());
        assert!(registry_token("<html>").is_none());
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            crate::http::with_query(
                "http://h/t",
                &[("scope", "repository:a/b:pull,push"), ("account", "robot$x+y")]
            ),
            "http://h/t?scope=repository%3Aa%2Fb%3Apull%2Cpush&account=robot%24x%2By"
        );
        assert_eq!(
            crate::http::with_query("http://h/t?a=1", &[("b", "2")]),
            "http://h/t?a=1&b=2"
        );
        // A realm with a fragment: the pairs go into the query, not after the fragment.
        for (realm, expected) in [
            ("https://h/token#frag", "https://h/token?service=s"),
            ("https://h/token?a=1#frag?x", "https://h/token?a=1&service=s"),
            ("https://h/token?", "https://h/token?service=s"),
            ("https://h/token?a=1&", "https://h/token?a=1&service=s"),
        ] {
            assert_eq!(crate::http::with_query(realm, &[("service", "s")]), expected, "{realm}");
        }
    }
}
