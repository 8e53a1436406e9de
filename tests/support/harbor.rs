//! A fake Harbor core on loopback: the registry `/v2/` challenge, the token service
//! `/service/token`, and the few `/api/v2.0` calls `check` makes. Built for reuse by the
//! end-to-end tests, where a real CNCF distribution registry trusts its tokens.
//!
//! Logins, as on STACKIT (docs/harbor.md says what Harbor does and why the fake does the same):
//! - **service account**: username = SA e-mail, password = a STACKIT access token. The token is
//!   checked by the verifier given at start (normally [`FakeStackit::verify_access_token`]:
//!   signature and `exp`), its `email` must equal the username, and the SA maps to the robot
//!   linked to its (e-mail, id). That robot must be enabled and unexpired.
//! - **legacy robot**: username = `robot$…`, password = the robot's secret, accepted only while
//!   the robot is **not** linked, enabled and unexpired.
//!
//! The token service follows Harbor: a login without a scope and with bad or missing
//! credentials is 401; with a scope it gets an anonymous token (empty actions, `sub` empty)
//! unless [`FakeHarbor::set_strict`] is on. Granted actions are recomputed from the robot's
//! permissions with the validator's `decide` for every requested repository (the requested
//! actions are ignored, as Harbor does); unknown projects and other scope types get none;
//! public projects allow anyone to pull.
//!
//! Registry JWTs satisfy distribution 2.8 and 3.x: RS256, header `x5c` = a self-signed
//! certificate ([`FakeHarbor::cert_pem`] is the `rootcertbundle`), string `aud` = the service,
//! `iss` = the issuer, `exp`/`nbf`/`iat`/`jti`, `access`. A libtrust `kid` is added with
//! [`HarborConfig::emit_kid`].
//!
//! Robots and links change at runtime ([`FakeHarbor::link`], [`FakeHarbor::unlink`],
//! [`FakeHarbor::set_secret`], …) and every request is recorded ([`FakeHarbor::requests`]).
//! Robot JSON carries the link as `service_account_email` / `service_account_id` (`null` when
//! unlinked), one of the validator's default link pointers.

use base64::Engine;
use docker_credential_stackit::testing::fake::{self, FakeStackit, RsaKey};
use docker_credential_stackit::validate::{self, Decision, Effect, Kind, Level, Need, RobotName, Scope};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The robot JSON field holding the linked service account e-mail.
pub const LINK_EMAIL_FIELD: &str = "service_account_email";
/// The robot JSON field holding the linked service account id.
pub const LINK_ID_FIELD: &str = "service_account_id";

/// Checks a STACKIT access token; returns its claims (`email`, `sub`, `exp`) if valid.
pub type Verifier = Arc<dyn Fn(&str) -> Option<Value> + Send + Sync>;

/// Which fields the token service's answer carries; clients must accept all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFields {
    /// `token` and `access_token`, both set (Harbor's answer).
    Both,
    /// Only `token`.
    TokenOnly,
    /// Only `access_token`.
    AccessTokenOnly,
    /// `token: ""` and `access_token` set.
    EmptyToken,
}

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub struct HarborConfig {
    /// JWT `iss`; the registry's `auth.token.issuer`. Default `harbor-token-issuer`.
    pub issuer: String,
    /// JWT `aud` and the challenge's `service`; the registry's `auth.token.service`.
    /// Default `harbor-registry`.
    pub service: String,
    /// Robot name prefix. Default `robot$`.
    pub prefix: String,
    /// Registry token lifetime in seconds. Default 1800 (Harbor's 30 minutes).
    pub token_lifetime: u64,
    /// Also put a libtrust `kid` in the JWT header (distribution 2.8 accepts it; 3.x expects an
    /// RFC 7638 thumbprint there). Default false: `x5c` alone works with both.
    pub emit_kid: bool,
}

