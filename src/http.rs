//! The one place an HTTP client is built: ureq over rustls with the aws-lc provider, the
//! platform's trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR` on Linux), a proxy from the usual
//! environment variables for everything but loopback, no redirects and no status-as-error. The
//! token exchange and `check` both use it, so TLS and proxy behaviour cannot drift between them.

use crate::error::{Error, Result};
use crate::server_url;
use std::sync::Arc;
use ureq::typestate::{WithBody, WithoutBody};

/// The `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("docker-credential-stackit/", env!("CARGO_PKG_VERSION"));

/// The proxy variables, in the order they are read (the first one set wins), as curl and ureq
/// read them.
pub const PROXY_VARS: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// The proxy variables as the environment snapshot ([`crate::config::Env`]) has them: the
/// client reads no variable itself.
#[derive(Debug, Clone, Default)]
pub struct Proxies(Vec<(&'static str, std::ffi::OsString)>);

impl Proxies {
    /// The proxy variables (and `NO_PROXY`) that `get` finds set.
    pub fn from_lookup(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> Proxies {
        Proxies(
            PROXY_VARS
                .iter()
                .chain(&NO_PROXY_VARS)
                .filter_map(|name| get(name).map(|v| (*name, v)))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<std::ffi::OsString> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    }
}

/// The variables that exempt hosts from the proxy, in the order they are read.
pub const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// An HTTP client. Building one sets up TLS, so it is only done on paths that go to the network.
///
/// Redirects are never followed: they would carry an assertion or a `Basic` header with an
/// access token to wherever the server points. Non-2xx answers are returned as responses, not
/// errors, because their bodies carry the reason. Requests to loopback hosts never use the
/// proxy: they are plain http, and a proxy would carry the assertion (or, from `check`, an access
/// token) across the network in clear text.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    /// A client with the proxy the variables name (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY`,
    /// lower-case too, with `NO_PROXY`). A proxy variable that cannot be parsed is an error, not
    /// a silent direct connection that bypasses the network's rules.
    pub fn new(proxies: &Proxies) -> Result<Client> {
        Ok(Client::with_proxy(proxy_from_env(|name| proxies.get(name))?))
    }

    fn with_proxy(proxy: Option<ureq::Proxy>) -> Client {
        // Every request resolves its host through this client; see the module docs of nss.
        crate::nss::builtin_services_only(crate::nss::Database::Hosts);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .unversioned_rustls_crypto_provider(provider)
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .proxy(proxy)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(USER_AGENT)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            LocalhostWithoutLookup::default(),
        );
        Client { agent }
    }

    /// A GET request to `url`.
    pub fn get(&self, url: &str) -> ureq::RequestBuilder<WithoutBody> {
        direct_to_loopback(url, self.agent.get(url))
    }

    /// A POST request to `url`.
    pub fn post(&self, url: &str) -> ureq::RequestBuilder<WithBody> {
        direct_to_loopback(url, self.agent.post(url))
    }
}

/// The system resolver, except that the name `localhost` is 127.0.0.1 and ::1 without any
/// lookup. `localhost` counts as loopback (plain http allowed, no proxy), so it must never
/// depend on DNS: without a `localhost` line in `/etc/hosts` (minimal images, containers) glibc
/// asks DNS, search domains included, and whatever answers would get the assertion in clear
/// text.
#[derive(Debug, Default)]
struct LocalhostWithoutLookup(ureq::unversioned::resolver::DefaultResolver);

impl ureq::unversioned::resolver::Resolver for LocalhostWithoutLookup {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        if !uri.host().is_some_and(|h| h.eq_ignore_ascii_case("localhost")) {
            return self.0.resolve(uri, config, timeout);
        }
        let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let mut addrs = self.empty();
        addrs.push(std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)));
        addrs.push(std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
        Ok(addrs)
    }
}

/// `request` without a proxy when `url` is on loopback.
fn direct_to_loopback<B>(url: &str, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    if targets_loopback(url) {
        request.config().proxy(None).build()
    } else {
        request
    }
}

