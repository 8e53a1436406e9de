//! A local stand-in for the STACKIT token endpoint, for the `demo` verb and the tests.
//!
//! It listens on loopback only, verifies each assertion the way STACKIT does (RS512 signature
//! against the service account's public key, `kid`, `iss`, `sub`, `aud`, `exp - iat = 600`,
//! grant type), counts requests, and answers with an RS256-signed JWT access token carrying
//! `email`, `sub` and `exp`. Replies can be scripted (errors, hangs, delays) to test failure
//! handling. It stops when dropped.

use crate::secret::Secret;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A freshly generated RSA-2048 key pair.
pub struct RsaKey {
    pair: signature::RsaKeyPair,
    pkcs8: Vec<u8>,
}

// The `expect`s below cover operations that fail only if aws-lc itself is broken (no OS random
// source, an encoder bug): nothing a caller could handle. This is a test and demo double; the
// binary's panic hook turns such a failure into one "internal error" line.
impl RsaKey {
    /// Generates a key (about 50-200 ms).
    pub fn generate() -> RsaKey {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key generation");
        let pkcs8 = pair.as_der().expect("PKCS#8 encoding").as_ref().to_vec();
        RsaKey { pair, pkcs8 }
    }

    /// A key from its PKCS#8 DER, or `None` if that is not an RSA private key: lets the tests
    /// reuse keys across their processes instead of generating new ones.
    pub fn from_pkcs8_der(der: &[u8]) -> Option<RsaKey> {
        let pair = signature::RsaKeyPair::from_pkcs8(der).ok()?;
        Some(RsaKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// The private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn pkcs8_pem(&self) -> Secret {
        Secret::new(pem("PRIVATE KEY", &self.pkcs8))
    }

    /// The private key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), cut out of the PKCS#8 wrapper.
    pub fn pkcs1_pem(&self) -> Secret {
        Secret::new(pem(
            "RSA PRIVATE KEY",
            pkcs8_inner(&self.pkcs8).expect("PKCS#8 holds PKCS#1"),
        ))
    }

    /// The public key as SPKI PEM (`BEGIN PUBLIC KEY`), as in a key file's `publicKey`.
    pub fn public_pem(&self) -> String {
        let der = self.pair.public_key().as_der().expect("SPKI encoding");
        pem("PUBLIC KEY", der.as_ref())
    }

    /// The public key as PKCS#1 DER, for signature checks.
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// Signs `header.payload` and returns the compact JWT.
    pub fn sign_jwt(
        &self,
        alg: &'static dyn signature::RsaEncoding,
        alg_name: &str,
        kid: &str,
        claims: &Value,
    ) -> String {
        let header = json!({"alg": alg_name, "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(alg, &rng, input.as_bytes(), &mut sig)
            .expect("RSA signing");
        format!("{input}.{}", b64(&sig))
    }
}

/// Walks `SEQUENCE { INTEGER, SEQUENCE, OCTET STRING }` and returns the OCTET STRING's content.
fn pkcs8_inner(der: &[u8]) -> Option<&[u8]> {
    fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *d.first()?;
        let first = *d.get(1)? as usize;
        let (len, start) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let len = d.get(2..2 + n)?.iter().fold(0usize, |a, b| (a << 8) | *b as usize);
            (len, 2 + n)
        };
        Some((tag, d.get(start..start + len)?, d.get(start + len..)?))
    }
    let (_, seq, _) = tlv(der)?;
    let (_, _, rest) = tlv(seq)?; // version
    let (_, _, rest) = tlv(rest)?; // algorithm
    let (tag, inner, _) = tlv(rest)?;
    (tag == 0x04).then_some(inner)
}

/// An OIDC issuer for federated tokens (a CI system or a cluster's service-account issuer).
pub struct FakeIssuer {
    /// The issuer URL (`iss`).
    pub url: String,
    key: RsaKey,
}

impl FakeIssuer {
    /// A new issuer with its own key pair.
    pub fn new(url: &str) -> FakeIssuer {
        FakeIssuer {
            url: url.to_string(),
            key: RsaKey::generate(),
        }
    }

    /// A federated token (RS256) for `subject` and `audience`, expiring `exp_in` seconds from
    /// now (negative: already expired).
    pub fn token(&self, subject: &str, audience: &str, exp_in: i64) -> String {
        self.token_with(subject, audience, exp_in, json!({}))
    }