impl Default for HarborConfig {
    fn default() -> HarborConfig {
        HarborConfig {
            issuer: "harbor-token-issuer".into(),
            service: "harbor-registry".into(),
            prefix: "robot$".into(),
            token_lifetime: 1800,
            emit_kid: false,
        }
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct HarborRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Decoded query parameters in order (repeated keys kept).
    pub query: Vec<(String, String)>,
    /// The Basic-auth username, if any.
    pub user: Option<String>,
    /// Who the request was served as: a robot name, `anonymous`, or `rejected: <why>`.
    pub principal: String,
    /// The answer's status code.
    pub status: u16,
}

struct RobotEntry {
    robot: validate::Robot,
    secret: String,
    link: Option<(String, String)>,
}

struct Project {
    id: i64,
    name: String,
    public: bool,
}

struct Signer {
    rsa: RsaKey,
    encoding: jsonwebtoken::EncodingKey,
    cert_der: Vec<u8>,
    cert_pem: String,
    kid: String,
}

struct State {
    config: HarborConfig,
    strict: AtomicBool,
    token_fields: Mutex<TokenFields>,
    realm: Mutex<Option<String>>,
    robots: Mutex<Vec<RobotEntry>>,
    projects: Mutex<Vec<Project>>,
    requests: Mutex<Vec<HarborRequest>>,
    signer: Signer,
    verifier: Option<Verifier>,
    next_id: AtomicI64,
    stop: AtomicBool,
    /// Seconds added to the time its `Date` headers say (a registry whose clock is off).
    clock_offset: AtomicI64,
}

/// The running fake. Dropping it stops the listener.
pub struct FakeHarbor {
    addr: SocketAddr,
    state: Arc<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl FakeHarbor {
    /// Starts with default settings; SA logins are checked against `stackit`'s tokens.
    pub fn with_stackit(stackit: Arc<FakeStackit>) -> FakeHarbor {
        FakeHarbor::start(
            HarborConfig::default(),
            Some(Arc::new(move |token: &str| stackit.verify_access_token(token))),
        )
    }

    /// Starts on 127.0.0.1 with a random port. Without a verifier, SA logins always fail.
    pub fn start(config: HarborConfig, verifier: Option<Verifier>) -> FakeHarbor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake Harbor");
        let addr = listener.local_addr().expect("fake Harbor address");
        let state = Arc::new(State {
            config,
            strict: AtomicBool::new(false),
            clock_offset: AtomicI64::new(0),
            token_fields: Mutex::new(TokenFields::Both),
            realm: Mutex::new(None),
            robots: Mutex::new(Vec::new()),
            projects: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            signer: Signer::generate(),
            verifier,
            next_id: AtomicI64::new(1),
            stop: AtomicBool::new(false),
        });
        let accept = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = accept.clone();
                std::thread::spawn(move || handle(conn, &st));
            }
        });
        FakeHarbor { addr, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, the registry host for `credHelpers` and `check`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The token realm, `http://127.0.0.1:PORT/service/token` (the registry's `auth.token.realm`).
    pub fn realm(&self) -> String {
        format!("{}/service/token", self.url())
    }

    /// The `service` (JWT `aud`).
    pub fn service(&self) -> &str {
        &self.state.config.service
    }

    /// The JWT `iss`.
    pub fn issuer(&self) -> &str {
        &self.state.config.issuer
    }

    /// The signing certificate in PEM, for the registry's `auth.token.rootcertbundle`.
    pub fn cert_pem(&self) -> &str {
        &self.state.signer.cert_pem
    }

    /// The libtrust key id of the signing key (what Harbor puts in `kid`).
    pub fn libtrust_kid(&self) -> &str {
        &self.state.signer.kid
    }

    /// A distribution registry config (2.8 and 3.x) listening on `listen` (`127.0.0.1:PORT`),
    /// storing under `root`, trusting this token service; the certificate is written to
    /// `cert_file`. Delete is enabled so delete scopes can be tested.
    pub fn distribution_config(&self, listen: &str, root: &Path, cert_file: &Path) -> String {
        std::fs::write(cert_file, self.cert_pem()).expect("write the token certificate");
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {listen}\nauth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            root.display(),
            self.realm(),
            self.service(),
            self.issuer(),
            cert_file.display()
        )
    }

    /// Seconds by which its clock (its `Date` headers) is off. Default 0.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.state.clock_offset.store(seconds, Ordering::SeqCst);
    }

    /// Strict mode: bad credentials get 401 even with a scope (real Harbor gives an anonymous
    /// token). Default off.
    pub fn set_strict(&self, strict: bool) {
        self.state.strict.store(strict, Ordering::SeqCst);
    }

    /// Which fields the token answers carry. Default [`TokenFields::Both`].
    pub fn set_token_fields(&self, fields: TokenFields) {
        *lock(&self.state.token_fields) = fields;
    }

    /// Points the `/v2/` challenge's realm at `realm`: a token service on another port (as the
    /// e2e rig runs it) or this one under another host name. `None` (the default): this fake's
    /// `/service/token` under the `Host` the client used.
    pub fn set_realm(&self, realm: Option<&str>) {
        *lock(&self.state.realm) = realm.map(str::to_string);
    }

    /// Adds a project (idempotent) and returns its id.
    pub fn add_project(&self, name: &str) -> i64 {
        add_project(&self.state, name)
    }

    /// Makes a project public (anyone may pull) or private.
    pub fn set_public(&self, name: &str, public: bool) {
        self.add_project(name);
        for p in lock(&self.state.projects).iter_mut().filter(|p| p.name == name) {
            p.public = public;
        }
    }

    /// Adds a robot from Harbor's robot JSON (see [`project_robot`], [`system_robot`]) with its
    /// secret, unlinked. Projects it names are created. Returns its id.
    pub fn add_robot(&self, robot: Value, secret: &str) -> i64 {
        let mut robot = validate::Robot::from_json(&robot.to_string()).expect("robot JSON");
        let id = robot
            .id
            .unwrap_or_else(|| self.state.next_id.fetch_add(1, Ordering::SeqCst));
        robot.id = Some(id);
        robot.extra.remove(LINK_EMAIL_FIELD);
        robot.extra.remove(LINK_ID_FIELD);
        if let Ok(RobotName::Project { project, .. }) = validate::parse_name(&robot.name, &self.state.config.prefix) {
            self.add_project(&project);
        }
        for p in &robot.permissions {
            if p.kind == Kind::Project && p.namespace != "*" {
                self.add_project(&p.namespace);
            }
        }
        let mut robots = lock(&self.state.robots);
        robots.retain(|e| e.robot.name != robot.name);
        robots.push(RobotEntry {
            robot,
            secret: secret.to_string(),
            link: None,
        });
        id
    }

    /// Links a robot to a service account (e-mail, id): its secret stops working.
    pub fn link(&self, name: &str, email: &str, id: &str) {
        self.with_robot(name, |e| e.link = Some((email.to_string(), id.to_string())));
    }

    /// Unlinks a robot: its secret works again.
    pub fn unlink(&self, name: &str) {
        self.with_robot(name, |e| e.link = None);
    }

    /// Sets a robot's secret (Harbor's "refresh secret").
    pub fn set_secret(&self, name: &str, secret: &str) {
        self.with_robot(name, |e| e.secret = secret.to_string());
    }

    /// Gives a robot a new random secret and returns it.
    pub fn rotate_secret(&self, name: &str) -> String {
        let mut bytes = [0u8; 18];
        aws_lc_rs::rand::fill(&mut bytes).expect("random secret");
        let secret = format!("Rot{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
        self.set_secret(name, &secret);
        secret
    }

    /// Enables or disables a robot.
    pub fn set_disabled(&self, name: &str, disabled: bool) {
        self.with_robot(name, |e| e.robot.disable = disabled);
    }

    /// Sets a robot's `expires_at` (unix seconds, -1 = never).
    pub fn set_expires_at(&self, name: &str, expires_at: i64) {
        self.with_robot(name, |e| e.robot.expires_at = Some(expires_at));
    }

    /// Edits a robot in place (permissions, level, …).
    pub fn update_robot(&self, name: &str, edit: impl FnOnce(&mut validate::Robot)) {
        self.with_robot(name, |e| edit(&mut e.robot));
    }

    /// Deletes a robot.
    pub fn remove_robot(&self, name: &str) {
        lock(&self.state.robots).retain(|e| e.robot.name != name);
    }

    /// The robot as `GET /api/v2.0/robots/{id}` shows it (link fields included), as JSON text,
    /// e.g. for `check --robot-file`.
    pub fn robot_json(&self, name: &str) -> String {
        let robots = lock(&self.state.robots);
        let entry = robots
            .iter()
            .find(|e| e.robot.name == name)
            .unwrap_or_else(|| panic!("no robot {name}"));
        robot_value(entry).to_string()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<HarborRequest> {
        lock(&self.state.requests).clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        lock(&self.state.requests)
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }

    /// Requests to the token service.
    pub fn token_requests(&self) -> usize {
        self.count("/service/token")
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.state.requests).clear();
    }

    /// Verifies a registry token this fake issued (signature, `iss`, `aud`, `exp`); returns
    /// its header and claims.
    pub fn verify_registry_token(&self, token: &str) -> Option<(Value, Value)> {
        verify_registry_token(&self.state, token)
    }

    fn with_robot(&self, name: &str, edit: impl FnOnce(&mut RobotEntry)) {
        let mut robots = lock(&self.state.robots);
        let entry = robots
            .iter_mut()
            .find(|e| e.robot.name == name)
            .unwrap_or_else(|| panic!("no robot {name}"));
        edit(entry);
    }
}

