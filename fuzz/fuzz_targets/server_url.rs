//! Server URL normalisation: never panics, idempotent, and only maps text that contains the
//! served host onto it.
#![no_main]

use docker_credential_stackit::server_url::{self, DEFAULT_REGISTRY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = server_url::is_loopback(s);
    let Some(key) = server_url::normalize(s) else {
        return;
    };
    assert_eq!(server_url::normalize(&key).as_deref(), Some(key.as_str()), "idempotent for {s:?}");
    assert!(!key.contains(['/', '@', '?', '#', '\\', ' ']) && key == key.to_ascii_lowercase(), "{key:?}");
    if key == DEFAULT_REGISTRY {
        assert!(s.to_ascii_lowercase().contains(DEFAULT_REGISTRY), "{s:?}");
    }
});
