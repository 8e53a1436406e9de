//! The token request: retries, the deadline, final 4xx and its hints, DNS, TLS trust, proxies,
//! redirects, and the odd tokens and dates an endpoint may send back.

use crate::support::gate::Gate;
use crate::support::*;
use docker_credential_stackit::testing::fake::{FakeStackit, Reply, Shape};
use serde_json::json;
use std::time::Duration;

fn status(code: u16, body: &str) -> Reply {
    Reply::Status(code, body.into(), vec![])
}

#[test]
fn server_errors_are_retried() {
    let fake = fake();
    fake.script([status(500, "oops"), status(502, "<html>bad gateway</html>")]);
    // Retries are debug detail: a get that succeeds in the end says nothing about them...
    TestEnv::with_key(&fake).get(HOST).stderr("").json();
    assert_eq!(fake.requests(), 3);
    // ...and debug logging shows each.
    fake.script([status(500, "oops"), status(502, "<html>bad gateway</html>")]);
    TestEnv::with_key(&fake)
        .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug")
        .get(HOST)
        .stderr_has("HTTP 500")
        .stderr_has("HTTP 502")
        .stderr_has("retrying")
        .json();
    assert_eq!(fake.requests(), 6);
}

#[test]
fn rate_limits_are_retried_after_the_requested_wait() {
    let fake = fake();
    let gate = Gate::recording(&fake);
    fake.script([Reply::Status(
        429,
        "slow down".into(),
        vec![("Retry-After".into(), "1".into())],
    )]);
    TestEnv::with_key(&fake)
        .var("STACKIT_TOKEN_BASEURL", &gate.url())
        .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug")
        .get(HOST)
        .stderr_has("HTTP 429")
        .stderr_has("retrying in 1.0s")
        .json();
    assert_eq!(fake.requests(), 2);
    // Measured where the requests arrive: the second came at least the requested second after
    // the first (the helper sleeps after it has read the 429).
    let at = gate.arrival_times();
    assert_eq!(at.len(), 2);
    let waited = at[1] - at[0];
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[test]
fn a_rate_limit_longer_than_the_deadline_fails_at_once() {
    let fake = fake();
    fake.script([Reply::Status(
        429,
        "".into(),
        vec![("Retry-After".into(), "3600".into())],
    )]);
    TestEnv::with_key(&fake)
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "5")
        .get(HOST)
        .assert_error(&["HTTP 429", "gave up after 1 attempt"]);
    assert_eq!(fake.requests(), 1);
}

#[test]
fn client_errors_are_final_and_explained() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    fake.script([status(
        400,
        r#"{"error":"Bad Request","message":"Key with kid 123 was not found","status":400}"#,
    )]);
    env.get(HOST).assert_error(&[
        "HTTP 400",
        "Key with kid 123 was not found",
        "check that the key still exists",
        &fake.url(),
    ]);
    assert_eq!(fake.requests(), 1, "4xx is never retried");

    fake.script([status(
        403,
        r#"{"error":{"code":403,"message":"The request could not be performed","status":"Forbidden"}}"#,
    )]);
    env.get(HOST)
        .assert_error(&["HTTP 403", "could not be performed", "active, not expired"]);

    fake.script([status(
        401,
        &format!("<html><body><h1>Denied</h1>{}</body></html>", "x".repeat(5000)),
    )]);
    let line = env.get(HOST).assert_error(&["HTTP 401", "Denied"]);
    assert!(
        !line.contains("<h1>") && line.len() < 700,
        "sanitised and truncated: {line}"
    );
    assert_eq!(fake.requests(), 3);
}