    /// [`FakeIssuer::token`] with `extra` claims added (a real token's pod, node or repository
    /// claims, say).
    pub fn token_with(&self, subject: &str, audience: &str, exp_in: i64, extra: Value) -> String {
        let t = now();
        let mut claims = json!({"iss": self.url, "sub": subject, "aud": audience, "iat": t,
            "exp": t.saturating_add_signed(exp_in), "jti": crate::token::assertion::uuid_v4().unwrap_or_default()});
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        self.key
            .sign_jwt(&signature::RSA_PKCS1_SHA256, "RS256", "fake-issuer", &claims)
    }
}

/// A service account known to the fake endpoint, with its key pair.
pub struct Account {
    /// Key id (`credentials.kid`).
    pub kid: String,
    /// E-mail (`credentials.iss`).
    pub iss: String,
    /// Account id (`credentials.sub`).
    pub sub: String,
    /// Audience (`credentials.aud`).
    pub aud: String,
    /// The key pair.
    pub key: RsaKey,
}

impl Account {
    /// A new account named `name` with a fresh key.
    pub fn generate(name: &str) -> Account {
        let id = crate::token::assertion::uuid_v4().unwrap_or_else(|_| format!("{name}-id"));
        let sub = crate::token::assertion::uuid_v4().unwrap_or_else(|_| format!("{name}-sub"));
        Account {
            kid: id,
            iss: format!("{name}@sa.stackit.cloud"),
            sub,
            aud: "https://stackit-service-account-prod.apps.01.cf.eu01.stackit.cloud".into(),
            key: RsaKey::generate(),
        }
    }

    /// The key JSON as STACKIT hands it out, with the private key embedded or not, and an
    /// optional `credentials.tokenEndpoint`.
    pub fn key_json(&self, embed_private_key: bool, token_endpoint: Option<&str>) -> Secret {
        let mut credentials = json!({"kid": self.kid, "iss": self.iss, "sub": self.sub, "aud": self.aud});
        if embed_private_key {
            credentials["privateKey"] = json!(self.key.pkcs8_pem().expose());
        }
        if let Some(url) = token_endpoint {
            credentials["tokenEndpoint"] = json!(url);
        }
        let doc = json!({
            "id": self.kid, "publicKey": self.key.public_pem(), "createdAt": "2026-01-01T00:00:00.000Z",
            "validUntil": null, "keyType": "USER_MANAGED", "keyOrigin": "GENERATED", "keyAlgorithm": "RSA_2048",
            "active": true, "credentials": credentials,
        });
        Secret::new(serde_json::to_string_pretty(&doc).unwrap_or_default())
    }
}

/// One scripted answer. When the script is empty the endpoint answers [`Reply::Token`].
#[derive(Debug, Clone)]
pub enum Reply {
    /// Verify the assertion and issue a token (or 400 if it does not verify).
    Token,
    /// Answer with this status, body and extra headers.
    Status(u16, String, Vec<(String, String)>),
    /// Accept the request, then say nothing for this long and close.
    Hang(Duration),
    /// Close the connection without answering.
    Close,
    /// Answer like [`Reply::Token`], but one byte at a time with this pause between bytes.
    Trickle(Duration),
    /// Verify the assertion like [`Reply::Token`], but issue a token of this [`Shape`].
    Issue(Shape),
    /// Answer with this status and body, in which `{assertion}` stands for the assertion the
    /// request carried and `{token}` for an access token issued as by [`Reply::Token`] (a 400
    /// if the assertion does not verify): an endpoint that echoes secrets in its answers.
    Echo(u16, String),
}

/// Unusual access tokens a real endpoint (or a proxy in front of it) might hand out. Every
/// shape comes with `expires_in` = the configured lifetime.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// An opaque token that is not a JWT.
    Opaque,
    /// A JWT without an `exp` claim.
    NoExp,
    /// A JWT whose `exp` is this many seconds from now (negative: already expired).
    ExpIn(i64),
}

struct Registered {
    kid: String,
    iss: String,
    sub: String,
    aud: String,
    public_der: Vec<u8>,
}