/// An HTTP answer, read within a size limit.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: ureq::http::HeaderMap,
    /// The body, or why it was not read whole.
    pub body: Result<String, BodyError>,
}

impl Answer {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why an answer's body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// It was larger than the limit.
    TooLarge,
    /// The connection failed while reading it.
    Read(ureq::Error),
}

/// Why no answer came.
#[derive(Debug)]
pub enum SendError {
    /// The deadline had already passed; nothing was sent.
    NoTimeLeft,
    /// Connecting, TLS or the request itself failed.
    Failed(ureq::Error),
}

/// Sends `request` with the time left until `deadline` as its whole timeout (connect, TLS,
/// answer) and reads at most `limit` bytes of the answer: the one way every request is bounded.
/// `send` finishes the request (`call()`, `send_form(…)`).
pub fn bounded<B>(
    request: ureq::RequestBuilder<B>,
    deadline: std::time::Instant,
    limit: u64,
    send: impl FnOnce(ureq::RequestBuilder<B>) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer, SendError> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Err(SendError::NoTimeLeft);
    }
    let request = request.config().timeout_global(Some(left)).build();
    let mut response = send(request).map_err(SendError::Failed)?;
    let body = match response.body_mut().with_config().limit(limit).read_to_string() {
        Ok(text) => Ok(text),
        Err(ureq::Error::BodyExceedsLimit(_)) => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e)),
    };
    Ok(Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    })
}

/// `url` with `pairs` added to its query (an existing query is kept), form-encoded. A fragment
/// is dropped: it is never sent, and the pairs appended after it would be lost with it.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(pairs);
    let sep = match url.find('?') {
        None => "?",
        Some(i) if i + 1 == url.len() || url.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{url}{sep}{}", query.finish())
}

/// True when `url`'s host is loopback (`localhost`, 127.0.0.0/8, `::1`).
fn targets_loopback(url: &str) -> bool {
    crate::server_url::origin(url).is_some_and(|o| crate::server_url::is_loopback(&o.host))
}

/// The proxy the first set proxy variable names (with `NO_PROXY` applied), or an error naming
/// the variable. The value itself is never printed: it may hold a proxy password.
fn proxy_from_env(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Option<ureq::Proxy>> {
    for name in PROXY_VARS {
        let Some(value) = var(name) else { continue };
        let Some(value) = value.to_str() else {
            return Err(Error::Config(format!(
                "{name} is not valid UTF-8; set it to http://host:port or unset it"
            )));
        };
        if value.trim().is_empty() {
            continue;
        }
        match ureq::Proxy::new(value) {
            Err(e) => {
                return Err(Error::Config(format!(
                    "{name} is not a usable proxy URL ({e}); set it to http://host:port or unset it"
                )));
            }
            // This build has no SOCKS support: ureq would connect directly instead, resolving
            // the name locally, and bypass the network's rules without a word.
            Ok(p) if !matches!(p.protocol(), ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https) => {
                return Err(Error::Config(format!(
                    "{name} names a SOCKS proxy, which this helper cannot use; only http:// proxies are supported: set {name} to an http://host:port proxy or unset it"
                )));
            }
            Ok(proxy) => return with_no_proxy(proxy, &var).map(Some),
        }
    }
    Ok(None)
}

/// `proxy` rebuilt with the hosts of the first set `NO_PROXY` variable exempted, so that the
/// snapshot, not ureq, is what reads the environment.
fn with_no_proxy(proxy: ureq::Proxy, var: &impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<ureq::Proxy> {
    let mut builder = ureq::Proxy::builder(proxy.protocol())
        .host(proxy.host())
        .port(proxy.port());
    if let Some(user) = proxy.username() {
        builder = builder.username(user);
    }
    if let Some(password) = proxy.password() {
        builder = builder.password(password);
    }
    let exempt = NO_PROXY_VARS
        .iter()
        .find_map(|name| var(name).filter(|v| !v.is_empty()));
    if let Some(exempt) = exempt {
        for host in exempt
            .to_string_lossy()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            builder = builder.no_proxy(host);
        }
    }
    builder.build().map_err(|_| {
        Error::Config("the proxy variable names no usable proxy; set it to http://host:port or unset it".into())
    })
}

/// `": <sanitised body>"` for an error message about an HTTP answer with `status`, or nothing
/// for an empty body. A 2xx body is never shown, sanitised or not: a success carries credentials
/// (a token endpoint's or a registry token service's), and redaction is a second line of defence,
/// not a licence to print them.
pub fn body_note(status: u16, body: &str) -> String {
    if (200..300).contains(&status) {
        return String::new();
    }
    match crate::redact::sanitize(body) {
        t if t.is_empty() => String::new(),
        t => format!(": {t}"),
    }
}

/// True when `e` is a TLS failure (bad certificate, handshake), which retrying cannot fix.
/// rustls reports certificate problems wrapped in an `io::Error`, so both forms are checked.
pub fn is_tls_error(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()),
        ureq::Error::Rustls(_) | ureq::Error::Tls(_) | ureq::Error::Pem(_) => true,
        _ => false,
    }
}

