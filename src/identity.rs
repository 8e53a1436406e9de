//! Identities: how a host authenticates (a service account key, or keyless with a federated
//! token), where each part comes from, and loading one without network. Which identity serves
//! a host is decided by the settings (`config`); what a loaded identity is worth in tokens, by
//! `token`.

use crate::error::{Error, Result};
use crate::federated::{FederatedToken, TokenSource};
use crate::http;
use crate::key::{ServiceAccountKey, read_key_file};
use crate::log::debug;
use crate::secret::Secret;
use std::path::PathBuf;
use std::time::Instant;

/// The token endpoint used when nothing else is configured.
pub const DEFAULT_TOKEN_ENDPOINT: &str = "https://service-account.api.stackit.cloud/token";

/// Where a key (or private key) comes from, kept so errors and debug logs can name it.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file, named by `origin` (a variable or config field).
    File {
        /// The file.
        path: PathBuf,
        /// What pointed at it, e.g. `STACKIT_SERVICE_ACCOUNT_KEY_PATH`.
        origin: String,
    },
    /// Inline content, e.g. `STACKIT_SERVICE_ACCOUNT_KEY`.
    Inline {
        /// The content.
        text: Secret,
        /// Where it was found.
        origin: String,
    },
}

impl Source {
    /// A description for messages: `STACKIT_SERVICE_ACCOUNT_KEY_PATH (/path)` or the variable.
    pub fn describe(&self) -> String {
        match self {
            Source::File { path, origin } => format!("{origin} ({})", path.display()),
            Source::Inline { origin, .. } => origin.clone(),
        }
    }

    /// Reads the content (bounded, for files; a pipe's data is waited for until `deadline`).
    pub fn read(&self, deadline: Instant) -> Result<Secret> {
        match self {
            Source::File { path, origin } => read_key_file(path, &format!("the file named by {origin}"), deadline),
            Source::Inline { text, .. } => Ok(text.clone()),
        }
    }
}

/// How one host authenticates: with a service account key, or keyless with a federated token.
#[derive(Debug, Clone)]
pub enum IdentitySpec {
    /// A service account key (the key flow).
    Key(KeySpec),
    /// A federated token exchanged for the service account's access token (no key).
    Federated(FederatedSpec),
}

/// A federated identity: whose token, from where, exchanged where.
#[derive(Debug, Clone)]
pub struct FederatedSpec {
    /// The service account's e-mail (the exchange's `client_id`).
    pub email: String,
    /// What named the e-mail.
    pub email_origin: String,
    /// Where the federated token comes from.
    pub source: TokenSource,
    /// The IdP token endpoint, not yet checked.
    pub endpoint: String,
    /// Why that endpoint was chosen.
    pub endpoint_origin: String,
    /// A configured username; `None` = the e-mail.
    pub username: Option<String>,
}

impl IdentitySpec {
    /// Where the identity comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            IdentitySpec::Key(k) => format!("the service account key from {}", k.key.describe()),
            IdentitySpec::Federated(f) => {
                format!("the federated identity {} ({})", f.email, f.source.describe())
            }
        }
    }
}

/// A key identity: which key, which private key, which endpoint, which username.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// The SA key JSON.
    pub key: Source,
    /// An external private key that overrides `credentials.privateKey`.
    pub private_key: Option<Source>,
    /// A configured token endpoint and where it came from; `None` = key file or default.
    pub endpoint: Option<(String, String)>,
    /// A configured username; `None` = the key's `credentials.iss`.
    pub username: Option<String>,
}

/// A loaded identity: enough for the warm path (the cache id and the username); the private key
/// or the network-only federated token is only read when a token has to be minted.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A service account key.
    Key(KeyIdentity),
    /// A federated identity.
    Federated(FederatedIdentity),
}

