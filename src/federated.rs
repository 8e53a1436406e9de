//! Keyless identity (STACKIT workload identity federation): where the federated OIDC token comes
//! from, and what it claims.
//!
//! A CI job or a pod already holds an OIDC token from an issuer STACKIT trusts; STACKIT's IdP
//! exchanges it for an access token of a service account (see `token::exchange`). This module
//! only obtains the federated token and reads its claims (unverified: the IdP verifies). It
//! refuses a token that is missing, not a JWT, or already expired before any request is made.

use crate::clock::unix_now;
use crate::error::{Error, Result};
use crate::jwt::jwt_claims;
use crate::redact::sanitize;
use crate::secret::Secret;
use std::path::PathBuf;
use std::time::Instant;

/// Where STACKIT's pod identity webhook mounts the projected service-account token.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/stackit.cloud/serviceaccount/token";
/// The IdP token endpoint of the federated flow, as in the STACKIT SDKs.
pub const DEFAULT_IDP_TOKEN_ENDPOINT: &str = "https://accounts.stackit.cloud/oauth/v2/token";
/// The audience STACKIT expects in federated tokens it did not configure itself.
pub const STACKIT_AUDIENCE: &str = "sts.accounts.stackit.cloud";
/// The audience Azure Pipelines issues its OIDC tokens for (as the STACKIT SDK asks).
pub const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The API version of Azure Pipelines' OIDC token request.
pub const AZURE_API_VERSION: &str = "7.1";
/// `grant_type` of the federated exchange.
pub const GRANT_TYPE: &str = "client_credentials";
/// `client_assertion_type` of the federated exchange.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:schwarz:params:oauth:client-assertion-type:workload-jwt";

/// Largest federated token file or GitHub answer read (real tokens are 1-2 KiB).
const MAX_TOKEN: u64 = 64 * 1024;

/// Where a federated token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A file, re-read for every exchange because it rotates.
    File {
        /// The file.
        path: PathBuf,
        /// What named it, e.g. `STACKIT_FEDERATED_TOKEN_FILE`.
        origin: String,
    },
    /// The GitHub Actions OIDC endpoint of the running job.
    GithubActions {
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, sent only to `url`.
        request_token: Secret,
    },
    /// The Azure Pipelines OIDC endpoint of the running job.
    AzurePipelines {
        /// `SYSTEM_OIDCREQUESTURI`.
        url: String,
        /// `SYSTEM_ACCESSTOKEN` (a pipeline passes `$(System.AccessToken)` explicitly), sent
        /// only to `url`.
        access_token: Secret,
        /// The service connection to ask for (`STACKIT_SERVICE_CONNECTION_ID`, as STACKIT's
        /// Azure DevOps task sets it), if any.
        service_connection: Option<String>,
    },
    /// A token handed over directly, e.g. the pod's token in a kubelet request.
    Inline {
        /// The token.
        token: Secret,
        /// Where it came from, for messages.
        origin: String,
    },
}

/// A federated token and the claims that say whose it is.
#[derive(Debug, Clone)]
pub struct FederatedToken {
    /// The JWT itself; sent only to the IdP token endpoint.
    pub jwt: Secret,
    /// `iss` claim.
    pub issuer: String,
    /// `sub` claim.
    pub subject: String,
    /// `aud` claim (a string or a list in JWTs; always a list here).
    pub audience: Vec<String>,
    /// `exp` claim, unix seconds.
    pub expires_at: Option<u64>,
}

impl TokenSource {
    /// A description for messages; never contains a token.
    pub fn describe(&self) -> String {
        match self {
            TokenSource::File { path, origin } => format!("{origin} ({})", path.display()),
            TokenSource::GithubActions { .. } => "the GitHub Actions OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL)".into(),
            TokenSource::AzurePipelines { .. } => "the Azure Pipelines OIDC token (SYSTEM_OIDCREQUESTURI)".into(),
            TokenSource::Inline { origin, .. } => origin.clone(),
        }
    }

    /// True when getting the token needs the network (a CI provider's endpoint). Such a source
    /// is only asked on the cold path; its cache entry is keyed by the job's request token.
    pub fn needs_network(&self) -> bool {
        matches!(
            self,
            TokenSource::GithubActions { .. } | TokenSource::AzurePipelines { .. }
        )
    }