/// An endpoint URL a credential may be sent to: https, or plain http to a loopback host.
///
/// The URL itself is only handed to requests ([`Endpoint::url`]); everything that prints an
/// endpoint (`Display`, `Debug`) shows it without user info, so a password in
/// `STACKIT_TOKEN_BASEURL=https://user:secret@host/…` reaches no error, log line or report.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    origin: String,
}

impl Endpoint {
    /// Accepts an explicitly configured endpoint: any https URL, or plain http to a loopback
    /// host (a local fake or proxy), so that nothing secret crosses a network in clear text.
    /// `origin` names what configured it, for the error.
    pub fn parse(url: &str, origin: &str) -> Result<Endpoint> {
        let url = url.trim();
        let shown = server_url::without_userinfo(url);
        match server_url::origin(url) {
            Some(o) if o.scheme == "https" || (o.scheme == "http" && server_url::is_loopback(&o.host)) => {
                Ok(Endpoint {
                    url: url.to_string(),
                    origin: origin.to_string(),
                })
            }
            Some(o) if o.scheme == "http" => Err(Error::Config(format!(
                "token endpoint {shown} from {origin} uses plain http to a non-loopback host; use https"
            ))),
            _ => Err(Error::Config(format!(
                "token endpoint {shown:?} from {origin} is not an https:// URL"
            ))),
        }
    }

