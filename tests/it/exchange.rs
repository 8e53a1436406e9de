//! The token request: retries, the deadline, final 4xx, TLS trust, proxies, redirects.

use crate::support::*;
use docker_credential_stackit::fake::Reply;
use std::time::{Duration, Instant};

fn status(code: u16, body: &str) -> Reply {
    Reply::Status(code, body.into(), vec![])
}

#[test]
fn server_errors_are_retried() {
    let fake = fake();
    fake.script([status(500, "oops"), status(502, "<html>bad gateway</html>")]);
    let out = TestEnv::with_key(&fake).get("registry.onstackit.cloud");
    out.json();
    assert_eq!(fake.requests(), 3);
    assert!(
        out.stderr.contains("HTTP 500") && out.stderr.contains("retrying"),
        "{out:?}"
    );
}

#[test]
fn rate_limits_are_retried_after_the_requested_wait() {
    let fake = fake();
    fake.script([Reply::Status(
        429,
        "slow down".into(),
        vec![("Retry-After".into(), "1".into())],
    )]);
    let out = TestEnv::with_key(&fake).get("registry.onstackit.cloud");
    out.json();
    assert_eq!(fake.requests(), 2);
    assert!(
        out.stderr.contains("HTTP 429") && out.stderr.contains("retrying in 1.0s"),
        "{out:?}"
    );
}

#[test]
fn a_rate_limit_longer_than_the_deadline_fails_at_once() {
    let fake = fake();
    fake.script([Reply::Status(
        429,
        "".into(),
        vec![("Retry-After".into(), "3600".into())],
    )]);
    let out = TestEnv::with_key(&fake)
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "5")
        .get("registry.onstackit.cloud");
    out.assert_error(&["HTTP 429", "gave up after 1 attempt"]);
    assert_eq!(fake.requests(), 1);
}

#[test]
fn client_errors_are_final_and_explained() {
    let fake = fake();
    fake.script([status(
        400,
        r#"{"error":"Bad Request","message":"Key with kid 123 was not found","status":400}"#,
    )]);
    let out = TestEnv::with_key(&fake).get("registry.onstackit.cloud");
    out.assert_error(&[
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
    let out = TestEnv::with_key(&fake).get("registry.onstackit.cloud");
    out.assert_error(&["HTTP 403", "could not be performed", "active, not expired"]);

    fake.script([status(
        401,
        &format!("<html><body><h1>Denied</h1>{}</body></html>", "x".repeat(5000)),
    )]);
    let out = TestEnv::with_key(&fake).get("registry.onstackit.cloud");
    let line = out.assert_error(&["HTTP 401", "Denied"]);
    assert!(
        !line.contains("<h1>") && line.len() < 700,
        "sanitised and truncated: {line}"
    );
}

#[test]
fn a_hanging_endpoint_fails_within_the_deadline() {
    let fake = fake();
    fake.script([Reply::Hang(Duration::from_secs(60))]);
    let started = Instant::now();
    let out = TestEnv::with_key(&fake)
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1.5")
        .get("registry.onstackit.cloud");
    out.assert_error(&["token endpoint", "DOCKER_CREDENTIAL_STACKIT_TIMEOUT"]);
    // A hang guard, not a benchmark: the endpoint hangs for a minute.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the deadline bounded the wait"
    );
}

#[test]
fn an_unreachable_endpoint_is_retried_until_the_deadline() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", closed.local_addr().unwrap());
    drop(closed);
    let env = TestEnv::with_key(&fake())
        .var("STACKIT_TOKEN_BASEURL", &url)
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1");
    let out = env.get("registry.onstackit.cloud");
    out.assert_error(&["unreachable", "gave up after", &url]);
}

