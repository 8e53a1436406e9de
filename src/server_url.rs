//! Server URLs as clients send them, reduced to the `host[:port]` key the helper matches on,
//! and the one reading of absolute URLs (endpoints, realms) that decisions about where a
//! credential may go are made on.
//!
//! Docker sends a bare `host[:port]`; other clients and old configs send `https://host`,
//! `https://host/v2/`, `host:443`, upper-case names or a repository path. All of them reduce to
//! one key, and matching on that key is exact: `registry.onstackit.cloud.evil.example` is a
//! different host and is never served.

/// The host every installation serves without configuration.
pub const DEFAULT_REGISTRY: &str = "registry.onstackit.cloud";

/// Reduces a server URL to `host[:port]`: scheme, user info, path, query and fragment are
/// dropped, the host is lower-cased and the default HTTPS port `:443` is removed.
///
/// Returns `None` for anything that is not a plausible registry host, which callers treat as a
/// host they do not serve.
pub fn normalize(input: &str) -> Option<String> {
    let mut rest = input.trim();
    if let Some(i) = rest.find("://") {
        let scheme = &rest[..i];
        // RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). `0://host` is no scheme, and
        // guessing what it means is how foreign hosts get mapped onto served ones.
        if !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return None;
        }
        rest = &rest[i + 3..];
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut authority = &rest[..end];
    // WHATWG URL parsers (browsers, many libraries) end the authority at `\` as well, so
    // `evil.example\@registry.onstackit.cloud` names evil.example to them and the served host to
    // a plain RFC 3986 reading. Never guess between the two (found by the proptest below).
    if authority.contains('\\') {
        return None;
    }
    if let Some(i) = authority.rfind('@') {
        authority = &authority[i + 1..];
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = split_host_port(&authority)?;
    if !valid_host(host) {
        return None;
    }
    match port {
        None | Some("443") => Some(host.to_string()),
        Some(p) => Some(format!("{host}:{p}")),
    }
}

/// Splits `host[:port]`, keeping the brackets of an IPv6 literal. `None` if the port is invalid.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port {
        let n: u32 = if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse().ok()?
        } else {
            return None;
        };
        if n == 0 || n > 65535 {
            return None;
        }
    }
    Some((host, port))
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-'])
        && !host.contains("..")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// What the helper decides on about an absolute URL (an endpoint, a realm), read by `http::Uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The scheme, lower-cased.
    pub scheme: String,
    /// The host, lower-cased, IPv6 in brackets.
    pub host: String,
    /// An explicit port.
    pub port: Option<u16>,
    /// `host[:port]` exactly as written, without user info.
    pub authority: String,
    /// Whether the URL carries `user@` or `user:password@`.
    pub has_userinfo: bool,
}

/// `url` as it may be printed: any user info (`user:password@`) in its authority is replaced
/// by `***@`. Works on text that does not parse as a URL too (everything up to the last `@`
/// before a query or fragment counts as user info), erring towards hiding more.
pub fn without_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => std::borrow::Cow::Owned(format!("{}***@{}", &url[..start], &rest[at + 1..])),
        None => std::borrow::Cow::Borrowed(url),
    }
}

/// Reads an absolute URL's scheme and authority; `None` for anything else.
pub fn origin(url: &str) -> Option<Origin> {
    let uri = url.trim().parse::<ureq::http::Uri>().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let raw = authority.as_str();
    let has_userinfo = raw.contains('@');
    Some(Origin {
        scheme,
        host,
        port: authority.port_u16(),
        authority: raw.rsplit('@').next().unwrap_or(raw).to_string(),
        has_userinfo,
    })
}

/// The host name of a `host[:port]` key, IPv6 brackets kept.
pub fn host_name(hostport: &str) -> &str {
    if hostport.starts_with('[') {
        hostport.split_inclusive(']').next().unwrap_or(hostport)
    } else {
        hostport.split(':').next().unwrap_or(hostport)
    }
}

