//! What each fuzz target checks, as plain functions of the input bytes: the cargo-fuzz targets
//! in `fuzz_targets/` (nightly, `scripts/fuzz`) call them, and so does the main test suite
//! (`tests/it/fuzz_corpus.rs`, stable), which replays every seed in `fuzz/seeds/<target>/` and
//! every input in `fuzz/regressions/<target>/` through them on each run. A target that stops
//! compiling or a regression that comes back therefore fails `cargo test`, not only the next
//! fuzzing session. Each function panics on a broken invariant, which libFuzzer reports as a
//! crash.
//!
//! Shared source, not a crate: included with `#[path]` by both, so it may only use
//! `docker_credential_stackit` and `serde_json`.

#![allow(dead_code)]

/// A target's check: panics if the input breaks an invariant.
pub type Check = fn(&[u8]);

/// Every target: its name (the `fuzz_targets/<name>.rs` file and the seed directory) and its
/// check.
pub const TARGETS: &[(&str, Check)] = &[
    ("cache_file", cache_file),
    ("kubelet_request", kubelet_request),
    ("protocol_input", protocol_input),
    ("registry_token", registry_token),
    ("robot_json", robot_json),
    ("sa_key", sa_key),
    ("server_url", server_url),
    ("token_response", token_response),
];

/// The token cache file parser and the freshness rules applied to what it returns.
/// Input: 8 bytes of "now" (little endian), then the file text.
pub fn cache_file(data: &[u8]) {
    use docker_credential_stackit::testing::token::cache::{self, Freshness, MIN_REMAINING};
    let (now, text) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (1_800_000_000, data),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(token) = cache::parse_entry(text, "kid\nhttps://service-account.api.stackit.cloud/token") {
        assert!(!token.access_token.is_empty());
        match token.freshness(now) {
            Freshness::Fresh | Freshness::Usable => assert!(token.remaining(now) >= MIN_REMAINING),
            Freshness::Expired => assert!(token.remaining(now) < MIN_REMAINING),
        }
    }
}

/// The kubelet's CredentialProviderRequest on stdin.
pub fn kubelet_request(data: &[u8]) {
    use docker_credential_stackit::testing::kubelet;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match kubelet::parse_request(text) {
        Ok(request) => {
            assert!(!request.image.is_empty());
            let _ = kubelet::registry_of(&request.image);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "one-line error: {e}"),
    }
}

/// stdin of `get`/`erase`/`store`: bounded read, server URL extraction, `store`'s JSON.
pub fn protocol_input(data: &[u8]) {
    use docker_credential_stackit::testing::protocol;
    let Ok(text) = protocol::read_input(data) else {
        return;
    };
    if let Ok(url) = protocol::server_url(&text) {
        assert!(!url.is_empty() && url.trim() == url, "{url:?}");
        assert!(!url.starts_with('{'));
    }
    match protocol::credentials(&text) {
        Ok(c) => {
            assert!(!c.server_url.is_empty() && !c.username.is_empty());
            // The answer `get` would render is one line of JSON.
            let out = protocol::render_credentials(&c);
            assert!(!out.contains('\n'));
            assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "one-line error: {e}"),
    }
}

/// Registry bearer tokens (`Grants::from_token`) and scopes. Input: a scope line, then the token.
pub fn registry_token(data: &[u8]) {
    use docker_credential_stackit::validate::{self, Grants, Scope};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (scope, token) = text.split_once('\n').unwrap_or(("repository:shop/app:pull,push", text));
    let _ = validate::needs_for_scope(scope);
    let scopes = Scope::parse_all(scope);
    match Grants::from_token(token) {
        Ok(grants) => {
            for s in &scopes {
                let _ = validate::missing_actions(&grants, s);
                let _ = validate::check_grants(&grants, s);
                let _ = s.render();
            }
        }
        Err(e) => {
            let _ = e.to_finding();
        }
    }
}

/// Harbor robot JSON and every check the validator runs on a parsed robot.
pub fn robot_json(data: &[u8]) {
    use docker_credential_stackit::validate::{self, Need, Options, Robot};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Robot::list_from_json(text);
    let Ok(robot) = Robot::from_json(text) else {
        return;
    };
    for now in [0, 1_800_000_000, i64::MAX, i64::MIN] {
        let _ = validate::check_robot(&robot, &Options::default(), now);
        let _ = robot.is_expired(now);
    }
    let needs = [
        Need::repository("shop", "pull"),
        Need::repository("shop", "push"),
        Need::new("", "", ""),
    ];
    for need in &needs {
        let _ = validate::decide(&robot, need);
    }
    let _ = validate::check_needs(&robot, &needs);
    let _ = robot.to_value();
    let key = docker_credential_stackit::testing::key::ServiceAccountKey::parse(
        r#"{"credentials":{"kid":"k","iss":"sa@sa.stackit.cloud","sub":"0b9e4b1e-0000-4000-8000-000000000000","aud":"a"}}"#,
        "fuzz",
    );
    if let Ok(key) = key {
        let sa = validate::SaIdentity::from_key(&key);
        let _ = validate::check_link(
            &robot,
            &validate::LinkSource::Pointers(validate::LinkPointers::default()),
            &sa,
        );
    }
}

/// The service account key JSON (`ServiceAccountKey::parse`) and PEM private keys.
pub fn sa_key(data: &[u8]) {
    use docker_credential_stackit::Secret;
    use docker_credential_stackit::testing::key;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match key::ServiceAccountKey::parse(text, "FUZZ_KEY") {
        Ok(k) => assert!(!k.kid.is_empty() && !k.iss.is_empty() && !k.sub.is_empty() && !k.aud.is_empty()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("FUZZ_KEY") && !msg.contains('\n'), "{msg}");
        }
    }
    if text.contains("-----BEGIN") {
        let _ = key::signing_key(&Secret::new(text), "FUZZ_PEM");
    }
}

/// Server URL normalisation: never panics, idempotent, and only maps text that contains the
/// served host onto it.
pub fn server_url(data: &[u8]) {
    use docker_credential_stackit::testing::server_url::{self, DEFAULT_REGISTRY};
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = server_url::is_loopback(s);
    let Some(key) = server_url::normalize(s) else {
        return;
    };
    assert_eq!(
        server_url::normalize(&key).as_deref(),
        Some(key.as_str()),
        "idempotent for {s:?}"
    );
    assert!(
        !key.contains(['/', '@', '?', '#', '\\', ' ']) && key == key.to_ascii_lowercase(),
        "{key:?}"
    );
    if key == DEFAULT_REGISTRY {
        assert!(s.to_ascii_lowercase().contains(DEFAULT_REGISTRY), "{s:?}");
    }
}

/// What the token endpoint sends back: the 2xx body, error text shown to the user, and the
/// `Date` header. Input: 8 bytes of "now" (little endian), then the body.
pub fn token_response(data: &[u8]) {
    use docker_credential_stackit::testing::token::exchange;
    let (now, body) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (1_800_000_000, data),
    };
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    if let Ok((token, expires_at)) = exchange::parse_success(body, "https://e.example/token", now) {
        assert!(!token.is_empty());
        // Never cached for more than a day, whatever the token claims.
        assert!(expires_at <= now.saturating_add(24 * 3600), "{expires_at} vs {now}");
    }
    let clean = docker_credential_stackit::testing::redact::sanitize(body);
    assert!(!clean.chars().any(char::is_control), "{clean:?}");
    assert!(clean.chars().count() <= 301);
    let _ = docker_credential_stackit::testing::clock::parse_http_date(body);
    let _ = docker_credential_stackit::testing::jwt::jwt_claim_u64(body, "exp");
}
