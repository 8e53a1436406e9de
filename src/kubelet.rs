//! The kubelet image credential provider plugin: `docker-credential-stackit kubelet`.
//!
//! containerd never runs Docker credential helpers; on Kubernetes, dynamic registry credentials
//! reach it through the kubelet, which execs a plugin per image pull (on a cache miss) with a
//! `CredentialProviderRequest` (`credentialprovider.kubelet.k8s.io/v1`) on stdin and reads a
//! `CredentialProviderResponse` from stdout. The kubelet decodes the response strictly, so
//! [`Response`] carries exactly the upstream field names and nothing else.
//!
//! Answers use `cacheKeyType: Registry` keyed by the image's `host[:port]` exactly as it appears
//! in the request (the kubelet compares ports both ways, so a port in the image must be in the
//! key), and a `cacheDuration` of half the token's remaining lifetime, so the kubelet never holds
//! a token past its expiry. Hosts this helper does not serve get a valid answer without
//! credentials, and no token is fetched for them.
//!
//! The token comes from the same identity resolution, cache and lock as `get`, so many images
//! pulled at once on a node still make one token request.
//!
//! Per-pod identity: when the kubelet passes the pod's service account token (`tokenAttributes`
//! in the `CredentialProviderConfig`) and the service account carries the annotation
//! [`EMAIL_ANNOTATION`], that token is exchanged for that STACKIT service account, cached per
//! federated subject like any federated identity. A request without a token is answered by the
//! node's identity. A request with one is answered by the node's identity only when the
//! annotation key is absent altogether and the node's configuration allows it
//! ([`NodeFallback::Allowed`], the `--allow-node-fallback` argument): the kubelet checks that a
//! required annotation key is present, not that it has a value, so a tenant who can edit their
//! ServiceAccount must not be able to turn their pod into the node by blanking it.

use crate::clock::unix_now;
use crate::config::{ServedHost, Settings};
use crate::error::{Error, Result};
use crate::federated::TokenSource;
use crate::identity::{FederatedSpec, Identity, load_federated};
use crate::log::debug;
use crate::secret::Secret;
use crate::token::Token;
use crate::verbs::Service;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// The only request/response API version this plugin speaks.
pub const API_VERSION: &str = "credentialprovider.kubelet.k8s.io/v1";
/// The `kind` of the kubelet's request.
pub const REQUEST_KIND: &str = "CredentialProviderRequest";
/// The `kind` of our response.
pub const RESPONSE_KIND: &str = "CredentialProviderResponse";
/// The cache key type of every response: credentials are per registry `host[:port]`.
pub const CACHE_KEY_TYPE: &str = "Registry";

/// The pod service account annotation that names the STACKIT service account of a pod (the
/// same one STACKIT's pod identity webhook reads).
pub const EMAIL_ANNOTATION: &str = "workload-identity.stackit.cloud/service-account-email";

/// A `CredentialProviderRequest`, reduced to what the plugin uses.
#[derive(Debug)]
pub struct Request {
    /// The image being pulled: registry `host[:port]` and repository path (no tag or digest).
    pub image: String,
    /// The pod's service account token, when `tokenAttributes` is configured.
    pub service_account_token: Option<Secret>,
    /// The pod service account's annotations the kubelet passed on.
    pub service_account_annotations: BTreeMap<String, String>,
}

/// A `CredentialProviderResponse` with exactly the upstream v1 field names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// Always [`API_VERSION`]; the kubelet rejects any other.
    pub api_version: &'static str,
    /// Always [`RESPONSE_KIND`].
    pub kind: &'static str,
    /// Always [`CACHE_KEY_TYPE`] (`Registry`).
    pub cache_key_type: &'static str,
    /// How long the kubelet may cache `auth`, as a Go duration string (`"29m30s"`); `"0s"` means
    /// "do not cache".
    pub cache_duration: String,
    /// Match key (`host[:port]`) -> credentials; empty when there are none.
    pub auth: BTreeMap<String, AuthConfig>,
}

