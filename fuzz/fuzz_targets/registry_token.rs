//! Registry bearer tokens (`Grants::from_token`) and scopes. Input: a scope line, then the token.
#![no_main]

use docker_credential_stackit::validate::{self, Grants, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (scope, token) = text.split_once('\n').unwrap_or(("repository:shop/app:pull,push", text));
    let _ = validate::needs_for_scope(scope);
    let scopes = Scope::parse_all(scope);
    match Grants::from_token(token) {
        Ok(grants) => {
            for s in &scopes {
                let _ = validate::missing_actions(&grants, s);
                let _ = validate::check_grants(&grants, s);
                let _ = s.render();
            }
        }
        Err(e) => {
            let _ = e.to_finding();
        }
    }
});