#[test]
fn a_refusal_says_the_key_was_refused_and_a_missing_endpoint_does_not() {
    const REFUSED: &str = "the service account key was refused";
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    for code in [400, 401, 403] {
        fake.script([status(code, "no")]);
        env.get(HOST).assert_error(&[
            &format!("HTTP {code}: no"),
            REFUSED,
            "check that it is active, not expired and not deleted",
        ]);
    }
    fake.script([status(400, r#"{"error":"invalid_grant"}"#)]);
    env.get(HOST).assert_error(&[REFUSED, "revoked, expired or deleted"]);
    // A wrong URL is not the key's fault: no hint that sends the user to the portal.
    for code in [404, 405, 418] {
        fake.script([status(code, "no")]);
        let line = env.get(HOST).assert_error(&[&format!("HTTP {code}: no")]);
        assert!(!line.contains("refused") && !line.contains("portal"), "{line}");
    }
    // A web server's own 404 page at a wrong URL says "was not found" too; only a key id that
    // was not found means the key is unknown there.
    fake.script([status(404, "The requested URL was not found on this server.")]);
    let line = env
        .get(HOST)
        .assert_error(&["HTTP 404", "was not found on this server"]);
    assert!(!line.contains("key id is unknown"), "{line}");
    assert_eq!(fake.requests(), 8, "none of them retried");
}

#[test]
fn a_hanging_endpoint_fails_within_the_deadline() {
    let fake = fake();
    fake.script([Reply::Hang(Duration::from_secs(60))]);
    // The endpoint hangs for a minute; the builder's deadline is the upper bound.
    let out = TestEnv::with_key(&fake)
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1.5")
        .get(HOST)
        .deadline(Duration::from_secs(30))
        .expect_error(&["token endpoint", "DOCKER_CREDENTIAL_STACKIT_TIMEOUT"])
        .run();
    assert!(out.elapsed >= Duration::from_millis(1500), "{out:?}");
}

#[test]
fn an_unreachable_endpoint_is_retried_until_the_deadline() {
    let refused = refused_port();
    let url = format!("http://{}/token", refused.addr);
    // 3 s: time for retries however slowly the process starts.
    TestEnv::with_key(&fake())
        .var("STACKIT_TOKEN_BASEURL", &url)
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3")
        .get(HOST)
        .stderr_lacks("retrying")
        .stderr_lacks("os error")
        .assert_error(&[
            "unreachable",
            "connection refused",
            "gave up after",
            "the next one was due after",
            &url,
            "run `docker-credential-stackit check` for details",
        ]);
}

/// Whether the resolver answers "no such name" for `.invalid` names, as the DNS test needs.
/// Without a reachable resolver glibc says "try again later" (`EAI_AGAIN`), which the helper
/// rightly retries: then the test cannot show the final error, and says why.
fn resolver_answers_nxdomain() -> Option<()> {
    use std::net::ToSocketAddrs;
    match ("token.invalid", 443).to_socket_addrs() {
        Ok(addrs) => skip_or_fail(format!(
            "the resolver answered for token.invalid ({:?}); it must answer NXDOMAIN for the DNS test",
            addrs.collect::<Vec<_>>()
        )),
        Err(e) if e.to_string().contains("Temporary failure") => skip_or_fail(format!(
            "resolver unreachable: looking up token.invalid said {e:?}; the DNS test needs a resolver that answers NXDOMAIN"
        )),
        Err(_) => Some(()),
    }
}

#[test]
fn a_dns_failure_is_final_and_names_the_host() {
    let Some(()) = resolver_answers_nxdomain() else { return };
    // `.invalid` never resolves (RFC 6761), so nothing is sent anywhere but the local resolver.
    let env = TestEnv::with_key(&fake()).var("STACKIT_TOKEN_BASEURL", "https://token.invalid/token");
    // Not retried until the deadline: no "retrying" on stderr, only the error itself.
    env.get(HOST).assert_error(&[
        "https://token.invalid/token",
        "host not found (DNS",
        "check the URL, your network and any HTTPS_PROXY",
    ]);
    assert!(env.cache_files().is_empty());

    // A proxy whose name does not exist gets the same explanation, and is not retried either.
    TestEnv::with_key(&fake())
        .var(
            "STACKIT_TOKEN_BASEURL",
            "https://service-account.api.stackit.cloud/token",
        )
        .var("HTTPS_PROXY", "http://proxy.invalid:3128")
        .get(HOST)
        .assert_error(&["host not found (DNS", "any HTTPS_PROXY"]);
}

#[test]
fn a_slow_trickle_is_cut_off_at_the_deadline() {
    let fake = fake();
    // About 2 KB at one byte per 100 ms: minutes, against a 3 s deadline (time for the first
    // attempt to start however slowly the process does).
    fake.script([Reply::Trickle(Duration::from_millis(100))]);
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3");
    env.get(HOST)
        .deadline(Duration::from_secs(60))
        .stderr_any()
        .assert_error(&[
            &fake.url(),
            "did not answer in time",
            "DOCKER_CREDENTIAL_STACKIT_TIMEOUT",
        ]);
    assert!(env.cache_files().is_empty(), "no half-read token is cached");

    // With a usable cached token, the same fault costs nothing: the old token is served. (The
    // endpoint answers again at once here, so the failure window is turned off.)
    let env = env
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "20")
        .var("DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW", "0");
    let first = env.secret(HOST);
    env.age_past_half_life();
    fake.script([Reply::Trickle(Duration::from_millis(100))]);
    let out = env
        .get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2")
        .stderr_has("using the cached token")
        .json();
    assert_eq!(secret_of(&out), first);
    assert_eq!(env.cache_entry()["access_token"], first.as_str());
}

#[test]
fn redirects_are_not_followed() {
    let fake = fake();
    fake.script([Reply::Status(
        307,
        "".into(),
        vec![("Location".into(), "https://evil.example/token".into())],
    )]);
    TestEnv::with_key(&fake)
        .get(HOST)
        .assert_error(&["redirected", "evil.example", "STACKIT_TOKEN_BASEURL"]);
    assert_eq!(fake.requests(), 1);
}

#[test]
fn closed_connections_and_bad_success_bodies() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1");
    fake.script([Reply::Close]);
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_LOG", "debug")
        .stderr_has("retrying")
        .json();
    assert_eq!(fake.requests(), 2, "a dropped connection is retried");

    for (body, fragment) in [
        (r#"{"token_type":"Bearer"}"#, "without an access_token"),
        ("<html>captive portal</html>", "not a JSON token response"),
        (r#"{"access_token":"opaque-token"}"#, "lifetime is unknown"),
    ] {
        fake.script([status(200, body)]);
        env.get(HOST).assert_error(&[fragment]);
    }
    fake.script([status(200, &"x".repeat(200 * 1024))]);
    env.get(HOST).assert_error(&["more than 64 KiB"]);
    fake.script([status(200, r#"{"access_token":"opaque-token","expires_in":3600}"#)]);
    assert_eq!(
        env.secret(HOST),
        "opaque-token",
        "an opaque token with expires_in is fine"
    );
}

#[test]
fn https_with_a_private_ca_via_ssl_cert_file() {
    let (fake, ca) = tls_fake();
    let env = TestEnv::with_key(&fake);
    let ca_file = env.write("ca.pem", &ca);
    env.get(HOST).assert_error(&["TLS", "SSL_CERT_FILE"]);
    assert_eq!(fake.requests(), 0, "no request over an untrusted connection");
    env.var("SSL_CERT_FILE", ca_file.to_str().unwrap()).get(HOST).json();
    assert_eq!(fake.requests(), 1);
}

#[test]
fn https_with_the_wrong_host_name_fails() {
    let tls = tls_for(&["token.example"]);
    let fake = docker_credential_stackit::testing::fake::FakeStackit::start_with(Some(tls.server)).unwrap();
    fake.register(sa());
    let env = TestEnv::with_key(&fake);
    let ca = env.write("ca.pem", &tls.ca_pem);
    env.var("SSL_CERT_FILE", ca.to_str().unwrap())
        .get(HOST)
        .assert_error(&["TLS"]);
    assert_eq!(fake.requests(), 0);
}

#[test]
fn an_expired_certificate_is_refused_before_the_assertion_is_sent() {
    let tls = tls_expired(&["127.0.0.1", "localhost"]);
    let fake = docker_credential_stackit::testing::fake::FakeStackit::start_with(Some(tls.server)).unwrap();
    fake.register(sa());
    let env = TestEnv::with_key(&fake);
    let ca = env.write("ca.pem", &tls.ca_pem);
    // Final, so not retried: nothing on stderr but the error.
    let line = env
        .var("SSL_CERT_FILE", ca.to_str().unwrap())
        .get(HOST)
        .assert_error(&["TLS", &fake.url()]);
    assert!(line.contains("expired") && line.contains("clock"), "{line}");
    assert_eq!(
        fake.requests(),
        0,
        "no request over a connection with an expired certificate"
    );
}

#[test]
fn a_429_storm_backs_off_and_gives_up_with_one_line() {
    let fake = fake();
    // `Retry-After: 0` on every answer must not turn the retry loop into a flood.
    fake.script((0..500).map(|_| Reply::Status(429, "{}".into(), vec![("Retry-After".into(), "0".into())])));
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3");
    // One line, however many retries: the retry chatter is debug detail.
    env.get(HOST).stderr_lacks("retrying").assert_error(&[
        "HTTP 429",
        "gave up after",
        "DOCKER_CREDENTIAL_STACKIT_TIMEOUT",
    ]);
    let made = fake.requests();
    assert!(
        (2..=12).contains(&made),
        "retried with backoff, not in a tight loop: {made} requests in 3 s"
    );
    assert!(env.cache_files().is_empty());
}

#[test]
fn remote_endpoints_go_through_the_proxy() {
    let (proxy, seen) = recording_proxy();
    TestEnv::with_key(&fake())
        .var(
            "STACKIT_TOKEN_BASEURL",
            "https://service-account.api.stackit.cloud/token",
        )
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "3")
        .var("HTTPS_PROXY", &proxy)
        .get(HOST)
        .stderr_any()
        .assert_error(&["token endpoint"]);
    let seen = seen.lock().unwrap();
    assert!(
        seen.first()
            .is_some_and(|l| l.starts_with("CONNECT service-account.api.stackit.cloud:443")),
        "{seen:?}"
    );
}

#[test]
fn loopback_endpoints_never_go_through_a_proxy() {
    // Plain http to a proxy would carry the assertion across the network in clear text.
    let (proxy, seen) = recording_proxy();
    let fake = fake();
    let mut env = TestEnv::with_key(&fake);
    for var in [
        "ALL_PROXY",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "all_proxy",
        "https_proxy",
        "http_proxy",
    ] {
        env.set_var(var, &proxy);
        env.get(HOST).json();
        env.cmd(&["erase"]).stdin(HOST).run();
        env.remove_var(var);
    }
    assert_eq!(fake.requests(), 6);
    assert!(seen.lock().unwrap().is_empty(), "{:?}", seen.lock().unwrap());
}

#[test]
fn an_unparsable_proxy_is_an_error_not_a_direct_connection() {
    let fake = fake();
    let line = TestEnv::with_key(&fake)
        .var("HTTPS_PROXY", "http://user:hunter2@bad host:3128")
        .get(HOST)
        .assert_error(&["HTTPS_PROXY", "not a usable proxy URL"]);
    assert!(!line.contains("hunter2"), "the proxy password is printed: {line}");
    assert_eq!(fake.requests(), 0);
}

#[test]
fn a_socks_proxy_is_refused_by_name_never_bypassed() {
    // A SOCKS proxy on loopback that records whether anyone connects. The endpoint is remote
    // (the default), so the proxy would apply; this build cannot speak SOCKS, and connecting
    // directly instead would bypass the network's rules and resolve the name locally.
    let socks = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socks.set_nonblocking(true).unwrap();
    let at = socks.local_addr().unwrap();
    let fake = fake();
    for (name, scheme) in [
        ("ALL_PROXY", "socks5"),
        ("HTTPS_PROXY", "socks5h"),
        ("all_proxy", "socks4"),
    ] {
        let line = TestEnv::with_key(&fake)
            .var(
                "STACKIT_TOKEN_BASEURL",
                "https://service-account.api.stackit.cloud/token",
            )
            .var(name, &format!("{scheme}://user:hunter2@{at}"))
            .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "2")
            .get(HOST)
            .assert_error(&[name, "SOCKS", "only http:// proxies"]);
        assert!(!line.contains("hunter2"), "the proxy password is printed: {line}");
    }
    assert!(socks.accept().is_err(), "nobody connected to the proxy either");
    assert_eq!(fake.requests(), 0);
}

// ---------------------------------------------------------------------------------------------
// Odd tokens and clocks

#[test]
fn tokens_without_a_readable_exp_fall_back_to_expires_in() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    for shape in [Shape::Opaque, Shape::NoExp] {
        fake.script([Reply::Issue(shape)]);
        let before = now();
        let token = env.secret(HOST);
        let entry = env.cache_entry();
        assert_eq!(entry["access_token"], token.as_str(), "{shape:?}");
        let exp = entry["expires_at"].as_u64().unwrap();
        assert!(
            (before + 3600..=now() + 3600).contains(&exp),
            "{shape:?}: expiry is now + expires_in: {entry}"
        );
        // Cached like any other token.
        assert_eq!(env.secret(HOST), token);
        std::fs::remove_file(&env.cache_files()[0]).unwrap();
    }
    assert_eq!(fake.requests(), 2);
}

#[test]
fn an_exp_written_as_a_decimal_number_is_read() {
    // JSON has one number type; some issuers write `exp` with a fraction.
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    let exp = now() + 3600;
    let token = unsigned_jwt(&json!({"exp": exp as f64 + 0.5}));
    fake.script([status(
        200,
        &json!({"access_token": token, "expires_in": 120}).to_string(),
    )]);
    assert_eq!(env.secret(HOST), token);
    assert_eq!(
        env.cache_entry()["expires_at"].as_u64(),
        Some(exp),
        "the token's exp, not now + expires_in"
    );
}

#[test]
fn an_already_expired_token_is_handed_out_once_with_a_clock_warning_and_never_cached() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    fake.script([Reply::Issue(Shape::ExpIn(-300)), Reply::Issue(Shape::ExpIn(-300))]);
    let token = secret_of(&env.get(HOST).stderr_has("check the system clock").json());
    assert!(fake.verify_access_token(&token).is_none(), "it really is expired");
    assert!(env.cache_files().is_empty(), "an expired token is never cached");
    env.get(HOST).stderr_has("check the system clock").json();
    assert_eq!(fake.requests(), 2, "so the next get asks again");
}

#[test]
fn a_far_future_exp_is_cached_for_at_most_a_day() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    fake.script([Reply::Issue(Shape::ExpIn(10 * 365 * 86_400))]);
    env.get(HOST).json();
    let exp = env.cache_entry()["expires_at"].as_u64().unwrap();
    assert!(exp <= now() + 86_400, "capped at 24 h: {exp}");
    assert!(exp > now() + 86_000);
}

#[test]
fn clock_skew_and_hostile_date_headers() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1");
    let body = json!({"access_token": unsigned_jwt(&json!({"exp": now() + 3600})), "expires_in": 3600}).to_string();
    let reply = |date: &str| Reply::Status(200, body.clone(), vec![("Date".into(), date.into())]);

    fake.script([reply("Sun, 06 Nov 1994 08:49:37 GMT")]);
    env.get(HOST).stderr_has("clock differs").stderr_has("NTP").json();
    // A Date header no real server sends must not crash the helper or invent a skew: stderr
    // stays empty (no "clock differs", no "internal error").
    for date in [
        "Sun, 06 Nov 18446744073709551615 08:49:37 GMT",
        "Sun, 31 Feb 99999 23:59:60 GMT",
        "Sun, 06 Nov 1994 99:99:99 GMT",
        "Sun, 06 Nov 1994 08:49:37:99 GMT",
    ] {
        fake.script([reply(date)]);
        env.get(HOST).stderr("").json();
    }
    // Control characters in a header are refused by the HTTP layer as a broken answer, and the
    // request is retried (the retry gets a plain token); still no skew, no crash.
    fake.script([reply("\u{1}\u{2}")]);
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_LOG", "debug")
        .stderr_has("invalid header value); retrying")
        .stderr_lacks("clock differs")
        .stderr_lacks("internal error")
        .json();
    // A correct clock is no news either.
    fake.script([reply(&docker_credential_stackit::testing::fake::http_date(now()))]);
    env.get(HOST).json();
}