impl Drop for FakeHarbor {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// A project robot `robot$<project>+<name>` allowed `actions` on `repository` (e.g.
/// `["pull", "push"]`), never expiring.
pub fn project_robot(project: &str, name: &str, actions: &[&str]) -> Value {
    let access: Vec<Value> = actions
        .iter()
        .map(|a| json!({"resource": "repository", "action": a}))
        .collect();
    json!({"name": format!("robot${project}+{name}"), "level": "project", "duration": -1,
           "expires_at": -1, "disable": false, "editable": true,
           "permissions": [{"kind": "project", "namespace": project, "access": access}]})
}

/// A system robot `robot$<name>` with the given `permissions` JSON list, never expiring.
pub fn system_robot(name: &str, permissions: Value) -> Value {
    json!({"name": format!("robot${name}"), "level": "system", "duration": -1, "expires_at": -1,
           "disable": false, "editable": true, "permissions": permissions})
}

fn add_project(state: &State, name: &str) -> i64 {
    let mut projects = lock(&state.projects);
    if let Some(p) = projects.iter().find(|p| p.name == name) {
        return p.id;
    }
    let id = projects.len() as i64 + 1;
    projects.push(Project {
        id,
        name: name.to_string(),
        public: false,
    });
    id
}

impl Signer {
    fn generate() -> Signer {
        let rsa = super::keys::pooled(10);
        let pem = rsa.pkcs8_pem();
        let key_pair =
            rcgen::KeyPair::from_pem_and_sign_algo(pem.expose(), &rcgen::PKCS_RSA_SHA256).expect("rcgen RSA key");
        let mut params = rcgen::CertificateParams::new(vec!["harbor-token-issuer".to_string()]).expect("cert params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fake Harbor token signer");
        let cert = params.self_signed(&key_pair).expect("self-signed cert");
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose().as_bytes()).expect("JWT key");
        let kid = libtrust_kid(&rcgen::PublicKeyData::subject_public_key_info(&key_pair));
        Signer {
            encoding,
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            kid,
            rsa,
        }
    }
}