#[test]
fn closed_connections_and_bad_success_bodies() {
    let fake = fake();
    fake.script([Reply::Close]);
    TestEnv::with_key(&fake).get("registry.onstackit.cloud").json();
    assert_eq!(fake.requests(), 2, "a dropped connection is retried");

    for (body, fragment) in [
        (r#"{"token_type":"Bearer"}"#, "without an access_token"),
        ("<html>captive portal</html>", "not a JSON token response"),
        (r#"{"access_token":"opaque-token"}"#, "lifetime is unknown"),
    ] {
        fake.script([status(200, body)]);
        TestEnv::with_key(&fake)
            .get("registry.onstackit.cloud")
            .assert_error(&[fragment]);
    }
    fake.script([status(200, &"x".repeat(200 * 1024))]);
    TestEnv::with_key(&fake)
        .get("registry.onstackit.cloud")
        .assert_error(&["more than 64 KiB"]);
    fake.script([status(200, r#"{"access_token":"opaque-token","expires_in":3600}"#)]);
    let v = TestEnv::with_key(&fake).get("registry.onstackit.cloud").json();
    assert_eq!(v["Secret"], "opaque-token", "an opaque token with expires_in is fine");
}

#[test]
fn redirects_are_not_followed() {
    let fake = fake();
    fake.script([Reply::Status(
        307,
        "".into(),
        vec![("Location".into(), "https://evil.example/token".into())],
    )]);
    let out = TestEnv::with_key(&fake).get("registry.onstackit.cloud");
    out.assert_error(&["redirected", "evil.example", "STACKIT_TOKEN_BASEURL"]);
    assert_eq!(fake.requests(), 1);
}

#[test]
fn https_with_a_private_ca_via_ssl_cert_file() {
    let (fake, ca) = tls_fake();
    let env = TestEnv::with_key(&fake);
    let ca_file = env.write("ca.pem", &ca);
    let out = env.get("registry.onstackit.cloud");
    out.assert_error(&["TLS", "SSL_CERT_FILE"]);
    assert_eq!(fake.requests(), 0, "no request over an untrusted connection");
    let env = env.var("SSL_CERT_FILE", ca_file.to_str().unwrap());
    env.get("registry.onstackit.cloud").json();
    assert_eq!(fake.requests(), 1);
}

#[test]
fn https_with_the_wrong_host_name_fails() {
    let tls = tls_for(&["token.example"]);
    let fake = docker_credential_stackit::fake::FakeStackit::start_with(Some(tls.server)).unwrap();
    fake.register(sa());
    let env = TestEnv::with_key(&fake);
    let ca = env.write("ca.pem", &tls.ca_pem);
    env.var("SSL_CERT_FILE", ca.to_str().unwrap())
        .get("registry.onstackit.cloud")
        .assert_error(&["TLS"]);
    assert_eq!(fake.requests(), 0);
}

#[test]
fn remote_endpoints_go_through_the_proxy() {
    let (proxy, seen) = recording_proxy();
    let env = TestEnv::with_key(&fake())
        .var(
            "STACKIT_TOKEN_BASEURL",
            "https://service-account.api.stackit.cloud/token",
        )
        .var("DOCKER_CREDENTIAL_STACKIT_TIMEOUT", "1")
        .var("HTTPS_PROXY", &proxy);
    env.get("registry.onstackit.cloud").assert_error(&["token endpoint"]);
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
        env.get("registry.onstackit.cloud").json();
        env.cmd(&["erase"]).stdin("registry.onstackit.cloud").run();
        env.remove_var(var);
    }
    assert_eq!(fake.requests(), 6);
    assert!(seen.lock().unwrap().is_empty(), "{:?}", seen.lock().unwrap());
}

#[test]
fn an_unparsable_proxy_is_an_error_not_a_direct_connection() {
    let fake = fake();
    let env = TestEnv::with_key(&fake).var("HTTPS_PROXY", "http://user:hunter2@bad host:3128");
    let line = env
        .get("registry.onstackit.cloud")
        .assert_error(&["HTTPS_PROXY"])
        .to_string();
    assert!(!line.contains("hunter2"), "the proxy password is printed: {line}");
    assert_eq!(fake.requests(), 0);
}
