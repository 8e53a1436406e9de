//! Step 2, identity (which key, is it usable, does the private key belong to it; or which
//! federated token, whose, valid until when) and step 3, token (can this identity get a STACKIT
//! access token, and is the clock right).

use super::Step;
use super::codes;
use crate::clock::{parse_rfc3339, unix_now};
use crate::config::{ServedHost, Settings};
use crate::identity::{self, FederatedSpec, Identity, IdentitySpec, KeySpec, Source};
use crate::robots::RobotStore;
use crate::secret::Secret;
use crate::token;
use crate::validate::robot::human_duration;
use crate::validate::{Finding, SaIdentity};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use zeroize::Zeroizing;

/// Warn about a key's `validUntil` this long ahead.
const KEY_EXPIRES_SOON: u64 = 7 * 86_400;
/// Clocks further apart than this are reported: registries allow 60 s of leeway.
const MAX_SKEW: u64 = 60;

/// What this machine logs in to the registry with.
#[derive(Debug)]
pub enum Credential {
    /// A service account identity (key or federated); the password is a STACKIT access token.
    ServiceAccount(Box<Identity>),
    /// A stored legacy robot login (`store` kept it for a host without a key).
    Robot {
        /// The robot name, e.g. `robot$shop+ci`.
        username: String,
        /// The robot secret.
        secret: Secret,
    },
}

/// Username and password for the registry's token service.
#[derive(Debug)]
pub struct Login {
    /// The service account e-mail or robot name.
    pub username: String,
    /// The access token or robot secret.
    pub password: Secret,
    /// Whether this is a legacy robot login rather than a service account.
    pub robot: bool,
}

/// The result of step 2.
#[derive(Debug)]
pub struct IdentityOutcome {
    /// The step for the report.
    pub step: Step,
    /// What to log in with, if anything.
    pub credential: Option<Credential>,
    /// The service account a robot should be linked to (from the key), if a key was read.
    pub expected: Option<SaIdentity>,
}

/// Runs step 2 for `host` at `now` (unix seconds). A host that is not served (`None`) has no
/// identity to load: nothing that reads a key, costs a request or mints a credential happens
/// for it.
pub fn step(settings: &Settings, host: Option<&ServedHost>, now: u64) -> IdentityOutcome {
    let Some(host) = host else {
        return IdentityOutcome {
            step: Step::skipped(
                "identity",
                "skipped: the host is not served, so no identity is loaded for it",
            ),
            credential: None,
            expected: None,
        };
    };
    let fail = |code, message: String, hint: &str| IdentityOutcome {
        step: Step::ran(
            "identity",
            "no usable identity",
            vec![Finding::error(code, message, hint)],
        ),
        credential: None,
        expected: None,
    };
    let spec = match settings.identity_spec(host) {
        Ok(Some(spec)) => spec,
        Ok(None) => {
            let stored = settings
                .data_dir
                .as_deref()
                .and_then(|d| RobotStore::new(d).get(host.as_str()));
            return match stored {
                Some((username, secret)) => IdentityOutcome {
                    step: Step::ran(
                        "identity",
                        format!("no service account key for {host}; using the stored robot login {username}"),
                        vec![Finding::info(
                            codes::KEY_ROBOT_LOGIN,
                            format!(
                                "robot logins work only while the robot is not linked to a service account; {username} was stored by docker login"
                            ),
                        )],
                    ),
                    credential: Some(Credential::Robot { username, secret }),
                    expected: None,
                },
                None => fail(
                    codes::KEY_NONE,
                    format!("no service account key is configured for {host} and no robot login is stored"),
                    "set STACKIT_SERVICE_ACCOUNT_KEY_PATH to the service account key JSON downloaded from STACKIT",
                ),
            };
        }
        Err(e) => {
            return fail(e.code(), e.to_string(), "fix the variable or file named in the message");
        }
    };
    match spec {
        IdentitySpec::Key(spec) => key_step(settings, &spec, now),
        IdentitySpec::Federated(spec) => federated_step(settings, &spec, now),
    }
}

