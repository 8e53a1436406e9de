//! The demo's own token endpoint: plain HTTP on loopback, with one job — verify the helper's
//! assertion against the demo's throw-away key the way STACKIT does, and answer with a
//! short-lived access token. The scriptable test double lives with the tests (the `fake`
//! feature); this is only as much of STACKIT as `demo` needs, so it ships in the product.

use crate::error::{Error, Result};
use crate::secret::Secret;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Lifetime of the tokens it issues.
const LIFETIME: u64 = 3600;

/// A throw-away service account and its key, made for one demo run.
pub struct DemoAccount {
    /// Key id.
    pub kid: String,
    /// E-mail (`credentials.iss`).
    pub email: String,
    /// Account id (`credentials.sub`).
    pub id: String,
    /// Audience (`credentials.aud`).
    pub aud: String,
    private_pem: Secret,
    public_der: Vec<u8>,
}

impl DemoAccount {
    /// Generates an account with a fresh RSA-2048 key.
    pub fn generate() -> Result<DemoAccount> {
        let fail = |what: &str| Error::Key(format!("demo: cannot {what}"));
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| fail("generate an RSA key"))?;
        let pkcs8 = pair.as_der().map_err(|_| fail("encode the key"))?;
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref()));
        let uuid = || crate::token::assertion::uuid_v4().map_err(|_| fail("draw random numbers"));
        Ok(DemoAccount {
            kid: uuid()?,
            email: "demo-pusher@sa.stackit.cloud".into(),
            id: uuid()?,
            aud: "https://stackit-service-account-prod.apps.01.cf.eu01.stackit.cloud".into(),
            private_pem: Secret::new(private_pem),
            public_der: pair.public_key().as_ref().to_vec(),
        })
    }

    /// The key JSON as STACKIT hands it out, with the private key embedded.
    pub fn key_json(&self) -> Secret {
        let doc = serde_json::json!({
            "id": self.kid, "keyType": "USER_MANAGED", "keyAlgorithm": "RSA_2048", "active": true,
            "credentials": {"kid": self.kid, "iss": self.email, "sub": self.id, "aud": self.aud,
                "privateKey": self.private_pem.expose()},
        });
        Secret::new(serde_json::to_string_pretty(&doc).unwrap_or_default())
    }
}

/// The running endpoint; it stops when dropped.
pub struct DemoEndpoint {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl DemoEndpoint {
    /// Starts on 127.0.0.1 with a random port, trusting `account`'s key only.
    pub fn start(account: &DemoAccount) -> std::io::Result<DemoEndpoint> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let checker = Checker {
            public_der: account.public_der.clone(),
            email: account.email.clone(),
            id: account.id.clone(),
            aud: account.aud.clone(),
            signing_secret: random_secret(),
        };
        let (count, halt) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    count.fetch_add(1, Ordering::SeqCst);
                    answer(conn, &checker);
                }
            }
        });
        Ok(DemoEndpoint { addr, requests, stop })
    }

    /// The token URL.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for DemoEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// What a request must prove, and the key the answers are signed with.
struct Checker {
    public_der: Vec<u8>,
    email: String,
    id: String,
    aud: String,
    signing_secret: [u8; 32],
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    #[serde(default)]
    email: String,
}

fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    // A failed draw leaves zeros: the demo's tokens are then guessable, which does not matter
    // for a throw-away endpoint that lives for one run on loopback.
    let _ = aws_lc_rs::rand::fill(&mut secret);
    secret
}

/// Reads one request and answers it: 200 with a token for a valid assertion, else 400.
fn answer(mut conn: TcpStream, checker: &Checker) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let form = crate::loopback::read_request(&mut conn).map(|(_, _, body)| {
        form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect::<Vec<_>>()
    });
    let (status, body) = match form {
        Some(form) => match checker.token_for(&form) {
            Ok(token) => (
                200,
                serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": LIFETIME}).to_string(),
            ),
            Err(why) => (
                400,
                serde_json::json!({"error": "invalid_grant", "message": why}).to_string(),
            ),
        },
        None => (400, r#"{"error":"invalid_request"}"#.to_string()),
    };
    crate::loopback::write_response(&mut conn, status, "application/json", body.as_bytes(), &[]);
}

impl Checker {
    /// Verifies the jwt-bearer assertion (RS512 with the account's key, its `iss`, `sub`,
    /// `aud` and expiry) and signs an access token for the account.
    fn token_for(&self, form: &[(String, String)]) -> std::result::Result<String, String> {
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if field("grant_type") != Some(crate::token::exchange::GRANT_TYPE) {
            return Err("grant_type is not jwt-bearer".into());
        }
        let assertion = field("assertion").ok_or("no assertion")?;
        let key = jsonwebtoken::DecodingKey::from_rsa_der(&self.public_der);
        let mut rules = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS512);
        rules.set_audience(&[&self.aud]);
        rules.set_issuer(&[&self.email]);
        rules.sub = Some(self.id.clone());
        let claims = jsonwebtoken::decode::<Claims>(assertion, &key, &rules)
            .map_err(|e| format!("the assertion does not verify: {e}"))?
            .claims;
        let now = crate::clock::unix_now();
        let issued = Claims {
            iss: "demo-endpoint".into(),
            sub: claims.sub,
            aud: "stackit".into(),
            exp: now + LIFETIME,
            email: self.email.clone(),
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &issued,
            &jsonwebtoken::EncodingKey::from_secret(&self.signing_secret),
        )
        .map_err(|e| format!("cannot sign the token: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, Settings};
    use crate::identity::Identity;

    fn checker(account: &DemoAccount) -> Checker {
        Checker {
            public_der: account.public_der.clone(),
            email: account.email.clone(),
            id: account.id.clone(),
            aud: account.aud.clone(),
            signing_secret: random_secret(),
        }
    }

    #[test]
    fn only_an_assertion_signed_with_the_demo_key_gets_a_token() {
        let account = DemoAccount::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.json");
        std::fs::write(&key, account.key_json().expose()).unwrap();
        let env = Env::from_pairs(
            &[("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key.to_str().unwrap())],
            dir.path(),
        );
        let settings = Settings::from_env(env).unwrap();
        let Some(Identity::Key(identity)) = settings
            .identity(&settings.served_host("registry.onstackit.cloud").unwrap())
            .unwrap()
        else {
            panic!("a key identity");
        };
        let signed =
            crate::token::assertion::sign(&identity, crate::clock::unix_now(), std::time::Instant::now()).unwrap();
        let form = |assertion: &str| {
            vec![
                ("grant_type".to_string(), crate::token::exchange::GRANT_TYPE.to_string()),
                ("assertion".to_string(), assertion.to_string()),
            ]
        };
        let token = checker(&account).token_for(&form(signed.expose())).unwrap();
        let claims = crate::jwt::jwt_claims(&token).unwrap();
        assert_eq!(claims["email"], account.email.as_str());
        // Another key's assertion, garbage, and a wrong grant type are refused.
        let other = DemoAccount::generate().unwrap();
        assert!(checker(&other).token_for(&form(signed.expose())).is_err());
        assert!(checker(&account).token_for(&form("not.a.jwt")).is_err());
        let mut wrong = form(signed.expose());
        wrong[0].1 = "client_credentials".into();
        assert!(checker(&account).token_for(&wrong).is_err());
    }
}