/// The libtrust key id: SHA-256 of the SPKI DER, first 30 bytes, base32, 12 groups of 4.
fn libtrust_kid(spki_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
    let bytes = &digest.as_ref()[..30];
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut nbits = 0;
    let mut out = String::new();
    for &b in bytes {
        bits = (bits << 8) | b as u64;
        nbits += 8;
        while nbits >= 5 {
            nbits -= 5;
            out.push(ALPHABET[((bits >> nbits) & 31) as usize] as char);
        }
    }
    let groups: Vec<&str> = (0..12).map(|i| &out[i * 4..i * 4 + 4]).collect();
    groups.join(":")
}

fn robot_value(entry: &RobotEntry) -> Value {
    let mut v = entry.robot.to_value();
    let (email, id) = match &entry.link {
        Some((e, i)) => (json!(e), json!(i)),
        None => (Value::Null, Value::Null),
    };
    v[LINK_EMAIL_FIELD] = email;
    v[LINK_ID_FIELD] = id;
    v
}

/// Who a request authenticated as.
enum Auth {
    /// No `Authorization` header.
    None,
    /// Credentials that do not log in, and why.
    Bad(String),
    /// A robot (directly, or the one linked to the service account), and the token `sub`.
    Robot(Box<validate::Robot>, String),
}