struct State {
    accounts: Mutex<Vec<Registered>>,
    script: Mutex<VecDeque<Reply>>,
    requests: AtomicUsize,
    rejections: Mutex<Vec<String>>,
    assertions: Mutex<Vec<Value>>,
    received: Mutex<Vec<Secret>>,
    issued: Mutex<Vec<Secret>>,
    issuers: Mutex<Vec<(String, Vec<u8>)>>,
    federation: Mutex<Vec<(String, String, String, String)>>,
    federated: Mutex<Vec<Value>>,
    github: Mutex<Option<(String, String)>>,
    github_requests: Mutex<Vec<String>>,
    azure: Mutex<Option<(String, String)>>,
    azure_requests: Mutex<Vec<String>>,
    signer: RsaKey,
    lifetime: AtomicUsize,
    delay_ms: AtomicUsize,
    clock_offset: AtomicI64,
    stop: AtomicBool,
}

/// The running fake endpoint. Dropping it stops the listener.
pub struct FakeStackit {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
}

impl FakeStackit {
    /// Starts a plain-HTTP endpoint on 127.0.0.1 with a random port.
    pub fn start() -> std::io::Result<FakeStackit> {
        FakeStackit::start_with(None)
    }

    /// Starts an endpoint, speaking TLS with `tls` if given.
    pub fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<FakeStackit> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            accounts: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            requests: AtomicUsize::new(0),
            rejections: Mutex::new(Vec::new()),
            assertions: Mutex::new(Vec::new()),
            received: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            issuers: Mutex::new(Vec::new()),
            federation: Mutex::new(Vec::new()),
            federated: Mutex::new(Vec::new()),
            github: Mutex::new(None),
            github_requests: Mutex::new(Vec::new()),
            azure: Mutex::new(None),
            azure_requests: Mutex::new(Vec::new()),
            signer: RsaKey::generate(),
            lifetime: AtomicUsize::new(3600),
            delay_ms: AtomicUsize::new(0),
            clock_offset: AtomicI64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_state = state.clone();
        let is_tls = tls.is_some();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = accept_state.clone();
                let tls = tls.clone();
                std::thread::spawn(move || handle(conn, tls, &st));
            }
        });
        Ok(FakeStackit {
            addr,
            tls: is_tls,
            state,
        })
    }

    /// The token URL, e.g. `http://127.0.0.1:41234/token`.
    pub fn url(&self) -> String {
        format!("{}/token", self.origin())
    }

    /// `http://` or `https://` and the listening address: where every endpoint of this fake is.
    fn origin(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `account` known, so its assertions verify.
    pub fn register(&self, account: &Account) {
        self.lock(&self.state.accounts).push(Registered {
            kid: account.kid.clone(),
            iss: account.iss.clone(),
            sub: account.sub.clone(),
            aud: account.aud.clone(),
            public_der: account.key.public_der(),
        });
    }

    /// Lifetime of issued tokens in seconds (default 3600).
    pub fn set_lifetime(&self, secs: u64) {
        self.state.lifetime.store(secs as usize, Ordering::SeqCst);
    }

    /// Waits this long before answering each request (default none).
    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as usize, Ordering::SeqCst);
    }

    /// Makes the `Date` header this many seconds off the real clock (default 0), to simulate a
    /// machine whose clock is wrong.
    pub fn set_clock_offset(&self, secs: i64) {
        self.state.clock_offset.store(secs, Ordering::SeqCst);
    }

    /// Queues scripted replies for the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock(&self.state.script).extend(replies);
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Why assertions were refused, one entry per refusal.
    pub fn rejections(&self) -> Vec<String> {
        self.lock(&self.state.rejections).clone()
    }

    /// The header and claims of every assertion that verified, as `{"header":..,"claims":..}`.
    pub fn assertions(&self) -> Vec<Value> {
        self.lock(&self.state.assertions).clone()
    }

    /// Every `assertion` form field received, verbatim, whether it verified or not.
    pub fn received_assertions(&self) -> Vec<Secret> {
        self.lock(&self.state.received).clone()
    }

    /// Every access token issued, in order.
    pub fn issued_tokens(&self) -> Vec<Secret> {
        self.lock(&self.state.issued).clone()
    }

    /// Trusts federated tokens signed by `issuer` (STACKIT's "federated identity provider").
    pub fn trust(&self, issuer: &FakeIssuer) {
        self.lock(&self.state.issuers)
            .push((issuer.url.clone(), issuer.key.public_der()));
    }

    /// A federation rule: `email` may be used by tokens from `issuer_url` with subject `subject`
    /// and STACKIT's audience.
    pub fn allow(&self, email: &str, issuer_url: &str, subject: &str) {
        self.allow_audience(email, issuer_url, subject, crate::federated::STACKIT_AUDIENCE);
    }

    /// A federation rule with an audience assertion of its own (an Azure Pipelines token is
    /// issued for `api://AzureADTokenExchange`).
    pub fn allow_audience(&self, email: &str, issuer_url: &str, subject: &str, audience: &str) {
        self.lock(&self.state.federation).push((
            email.to_string(),
            issuer_url.to_string(),
            subject.to_string(),
            audience.to_string(),
        ));
    }

    /// The claims of every federated token that was exchanged, with the `client_id` under
    /// `"client_id"`, in order.
    pub fn federated_exchanges(&self) -> Vec<Value> {
        self.lock(&self.state.federated).clone()
    }

    /// Serves a GitHub Actions OIDC endpoint at [`FakeStackit::github_url`]: a GET with
    /// `Authorization: Bearer <request_token>` gets `{"value": <token>}`, anything else 401.
    pub fn serve_github(&self, request_token: &str, token: &str) {
        *self.lock(&self.state.github) = Some((request_token.to_string(), token.to_string()));
    }

    /// The GitHub Actions request URL (with a query of its own, as GitHub's has).
    pub fn github_url(&self) -> String {
        format!("{}/github/token?api-version=2.0", self.origin())
    }

    /// The request lines of every request to the GitHub endpoint, in order.
    pub fn github_requests(&self) -> Vec<String> {
        self.lock(&self.state.github_requests).clone()
    }

    /// Serves an Azure Pipelines OIDC endpoint at [`FakeStackit::azure_url`]: a POST with
    /// `Authorization: Bearer <access_token>` gets `{"oidcToken": <token>}` (the field Azure's
    /// REST reference names), anything else 401.
    pub fn serve_azure(&self, access_token: &str, token: &str) {
        *self.lock(&self.state.azure) = Some((access_token.to_string(), token.to_string()));
    }

    /// The Azure Pipelines request URL (`SYSTEM_OIDCREQUESTURI`-shaped, without a query).
    pub fn azure_url(&self) -> String {
        format!("{}/azure/oidctoken", self.origin())
    }

    /// The request lines of every request to the Azure endpoint, in order.
    pub fn azure_requests(&self) -> Vec<String> {
        self.lock(&self.state.azure_requests).clone()
    }

    /// Verifies an access token this endpoint issued; returns its claims if valid and unexpired.
    pub fn verify_access_token(&self, token: &str) -> Option<Value> {
        let (header, claims) = verify_jwt(
            token,
            &self.state.signer.public_der(),
            &signature::RSA_PKCS1_2048_8192_SHA256,
        )
        .ok()?;
        (header["alg"] == "RS256" && claims["exp"].as_u64()? > now()).then_some(claims)
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeStackit {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn handle(tcp: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, state: &State) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    match tls {
        None => serve(tcp, state),
        Some(cfg) => {
            if let Ok(conn) = rustls::ServerConnection::new(cfg) {
                serve(rustls::StreamOwned::new(conn, tcp), state);
            }
        }
    }
}

use crate::loopback::response_bytes;
pub use crate::loopback::{Request, read_request, write_response};

/// Answers one request: a fake CI provider's OIDC endpoint, or the token endpoint.
fn serve(mut stream: impl Read + Write, state: &State) {
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let (request_line, headers, _) = &request;
    if request_line.starts_with("GET /github/") {
        let (status, body) = ci_endpoint(&state.github, &state.github_requests, "value", request_line, headers);
        write_response(&mut stream, status, "application/json", body.as_bytes(), &[]);
        return;
    }
    if request_line.starts_with("POST /azure/") {
        let (status, body) = ci_endpoint(&state.azure, &state.azure_requests, "oidcToken", request_line, headers);
        write_response(&mut stream, status, "application/json", body.as_bytes(), &[]);
        return;
    }
    serve_token(stream, state, &request);
}

/// The token endpoint: counts the request, waits the configured delay, records the assertion
/// and answers with the next scripted [`Reply`] (a token when none is scripted).
fn serve_token(mut stream: impl Read + Write, state: &State, request: &Request) {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay as u64));
    }
    let reply = lock(&state.script).pop_front().unwrap_or(Reply::Token);
    let pause = match &reply {
        Reply::Trickle(d) => Some(*d),
        _ => None,
    };
    let (_, _, request_body) = request;
    if let Some(assertion) = form_field(request_body, "assertion") {
        lock(&state.received).push(Secret::new(assertion));
    }
    let Some((status, body, extra)) = scripted_answer(state, reply, request) else {
        return;
    };
    let date = now().saturating_add_signed(state.clock_offset.load(Ordering::SeqCst));
    // A scripted reply's own Date header wins over the clock's.
    let mut headers = extra;
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("date")) {
        headers.push(("Date".to_string(), http_date(date)));
    }
    let Some(pause) = pause else {
        write_response(&mut stream, status, "application/json", body.as_bytes(), &headers);
        return;
    };
    // A trickle: one byte at a time, to test the client's deadline against a live but slow server.
    for byte in response_bytes(status, "application/json", body.as_bytes(), &headers) {
        if stream.write_all(&[byte]).and_then(|_| stream.flush()).is_err() || state.stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(pause);
    }
}