impl Identity {
    /// The username answered to Docker.
    pub fn username(&self) -> &str {
        match self {
            Identity::Key(k) => &k.username,
            Identity::Federated(f) => &f.username,
        }
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &http::Endpoint {
        match self {
            Identity::Key(k) => &k.endpoint,
            Identity::Federated(f) => &f.endpoint,
        }
    }

    /// Why that endpoint was chosen.
    pub fn endpoint_origin(&self) -> &str {
        match self {
            Identity::Key(k) => k.endpoint.origin(),
            Identity::Federated(f) => f.endpoint.origin(),
        }
    }

    /// The cache key. A key identity has one entry per key id and endpoint. A federated one
    /// belongs to the federated subject (`iss` + `sub`), the e-mail and the endpoint together,
    /// so another workload claiming the same e-mail never gets this token. A CI provider's
    /// token (GitHub Actions, Azure Pipelines) is only fetched on the cold path, so its entry
    /// belongs to the job's request URL and credential (hashed), which the provider issues to
    /// one job alone.
    pub fn cache_id(&self) -> String {
        match self {
            Identity::Key(k) => format!("{}\n{}", k.key.kid, k.endpoint),
            Identity::Federated(f) => match (&f.token, &f.source) {
                (Some(t), _) => format!("federated\n{}\n{}\n{}\n{}", t.issuer, t.subject, f.email, f.endpoint),
                (None, source) if let Some((url, credential)) = source.job_credential() => {
                    let digest = aws_lc_rs::digest::digest(
                        &aws_lc_rs::digest::SHA256,
                        format!("{url}\n{}", credential.expose()).as_bytes(),
                    );
                    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                    let kind = match source {
                        TokenSource::GithubActions { .. } => "github",
                        _ => "azure",
                    };
                    format!("federated-{kind}\n{hex}\n{}\n{}", f.email, f.endpoint)
                }
                // Unreachable by construction (local sources are read on load); an id that
                // matches nothing makes the caller mint rather than share.
                (None, source) => format!("federated-unread\n{}\n{}\n{}", source.describe(), f.email, f.endpoint),
            },
        }
    }

    /// What the identity is, for messages: the key's source or the federated e-mail and source.
    pub fn describe(&self) -> String {
        match self {
            Identity::Key(k) => format!("the service account key from {}", k.key_source.describe()),
            Identity::Federated(f) => format!("the federated identity {} ({})", f.email, f.source.describe()),
        }
    }
}

/// A loaded federated identity.
#[derive(Debug, Clone)]
pub struct FederatedIdentity {
    /// The service account's e-mail.
    pub email: String,
    /// Where the federated token comes from.
    pub source: TokenSource,
    /// The federated token, already read for local sources (file, kubelet request); `None`
    /// for GitHub Actions until the cold path fetches it.
    pub token: Option<FederatedToken>,
    /// The IdP token endpoint and what configured it.
    pub endpoint: http::Endpoint,
    /// The username answered to Docker.
    pub username: String,
}

/// A loaded key identity: the parsed key plus everything resolved around it.
#[derive(Debug, Clone)]
pub struct KeyIdentity {
    /// The parsed service account key.
    pub key: ServiceAccountKey,
    /// Where the key came from.
    pub key_source: Source,
    /// An external private key, if one overrides the embedded one.
    pub private_key: Option<Source>,
    /// The token endpoint and what configured it.
    pub endpoint: http::Endpoint,
    /// The username answered to Docker.
    pub username: String,
}

impl KeyIdentity {
    /// The PEM private key and a name for it: the external one if configured, else the key's
    /// own. An external file that is a pipe is waited for until `deadline`.
    pub fn private_key_pem(&self, deadline: Instant) -> Result<(Secret, String)> {
        if let Some(source) = &self.private_key {
            return Ok((source.read(deadline)?, source.describe()));
        }
        match self.key.private_key_pem() {
            Some(pem) => Ok((pem, format!("credentials.privateKey in {}", self.key_source.describe()))),
            None => Err(Error::Key(format!(
                "the service account key from {} has no credentials.privateKey; set STACKIT_PRIVATE_KEY_PATH to the PEM file of its key pair",
                self.key_source.describe()
            ))),
        }
    }
}

/// Loads the identity of `spec`: parses the key, or reads the federated token when it is
/// local (a file), and resolves endpoint and username. No network; a key or token file that
/// is a pipe is waited for until `deadline`.
pub fn load(spec: &IdentitySpec, deadline: Instant) -> Result<Identity> {
    match spec {
        IdentitySpec::Key(spec) => load_key(spec, deadline).map(Identity::Key),
        IdentitySpec::Federated(spec) => load_federated(spec, deadline).map(Identity::Federated),
    }
}

/// Reads and parses the key of `spec` and resolves endpoint and username (no network).
pub fn load_key(spec: &KeySpec, deadline: Instant) -> Result<KeyIdentity> {
    let text = spec.key.read(deadline)?;
    let key = ServiceAccountKey::parse(text.expose(), &spec.key.describe())?;
    let endpoint = match &spec.endpoint {
        Some((url, origin)) => http::Endpoint::parse(url, origin)?,
        None => match &key.token_endpoint {
            Some(url) if is_known_token_endpoint(url) => {
                let origin = format!("credentials.tokenEndpoint in {}", spec.key.describe());
                http::Endpoint::parse(url, &origin)?
            }
            Some(url) => {
                crate::log::warn!(
                    "ignoring credentials.tokenEndpoint {:?} in {}: a key file may only name https://service-account.api.stackit.cloud or https://accounts.stackit.cloud; set STACKIT_TOKEN_BASEURL to use it",
                    crate::server_url::without_userinfo(url),
                    spec.key.describe()
                );
                default_endpoint()?
            }
            None => default_endpoint()?,
        },
    };
    debug!("token endpoint {endpoint} from {}", endpoint.origin());
    let username = spec.username.clone().unwrap_or_else(|| key.iss.clone());
    Ok(KeyIdentity {
        key,
        key_source: spec.key.clone(),
        private_key: spec.private_key.clone(),
        endpoint,
        username,
    })
}

/// The default token endpoint of the key flow.
fn default_endpoint() -> Result<http::Endpoint> {
    http::Endpoint::parse(DEFAULT_TOKEN_ENDPOINT, "the default")
}

/// Loads a federated identity: checks the endpoint and, for a local token source, reads the
/// token now (its subject keys the cache, and a bad token must cost no request).
pub fn load_federated(spec: &FederatedSpec, deadline: Instant) -> Result<FederatedIdentity> {
    // Checked here, the one door every federated identity passes (config file, environment,
    // kubelet request), before anything is read or sent.
    let email = service_account_email(&spec.email, &spec.email_origin)?;
    let endpoint = http::Endpoint::parse(&spec.endpoint, &spec.endpoint_origin)?;
    debug!("IdP token endpoint {endpoint} from {}", spec.endpoint_origin);
    // A local source (a file, an inline token) is read now; the GitHub endpoint is asked only
    // on the cold path, where the deadline applies.
    let token = spec.source.read_local(deadline).transpose()?;
    if let Some(t) = &token {
        debug!(
            "federated token from {}: iss {}, sub {}",
            spec.source.describe(),
            t.issuer,
            t.subject
        );
    }
    Ok(FederatedIdentity {
        email: email.to_string(),
        source: spec.source.clone(),
        token,
        endpoint,
        username: spec.username.clone().unwrap_or_else(|| email.to_string()),
    })
}

/// `text` trimmed, if it is shaped like a service account's e-mail (`name@domain.tld`: one `@`,
/// visible ASCII only, a dotted domain, at most 254 characters); else an error naming `origin`.
/// The value is not quoted: it may be anything a tenant or a CI variable put there.
pub fn service_account_email<'a>(text: &'a str, origin: &str) -> Result<&'a str> {
    let email = text.trim();
    if email.is_empty() {
        return Err(Error::Config(format!(
            "{origin} is blank; set it to the STACKIT service account's e-mail (name@sa.stackit.cloud)"
        )));
    }
    let shaped = email.len() <= 254
        && email.bytes().all(|b| b.is_ascii_graphic())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    if shaped {
        Ok(email)
    } else {
        Err(Error::Config(format!(
            "{origin} is not an e-mail address; set it to the STACKIT service account's e-mail (name@sa.stackit.cloud)"
        )))
    }
}

