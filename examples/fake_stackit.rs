//! A fake STACKIT token endpoint over HTTPS for `scripts/bench` and `scripts/release-check`:
//! writes a key file, a CA and a ready-made form body for curl into DIR, prints the token URL,
//! then answers `count` on stdin with the number of token requests so far. Exits when stdin
//! closes.
//!
//! Usage: cargo run --release --example fake_stackit -- DIR

use docker_credential_stackit::testing::fake::{Account, FakeStackit};
use docker_credential_stackit::testing::identity::Identity;
use docker_credential_stackit::testing::server_url::DEFAULT_REGISTRY;
use docker_credential_stackit::testing::token::{assertion, exchange};
use docker_credential_stackit::{Env, Settings};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: fake_stackit DIR"));
    std::fs::create_dir_all(&dir).expect("create DIR");

    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // A subject distinct from the leaf's, or OpenSSL (curl) takes the leaf for self-signed.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fake_stackit bench CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    // fake-stackit.test: a name only scripts/release-check's DNS server knows.
    let names = ["127.0.0.1", "localhost", "fake-stackit.test"]
        .map(String::from)
        .to_vec();
    let leaf = rcgen::CertificateParams::new(names)
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("leaf key DER");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .expect("server config");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");

    let fake = FakeStackit::start_with(Some(Arc::new(server))).expect("start fake");
    let mut accounts = Vec::new();
    for i in 0..3 {
        let account = Account::generate(&format!("bench-{i}"));
        fake.register(&account);
        let path = dir.join(format!("key-{i}.json"));
        std::fs::write(&path, account.key_json(true, None).expose()).expect("write key");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod key");
        accounts.push(account);
    }

    // A valid form body, so curl's round trip costs the server the same work as ours.
    let key_path = dir.join("key-0.json");
    let env = Env::from_pairs(
        &[("STACKIT_SERVICE_ACCOUNT_KEY_PATH", key_path.to_str().unwrap_or(""))],
        &dir,
    );
    let settings = Settings::from_env(env).expect("settings");
    let Some(Identity::Key(identity)) = settings
        .identity(&settings.served_host(DEFAULT_REGISTRY).expect("served"))
        .expect("identity")
    else {
        panic!("the bench key is not a key identity");
    };
    let signed = assertion::sign(
        &identity,
        docker_credential_stackit::testing::clock::unix_now(),
        std::time::Instant::now(),
    )
    .expect("sign");
    let form = format!(
        "grant_type={}&assertion={}",
        exchange::GRANT_TYPE.replace(':', "%3A"),
        signed.expose()
    );
    std::fs::write(dir.join("form.txt"), form).expect("write form");

    println!("{}", fake.url());
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("count") => println!("{}", fake.requests()),
            Ok(_) => {}
            Err(_) => break,
        }
        let _ = std::io::stdout().flush();
    }
}