/// One entry of [`Response::auth`]: upstream's `AuthConfig`.
#[derive(Debug, Serialize)]
pub struct AuthConfig {
    /// The service account's e-mail (or the configured username).
    pub username: String,
    /// The access token.
    #[serde(serialize_with = "expose")]
    pub password: Secret,
}

fn expose<S: Serializer>(secret: &Secret, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// How the request on stdin is named in error messages.
const WHAT: &str = "the CredentialProviderRequest on stdin";

/// Parses a `CredentialProviderRequest`. Unknown fields are tolerated (newer kubelets add some);
/// `apiVersion`, `kind` and a non-empty `image` are required.
///
/// Messages never quote the input beyond `apiVersion` and `kind`, because the request may carry
/// a service account token.
pub fn parse_request(input: &str) -> Result<Request> {
    let text = input.trim();
    if text.is_empty() {
        return Err(Error::Input(format!(
            "{WHAT} is empty; this command is run by the kubelet as an image credential provider (see packaging/kubernetes/README.md)"
        )));
    }
    // Go through a Value so that serde's messages, which can quote input, never reach stderr.
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Error::Input(format!(
            "{WHAT} is not valid JSON (line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Some(object) = value.as_object() else {
        return Err(Error::Input(format!("{WHAT} is not a JSON object")));
    };
    let field = |name: &str| -> Result<Option<&str>> {
        match object.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::Input(format!("{WHAT}: {name} is not a string"))),
        }
    };
    let api_version = field("apiVersion")?;
    if api_version != Some(API_VERSION) {
        return Err(Error::Input(format!(
            "{WHAT} has apiVersion {}; set apiVersion: {API_VERSION} for this provider in the kubelet's CredentialProviderConfig",
            quoted(api_version)
        )));
    }
    let kind = field("kind")?;
    if kind != Some(REQUEST_KIND) {
        return Err(Error::Input(format!(
            "{WHAT} has kind {}, expected {REQUEST_KIND}",
            quoted(kind)
        )));
    }
    let image = field("image")?.map(str::trim).unwrap_or_default();
    if image.is_empty() {
        return Err(Error::Input(format!("{WHAT} has no image")));
    }
    let service_account_token = field("serviceAccountToken")?
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    let service_account_annotations = match object.get("serviceAccountAnnotations") {
        None | Some(serde_json::Value::Null) => BTreeMap::new(),
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(Error::Input(format!(
                    "{WHAT}: serviceAccountAnnotations.{k} is not a string"
                ))),
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(Error::Input(format!(
                "{WHAT}: serviceAccountAnnotations is not an object of strings"
            )));
        }
    };
    Ok(Request {
        image: image.to_string(),
        service_account_token,
        service_account_annotations,
    })
}

/// `"value"` (shortened) or `missing`, for apiVersion/kind in messages.
fn quoted(value: Option<&str>) -> String {
    match value {
        None => "missing".into(),
        Some(v) => format!("{:?}", v.chars().take(80).collect::<String>()),
    }
}

/// The registry part of an image as the kubelet keys on it: everything before the first `/`,
/// i.e. `host[:port]` verbatim (the kubelet's `parseRegistry`).
pub fn registry_of(image: &str) -> &str {
    image.split('/').next().unwrap_or(image)
}

/// Seconds the kubelet may cache a token expiring at `expires_at`, seen at `now` (both unix
/// seconds): half the remaining lifetime, rounded down, and zero once it has expired.
///
/// Half, like the ECR plugin: the kubelet then always asks again while the token still has as
/// long to live as it was cached for, and the helper's own cache (which refreshes past
/// half-life) hands out a newer one by then.
pub fn cache_duration_secs(expires_at: u64, now: u64) -> u64 {
    expires_at.saturating_sub(now) / 2
}

/// Formats whole seconds the way Go's `time.Duration.String` does: `0s`, `45s`, `29m30s`,
/// `1h0m0s`. The kubelet parses it with `time.ParseDuration`, so the unit is explicit and a
/// value can never be mistaken for nanoseconds (the bug in cloud-provider-aws#348).
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