    /// The audience a token from this source should carry: Azure Pipelines issues its tokens
    /// for Azure's audience, every other source for STACKIT's.
    pub fn expected_audience(&self) -> &'static str {
        match self {
            TokenSource::AzurePipelines { .. } => AZURE_AUDIENCE,
            _ => STACKIT_AUDIENCE,
        }
    }

    /// For a network source: its request URL and the job's credential for it, which together
    /// key its cache entry (the credential is issued to one job alone).
    pub fn job_credential(&self) -> Option<(&str, &Secret)> {
        match self {
            TokenSource::GithubActions { url, request_token } => Some((url, request_token)),
            TokenSource::AzurePipelines { url, access_token, .. } => Some((url, access_token)),
            _ => None,
        }
    }

    /// Gets the federated token and checks that it is a JWT that has not expired; `deadline`
    /// bounds the request of a network source.
    pub fn fetch(&self, deadline: Instant, proxies: &crate::http::Proxies) -> Result<FederatedToken> {
        let jwt = match self {
            TokenSource::File { path, .. } => self.read_file(path, deadline)?,
            TokenSource::GithubActions { url, request_token } => {
                ci_token(Ci::GithubActions, url, request_token, None, deadline, proxies)?
            }
            TokenSource::AzurePipelines {
                url,
                access_token,
                service_connection,
            } => ci_token(
                Ci::AzurePipelines,
                url,
                access_token,
                service_connection.as_deref(),
                deadline,
                proxies,
            )?,
            TokenSource::Inline { token, .. } => token.clone(),
        };
        self.parse(jwt)
    }

    /// The token of a local source (a file, an inline token), checked as [`TokenSource::fetch`]
    /// does; `None` for a source that needs the network. A file that is a pipe is waited for
    /// until `deadline`.
    pub fn read_local(&self, deadline: Instant) -> Option<Result<FederatedToken>> {
        // A local source never goes to the network, so it needs no proxy settings.
        (!self.needs_network()).then(|| self.fetch(deadline, &crate::http::Proxies::default()))
    }

    fn read_file(&self, path: &std::path::Path, deadline: Instant) -> Result<Secret> {
        let fail = |why: String| Error::Key(format!("cannot read the federated token {}: {why}", self.describe()));
        let mut text = crate::fs::read_text_file(path, MAX_TOKEN, deadline).map_err(|e| {
            fail(match e {
                _ if e.is_not_found() => {
                    "no such file; mount the projected service-account token there or point STACKIT_FEDERATED_TOKEN_FILE at it".into()
                }
                e => e.reason_for("token"),
            })
        })?;
        let token = Secret::new(text.trim());
        zeroize::Zeroize::zeroize(&mut text);
        Ok(token)
    }

    /// Checks shape and expiry; the claims are read without verifying the signature (the IdP
    /// does that), so a bad token costs no request.
    fn parse(&self, jwt: Secret) -> Result<FederatedToken> {
        let bad = |why: &str| Error::Key(format!("the federated token {} {why}", self.describe()));
        if jwt.expose().is_empty() {
            return Err(bad("is empty; the token file must hold the OIDC token (a JWT)"));
        }
        let claims = jwt_claims(jwt.expose()).ok_or_else(|| {
            bad("is not a JWT (three base64url parts with a JSON payload); point it at the OIDC token itself")
        })?;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let (issuer, subject) = (text("iss"), text("sub"));
        if issuer.is_empty() || subject.is_empty() {
            return Err(bad(
                "has no iss or sub claim; STACKIT cannot match it to a federation rule",
            ));
        }
        let audience = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.clone()],
            Some(serde_json::Value::Array(list)) => list.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
            _ => Vec::new(),
        };
        let expires_at = claims
            .get("exp")
            .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)));
        let now = unix_now();
        if let Some(exp) = expires_at
            && exp <= now
        {
            return Err(bad(&format!(
                "expired {}s ago, at {}; whatever writes it (the kubelet's projected volume, the CI job) has stopped refreshing it",
                now - exp,
                crate::clock::utc_time(exp)
            )));
        }
        Ok(FederatedToken {
            jwt,
            issuer,
            subject,
            audience,
            expires_at,
        })
    }
}

/// `url` with each of `pairs` added to its query unless the query already has that key.
fn with_missing_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let query = url
        .split_once('#')
        .map_or(url, |(u, _)| u)
        .split_once('?')
        .map(|(_, q)| q);
    let has = |key: &str| query.is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == key));
    let missing: Vec<(&str, &str)> = pairs.iter().copied().filter(|(k, _)| !has(k)).collect();
    if missing.is_empty() {
        url.to_string()
    } else {
        crate::http::with_query(url, &missing)
    }
}

/// The GitHub Actions request URL with `audience=` added unless the URL already has one.
pub fn github_request_url(url: &str) -> String {
    with_missing_query(url, &[("audience", STACKIT_AUDIENCE)])
}

/// The Azure Pipelines request URL with `api-version`, `serviceConnectionId` (when one is
/// given) and `audience` added where the URL does not already have them, as the STACKIT SDK does.
pub fn azure_request_url(url: &str, service_connection: Option<&str>) -> String {
    let mut pairs = vec![("api-version", AZURE_API_VERSION)];
    if let Some(id) = service_connection.map(str::trim).filter(|id| !id.is_empty()) {
        pairs.push(("serviceConnectionId", id));
    }
    pairs.push(("audience", AZURE_AUDIENCE));
    with_missing_query(url, &pairs)
}

/// A CI provider that hands its jobs OIDC tokens over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ci {
    GithubActions,
    AzurePipelines,
}