#[test]
fn a_refusal_quotes_the_servers_words_whole_and_at_most_300_characters() {
    let fake = fake();
    let env = TestEnv::with_key(&fake);
    // Not HTML: `<` and `>` are ordinary characters, not tags to strip.
    fake.script([status(
        400,
        r#"{"message":"lifetime must be < 3600 s and > 60 s -> refused"}"#,
    )]);
    env.get(HOST)
        .assert_error(&[r#"HTTP 400: {"message":"lifetime must be < 3600 s and > 60 s -> refused"}"#]);
    // HTML is reduced to its text.
    fake.script([status(401, "<html><b>Key</b> <i>revoked</i></html>")]);
    let line = env.get(HOST).assert_error(&["HTTP 401: Key revoked)"]);
    assert!(!line.contains('<'), "{line}");
    // 300 characters are quoted whole; longer text is cut there, with an ellipsis.
    let exactly = "w".repeat(300);
    fake.script([status(400, &exactly)]);
    let line = env.get(HOST).assert_error(&[&format!("HTTP 400: {exactly})")]);
    assert!(!line.contains('…'), "{line}");
    fake.script([status(400, &"w".repeat(301))]);
    env.get(HOST)
        .assert_error(&[&format!("HTTP 400: {}…)", "w".repeat(300))]);
    assert_eq!(fake.requests(), 4);
}

#[test]
fn after_an_endpoint_was_not_reached_the_next_gets_answer_at_once() {
    // Docker calls get several times per command: a silent endpoint must cost the deadline
    // once, not once per call. The next gets of the same identity answer with the recorded
    // failure without a request; the window can be turned off.
    let fake = fake();
    fake.script((0..10).map(|_| Reply::Hang(Duration::from_secs(5))));
    let env = TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1");
    env.get(HOST).assert_error(&[
        "did not answer in time",
        "run `docker-credential-stackit check` for details",
    ]);
    let tried = fake.requests();
    assert!(tried >= 1);
    for _ in 0..3 {
        env.get(HOST)
            .assert_error(&["did not answer in time", "DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW=0"]);
    }
    assert_eq!(fake.requests(), tried, "no request within the window");
    // Off: the next get tries again.
    env.get(HOST)
        .env("DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW", "0")
        .assert_error(&["did not answer in time"]);
    assert!(fake.requests() > tried);
    // A refusal is not a network failure: the next get asks again (the key may be fixed).
    let fake = fake_with_refusal();
    let env = TestEnv::with_key(&fake);
    env.get(HOST).assert_error(&["HTTP 400"]);
    env.get(HOST).assert_error(&["HTTP 400"]);
    assert_eq!(fake.requests(), 2);
}

fn fake_with_refusal() -> FakeStackit {
    let fake = fake();
    fake.script((0..2).map(|_| Reply::Status(400, r#"{"error":"invalid_grant"}"#.into(), vec![])));
    fake
}