impl Response {
    /// An answer without credentials that the kubelet does not cache (`"0s"`), so a host added to
    /// the helper's configuration later is served from the next pull on.
    pub fn no_credentials() -> Response {
        Response {
            api_version: API_VERSION,
            kind: RESPONSE_KIND,
            cache_key_type: CACHE_KEY_TYPE,
            cache_duration: go_duration(0),
            auth: BTreeMap::new(),
        }
    }

    /// An answer with `username` and the token for `registry` (the request's `host[:port]`,
    /// verbatim), cacheable for half the token's remaining lifetime at `now`.
    pub fn with_credentials(registry: &str, username: &str, token: Token, now: u64) -> Response {
        let mut response = Response::no_credentials();
        response.cache_duration = go_duration(cache_duration_secs(token.expires_at, now));
        response.auth.insert(
            registry.to_string(),
            AuthConfig {
                username: username.to_string(),
                password: token.secret,
            },
        );
        response
    }

    /// The JSON the kubelet reads: one object, no other output.
    pub fn to_json(&self) -> Result<String> {
        // Only strings and a map of strings: encoding cannot fail, but never print half a line.
        serde_json::to_string(self).map_err(|_| Error::Io("cannot encode the CredentialProviderResponse".into()))
    }
}

/// Whether a pod that sent its service account token but whose service account has no
/// `EMAIL_ANNOTATION` key at all may pull with the node's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeFallback {
    /// Such a pod gets an error naming the annotation (the default, and the shipped per-pod config).
    Refused,
    /// Such a pod pulls with the node's identity (`kubelet --allow-node-fallback`).
    Allowed,
}

/// The argument of the `kubelet` verb that allows [`NodeFallback::Allowed`].
pub const ALLOW_NODE_FALLBACK: &str = "--allow-node-fallback";

/// Answers a parsed request: credentials for served hosts, an empty answer for the rest.
pub fn respond(service: &Service, request: &Request, fallback: NodeFallback) -> Result<Response> {
    let settings = service.settings();
    let registry = registry_of(&request.image);
    let Some(host) = settings.served_host(registry) else {
        debug!(
            "{registry} is not served (served: {}); answering without credentials",
            settings.served.join(", ")
        );
        return Ok(Response::no_credentials());
    };
    // A pod's own identity that fails is an error, never the node's credentials: otherwise a
    // pod whose federation is refused would pull with whatever the node may pull.
    let (identity, token) = match pod_identity(settings, &host, request, fallback)? {
        Some(identity) => {
            let token = service.access_token(&identity)?;
            (identity, token)
        }
        None => service.identity_token(&host)?.ok_or_else(|| {
            Error::Config(format!(
                "no service account identity configured for {host}; set STACKIT_SERVICE_ACCOUNT_KEY_PATH in this provider's env in the kubelet's CredentialProviderConfig, or configure per-pod identity (see packaging/kubernetes/README.md)"
            ))
        })?,
    };
    debug!(
        "{registry}: answering as {} with a {} token",
        identity.username(),
        if token.from_cache { "cached" } else { "new" }
    );
    Ok(Response::with_credentials(
        registry,
        identity.username(),
        token,
        unix_now(),
    ))
}

/// The pod's own federated identity, when the kubelet sent the pod's service account token;
/// `None` means "use the node's", which only a request without a token, or one whose service
/// account lacks the annotation key altogether on a node that allows the fallback, may mean.
/// A present annotation, whatever its value, always means the pod's own identity: a blank or
/// malformed e-mail is then an error from [`load_federated`], with no request to anyone.
fn pod_identity(
    settings: &Settings,
    host: &ServedHost,
    request: &Request,
    fallback: NodeFallback,
) -> Result<Option<Identity>> {
    let Some(token) = &request.service_account_token else {
        return Ok(None);
    };
    let Some(email) = request.service_account_annotations.get(EMAIL_ANNOTATION) else {
        return match fallback {
            NodeFallback::Allowed => {
                debug!(
                    "the pod's service account has no {EMAIL_ANNOTATION} annotation; using the node's identity ({ALLOW_NODE_FALLBACK})"
                );
                Ok(None)
            }
            NodeFallback::Refused => Err(Error::Config(format!(
                "the pod's service account has no {EMAIL_ANNOTATION} annotation and this provider does not answer pods with the node's identity; annotate the service account with its STACKIT service account's e-mail, or add {ALLOW_NODE_FALLBACK} to this provider's args in the kubelet's CredentialProviderConfig"
            ))),
        };
    };
    let (endpoint, endpoint_origin) = settings.idp_endpoint();
    let spec = FederatedSpec {
        email: email.clone(),
        email_origin: format!("the pod service account's {EMAIL_ANNOTATION} annotation"),
        source: TokenSource::Inline {
            token: token.clone(),
            origin: "the pod's service account token (serviceAccountToken)".into(),
        },
        endpoint,
        endpoint_origin,
        username: None,
    };
    let identity = load_federated(&spec, settings.deadline)?;
    debug!(
        "{host}: answering with the pod's own federated identity {}",
        identity.email
    );
    Ok(Some(Identity::Federated(identity)))
}