/// The hosts whose token endpoints a key file may name (see docs/reliability.md, "Where a key
/// may send its assertion").
const KNOWN_TOKEN_HOSTS: [&str; 2] = ["service-account.api.stackit.cloud", "accounts.stackit.cloud"];

/// True for `https://` URLs on one of the known STACKIT token hosts, on the default port and
/// without user info. Not any `*.stackit.cloud` host: application domains under it (where a
/// key's own `aud` lives) can be run by any STACKIT customer, and the assertion sent there could
/// be replayed at the real endpoint for ten minutes.
fn is_known_token_endpoint(url: &str) -> bool {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return false;
    };
    let Some(authority) = uri.authority() else {
        return false;
    };
    uri.scheme_str() == Some("https")
        && !authority.as_str().contains('@')
        && authority.port_u16().is_none_or(|p| p == 443)
        && KNOWN_TOKEN_HOSTS
            .iter()
            .any(|h| authority.host().eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_emails_are_checked_and_never_quoted() {
        for ok in ["ci-pusher-1a2b3c@sa.stackit.cloud", " a.b+c@x.example\n"] {
            assert_eq!(service_account_email(ok, "X").unwrap(), ok.trim());
        }
        for bad in [
            "",
            " ",
            "\t",
            "nobody",
            "a@b",
            "@x.example",
            "a@@x.example",
            "a@x..example",
            "a@.x",
            "a@x.",
            "a b@x.example",
            "ä@x.example",
        ] {
            let err = service_account_email(bad, "the ORIGIN").unwrap_err().to_string();
            assert!(err.starts_with("the ORIGIN is "), "{bad:?}: {err}");
            assert!(
                bad.trim().is_empty() || !err.contains(bad.trim()),
                "{bad:?} quoted: {err}"
            );
        }
        assert!(service_account_email(&format!("{}@x.example", "a".repeat(250)), "X").is_err());
    }

    #[test]
    fn endpoint_rules() {
        assert!(http::Endpoint::parse("https://x.example/token", "T").is_ok());
        assert!(http::Endpoint::parse("http://127.0.0.1:9/token", "T").is_ok());
        assert!(http::Endpoint::parse("http://localhost:9/token", "T").is_ok());
        assert!(http::Endpoint::parse("http://[::1]:9/token", "T").is_ok());
        let err = http::Endpoint::parse("http://10.1.1.1/token", "STACKIT_TOKEN_BASEURL")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("STACKIT_TOKEN_BASEURL") && err.contains("plain http"),
            "{err}"
        );
        assert!(http::Endpoint::parse("ftp://x/token", "T").is_err());
        assert!(http::Endpoint::parse("token", "T").is_err());
        assert!(is_known_token_endpoint(
            "https://service-account.api.stackit.cloud/token"
        ));
        assert!(is_known_token_endpoint("https://accounts.stackit.cloud/oauth/v2/token"));
        assert!(is_known_token_endpoint(
            "https://Accounts.STACKIT.cloud:443/oauth/v2/token"
        ));
        assert!(!is_known_token_endpoint(
            "http://service-account.api.stackit.cloud/token"
        ));
        assert!(!is_known_token_endpoint("https://stackit.cloud.evil.example/token"));
        assert!(!is_known_token_endpoint("https://evilstackit.cloud/token"));
        assert!(!is_known_token_endpoint(
            "https://service-account.api.stackit.cloud@evil.example/token"
        ));
        assert!(!is_known_token_endpoint(
            "https://evil@service-account.api.stackit.cloud/token"
        ));
        assert!(!is_known_token_endpoint(
            "https://accounts.stackit.cloud:8443/oauth/v2/token"
        ));
        // Any STACKIT customer can run an app under these domains.
        assert!(!is_known_token_endpoint(
            "https://attacker.apps.01.cf.eu01.stackit.cloud/token"
        ));
        assert!(!is_known_token_endpoint("https://stackit.cloud/token"));
    }
}