    /// The URL to send requests to. Never print it: use the endpoint's `Display`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What configured it (a variable, a config file entry, `the default`), for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&server_url::without_userinfo(&self.url))
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(vars: &[(&str, &str)]) -> Result<Option<ureq::Proxy>> {
        proxy_from_env(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into()))
    }

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(targets_loopback("http://127.0.0.1:8080/token"));
        assert!(targets_loopback("http://localhost/x"));
        assert!(targets_loopback("http://[::1]:5000/v2/"));
        assert!(!targets_loopback("https://service-account.api.stackit.cloud/token"));
        assert!(!targets_loopback("http://localhost.evil.example/"));
        assert!(!targets_loopback("not a url"));
    }

    #[test]
    fn an_unparsable_proxy_is_an_error_that_names_the_variable_not_the_value() {
        let err = proxies(&[("HTTPS_PROXY", "http://user:pw@bad host:3128")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTPS_PROXY"), "{err}");
        assert!(!err.contains("pw"), "{err}");
        assert!(proxies(&[]).unwrap().is_none());
        assert!(proxies(&[("ALL_PROXY", " ")]).unwrap().is_none());
        assert!(proxies(&[("HTTP_PROXY", "::::")]).is_err());
    }

    #[test]
    fn tls_failures_in_either_form_are_recognised_and_others_are_not() {
        // rustls reports some failures directly, others wrapped in an io::Error; both are final.
        assert!(is_tls_error(&ureq::Error::Rustls(rustls::Error::General("bad".into()))));
        let wrapped = std::io::Error::other(rustls::Error::General("bad certificate".into()));
        assert!(is_tls_error(&ureq::Error::Io(wrapped)));
        assert!(!is_tls_error(&ureq::Error::Io(
            std::io::ErrorKind::ConnectionRefused.into()
        )));
        assert!(!is_tls_error(&ureq::Error::ConnectionFailed));
    }

    #[test]
    fn an_endpoint_prints_without_its_user_info_in_both_forms() {
        let e = Endpoint::parse("https://user:s3cret@idp.example/token?x=1", "T").unwrap();
        assert_eq!(e.url(), "https://user:s3cret@idp.example/token?x=1");
        for shown in [format!("{e}"), format!("{e:?}")] {
            assert_eq!(shown, "https://***@idp.example/token?x=1");
        }
        assert_eq!(e.origin(), "T");
    }

    #[test]
    fn endpoints_are_refused_with_the_reason_that_applies() {
        let plain = Endpoint::parse("http://10.0.0.1/token", "X").unwrap_err().to_string();
        assert!(plain.contains("plain http to a non-loopback host"), "{plain}");
        for other in ["ftp://x.example/token", "token", "file:///etc/passwd"] {
            let err = Endpoint::parse(other, "X").unwrap_err().to_string();
            assert!(
                err.contains("is not an https:// URL") && !err.contains("plain http"),
                "{other}: {err}"
            );
        }
    }

    #[test]
    fn no_proxy_comes_from_the_snapshot_not_the_process() {
        let proxy = proxies(&[
            ("HTTPS_PROXY", "http://user:pw@proxy.corp.example:3128"),
            ("NO_PROXY", "internal.example, .corp.example"),
        ])
        .unwrap()
        .unwrap();
        let uri = |u: &str| u.parse::<ureq::http::Uri>().unwrap();
        assert!(proxy.is_no_proxy(&uri("https://internal.example/token")));
        assert!(proxy.is_no_proxy(&uri("https://idp.corp.example/token")));
        assert!(!proxy.is_no_proxy(&uri("https://service-account.api.stackit.cloud/token")));
        assert_eq!(
            (proxy.host(), proxy.port(), proxy.username(), proxy.password()),
            ("proxy.corp.example", 3128, Some("user"), Some("pw"))
        );
        // The lower-case spelling counts when the upper-case one is unset.
        let proxy = proxies(&[("https_proxy", "http://p.example:1"), ("no_proxy", "x.example")])
            .unwrap()
            .unwrap();
        assert!(proxy.is_no_proxy(&uri("https://x.example/")));
    }

    #[test]
    fn socks_proxies_are_refused_by_name_and_http_ones_kept() {
        for (name, value) in [
            ("ALL_PROXY", "socks5://proxy.corp.example:1080"),
            ("all_proxy", "socks5h://u:pw@proxy.corp.example"),
            ("HTTPS_PROXY", "socks4://proxy.corp.example:1080"),
            ("https_proxy", "socks4a://proxy.corp.example:1080"),
            ("HTTP_PROXY", "socks5h://proxy.corp.example:1080"),
        ] {
            let err = proxies(&[(name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name} names a SOCKS proxy")), "{err}");
            assert!(err.contains("only http:// proxies"), "{err}");
            assert!(!err.contains("pw") && !err.contains("corp"), "{err}");
        }
        for value in ["http://proxy.corp.example:3128", "proxy.corp.example:3128"] {
            assert!(proxies(&[("HTTPS_PROXY", value)]).is_ok(), "{value}");
        }
    }

    #[test]
    fn localhost_is_loopback_without_asking_any_resolver() {
        use ureq::unversioned::resolver::Resolver;
        let config = ureq::Agent::config_builder().build();
        let resolve = |url: &str| {
            let uri: ureq::http::Uri = url.parse().unwrap();
            LocalhostWithoutLookup::default()
                .resolve(&uri, &config, Default::default())
                .map(|a| a.iter().copied().collect::<Vec<_>>())
        };
        for (url, port) in [
            ("http://localhost:8080/token", 8080),
            ("https://LOCALHOST/x", 443),
            ("http://localhost/", 80),
        ] {
            let addrs = resolve(url).unwrap();
            assert_eq!(addrs.len(), 2, "{url}");
            assert!(
                addrs.iter().all(|a| a.ip().is_loopback() && a.port() == port),
                "{url}: {addrs:?}"
            );
        }
    }
}