/// The whole verb: request text in, response JSON out. Settings are loaded only for a
/// well-formed request.
pub fn run(input: &str, fallback: NodeFallback, env: crate::config::Env) -> Result<String> {
    let request = parse_request(input)?;
    let service = Service::new(Settings::from_env(env)?);
    respond(&service, &request, fallback)?.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_at: u64) -> Token {
        Token {
            secret: Secret::new("tok.en.sig"),
            expires_at,
            from_cache: false,
            server_date: None,
        }
    }

    /// Parses a Go duration string (`time.ParseDuration` subset: h, m, s, ms, us, ns units)
    /// into nanoseconds, independently of [`go_duration`].
    fn parse_go_duration(text: &str) -> Option<u128> {
        if text == "0" {
            return Some(0);
        }
        let mut total = 0u128;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit())?;
            let n: u128 = rest[..digits].parse().ok()?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "h" => 3_600_000_000_000,
                "m" => 60_000_000_000,
                "s" => 1_000_000_000,
                "ms" => 1_000_000,
                "us" | "µs" => 1_000,
                "ns" => 1,
                _ => return None,
            };
            total += n * scale;
            rest = &rest[unit_len..];
        }
        Some(total)
    }

    #[test]
    fn upstream_request_fixtures_parse() {
        // As the kubelet encodes it (TypeMeta first, then image).
        let r = parse_request(
            r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"registry.onstackit.cloud/shop/app"}"#,
        )
        .unwrap();
        assert_eq!(r.image, "registry.onstackit.cloud/shop/app");
        assert!(r.service_account_token.is_none());
        // Newer kubelets with tokenAttributes configured, plus a field from the future.
        let r = parse_request(
            "{\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1\",\"kind\":\"CredentialProviderRequest\",\
             \"image\":\"reg.example:5000/a/b\",\"serviceAccountToken\":\"eyJhbGciOi.x.y\",\
             \"serviceAccountAnnotations\":{\"example.com/role\":\"puller\"},\"futureField\":1}\n",
        )
        .unwrap();
        assert_eq!(r.image, "reg.example:5000/a/b");
        assert_eq!(
            r.service_account_token.as_ref().map(Secret::expose),
            Some("eyJhbGciOi.x.y")
        );
        assert_eq!(r.service_account_annotations["example.com/role"], "puller");
    }

    #[test]
    fn malformed_requests_name_the_problem_without_quoting_secrets() {
        let v1 = r#""apiVersion":"credentialprovider.kubelet.k8s.io/v1""#;
        let kind = r#""kind":"CredentialProviderRequest""#;
        for (input, expect) in [
            ("", "is empty"),
            ("  \n", "is empty"),
            ("{", "not valid JSON"),
            ("registry.onstackit.cloud", "not valid JSON"),
            ("[1]", "not a JSON object"),
            (
                r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1beta1","kind":"CredentialProviderRequest","image":"a/b"}"#,
                "\"credentialprovider.kubelet.k8s.io/v1beta1\"; set apiVersion: credentialprovider.kubelet.k8s.io/v1",
            ),
            (&format!(r#"{{{kind},"image":"a/b"}}"#), "apiVersion missing"),
            (
                &format!(r#"{{{v1},"kind":"CredentialProviderResponse","image":"a/b"}}"#),
                "expected CredentialProviderRequest",
            ),
            (&format!(r#"{{{v1},"image":"a/b"}}"#), "kind missing"),
            (&format!(r#"{{{v1},{kind}}}"#), "has no image"),
            (&format!(r#"{{{v1},{kind},"image":" "}}"#), "has no image"),
            (&format!(r#"{{{v1},{kind},"image":42}}"#), "image is not a string"),
            (
                &format!(r#"{{{v1},{kind},"image":"a/b","serviceAccountToken":["topsecret"]}}"#),
                "serviceAccountToken is not a string",
            ),
        ] {
            let err = parse_request(input).unwrap_err().to_string();
            assert!(err.contains(expect), "{input:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
            assert!(!err.contains("topsecret"), "{err}");
        }
        // Invalid JSON around a token: position only.
        let err = parse_request(&format!(
            r#"{{{v1},{kind},"image":"a","serviceAccountToken":"topsecret}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }

    #[test]
    fn registry_part_is_verbatim_host_and_port() {
        assert_eq!(
            registry_of("registry.onstackit.cloud/shop/app"),
            "registry.onstackit.cloud"
        );
        assert_eq!(registry_of("reg.example:5000/a/b/c"), "reg.example:5000");
        assert_eq!(
            registry_of("registry.onstackit.cloud:443/x"),
            "registry.onstackit.cloud:443"
        );
        assert_eq!(registry_of("[::1]:5000/x"), "[::1]:5000");
        assert_eq!(registry_of("registry.onstackit.cloud"), "registry.onstackit.cloud");
    }

    #[test]
    fn go_duration_matches_go_formatting() {
        for (secs, text) in [
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "1m0s"),
            (1770, "29m30s"),
            (1800, "30m0s"),
            (3599, "59m59s"),
            (3600, "1h0m0s"),
            (3661, "1h1m1s"),
            (90_000, "25h0m0s"),
        ] {
            assert_eq!(go_duration(secs), text);
            assert_eq!(parse_go_duration(text), Some(secs as u128 * 1_000_000_000), "{text}");
        }
    }

    #[test]
    fn cache_duration_is_half_the_remaining_lifetime_at_the_injected_clock() {
        let now = 1_800_000_000;
        // A fresh one-hour token: 30 minutes.
        assert_eq!(cache_duration_secs(now + 3600, now), 1800);
        // 59 minutes left: 29m30s.
        assert_eq!(cache_duration_secs(now + 3540, now), 1770);
        // Odd seconds round down, so the kubelet's copy never outlives the token.
        assert_eq!(cache_duration_secs(now + 3, now), 1);
        assert_eq!(cache_duration_secs(now + 1, now), 0);
        // Expired, or exactly at expiry: do not cache.
        assert_eq!(cache_duration_secs(now, now), 0);
        assert_eq!(cache_duration_secs(now - 10, now), 0);
        // Same token seen later: shorter.
        assert_eq!(cache_duration_secs(now + 3600, now + 600), 1500);
        for remaining in [0u64, 1, 2, 59, 60, 61, 599, 3600, 86_400, 7 * 86_400] {
            let d = cache_duration_secs(now + remaining, now);
            assert!(d <= remaining / 2 && (remaining < 2 || d > 0), "{remaining}: {d}");
        }
    }

    #[test]
    fn cache_duration_has_a_unit_and_is_not_nanoseconds() {
        // cloud-provider-aws#348: a count of seconds encoded as a bare Duration became 21.6 µs.
        // Ours must parse back, with Go's rules, to half an hour for a one-hour token.
        let now = 1_800_000_000;
        let r = Response::with_credentials("registry.onstackit.cloud", "sa@x", token(now + 3600), now);
        assert_eq!(r.cache_duration, "30m0s");
        let nanos = parse_go_duration(&r.cache_duration).unwrap();
        assert_eq!(nanos, 1800 * 1_000_000_000);
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert!(json["cacheDuration"].is_string(), "metav1.Duration is a JSON string");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let r = Response::with_credentials("r", "u", token(2), 1);
        assert!(!format!("{r:?}").contains("tok.en.sig"));
    }

    /// The kubelet's `URLsMatch` rules (pkg/credentialprovider/keyring.go), re-stated: ports equal
    /// (absent on both or the same), same number of host labels, each label a glob match where
    /// `*` stays within the label, and the key's path a prefix of the image's path.
    fn kubelet_matches(key: &str, image: &str) -> bool {
        fn split(s: &str) -> (&str, Option<&str>, &str) {
            let (authority, path) = match s.find('/') {
                Some(i) => (&s[..i], &s[i..]),
                None => (s, ""),
            };
            let (host, port) = if authority.starts_with('[') {
                match authority.rsplit_once("]:") {
                    Some((h, p)) => (&authority[..h.len() + 1], Some(p)),
                    None => (authority, None),
                }
            } else {
                match authority.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (authority, None),
                }
            };
            (host, port, path)
        }
        fn glob(pattern: &str, text: &str) -> bool {
            match pattern.split_once('*') {
                None => pattern == text,
                Some((head, tail)) => {
                    // Labels hold no dots, so `*` cannot cross one here.
                    text.starts_with(head) && (head.len()..=text.len()).any(|i| glob(tail, &text[i..]))
                }
            }
        }
        let (kh, kp, kpath) = split(key);
        let (ih, ip, ipath) = split(image);
        let (kl, il): (Vec<&str>, Vec<&str>) = (kh.split('.').collect(), ih.split('.').collect());
        kp == ip && kl.len() == il.len() && ipath.starts_with(kpath) && kl.iter().zip(&il).all(|(k, i)| glob(k, i))
    }

    #[test]
    fn our_auth_key_matches_the_image_it_was_issued_for_and_no_other_port() {
        for image in [
            "registry.onstackit.cloud/shop/app",
            "registry.onstackit.cloud:443/shop/app",
            "reg.example:5000/a/b/c",
            "localhost:5000/x",
            "[::1]:5000/x",
        ] {
            let key = registry_of(image);
            assert!(kubelet_matches(key, image), "{key} vs {image}");
        }
        // Why the port must be in the key: the kubelet compares ports both ways.
        assert!(!kubelet_matches("reg.example", "reg.example:5000/a"));
        assert!(!kubelet_matches("reg.example:5000", "reg.example/a"));
        assert!(!kubelet_matches(
            "registry.onstackit.cloud",
            "registry.onstackit.cloud:443/a"
        ));
        assert!(!kubelet_matches("reg.example:5000", "reg.example:5001/a"));
    }

    #[test]
    fn match_images_globs_behave_as_the_set_up_guide_says() {
        // The example CredentialProviderConfig's matchImages entry.
        assert!(kubelet_matches(
            "registry.onstackit.cloud",
            "registry.onstackit.cloud/shop/app"
        ));
        assert!(!kubelet_matches(
            "registry.onstackit.cloud",
            "registry.onstackit.cloud.evil.example/x"
        ));
        assert!(!kubelet_matches("registry.onstackit.cloud", "docker.io/library/nginx"));
        // A glob is one label only: *.onstackit.cloud covers registry.onstackit.cloud but not a
        // deeper name, and *.cloud does not reach registry.onstackit.cloud.
        assert!(kubelet_matches("*.onstackit.cloud", "registry.onstackit.cloud/x"));
        assert!(!kubelet_matches("*.onstackit.cloud", "a.registry.onstackit.cloud/x"));
        assert!(!kubelet_matches("*.cloud", "registry.onstackit.cloud/x"));
        assert!(kubelet_matches("registry.*.cloud", "registry.onstackit.cloud/x"));
        assert!(kubelet_matches("reg*.onstackit.cloud", "registry.onstackit.cloud/x"));
        // A path narrows the match to a project.
        assert!(kubelet_matches(
            "registry.onstackit.cloud/shop",
            "registry.onstackit.cloud/shop/app"
        ));
        assert!(!kubelet_matches(
            "registry.onstackit.cloud/shop",
            "registry.onstackit.cloud/other/app"
        ));
    }
}