/// Step 2 for a federated identity: the e-mail, where the token comes from and what it claims.
/// A GitHub Actions token is fetched here too, to show its claims; it is never printed.
fn federated_step(settings: &Settings, spec: &FederatedSpec, now: u64) -> IdentityOutcome {
    // The token is read (a file) or fetched (GitHub Actions, which needs the job's permission);
    // either way a failure is one finding that names the source.
    let loaded = identity::load_federated(spec, settings.deadline).and_then(|identity| {
        let token = match &identity.token {
            Some(t) => t.clone(),
            None => spec
                .source
                .fetch(std::time::Instant::now() + settings.timeout, &settings.env().proxies())?,
        };
        Ok((identity, token))
    });
    let (identity, token) = match loaded {
        Ok(pair) => pair,
        Err(e) => return federated_unusable(spec, &e),
    };
    let expiry = match token.expires_at {
        Some(exp) => format!("expires in {}", human_duration(exp.saturating_sub(now) as i64)),
        None => "no expiry claim".into(),
    };
    let audience = if token.audience.is_empty() {
        "none".to_string()
    } else {
        token.audience.join(", ")
    };
    let mut findings = vec![Finding::info(
        codes::FEDERATED_IDENTITY,
        format!(
            "service account {} (from {}); token from {}: issuer {}, subject {}, audience {audience}, {expiry}",
            spec.email,
            spec.email_origin,
            spec.source.describe(),
            token.issuer,
            token.subject
        ),
    )];
    if spec.email_origin == "STACKIT_SERVICE_ACCOUNT_EMAIL" {
        for loser in settings.passed_over_token_sources() {
            findings.push(Finding::info(codes::FEDERATED_IDENTITY, loser));
        }
    }
    let expected_audience = spec.source.expected_audience();
    if !token.audience.iter().any(|a| a == expected_audience) {
        findings.push(Finding::warning(
            codes::FEDERATED_AUDIENCE,
            format!(
                "the federated token's audience is {audience}, not {}",
                expected_audience
            ),
            "make the audience assertion of the service account's federated identity provider (STACKIT portal) match, or request the token with that audience",
        ));
    }
    let summary = format!(
        "federated identity {} (subject {}) from {}",
        spec.email,
        token.subject,
        spec.source.describe()
    );
    IdentityOutcome {
        step: Step::ran("identity", summary, findings),
        credential: Some(Credential::ServiceAccount(Box::new(Identity::Federated(identity)))),
        // The robot link names the service account's id too, which a federated token does not
        // carry; the robot step then matches by login name instead.
        expected: None,
    }
}

/// The identity step when the federated token cannot be read or fetched: one finding that
/// names the source, with the fix for that kind of source.
fn federated_unusable(spec: &FederatedSpec, e: &crate::Error) -> IdentityOutcome {
    let hint = if spec.source.needs_network() {
        "give the job permission to request OIDC tokens (GitHub: permissions: id-token: write; Azure Pipelines: env SYSTEM_ACCESSTOKEN: $(System.AccessToken))"
    } else {
        "fix the token source named in the message; the token must be the OIDC token (a JWT) of a workload STACKIT trusts"
    };
    IdentityOutcome {
        step: Step::ran(
            "identity",
            format!("the federated identity {} cannot be used", spec.email),
            vec![Finding::error(codes::FEDERATED_TOKEN_INVALID, e.to_string(), hint)],
        ),
        credential: None,
        expected: None,
    }
}