/// True for hosts that never leave the machine: `localhost`, 127.0.0.0/8 and `::1`.
/// Plain `http` is only ever used towards these.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_real_clients_send_reduces_to_the_same_key() {
        for input in [
            "registry.onstackit.cloud",
            "registry.onstackit.cloud\n",
            "  registry.onstackit.cloud \r\n",
            "registry.onstackit.cloud:443",
            "https://registry.onstackit.cloud",
            "https://registry.onstackit.cloud:443",
            "http://registry.onstackit.cloud",
            "https://registry.onstackit.cloud/v2/",
            "https://registry.onstackit.cloud/v2/shop/app/manifests/latest?x=1#f",
            "registry.onstackit.cloud/shop/app",
            "Registry.OnStackit.CLOUD",
            "https://user@registry.onstackit.cloud/",
        ] {
            assert_eq!(
                normalize(input).as_deref(),
                Some("registry.onstackit.cloud"),
                "{input:?}"
            );
        }
    }

    #[test]
    fn ports_and_ip_literals_are_kept() {
        assert_eq!(normalize("localhost:5000").as_deref(), Some("localhost:5000"));
        assert_eq!(
            normalize("http://127.0.0.1:5000/v2/").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(normalize("[::1]:5000").as_deref(), Some("[::1]:5000"));
        assert_eq!(normalize("https://[::1]").as_deref(), Some("[::1]"));
        assert_eq!(normalize("10.0.0.1:5000").as_deref(), Some("10.0.0.1:5000"));
        assert_eq!(normalize("host:65535").as_deref(), Some("host:65535"));
        assert_eq!(normalize("host:1").as_deref(), Some("host:1"));
    }

    #[test]
    fn host_names_are_at_most_253_characters() {
        let longest = format!("{}.example", "a".repeat(253 - ".example".len()));
        assert_eq!(normalize(&longest).as_deref(), Some(longest.as_str()));
        assert_eq!(normalize(&format!("a{longest}")), None);
    }

    #[test]
    fn garbage_is_not_a_host() {
        for input in [
            "",
            " ",
            "://x",
            "host:",
            "host:0",
            "host:99999",
            "host:12ab",
            "[::1",
            "[zz]:1",
            "a..b",
            ".host",
            "ho st",
            "{\"ServerURL\":\"x\"}",
            "host:1:2",
            "-host",
            "host.",
            "host-",
            "host:+443",
            "host:65536",
        ] {
            assert_eq!(normalize(input), None, "{input:?}");
        }
    }

    #[test]
    fn look_alikes_stay_different() {
        for input in [
            "registry.onstackit.cloud.evil.example",
            "evilregistry.onstackit.cloud",
            "registry.onstackit.cloud:5000",
            "registry.onstackit.cloud.",
            "https://evil.example/registry.onstackit.cloud",
            "https://registry.onstackit.cloud@evil.example",
            // Regressions from the property tests: a backslash ends the authority for WHATWG.
            "\\@registry.onstackit.cloud/",
            "https://evil.example\\@registry.onstackit.cloud",
            "0://registry.onstackit.cloud",
        ] {
            assert_ne!(normalize(input).as_deref(), Some(DEFAULT_REGISTRY), "{input:?}");
        }
    }

    #[test]
    fn normalisation_is_idempotent() {
        for input in ["HTTPS://A.B:443/x", "a.b:5000", "[::1]:80", "x_y.z"] {
            let once = normalize(input).unwrap();
            assert_eq!(normalize(&once).as_deref(), Some(once.as_str()));
        }
    }

    #[test]
    fn origins_of_absolute_urls() {
        let o = origin("HTTPS://User:pw@Accounts.STACKIT.cloud:8443/oauth/v2/token?x=1").unwrap();
        assert_eq!(
            (
                o.scheme.as_str(),
                o.host.as_str(),
                o.port,
                o.authority.as_str(),
                o.has_userinfo
            ),
            (
                "https",
                "accounts.stackit.cloud",
                Some(8443),
                "Accounts.STACKIT.cloud:8443",
                true
            )
        );
        let v6 = origin("http://[::1]:5000/v2/").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("[::1]", Some(5000)));
        assert!(origin("token").is_none());
        assert!(origin("/relative/path").is_none());
        assert!(origin("http://exa mple/").is_none());
        assert_eq!(host_name("[::1]:5000"), "[::1]");
        assert_eq!(host_name("registry.example:5000"), "registry.example");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.8.9.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("localhost.evil.example"));
    }
}