/// A token endpoint answer: status, JSON body and extra headers.
type Answer = (u16, String, Vec<(String, String)>);

/// The status, body and extra headers `reply` answers `request` with; `None` for the replies
/// that never answer ([`Reply::Close`], and [`Reply::Hang`] after its wait).
fn scripted_answer(state: &State, reply: Reply, request: &Request) -> Option<Answer> {
    let (request_line, headers, body) = request;
    let shape = match &reply {
        Reply::Issue(s) => Some(*s),
        _ => None,
    };
    Some(match reply {
        Reply::Close => return None,
        Reply::Hang(d) => {
            std::thread::sleep(d);
            return None;
        }
        Reply::Status(code, body, extra) => (code, body, extra),
        Reply::Token | Reply::Trickle(_) | Reply::Issue(_) => match issue(state, request_line, headers, body, shape) {
            Ok(json) => (200, json, Vec::new()),
            Err(why) => refuse(state, why),
        },
        Reply::Echo(code, template) => echo(state, code, &template, request),
    })
}

/// A [`Reply::Echo`]: the template with the request's assertion and, when it asks for one, a
/// freshly issued access token filled in.
fn echo(state: &State, code: u16, template: &str, request: &Request) -> Answer {
    let (request_line, headers, body) = request;
    let assertion = form_field(body, "assertion").unwrap_or_default();
    let text = template.replace("{assertion}", &assertion);
    if !text.contains("{token}") {
        return (code, text, Vec::new());
    }
    match issue(state, request_line, headers, body, None) {
        Ok(json) => {
            let token: Value = serde_json::from_str(&json).unwrap_or_default();
            let token = token["access_token"].as_str().unwrap_or_default();
            (code, text.replace("{token}", token), Vec::new())
        }
        Err(why) => refuse(state, why),
    }
}