/// Step 2 for a service account key.
fn key_step(settings: &Settings, spec: &KeySpec, now: u64) -> IdentityOutcome {
    let mut findings = Vec::new();
    let ignored = ignored_sources(settings, &spec.key);
    if !ignored.is_empty() {
        findings.push(Finding::info(
            codes::KEY_SOURCE,
            format!("{} wins; ignored: {}", spec.key.describe(), ignored.join(", ")),
        ));
    }
    findings.extend(shared_mode(&spec.key));
    if let Some(pk) = &spec.private_key {
        findings.extend(shared_mode(pk));
    }

    let identity = match identity::load_key(spec, settings.deadline) {
        Ok(identity) => identity,
        Err(e) => {
            findings.push(Finding::error(
                codes::KEY_UNREADABLE,
                e.to_string(),
                "use the service account key JSON exactly as downloaded from STACKIT",
            ));
            return IdentityOutcome {
                step: Step::ran(
                    "identity",
                    format!("the key from {} cannot be used", spec.key.describe()),
                    findings,
                ),
                credential: None,
                expected: None,
            };
        }
    };
    let key = &identity.key;
    if key.active == Some(false) {
        findings.push(Finding::error(
            codes::KEY_INACTIVE,
            format!("the key {} is marked \"active\": false", key.kid),
            "activate the key or create a new one (STACKIT portal: Service accounts > Service account keys)",
        ));
    }
    findings.extend(validity(key.valid_until.as_deref(), &key.kid, now));
    if spec.private_key.is_some() && key.private_key_pem().is_some() {
        findings.push(Finding::info(
            codes::KEY_SOURCE,
            "the key file's credentials.privateKey is ignored: an external private key overrides it",
        ));
    }
    let private_origin = match identity.private_key_pem(settings.deadline) {
        Err(e) => {
            findings.push(Finding::error(
                codes::KEY_PRIVATE_KEY_INVALID,
                e.to_string(),
                "download the key again with its private key, or point STACKIT_PRIVATE_KEY_PATH at the PEM",
            ));
            None
        }
        Ok((pem, origin)) => {
            let public_key = key.public_key_pem();
            findings.extend(private_key_findings(
                &pem,
                &origin,
                public_key.as_ref().map(Secret::expose),
            ));
            Some(origin)
        }
    };

    let private = match &private_origin {
        Some(origin) if spec.private_key.is_some() => format!("; private key from {origin}"),
        _ => String::new(),
    };
    let summary = format!(
        "service account {} (key {}) from {}{private}",
        key.iss,
        key.kid,
        spec.key.describe()
    );
    let expected = SaIdentity::from_key(key);
    IdentityOutcome {
        step: Step::ran("identity", summary, findings),
        credential: Some(Credential::ServiceAccount(Box::new(Identity::Key(identity)))),
        expected: Some(expected),
    }
}

/// Key variables that are set but lost to `winner`.
fn ignored_sources(settings: &Settings, winner: &Source) -> Vec<String> {
    let origin = match winner {
        Source::File { origin, .. } | Source::Inline { origin, .. } => origin.as_str(),
    };
    ["STACKIT_SERVICE_ACCOUNT_KEY_PATH", "STACKIT_SERVICE_ACCOUNT_KEY"]
        .iter()
        .filter(|name| settings.env().var(name).is_some() && **name != origin)
        .map(|name| name.to_string())
        .collect()
}

#[cfg(unix)]
fn shared_mode(source: &Source) -> Option<Finding> {
    use std::os::unix::fs::MetadataExt;
    let Source::File { path, .. } = source else {
        return None;
    };
    let mode = std::fs::metadata(path).ok()?.mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        Finding::warning(
            codes::KEY_SHARED_MODE,
            format!("key file {} is readable by other users (mode {mode:o})", path.display()),
            format!("chmod 600 {}", path.display()),
        )
    })
}

#[cfg(not(unix))]
fn shared_mode(_source: &Source) -> Option<Finding> {
    None
}

fn validity(valid_until: Option<&str>, kid: &str, now: u64) -> Option<Finding> {
    let text = valid_until.filter(|v| !v.trim().is_empty())?;
    let hint = "create a new key for the service account (STACKIT portal: Service accounts > Service account keys)";
    let Some(until) = parse_rfc3339(text) else {
        return Some(Finding::warning(
            codes::KEY_VALID_UNTIL_UNREADABLE,
            format!("the key {kid} has a validUntil that is not an RFC 3339 time: {text:?}"),
            "check the key file; validUntil should look like 2027-01-31T12:00:00Z",
        ));
    };
    if until <= now {
        return Some(Finding::error(
            codes::KEY_EXPIRED,
            format!(
                "the key {kid} expired {} ago (validUntil {text})",
                human_duration((now - until) as i64)
            ),
            hint,
        ));
    }
    (until - now <= KEY_EXPIRES_SOON).then(|| {
        Finding::warning(
            codes::KEY_EXPIRES_SOON,
            format!(
                "the key {kid} expires in {} (validUntil {text})",
                human_duration((until - now) as i64)
            ),
            hint,
        )
    })
}

