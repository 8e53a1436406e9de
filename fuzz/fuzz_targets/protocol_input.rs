//! stdin of `get`/`erase`/`store`: bounded read, server URL extraction, `store`'s JSON.
#![no_main]

use docker_credential_stackit::protocol;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = protocol::read_input(data) else {
        return;
    };
    if let Ok(url) = protocol::server_url(&text) {
        assert!(!url.is_empty() && url.trim() == url, "{url:?}");
        assert!(!url.starts_with('{'));
    }
    match protocol::credentials(&text) {
        Ok(c) => {
            assert!(!c.server_url.is_empty() && !c.username.is_empty());
            // The answer `get` would render is one line of JSON.
            let out = protocol::render_credentials(&c);
            assert!(!out.contains('\n'));
            assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "one-line error: {e}"),
    }
});