/// A fake CI provider's OIDC endpoint (GitHub Actions, Azure Pipelines): records the request,
/// checks the bearer token and answers the configured federated token in `field`.
fn ci_endpoint(
    config: &Mutex<Option<(String, String)>>,
    requests: &Mutex<Vec<String>>,
    field: &str,
    request_line: &str,
    headers: &[(String, String)],
) -> (u16, String) {
    lock(requests).push(request_line.to_string());
    let Some((request_token, token)) = lock(config).clone() else {
        return (404, json!({"message": "not configured"}).to_string());
    };
    let auth = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if auth != format!("Bearer {request_token}") {
        return (401, json!({"message": "Bad credentials"}).to_string());
    }
    (200, json!({"count": 1, field: token}).to_string())
}

/// Records why an assertion was refused and answers like STACKIT does.
fn refuse(state: &State, why: String) -> Answer {
    lock(&state.rejections).push(why.clone());
    (
        400,
        json!({"error": "invalid_grant", "message": why}).to_string(),
        Vec::new(),
    )
}

/// A mutex's contents, also after a panic elsewhere: the fake's bookkeeping stays usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One field of an `application/x-www-form-urlencoded` body, decoded.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| url_decode(k) == name)
        .map(|(_, v)| url_decode(v))
}

/// Unix seconds as (year, month, day, hour, minute, second, weekday 0 = Thursday).
fn civil(unix: u64) -> (u64, u64, u64, u64, u64, u64, u64) {
    let (days, secs) = (unix / 86400, unix % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, secs / 3600, secs % 3600 / 60, secs % 60, days % 7)
}