/// Parses the private key and compares its public half with the key file's `publicKey`.
fn private_key_findings(pem: &Secret, origin: &str, public_key: Option<&str>) -> Vec<Finding> {
    if let Err(e) = crate::key::signing_key(pem, origin) {
        return vec![Finding::error(
            codes::KEY_PRIVATE_KEY_INVALID,
            e.to_string(),
            "use the unencrypted RSA private key of this key pair (PEM, PKCS#8 or PKCS#1)",
        )];
    }
    let Some(public_key) = public_key.filter(|p| !p.trim().is_empty()) else {
        return Vec::new();
    };
    let Some((spki, pkcs1)) = derive_public(pem) else {
        return vec![Finding::error(
            codes::KEY_PRIVATE_KEY_INVALID,
            format!("{origin} cannot be read as an RSA private key"),
            "use the unencrypted RSA private key of this key pair (PEM, PKCS#8 or PKCS#1)",
        )];
    };
    match public_matches(public_key, &spki, &pkcs1) {
        Some(true) => Vec::new(),
        Some(false) => vec![Finding::error(
            codes::KEY_PUBLIC_KEY_MISMATCH,
            format!("the private key from {origin} does not belong to the key file's publicKey"),
            "use the private key that was created with this key (or download the key JSON that matches it)",
        )],
        None => vec![Finding::warning(
            codes::KEY_PUBLIC_KEY_UNREADABLE,
            "the key file's publicKey is not a PEM public key or certificate; it was not compared with the private key",
            "check the key file; publicKey should start with -----BEGIN PUBLIC KEY-----",
        )],
    }
}

/// The public key (SPKI DER and PKCS#1 DER) of a PEM RSA private key.
fn derive_public(pem: &Secret) -> Option<(Vec<u8>, Vec<u8>)> {
    let (label, der) = pem_blocks(pem.expose()).into_iter().next()?;
    let pair = match label.as_str() {
        "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).ok()?,
        "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(&der).ok()?,
        _ => return None,
    };
    let public = pair.public_key();
    let spki = public.as_der().ok()?.as_ref().to_vec();
    Some((spki, public.as_ref().to_vec()))
}

