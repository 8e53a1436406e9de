//! The kubelet's CredentialProviderRequest on stdin.
#![no_main]

use docker_credential_stackit::kubelet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match kubelet::parse_request(text) {
        Ok(request) => {
            assert!(!request.image.is_empty());
            let _ = kubelet::registry_of(&request.image);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "one-line error: {e}"),
    }
});