/// Formats unix seconds as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the `Date` header.
pub fn http_date(unix: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let (year, month, day, h, m, s, weekday) = civil(unix);
    format!(
        "{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        WEEKDAYS[weekday as usize],
        MONTHS[(month - 1) as usize],
    )
}

/// Formats unix seconds as RFC 3339 in UTC (`1994-11-06T08:49:37Z`).
pub fn rfc3339(unix: u64) -> String {
    let (year, month, day, h, m, s, _) = civil(unix);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Checks the request like the real endpoint would and mints a token.
fn issue(
    state: &State,
    request_line: &str,
    headers: &[(String, String)],
    body: &[u8],
    shape: Option<Shape>,
) -> Result<String, String> {
    if !request_line.starts_with("POST ") {
        return Err(format!("expected POST, got {request_line}"));
    }
    let ctype = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(format!("content type {ctype:?} is not a form"));
    }
    let form: Vec<(String, String)> = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (url_decode(k), url_decode(v))))
        .collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if field("grant_type").as_deref() == Some(crate::federated::GRANT_TYPE) {
        let (sub, email) = verify_federated(state, &field)?;
        return Ok(mint(state, &sub, &email, shape));
    }
    if field("grant_type").as_deref() != Some(crate::token::exchange::GRANT_TYPE) {
        return Err(format!("grant_type {:?} is not jwt-bearer", field("grant_type")));
    }
    let assertion = field("assertion").ok_or("no assertion")?;
    let header = decode_part(&assertion, 0)?;
    let kid = header["kid"].as_str().ok_or("assertion header has no kid")?;
    let accounts = state.accounts.lock().unwrap_or_else(|p| p.into_inner());
    let account = accounts
        .iter()
        .find(|a| a.kid == kid)
        .ok_or_else(|| format!("Key with kid {kid} was not found"))?;
    let (header, claims) = verify_jwt(&assertion, &account.public_der, &signature::RSA_PKCS1_2048_8192_SHA512)?;
    if header["alg"] != "RS512" || header["typ"] != "JWT" {
        return Err(format!("header {header} is not alg RS512 / typ JWT"));
    }
    let s = |k: &str| claims[k].as_str().unwrap_or("").to_string();
    if s("iss") != account.iss || s("sub") != account.sub || s("aud") != account.aud {
        return Err("iss, sub or aud do not match the key".into());
    }
    let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
    if exp != iat + 600 || iat.abs_diff(now()) > 120 {
        return Err(format!("iat {iat} / exp {exp} are not now / now + 600"));
    }
    if s("jti").len() != 36 {
        return Err("jti is not a UUID".into());
    }
    state
        .assertions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(json!({"header": header, "claims": claims}));
    let (sub, email) = (account.sub.clone(), account.iss.clone());
    drop(accounts);
    Ok(mint(state, &sub, &email, shape))
}

