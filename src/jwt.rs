//! Reading a JWT's claims without verifying it: the helper only needs `exp` of its own access
//! tokens, a federated token's subject, and a registry token's grants; the issuers verify.

use base64::Engine;

/// Reads a numeric claim from a JWT's payload without verifying it (the registry verifies).
pub fn jwt_claim_u64(token: &str, claim: &str) -> Option<u64> {
    let claims = jwt_claims(token)?;
    let v = claims.get(claim)?;
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Decodes a JWT's payload (unverified) into a JSON object.
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An unsigned JWT (`sig` for a signature) with `payload` as its claims, for tests.
#[cfg(test)]
pub(crate) fn unsigned(payload: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.sig", b(r#"{"alg":"RS512"}"#), b(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_without_verifying() {
        let t = unsigned(r#"{"exp":5000,"email":"a@b","big":1.5e3}"#);
        assert_eq!(jwt_claim_u64(&t, "exp"), Some(5000));
        assert_eq!(jwt_claim_u64(&t, "big"), Some(1500));
        assert_eq!(jwt_claims(&t).unwrap()["email"], "a@b");
        assert_eq!(jwt_claim_u64(&t, "email"), None);
        assert!(jwt_claims("not a jwt").is_none());
        assert!(jwt_claims("a.!!!.c").is_none());
    }
}
