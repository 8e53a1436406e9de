//! Server URLs as clients send them, reduced to the `host[:port]` key the helper matches on.
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
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            return None;
        }
        rest = &rest[i + 3..];
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut authority = &rest[..end];
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
    fn loopback_detection() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.8.9.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("localhost.evil.example"));
    }
}