/// Checks a federated exchange as STACKIT's IdP does: the assertion type, a JWT signed by a
/// trusted issuer, not expired, and a federation rule for `client_id` that names the token's
/// issuer and subject and whose audience (STACKIT's unless the rule says otherwise) the token
/// carries. Returns the subject and e-mail.
fn verify_federated(state: &State, field: &dyn Fn(&str) -> Option<String>) -> Result<(String, String), String> {
    if field("client_assertion_type").as_deref() != Some(crate::federated::CLIENT_ASSERTION_TYPE) {
        return Err(format!(
            "client_assertion_type {:?} is not workload-jwt",
            field("client_assertion_type")
        ));
    }
    let email = field("client_id").ok_or("no client_id")?;
    let jwt = field("client_assertion").ok_or("no client_assertion")?;
    lock(&state.received).push(Secret::new(jwt.clone()));
    let claims = decode_part(&jwt, 1)?;
    let iss = claims["iss"].as_str().unwrap_or("").to_string();
    let public_der = lock(&state.issuers)
        .iter()
        .find(|(url, _)| *url == iss)
        .map(|(_, der)| der.clone())
        .ok_or_else(|| format!("issuer {iss:?} is not a trusted federated identity provider"))?;
    let (header, claims) = verify_jwt(&jwt, &public_der, &signature::RSA_PKCS1_2048_8192_SHA256)?;
    if header["alg"] != "RS256" {
        return Err(format!("federated token header {header} is not RS256"));
    }
    if claims["exp"].as_u64().unwrap_or(0) <= now() {
        return Err("the federated token has expired".into());
    }
    let sub = claims["sub"].as_str().unwrap_or("").to_string();
    let audiences: Vec<String> = lock(&state.federation)
        .iter()
        .filter(|(e, i, s, _)| *e == email && *i == iss && *s == sub)
        .map(|(_, _, _, a)| a.clone())
        .collect();
    if audiences.is_empty() {
        return Err(format!("no federation rule lets {iss} subject {sub:?} act as {email}"));
    }
    let has = |want: &String| match &claims["aud"] {
        Value::String(a) => a == want,
        Value::Array(list) => list.iter().any(|a| a == want),
        _ => false,
    };
    if !audiences.iter().any(has) {
        return Err(format!("audience {} is not {}", claims["aud"], audiences.join(" or ")));
    }
    let mut record = claims.clone();
    record["client_id"] = json!(email);
    lock(&state.federated).push(record);
    // STACKIT's access token names the service account, not the workload: its id when the
    // e-mail belongs to a registered account (Harbor's robot link holds that id).
    let id = lock(&state.accounts)
        .iter()
        .find(|a| a.iss == email)
        .map(|a| a.sub.clone())
        .unwrap_or(sub);
    Ok((id, email))
}

/// Issues an access token for `sub`/`email` in the requested [`Shape`].
fn mint(state: &State, sub: &str, email: &str, shape: Option<Shape>) -> String {
    let lifetime = state.lifetime.load(Ordering::SeqCst) as u64;
    let t = now();
    let mut claims = json!({"iss": "https://fake-stackit.invalid", "sub": sub, "email": email,
        "aud": "stackit", "iat": t, "exp": t + lifetime, "jti": crate::token::assertion::uuid_v4().unwrap_or_default()});
    match shape {
        None => {}
        Some(Shape::Opaque) => {
            let opaque = format!("opaque-{}", crate::token::assertion::uuid_v4().unwrap_or_default());
            lock(&state.issued).push(Secret::new(opaque.clone()));
            return json!({"access_token": opaque, "token_type": "Bearer", "expires_in": lifetime}).to_string();
        }
        Some(Shape::NoExp) => {
            if let Some(c) = claims.as_object_mut() {
                c.remove("exp");
            }
        }
        Some(Shape::ExpIn(secs)) => claims["exp"] = json!(t.saturating_add_signed(secs)),
    }
    let token = state
        .signer
        .sign_jwt(&signature::RSA_PKCS1_SHA256, "RS256", "fake-stackit", &claims);
    lock(&state.issued).push(Secret::new(token.clone()));
    json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": "openid"}).to_string()
}

fn decode_part(jwt: &str, index: usize) -> Result<Value, String> {
    let part = jwt.split('.').nth(index).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "bad base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "bad JSON in JWT".to_string())
}

/// Verifies a compact JWT's RSA signature; returns header and claims.
fn verify_jwt(jwt: &str, public_der: &[u8], alg: &'static signature::RsaParameters) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, sig] = parts.as_slice() else {
        return Err("not a three-part JWT".into());
    };
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| "bad signature encoding")?;
    signature::UnparsedPublicKey::new(alg, public_der)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "signature does not verify".to_string())?;
    Ok((decode_part(jwt, 0)?, decode_part(jwt, 1)?))
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{parse_http_date, parse_rfc3339};

    #[test]
    fn dates_round_trip() {
        assert_eq!(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(rfc3339(784111777), "1994-11-06T08:49:37Z");
        for t in [0, 951_782_400, 1_709_164_800, now()] {
            assert_eq!(parse_http_date(&http_date(t)), Some(t), "{t}");
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{t}");
        }
    }
}