impl Ci {
    fn name(self) -> &'static str {
        match self {
            Ci::GithubActions => "the GitHub Actions OIDC token",
            Ci::AzurePipelines => "the Azure Pipelines OIDC token",
        }
    }

    fn url_variable(self) -> &'static str {
        match self {
            Ci::GithubActions => "ACTIONS_ID_TOKEN_REQUEST_URL",
            Ci::AzurePipelines => "SYSTEM_OIDCREQUESTURI",
        }
    }

    /// What a 401 or 403 from the provider usually means.
    fn permission_hint(self) -> &'static str {
        match self {
            Ci::GithubActions => "the job needs `permissions: id-token: write`",
            Ci::AzurePipelines => {
                "pass the job's access token to the step (env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)) and allow the pipeline to use the service connection"
            }
        }
    }
}

/// Asks a CI provider's OIDC endpoint for the job's token: GitHub with a GET and STACKIT's
/// audience, Azure Pipelines with a POST and its own audience. The job's credential goes only
/// to that URL, over https (plain http only to loopback), and is never printed; neither is a
/// successful answer.
fn ci_token(
    ci: Ci,
    url: &str,
    credential: &Secret,
    service_connection: Option<&str>,
    deadline: Instant,
    proxies: &crate::http::Proxies,
) -> Result<Secret> {
    let endpoint = crate::http::Endpoint::parse(url, ci.url_variable())?;
    let url = match ci {
        Ci::GithubActions => github_request_url(endpoint.url()),
        Ci::AzurePipelines => azure_request_url(endpoint.url(), service_connection),
    };
    let host = crate::server_url::origin(&url).map(|o| o.authority).unwrap_or_default();
    let fail = |why: String| Error::Token(format!("cannot get {} from {host}: {why}", ci.name()));
    let client = crate::http::Client::new(proxies)?;
    let bearer = format!("Bearer {}", credential.expose());
    let answer = match ci {
        Ci::GithubActions => {
            let request = client
                .get(&url)
                .header("Accept", "application/json")
                .header("Authorization", &bearer);
            crate::http::bounded(request, deadline, MAX_TOKEN, |r| r.call())
        }
        Ci::AzurePipelines => {
            let request = client
                .post(&url)
                .header("Accept", "application/json")
                .header("Content-Type", "application/json")
                .header("Authorization", &bearer);
            crate::http::bounded(request, deadline, MAX_TOKEN, |r| r.send_empty())
        }
    }
    .map_err(|e| {
        // Not reached: a network problem, named as one.
        let why = match e {
            crate::http::SendError::NoTimeLeft => "no time left (DOCKER_CREDENTIAL_STACKIT_TIMEOUT)".into(),
            crate::http::SendError::Failed(e) => sanitize(&e.to_string()),
        };
        Error::Network(format!("cannot get {} from {host}: {why}", ci.name()))
    })?;
    let status = answer.status;
    let body = answer.body.map_err(|e| match e {
        crate::http::BodyError::TooLarge => fail(format!("the answer is larger than {} KiB", MAX_TOKEN / 1024)),
        crate::http::BodyError::Read(e) => fail(sanitize(&e.to_string())),
    })?;
    if !(200..300).contains(&status) {
        let hint = match status {
            401 | 403 => format!("; {}", ci.permission_hint()),
            _ => String::new(),
        };
        return Err(fail(format!(
            "HTTP {status}{}{hint}",
            crate::http::body_note(status, &body)
        )));
    }
    // GitHub answers `value`; Azure's REST reference names the field `oidcToken`, while the
    // STACKIT SDK reads `value`: either is accepted.
    #[derive(serde::Deserialize)]
    struct Answer {
        value: Option<String>,
        #[serde(rename = "oidcToken")]
        oidc_token: Option<String>,
    }
    let token = serde_json::from_str::<Answer>(&body).ok().and_then(|a| {
        [a.value, a.oidc_token]
            .into_iter()
            .flatten()
            .find(|t| !t.trim().is_empty())
    });
    match token {
        Some(t) => Ok(Secret::new(t.trim())),
        // Never echo a 2xx body: it may hold the token.
        None => Err(fail("the answer has no \"value\" or \"oidcToken\" with a token".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_times_are_written_in_utc() {
        assert_eq!(crate::clock::utc_time(784_111_777), "1994-11-06T08:49:37Z");
        assert_eq!(crate::clock::utc_time(u64::MAX), format!("unix time {}", u64::MAX));
    }

    #[test]
    fn the_audience_is_added_and_the_query_kept() {
        assert_eq!(
            github_request_url("https://gh.example/token?api-version=2.0"),
            "https://gh.example/token?api-version=2.0&audience=sts.accounts.stackit.cloud"
        );
        assert_eq!(
            github_request_url("https://gh.example/token"),
            "https://gh.example/token?audience=sts.accounts.stackit.cloud"
        );
        assert_eq!(
            github_request_url("https://gh.example/t?audience=mine&x=1"),
            "https://gh.example/t?audience=mine&x=1"
        );
    }
}
