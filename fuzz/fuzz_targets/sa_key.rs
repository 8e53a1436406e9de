//! The service account key JSON (`ServiceAccountKey::parse`) and PEM private keys.
#![no_main]

use docker_credential_stackit::{Secret, key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match key::ServiceAccountKey::parse(text, "FUZZ_KEY") {
        Ok(k) => assert!(!k.kid.is_empty() && !k.iss.is_empty() && !k.sub.is_empty() && !k.aud.is_empty()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("FUZZ_KEY") && !msg.contains('\n'), "{msg}");
        }
    }
    if text.contains("-----BEGIN") {
        let _ = key::signing_key(&Secret::new(text), "FUZZ_PEM");
    }
});
