//! No secret ever appears in stderr or in an error line, whatever goes wrong, at debug level.

use crate::support::*;
use docker_credential_stackit::fake::Reply;
use serde_json::json;

/// Runs many scenarios with `DOCKER_CREDENTIAL_STACKIT_LOG=debug` and collects every output
/// that is not a deliberate secret answer, then searches it for every secret involved.
#[test]
fn secrets_never_leak_into_diagnostics_or_errors() {
    let fake = fake();
    let mut diagnostics = Vec::new();
    let mut secrets: Vec<String> = vec![];
    let pem = sa().key.pkcs8_pem().expose().to_string();
    // The base64 body lines of the private key, any of which would be a leak.
    secrets.extend(
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
            .map(str::to_string),
    );
    secrets.push("robot-secret-Xy9".into());

    let base = || TestEnv::with_key(&fake).var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    let mut run = |out: Output, stdout_is_secret: bool| {
        if out.code == 0 && stdout_is_secret && !out.stdout.starts_with('{') {
            secrets.push(out.stdout.trim().to_string());
        } else if out.code == 0 && stdout_is_secret {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
                && let Some(s) = v["Secret"].as_str()
            {
                secrets.push(s.to_string());
            }
        } else {
            diagnostics.push(out.stdout.clone());
        }
        diagnostics.push(out.stderr);
    };

    let env = base();
    run(env.get("registry.onstackit.cloud"), true);
    run(env.get("registry.onstackit.cloud"), true);
    run(env.cmd(&["list"]).run(), false);
    run(env.cmd(&["token"]).run(), true);
    run(env.cmd(&["erase"]).stdin("registry.onstackit.cloud").run(), false);

    // Failures of every kind.
    fake.script([Reply::Status(400, "echo of your assertion follows".into(), vec![])]);
    run(base().get("registry.onstackit.cloud"), false);
    fake.script([Reply::Status(500, "x".into(), vec![]), Reply::Close]);
    run(
        base()
            .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
            .get("registry.onstackit.cloud"),
        true,
    );
    run(
        base()
            .var("STACKIT_PRIVATE_KEY", &pem.replace("MII", "XXX"))
            .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
            .get("registry.onstackit.cloud"),
        false,
    );
    run(
        base()
            .var("STACKIT_PRIVATE_KEY", accounts()[1].key.pkcs8_pem().expose())
            .var("DOCKER_CREDENTIAL_STACKIT_NO_CACHE", "1")
            .get("registry.onstackit.cloud"),
        false,
    );
    let broken =
        json!({"credentials": {"kid": "k", "iss": "i", "sub": "s", "aud": "a", "privateKey": ["nested", pem.clone()]}});
    run(
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &broken.to_string())
            .get("registry.onstackit.cloud"),
        false,
    );
    run(
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &pem)
            .get("registry.onstackit.cloud"),
        false,
    );
    run(
        base()
            .unset("STACKIT_SERVICE_ACCOUNT_KEY_PATH")
            .var("STACKIT_SERVICE_ACCOUNT_KEY", &format!("{{\"credentials\": {pem:?}"))
            .get("registry.onstackit.cloud"),
        false,
    );

    // Robot secrets through store, get, list, erase and a malformed store.
    let robots = TestEnv::empty().var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug");
    let robot = json!({"ServerURL": "registry.onstackit.cloud", "Username": "robot$x", "Secret": "robot-secret-Xy9"})
        .to_string();
    run(robots.cmd(&["store"]).stdin(&robot).run(), false);
    run(robots.get("registry.onstackit.cloud"), true);
    run(robots.cmd(&["list"]).run(), false);
    run(robots.cmd(&["store"]).stdin(&robot[..robot.len() - 1]).run(), false);
    run(
        robots
            .cmd(&["store"])
            .stdin(robot.replace("\"robot-secret-Xy9\"", "[\"robot-secret-Xy9\"]"))
            .run(),
        false,
    );
    run(
        TestEnv::with_key(&fake)
            .var("DOCKER_CREDENTIAL_STACKIT_LOG", "debug")
            .cmd(&["store"])
            .stdin(&robot)
            .run(),
        false,
    );

    assert!(secrets.len() > 10, "the scan has material to look for");
    let all = diagnostics.join("\n");
    assert!(all.contains("debug:"), "the scan covered debug output");
    for s in &secrets {
        assert!(!s.is_empty());
        assert!(
            !all.contains(s.as_str()),
            "secret {}… leaked into:\n{all}",
            &s[..s.len().min(12)]
        );
    }
}