fn authenticate(state: &State, headers: &[(String, String)]) -> (Auth, Option<String>) {
    let Some(value) = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v) else {
        return (Auth::None, None);
    };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return (Auth::Bad("not Basic auth".into()), None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return (Auth::Bad("malformed Basic credentials".into()), None);
    };
    let user = user.to_string();
    let now = now();
    let robots = lock(&state.robots);
    let usable = |e: &RobotEntry| -> Result<(), String> {
        if e.robot.disable {
            return Err(format!("robot {} is disabled", e.robot.name));
        }
        if e.robot.is_expired(now) {
            return Err(format!("robot {} has expired", e.robot.name));
        }
        Ok(())
    };
    if user.starts_with(&state.config.prefix) {
        let auth = match robots.iter().find(|e| e.robot.name == user) {
            None => Auth::Bad(format!("no robot {user}")),
            Some(e) if e.secret != password => Auth::Bad(format!("wrong secret for {user}")),
            Some(e) if e.link.is_some() => Auth::Bad(format!("robot {user} is linked; its secret no longer works")),
            Some(e) => match usable(e) {
                Err(why) => Auth::Bad(why),
                Ok(()) => Auth::Robot(Box::new(e.robot.clone()), user.clone()),
            },
        };
        return (auth, Some(user));
    }
    let Some(claims) = state.verifier.as_ref().and_then(|verify| verify(password)) else {
        return (
            Auth::Bad(format!("password of {user} is not a valid STACKIT access token")),
            Some(user),
        );
    };
    let email = claims["email"].as_str().unwrap_or("");
    let sub = claims["sub"].as_str().unwrap_or("");
    if !email.eq_ignore_ascii_case(&user) {
        return (
            Auth::Bad(format!("access token is for {email}, not {user}")),
            Some(user),
        );
    }
    let linked = robots.iter().find(|e| {
        e.link
            .as_ref()
            .is_some_and(|(le, li)| le.eq_ignore_ascii_case(email) && li.eq_ignore_ascii_case(sub))
    });
    let auth = match linked {
        None => Auth::Bad(format!("no robot is linked to {email} / {sub}")),
        Some(e) => match usable(e) {
            Err(why) => Auth::Bad(why),
            Ok(()) => Auth::Robot(Box::new(e.robot.clone()), user.clone()),
        },
    };
    (auth, Some(user))
}

/// An HTTP answer: status, content type, body, extra headers.
type Answer = (u16, &'static str, Vec<u8>, Vec<(String, String)>);

fn json_answer(status: u16, body: Value) -> Answer {
    (status, "application/json", body.to_string().into_bytes(), Vec::new())
}

fn harbor_error(status: u16, code: &str, message: &str) -> Answer {
    json_answer(status, json!({"errors": [{"code": code, "message": message}]}))
}

fn handle(mut tcp: TcpStream, state: &State) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let Some((request_line, headers, _body)) = fake::read_request(&mut tcp) else {
        return;
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_query(q)),
        None => (target.clone(), Vec::new()),
    };
    let (auth, user) = authenticate(state, &headers);
    let principal = match &auth {
        Auth::None => "anonymous".to_string(),
        Auth::Bad(why) => format!("rejected: {why}"),
        Auth::Robot(r, _) => r.name.clone(),
    };
    let answer = if method != "GET" && method != "HEAD" {
        harbor_error(405, "METHOD_NOT_ALLOWED", "the fake Harbor only answers GET")
    } else {
        route(state, &path, &query, &headers, &auth)
    };
    lock(&state.requests).push(HarborRequest {
        method,
        path,
        query,
        user,
        principal,
        status: answer.0,
    });
    let (status, content_type, body, mut extra) = answer;
    let date = now() + state.clock_offset.load(Ordering::SeqCst);
    extra.push(("Date".into(), fake::http_date(date as u64)));
    fake::write_response(&mut tcp, status, content_type, &body, &extra);
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (fake::url_decode(k), fake::url_decode(v)),
            None => (fake::url_decode(kv), String::new()),
        })
        .collect()
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn route(state: &State, path: &str, query: &[(String, String)], headers: &[(String, String)], auth: &Auth) -> Answer {
    match path {
        "/v2" | "/v2/" => v2(state, headers),
        "/service/token" => token(state, query, auth),
        "/api/v2.0/systeminfo" => match auth {
            Auth::Robot(..) => json_answer(200, json!({"harbor_version": "v2.14.0-fake", "auth_mode": "oidc_auth"})),
            _ => json_answer(200, json!({"auth_mode": "oidc_auth"})),
        },
        _ => {
            let robot = match auth {
                Auth::Robot(robot, _) => robot,
                _ => return harbor_error(401, "UNAUTHORIZED", "unauthorized"),
            };
            if path == "/api/v2.0/users/current" {
                return harbor_error(
                    412,
                    "PRECONDITION",
                    "this API is not available for security context: robot",
                );
            }
            if path == "/api/v2.0/users/current/permissions" {
                return permissions(state, robot, query);
            }
            if path == "/api/v2.0/robots" {
                return list_robots(state, robot, query);
            }
            if let Some(id) = path.strip_prefix("/api/v2.0/robots/") {
                return get_robot(state, robot, id);
            }
            if let Some(name) = path.strip_prefix("/api/v2.0/projects/") {
                let by_name = headers
                    .iter()
                    .any(|(k, v)| k == "x-is-resource-name" && v.eq_ignore_ascii_case("true"));
                return get_project(state, robot, &fake::url_decode(name), by_name);
            }
            harbor_error(404, "NOT_FOUND", "not found in the fake Harbor")
        }
    }
}

