//! The one place an HTTP client is built: ureq over rustls with the aws-lc provider, the
//! platform's trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR` on Linux), proxies from the usual
//! environment variables, no redirects and no status-as-error. The token exchange and `check`
//! both use it, so TLS and proxy behaviour cannot drift between them.

use std::sync::Arc;

/// The `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("docker-credential-stackit/", env!("CARGO_PKG_VERSION"));

/// A new agent. Building one sets up TLS, so it is only done on paths that go to the network.
///
/// Redirects are never followed: they would carry an assertion or a `Basic` header with an
/// access token to wherever the server points. Non-2xx answers are returned as responses, not
/// errors, because their bodies carry the reason.
pub fn agent() -> ureq::Agent {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .unversioned_rustls_crypto_provider(provider)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(USER_AGENT)
        .build()
        .into()
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