/// Properties of [`normalize`] over generated input (proptest). The oracle for "which host does
/// this string really name" is written independently of `normalize`: RFC 3986 Appendix B's
/// split, and the WHATWG URL reading in which `\` also ends the authority.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// What a URL parser takes for the host and port of `s`. Input without `scheme://` is read
    /// the way Docker sends it, as `host[:port]` (a network-path reference, `//` + input); a
    /// `scheme:` without `//` would make `localhost:5000` a path, which no registry client does.
    fn reference_host_port(s: &str, backslash_ends_authority: bool) -> Option<(String, Option<String>)> {
        let t = s.trim();
        let is_scheme = |p: &str| {
            p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        };
        let after_slashes = match t.find(':') {
            Some(i) if is_scheme(&t[..i]) && t[i + 1..].starts_with("//") => &t[i + 3..],
            _ => t,
        };
        let ends: &[char] = if backslash_ends_authority {
            &['/', '?', '#', '\\']
        } else {
            &['/', '?', '#']
        };
        let authority = &after_slashes[..after_slashes.find(ends).unwrap_or(after_slashes.len())];
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match host_port.rfind(':') {
            Some(i) if !host_port[i..].contains(']') => (&host_port[..i], Some(host_port[i + 1..].to_string())),
            _ => (host_port, None),
        };
        Some((host.to_ascii_lowercase(), port))
    }

    /// True if both readings agree that `s` names the default registry on the HTTPS port.
    fn really_default_registry(s: &str) -> bool {
        [false, true].into_iter().all(|b| {
            matches!(reference_host_port(s, b), Some((h, p)) if h == DEFAULT_REGISTRY && matches!(p.as_deref(), None | Some("443")))
        })
    }

    /// URL-ish noise: the characters that change how a URL splits, plus a few letters.
    fn noise() -> impl Strategy<Value = String> {
        proptest::string::string_regex(r"[a-cA-C0-9.:/@?#\\\[\]%_ \t-]{0,12}").expect("valid regex")
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(DEFAULT_REGISTRY.to_string()),
            Just("REGISTRY.onstackit.CLOUD".to_string()),
            Just("registry.onstackit.cloud.evil.example".to_string()),
            Just("evilregistry.onstackit.cloud".to_string()),
            Just("registry.onstackit.cloud.".to_string()),
            Just("[::1]".to_string()),
            proptest::string::string_regex("[a-z0-9][a-z0-9.-]{0,20}").expect("valid regex"),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Normalising a normalised key changes nothing.
        #[test]
        fn idempotent(s in prop_oneof![noise(), any::<String>(), host()]) {
            if let Some(once) = normalize(&s) {
                prop_assert_eq!(normalize(&once), Some(once.clone()));
                prop_assert!(!once.contains(['/', '@', '?', '#', ' ']) && once == once.to_ascii_lowercase());
            }
        }

        /// Built from parts: the default registry comes out exactly when the host part is it
        /// and the port is absent or 443, whatever the scheme, user info and path say.
        #[test]
        fn structured_urls_map_only_their_own_host(
            scheme in prop_oneof![Just(""), Just("https://"), Just("http://"), Just("HTTPS://"), Just("oci+https://")],
            userinfo in prop_oneof![Just(""), Just("user@"), Just("registry.onstackit.cloud@"), Just("a:b@")],
            host in host(),
            port in prop_oneof![Just(""), Just(":443"), Just(":5000"), Just(":0")],
            rest in prop_oneof![Just(""), Just("/"), Just("/v2/"), Just("/registry.onstackit.cloud"),
                                Just("?h=registry.onstackit.cloud"), Just("#registry.onstackit.cloud")],
        ) {
            let url = format!("{scheme}{userinfo}{host}{port}{rest}");
            let served = normalize(&url).as_deref() == Some(DEFAULT_REGISTRY);
            let expected = host.eq_ignore_ascii_case(DEFAULT_REGISTRY) && (port.is_empty() || port == ":443");
            prop_assert_eq!(served, expected, "{}", url);
        }

        /// Noise around the served host name: whenever `normalize` says "the default registry",
        /// both URL readings agree that the string's authority really is that host.
        #[test]
        fn never_maps_a_foreign_host_onto_the_served_one(pre in noise(), post in noise()) {
            let s = format!("{pre}{DEFAULT_REGISTRY}{post}");
            if normalize(&s).as_deref() == Some(DEFAULT_REGISTRY) {
                prop_assert!(really_default_registry(&s), "{:?}", s);
            }
        }

        /// The same over arbitrary text, which almost never normalises to the served host but
        /// must never panic.
        #[test]
        fn arbitrary_text_never_panics_or_maps_foreign_hosts(s in any::<String>()) {
            if normalize(&s).as_deref() == Some(DEFAULT_REGISTRY) {
                prop_assert!(really_default_registry(&s), "{:?}", s);
            }
        }
    }
}
