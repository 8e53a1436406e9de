//! RSA keys for the tests, generated once per build and reused by every test process. nextest
//! runs each test in a process of its own, and a debug build's RSA-2048 generation takes a
//! quarter of a second or more on a loaded machine; three accounts and a fake Harbor per test
//! made that the largest cost of the suite. The keys live under `CARGO_TARGET_TMPDIR`, which
//! `cargo clean` removes; they are test keys and nothing else.

use docker_credential_stackit::testing::fake::{Account, RsaKey};
use std::path::PathBuf;

/// Key number `slot` of the pool, generating and storing it on first use.
pub fn pooled(slot: usize) -> RsaKey {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rsa-key-pool");
    let path = dir.join(format!("{slot}.pem"));
    if let Some(key) = std::fs::read_to_string(&path).ok().and_then(|pem| from_pem(&pem)) {
        return key;
    }
    let key = RsaKey::generate();
    // Written to a temp file and renamed, so a process starting meanwhile reads a whole key or
    // none (two processes generating at once each keep their own; both are valid).
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(tmp) = tempfile::NamedTempFile::new_in(&dir)
        && std::fs::write(tmp.path(), key.pkcs8_pem().expose()).is_ok()
    {
        let _ = tmp.persist(&path);
    }
    key
}

fn from_pem(pem: &str) -> Option<RsaKey> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
    RsaKey::from_pkcs8_der(&der)
}

/// A service account named `name` with pooled key `slot` and fresh ids, like
/// [`Account::generate`] makes.
pub fn account(name: &str, slot: usize) -> Account {
    Account {
        kid: uuid_v4(),
        iss: format!("{name}@sa.stackit.cloud"),
        sub: uuid_v4(),
        aud: "https://stackit-service-account-prod.apps.01.cf.eu01.stackit.cloud".into(),
        key: pooled(slot),
    }
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("random bytes");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