/// Whether `field` (PEM `PUBLIC KEY`, `RSA PUBLIC KEY` or `CERTIFICATE`, or bare base64 DER)
/// holds this public key; `None` when it cannot be read.
fn public_matches(field: &str, spki: &[u8], pkcs1: &[u8]) -> Option<bool> {
    let blocks = pem_blocks(field);
    let blocks = if blocks.is_empty() {
        let compact: String = field.split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD.decode(compact).ok()?;
        vec![(String::new(), Zeroizing::new(der))]
    } else {
        blocks
    };
    let (label, der) = blocks.into_iter().next()?;
    Some(match label.as_str() {
        "PUBLIC KEY" => der.as_slice() == spki,
        "RSA PUBLIC KEY" => der.as_slice() == pkcs1,
        // The certificate embeds the SubjectPublicKeyInfo verbatim.
        "CERTIFICATE" => contains(&der, spki),
        _ => der.as_slice() == spki || der.as_slice() == pkcs1 || contains(&der, spki),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The PEM blocks in `text` as (label, DER), read by the `pem` crate; tolerates literal `\n`
/// from environment variables. The DER is wiped on drop, since it may be a private key.
fn pem_blocks(text: &str) -> Vec<(String, Zeroizing<Vec<u8>>)> {
    let unescaped = crate::key::unescape_newlines(text);
    let text = unescaped.as_ref().map_or(text, crate::Secret::expose);
    pem::parse_many(text)
        .unwrap_or_default()
        .into_iter()
        .map(|block| (block.tag().to_string(), Zeroizing::new(block.into_contents())))
        .collect()
}

/// The result of step 3.
#[derive(Debug)]
pub struct TokenOutcome {
    /// The step for the report.
    pub step: Step,
    /// Whether the clock was compared with the token endpoint's.
    pub skew_measured: bool,
}

/// Runs step 3: gets an access token the way `get` does (cache first), reports its lifetime
/// and the clock skew against the token endpoint's `Date`. Returns the registry login.
pub fn token_step(settings: &Settings, credential: Option<Credential>) -> (TokenOutcome, Option<Login>) {
    let skipped = |why: &str| TokenOutcome {
        step: Step::skipped("token", why),
        skew_measured: false,
    };
    let identity = match credential {
        None => return (skipped("skipped: no usable identity"), None),
        Some(Credential::Robot { username, secret }) => {
            return (
                skipped("skipped: a stored robot login needs no STACKIT token"),
                Some(Login {
                    username,
                    password: secret,
                    robot: true,
                }),
            );
        }
        Some(Credential::ServiceAccount(identity)) => identity,
    };
    let token = match token::access_token(&settings.token_policy(), &identity) {
        Ok(t) => t,
        Err(e) => return (no_token(&identity, &e), None),
    };
    let now = unix_now();
    let left = human_duration(token.expires_at.saturating_sub(now) as i64);
    let mut findings = Vec::new();
    let mut summary = if token.from_cache {
        format!("cached access token, valid for {left} more (no request made)")
    } else {
        format!(
            "new access token from {} ({}), valid for {left}",
            identity.endpoint(),
            identity.endpoint_origin()
        )
    };
    if let Some(date) = token.server_date {
        match skew_finding(now, date, "the token endpoint") {
            Some(f) => findings.push(f),
            None => summary.push_str(&format!(
                "; clock within {}s of the token endpoint's",
                now.abs_diff(date)
            )),
        }
    }
    let outcome = TokenOutcome {
        step: Step::ran("token", summary, findings),
        skew_measured: token.server_date.is_some(),
    };
    let login = Login {
        username: identity.username().to_string(),
        password: token.secret,
        robot: false,
    };
    (outcome, Some(login))
}

/// The failed token step: the error, with a network fix for a network failure and an
/// identity fix for anything else.
fn no_token(identity: &Identity, e: &crate::Error) -> TokenOutcome {
    let hint = if matches!(e, crate::Error::Network(_)) {
        format!(
            "the token endpoint {} (from {}) was not reached: check DNS, firewalls and HTTPS_PROXY/NO_PROXY on this machine, and the URL; the key itself was not judged; DOCKER_CREDENTIAL_STACKIT_LOG=debug shows each attempt",
            identity.endpoint(),
            identity.endpoint_origin()
        )
    } else {
        format!(
            "check {} and the token endpoint {} (from {}); DOCKER_CREDENTIAL_STACKIT_LOG=debug shows each attempt",
            identity.describe(),
            identity.endpoint(),
            identity.endpoint_origin()
        )
    };
    TokenOutcome {
        step: Step::ran(
            "token",
            format!("no access token from {}", identity.endpoint()),
            vec![Finding::error(e.code(), e.to_string(), hint)],
        ),
        skew_measured: false,
    }
}

/// A `token.clock_skew` warning when `now` and a server's `date` are more than a minute apart.
pub fn skew_finding(now: u64, date: u64, server: &str) -> Option<Finding> {
    let skew = now.abs_diff(date);
    (skew > MAX_SKEW).then(|| {
        Finding::warning(
            codes::TOKEN_CLOCK_SKEW,
            format!(
                "this machine's clock is {} {} {server}'s",
                human_duration(skew as i64),
                if now > date { "ahead of" } else { "behind" }
            ),
            "synchronise the clock (NTP, e.g. timedatectl set-ntp true); tokens look expired or not yet valid otherwise",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::RsaKey;

    #[test]
    fn valid_until_that_is_no_date_is_a_warning_naming_it() {
        let now = 1_769_860_800; // 2026-01-31T12:00:00Z
        for text in [
            "2026-02-31T00:00:00Z",
            "2026-03-01T00:00:00+99:99",
            "18446744073709551615-01-01T00:00:00Z",
            "next year",
        ] {
            let finding = validity(Some(text), "k1", now).unwrap();
            assert_eq!(finding.code, codes::KEY_VALID_UNTIL_UNREADABLE, "{text}");
            assert!(
                finding.message.contains("k1") && finding.message.contains(text),
                "{finding:?}"
            );
            assert!(finding.hint.unwrap().contains("2027-01-31T12:00:00Z"));
        }
        let codes_of = |text| validity(Some(text), "k1", now).map(|f| f.code);
        assert_eq!(codes_of("2026-01-31T11:00:00.000+00:00"), Some(codes::KEY_EXPIRED));
        assert_eq!(codes_of("2026-02-03T12:00:00+01:00"), Some(codes::KEY_EXPIRES_SOON));
        assert_eq!(codes_of("2027-01-31T12:00:00Z"), None);
        assert_eq!(validity(Some(" "), "k1", now).map(|f| f.code), None);
    }

    #[test]
    fn public_key_comparison_in_every_form() {
        let key = RsaKey::generate();
        let other = RsaKey::generate();
        for pem in [key.pkcs8_pem(), key.pkcs1_pem()] {
            let (spki, pkcs1) = derive_public(&pem).unwrap();
            assert_eq!(public_matches(&key.public_pem(), &spki, &pkcs1), Some(true));
            assert_eq!(public_matches(&other.public_pem(), &spki, &pkcs1), Some(false));
            let bare: String = key.public_pem().lines().filter(|l| !l.starts_with("-----")).collect();
            assert_eq!(public_matches(&bare, &spki, &pkcs1), Some(true));
            assert_eq!(public_matches("not a key", &spki, &pkcs1), None);
        }
        let escaped = Secret::new(key.pkcs8_pem().expose().replace('\n', "\\n"));
        assert!(derive_public(&escaped).is_some());
    }

    #[test]
    fn mismatched_private_key_is_an_error() {
        let key = RsaKey::generate();
        let other = RsaKey::generate();
        let codes_of = |pem: &Secret, public: Option<&str>| -> Vec<&str> {
            private_key_findings(pem, "K", public).iter().map(|f| f.code).collect()
        };
        assert!(codes_of(&key.pkcs8_pem(), Some(&key.public_pem())).is_empty());
        assert!(codes_of(&key.pkcs8_pem(), None).is_empty());
        assert_eq!(
            codes_of(&key.pkcs8_pem(), Some(&other.public_pem())),
            [codes::KEY_PUBLIC_KEY_MISMATCH]
        );
        assert_eq!(
            codes_of(
                &Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
                None
            ),
            [codes::KEY_PRIVATE_KEY_INVALID]
        );
    }

    #[test]
    fn key_validity_window() {
        let now = 2_000_000_000;
        assert!(validity(None, "k", now).is_none());
        assert!(validity(Some("2100-01-01T00:00:00Z"), "k", now).is_none());
        assert_eq!(
            validity(Some("2020-01-01T00:00:00Z"), "k", now).unwrap().code,
            codes::KEY_EXPIRED
        );
        // now is 2033-05-18T03:33:20Z.
        assert_eq!(
            validity(Some("2033-05-21T03:33:20Z"), "k", now).unwrap().code,
            codes::KEY_EXPIRES_SOON
        );
        assert_eq!(
            validity(Some("next year"), "k", now).unwrap().code,
            codes::KEY_VALID_UNTIL_UNREADABLE
        );
    }

    #[test]
    fn skew_is_reported_beyond_a_minute() {
        assert!(skew_finding(1000, 1050, "x").is_none());
        let f = skew_finding(1000, 1200, "the registry").unwrap();
        assert!(f.message.contains("behind the registry's"), "{}", f.message);
    }
}