/// `/v2/`: 200 with a valid registry token, else the Bearer challenge.
fn v2(state: &State, headers: &[(String, String)]) -> Answer {
    let bearer = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|t| verify_registry_token(state, t).is_some()) {
        return json_answer(200, json!({}));
    }
    let (status, ctype, body, _) = harbor_error(401, "UNAUTHORIZED", "authentication required");
    let realm = lock(&state.realm).clone().unwrap_or_else(|| {
        let host = headers
            .iter()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.as_str())
            .unwrap_or("127.0.0.1");
        format!("http://{host}/service/token")
    });
    let challenge = format!("Bearer realm=\"{realm}\",service=\"{}\"", state.config.service);
    let extra = vec![
        ("WWW-Authenticate".into(), challenge),
        ("Docker-Distribution-Api-Version".into(), "registry/2.0".into()),
    ];
    (status, ctype, body, extra)
}

/// `/service/token`: Harbor's token service.
fn token(state: &State, query: &[(String, String)], auth: &Auth) -> Answer {
    let scopes: Vec<Scope> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| Scope::parse_all(v))
        .collect();
    let (robot, subject) = match auth {
        Auth::Robot(robot, subject) => (Some(&**robot), subject.as_str()),
        Auth::None if scopes.is_empty() => return harbor_error(401, "UNAUTHORIZED", "authentication required"),
        Auth::Bad(why) if scopes.is_empty() || state.strict.load(Ordering::SeqCst) => {
            return harbor_error(401, "UNAUTHORIZED", &format!("invalid credentials: {why}"));
        }
        // Harbor: a scoped request without valid credentials gets an anonymous token.
        Auth::None | Auth::Bad(_) => (None, ""),
    };
    let access: Vec<Value> = scopes
        .iter()
        .map(|s| json!({"type": s.kind, "name": s.name, "actions": granted(state, robot, s)}))
        .collect();
    let now = now() as u64;
    let lifetime = state.config.token_lifetime;
    let mut jti = [0u8; 12];
    let _ = aws_lc_rs::rand::fill(&mut jti);
    let claims = json!({
        "iss": state.config.issuer, "sub": subject, "aud": state.config.service,
        "exp": now + lifetime, "nbf": now, "iat": now,
        "jti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti), "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("JWT".into());
    header.x5c = Some(vec![
        base64::engine::general_purpose::STANDARD.encode(&state.signer.cert_der),
    ]);
    if state.config.emit_kid {
        header.kid = Some(state.signer.kid.clone());
    }
    let Ok(jwt) = jsonwebtoken::encode(&header, &claims, &state.signer.encoding) else {
        return harbor_error(500, "INTERNAL", "signing failed");
    };
    let issued_at = fake::rfc3339(now);
    let body = match *lock(&state.token_fields) {
        TokenFields::Both => json!({"token": jwt, "access_token": jwt, "expires_in": lifetime, "issued_at": issued_at}),
        TokenFields::TokenOnly => json!({"token": jwt, "expires_in": lifetime, "issued_at": issued_at}),
        TokenFields::AccessTokenOnly => json!({"access_token": jwt, "expires_in": lifetime, "issued_at": issued_at}),
        TokenFields::EmptyToken => {
            json!({"token": "", "access_token": jwt, "expires_in": lifetime, "issued_at": issued_at})
        }
    };
    json_answer(200, body)
}

/// The registry actions Harbor grants for one scope: every one of pull, push, delete the
/// principal may do in the repository's project (requested actions are ignored).
fn granted(state: &State, robot: Option<&validate::Robot>, scope: &Scope) -> Vec<&'static str> {
    if scope.kind != "repository" {
        return Vec::new();
    }
    let Some(project) = scope.project() else {
        return Vec::new();
    };
    let public = match lock(&state.projects).iter().find(|p| p.name == project) {
        None => return Vec::new(),
        Some(p) => p.public,
    };
    ["pull", "push", "delete"]
        .into_iter()
        .filter(|action| {
            let by_robot = robot.is_some_and(|r| {
                matches!(
                    validate::decide(r, &Need::repository(project, *action)),
                    Decision::Allowed { .. }
                )
            });
            by_robot || (public && *action == "pull")
        })
        .collect()
}

