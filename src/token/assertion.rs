//! The self-signed RS512 assertion that proves possession of the service account key.

use crate::error::{Error, Result};
use crate::identity::KeyIdentity;
use crate::key::signing_key;
use crate::secret::Secret;
use serde::Serialize;

/// Lifetime of an assertion in seconds (STACKIT docs, Python and Java SDKs).
pub const ASSERTION_LIFETIME: u64 = 600;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    exp: u64,
}

/// Signs an assertion for `identity` at time `now` (unix seconds).
///
/// Header `{alg: RS512, typ: JWT, kid}`; claims `iss`, `sub`, `aud` (a string) from the key,
/// a fresh UUID v4 `jti`, `iat = now`, `exp = now + 600`.
/// An external private key file that is a pipe is waited for until `deadline`.
pub fn sign(identity: &KeyIdentity, now: u64, deadline: std::time::Instant) -> Result<Secret> {
    let (pem, origin) = identity.private_key_pem(deadline)?;
    let key = signing_key(&pem, &origin)?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS512);
    header.kid = Some(identity.key.kid.clone());
    header.typ = Some("JWT".into());
    let claims = Claims {
        iss: &identity.key.iss,
        sub: &identity.key.sub,
        aud: &identity.key.aud,
        jti: uuid_v4()?,
        iat: now,
        exp: now + ASSERTION_LIFETIME,
    };
    jsonwebtoken::encode(&header, &claims, &key)
        .map(Secret::new)
        .map_err(|_| {
            Error::Key(format!(
                "cannot sign with the private key from {origin}; is it an RSA key of at least 2048 bits?"
            ))
        })
}

/// A random UUID v4 string from the OS random source.
pub fn uuid_v4() -> Result<String> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::Key("the system random number generator failed".into()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_is_v4_shaped_and_fresh() {
        let a = super::uuid_v4().unwrap();
        let b = super::uuid_v4().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]));
    }
}