fn verify_registry_token(state: &State, token: &str) -> Option<(Value, Value)> {
    let key = jsonwebtoken::DecodingKey::from_rsa_der(&state.signer.rsa.public_der());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&state.config.service]);
    validation.set_issuer(&[&state.config.issuer]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).ok()?;
    let header = serde_json::to_value(&data.header).ok()?;
    Some((header, data.claims))
}

fn find_project<'a>(projects: &'a [Project], name_or_id: &str, by_name: bool) -> Option<&'a Project> {
    match name_or_id.parse::<i64>() {
        Ok(id) if !by_name => projects.iter().find(|p| p.id == id),
        _ => projects.iter().find(|p| p.name == name_or_id),
    }
}

/// Whether the robot has any project permission in `project` (directly or through `*`).
fn member(robot: &validate::Robot, project: &str) -> bool {
    robot
        .permissions
        .iter()
        .any(|p| p.kind == Kind::Project && (p.namespace == project || p.namespace == "*"))
}

fn get_project(state: &State, robot: &validate::Robot, name_or_id: &str, by_name: bool) -> Answer {
    let projects = lock(&state.projects);
    match find_project(&projects, name_or_id, by_name) {
        Some(p) if p.public || member(robot, &p.name) => json_answer(
            200,
            json!({"project_id": p.id, "name": p.name, "metadata": {"public": p.public.to_string()}}),
        ),
        Some(_) => harbor_error(403, "FORBIDDEN", "forbidden"),
        None => harbor_error(404, "NOT_FOUND", &format!("project {name_or_id} not found")),
    }
}

/// `/users/current/permissions?scope=/project/<id or name>&relative=true`.
fn permissions(state: &State, robot: &validate::Robot, query: &[(String, String)]) -> Answer {
    let scope = param(query, "scope").unwrap_or("");
    let relative = param(query, "relative") == Some("true");
    let Some(reference) = scope.strip_prefix("/project/") else {
        return json_answer(200, json!([]));
    };
    let (id, name) = {
        let projects = lock(&state.projects);
        match find_project(&projects, reference, false) {
            Some(p) => (p.id, p.name.clone()),
            None => return json_answer(200, json!([])),
        }
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for p in robot
        .permissions
        .iter()
        .filter(|p| p.kind == Kind::Project && (p.namespace == name || p.namespace == "*"))
    {
        for a in p.access.iter().filter(|a| a.effect == Effect::Allow) {
            let pair = (a.resource.clone(), a.action.clone());
            let allowed = matches!(
                validate::decide(robot, &Need::new(&name, &a.resource, &a.action)),
                Decision::Allowed { .. }
            );
            if allowed && !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    }
    // Harbor adds pull for project robots that may push.
    let implied = ("repository".to_string(), "pull".to_string());
    if !pairs.contains(&implied)
        && matches!(
            validate::decide(robot, &Need::repository(&name, "pull")),
            Decision::Allowed { implied: true }
        )
    {
        pairs.push(implied);
    }
    let list: Vec<Value> = pairs
        .into_iter()
        .map(|(resource, action)| {
            let resource = if relative {
                resource
            } else {
                format!("/project/{id}/{resource}")
            };
            json!({"resource": resource, "action": action})
        })
        .collect();
    json_answer(200, Value::Array(list))
}

/// Whether the robot may list system robots: a `kind=system` access robot:list allowed, none denied.
fn may_list_system_robots(robot: &validate::Robot) -> bool {
    let matching: Vec<&validate::Access> = robot
        .permissions
        .iter()
        .filter(|p| p.kind == Kind::System)
        .flat_map(|p| p.access.iter())
        .filter(|a| (a.resource == "robot" || a.resource == "*") && (a.action == "list" || a.action == "*"))
        .collect();
    matching.iter().any(|a| a.effect == Effect::Allow) && !matching.iter().any(|a| a.effect == Effect::Deny)
}

fn may_list_project_robots(robot: &validate::Robot, project: &str) -> bool {
    matches!(
        validate::decide(robot, &Need::new(project, "robot", "list")),
        Decision::Allowed { .. }
    )
}

/// `/robots?q=Level=project,ProjectID=<id>` (project robots) or `/robots` (system robots).
fn list_robots(state: &State, robot: &validate::Robot, query: &[(String, String)]) -> Answer {
    // Harbor unescapes q once more than the query string itself.
    let q = fake::url_decode(param(query, "q").unwrap_or(""));
    let terms: Vec<(String, String)> = q
        .split(',')
        .filter_map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let term = |k: &str| terms.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let project = match (term("Level"), term("ProjectID")) {
        (Some("project"), Some(id)) => {
            let projects = lock(&state.projects);
            match find_project(&projects, id, false) {
                Some(p) => Some(p.name.clone()),
                None => return harbor_error(404, "NOT_FOUND", "project not found"),
            }
        }
        _ => None,
    };
    let allowed = match &project {
        Some(p) => may_list_project_robots(robot, p),
        None => may_list_system_robots(robot),
    };
    if !allowed {
        return harbor_error(403, "FORBIDDEN", "forbidden");
    }
    let robots = lock(&state.robots);
    let list: Vec<Value> = robots
        .iter()
        .filter(
            |e| match (&project, validate::parse_name(&e.robot.name, &state.config.prefix)) {
                (Some(p), Ok(RobotName::Project { project, .. })) => &project == p,
                (None, _) => e.robot.level == Some(Level::System),
                _ => false,
            },
        )
        .map(robot_value)
        .collect();
    let mut answer = json_answer(200, Value::Array(list.clone()));
    answer.3.push(("X-Total-Count".into(), list.len().to_string()));
    answer
}

fn get_robot(state: &State, caller: &validate::Robot, id: &str) -> Answer {
    let robots = lock(&state.robots);
    let Some(entry) = robots
        .iter()
        .find(|e| e.robot.id.map(|i| i.to_string()).as_deref() == Some(id))
    else {
        return harbor_error(404, "NOT_FOUND", "robot not found");
    };
    let allowed = match validate::parse_name(&entry.robot.name, &state.config.prefix) {
        Ok(RobotName::Project { project, .. }) => may_list_project_robots(caller, &project),
        _ => may_list_system_robots(caller),
    };
    if !allowed && caller.name != entry.robot.name {
        return harbor_error(403, "FORBIDDEN", "forbidden");
    }
    json_answer(200, robot_value(entry))
}

/// Reads the whole of a small response for tests that talk to the fake directly.
pub fn http_get(url: &str, authorization: Option<&str>) -> (u16, String, Vec<(String, String)>) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut tcp = TcpStream::connect(host).expect("connect to the fake");
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        tcp,
        "GET {} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n",
        if path.is_empty() { "/" } else { path }
    )
    .expect("send");
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, body.to_string(), headers)
}
