//! The fake Harbor itself, since the end-to-end tests rely on it behaving like Harbor and on
//! its tokens being what a distribution registry accepts.

use crate::support::harbor::{FakeHarbor, HarborConfig, http_get, project_robot};
use crate::support::*;
use base64::Engine;
use serde_json::Value;
use std::sync::Arc;

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A STACKIT access token for the test account, straight from the fake endpoint.
fn access_token(env: &TestEnv) -> String {
    env.cmd(&["token"]).stdout_any().run().stdout.trim().to_string()
}

fn token_claims(harbor: &FakeHarbor, body: &str) -> (Value, Value) {
    let v: Value = serde_json::from_str(body).unwrap();
    let jwt = v["token"].as_str().unwrap();
    assert_eq!(v["access_token"], jwt);
    assert!(v["expires_in"].as_u64().unwrap() >= 60);
    assert!(v["issued_at"].as_str().unwrap().ends_with('Z'));
    harbor
        .verify_registry_token(jwt)
        .expect("the fake verifies its own tokens")
}

#[test]
fn registry_tokens_have_the_shape_distribution_needs() {
    let stackit = Arc::new(fake());
    let harbor = FakeHarbor::with_stackit(stackit.clone());
    harbor.add_robot(project_robot("shop", "ci", &["push"]), "Secret123");
    harbor.link("robot$shop+ci", &sa().iss, &sa().sub);
    let token = access_token(&TestEnv::with_key(&stackit));

    let url = format!(
        "{}?service=harbor-registry&scope=repository:shop/app:pull&scope=repository:shop/lib:push%20repository:other/x:pull%20registry:catalog:*",
        harbor.realm()
    );
    let (status, body, _) = http_get(&url, Some(&basic(&sa().iss, &token)));
    assert_eq!(status, 200, "{body}");
    let (header, claims) = token_claims(&harbor, &body);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5c"].as_array().unwrap().len(), 1);
    assert!(header.get("kid").is_none_or(Value::is_null), "{header}");
    assert_eq!(claims["aud"], "harbor-registry", "aud is a string");
    assert_eq!(claims["iss"], "harbor-token-issuer");
    assert_eq!(claims["sub"], sa().iss);
    assert!(claims["exp"].as_u64().unwrap() > claims["nbf"].as_u64().unwrap());
    // Requested actions are ignored: everything permitted is granted, per repository; push
    // implies pull for this project robot; unknown projects and the catalog get nothing.
    assert_eq!(
        claims["access"],
        serde_json::json!([
            {"type": "repository", "name": "shop/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "shop/lib", "actions": ["pull", "push"]},
            {"type": "repository", "name": "other/x", "actions": []},
            {"type": "registry", "name": "catalog", "actions": []},
        ])
    );
    // The x5c certificate is the one to trust.
    let cert = base64::engine::general_purpose::STANDARD
        .decode(header["x5c"][0].as_str().unwrap())
        .unwrap();
    let pem_body: String = harbor.cert_pem().lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(
        cert,
        base64::engine::general_purpose::STANDARD.decode(pem_body).unwrap()
    );
    assert_eq!(harbor.libtrust_kid().split(':').count(), 12);

    let jwt = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, _) = http_get(&format!("{}/v2/", harbor.url()), Some(&format!("Bearer {jwt}")));
    assert_eq!(status, 200);
}

#[test]
fn harbor_login_semantics() {
    let stackit = Arc::new(fake());
    let harbor = FakeHarbor::with_stackit(stackit.clone());
    harbor.add_robot(project_robot("shop", "ci", &["pull"]), "Secret123");
    let realm = harbor.realm();
    let scoped = format!("{realm}?service=harbor-registry&scope=repository%3Ashop%2Fapp%3Apull");

    let (status, _, headers) = http_get(&format!("{}/v2/", harbor.url()), None);
    assert_eq!(status, 401);
    let challenge = &headers.iter().find(|(k, _)| k == "www-authenticate").unwrap().1;
    assert_eq!(
        challenge,
        &format!("Bearer realm=\"{realm}\",service=\"harbor-registry\"")
    );

    // Unlinked robot: its secret works; a wrong one is 401 without scope, anonymous with.
    assert_eq!(http_get(&realm, Some(&basic("robot$shop+ci", "Secret123"))).0, 200);
    assert_eq!(http_get(&realm, Some(&basic("robot$shop+ci", "wrong"))).0, 401);
    assert_eq!(http_get(&realm, None).0, 401);
    let (status, body, _) = http_get(&scoped, Some(&basic("robot$shop+ci", "wrong")));
    assert_eq!(status, 200);
    let (_, claims) = token_claims(&harbor, &body);
    assert_eq!(claims["sub"], "");
    assert_eq!(claims["access"][0]["actions"], serde_json::json!([]));
    harbor.set_strict(true);
    assert_eq!(http_get(&scoped, Some(&basic("robot$shop+ci", "wrong"))).0, 401);
    harbor.set_strict(false);

    // A public project lets anyone pull.
    harbor.set_public("shop", true);
    let (_, body, _) = http_get(&scoped, None);
    assert_eq!(
        token_claims(&harbor, &body).1["access"][0]["actions"],
        serde_json::json!(["pull"])
    );
    harbor.set_public("shop", false);

    // Linked: the secret stops working and the SA e-mail + access token log in.
    let token = access_token(&TestEnv::with_key(&stackit));
    assert_eq!(
        http_get(&realm, Some(&basic(&sa().iss, &token))).0,
        401,
        "not linked yet"
    );
    harbor.link("robot$shop+ci", &sa().iss, &sa().sub);
    assert_eq!(http_get(&realm, Some(&basic("robot$shop+ci", "Secret123"))).0, 401);
    assert_eq!(http_get(&realm, Some(&basic(&sa().iss, &token))).0, 200);
    assert_eq!(
        http_get(&realm, Some(&basic(&accounts()[1].iss, &token))).0,
        401,
        "token of another SA"
    );
    assert_eq!(http_get(&realm, Some(&basic(&sa().iss, "not-a-token"))).0, 401);

    // Unlinked again with a rotated secret.
    harbor.unlink("robot$shop+ci");
    let secret = harbor.rotate_secret("robot$shop+ci");
    assert_eq!(http_get(&realm, Some(&basic("robot$shop+ci", "Secret123"))).0, 401);
    assert_eq!(http_get(&realm, Some(&basic("robot$shop+ci", &secret))).0, 200);

    let rejected: Vec<_> = harbor
        .requests()
        .into_iter()
        .filter(|r| r.principal.starts_with("rejected"))
        .collect();
    assert!(
        rejected.iter().any(|r| r.principal.contains("is linked")),
        "{rejected:?}"
    );
    assert!(harbor.token_requests() >= 12);
}

#[test]
fn harbor_api_answers_robots_only_what_they_may_see() {
    let harbor = FakeHarbor::start(HarborConfig::default(), None);
    let id = harbor.add_robot(project_robot("shop", "ci", &["pull"]), "Secret123");
    let auth = basic("robot$shop+ci", "Secret123");
    let api = format!("{}/api/v2.0", harbor.url());

    assert_eq!(http_get(&format!("{api}/projects/shop"), None).0, 401);
    let (status, body, _) = http_get(&format!("{api}/projects/shop"), Some(&auth));
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["project_id"], 1);
    let (_, body, _) = http_get(
        &format!("{api}/users/current/permissions?scope=/project/1&relative=true"),
        Some(&auth),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        serde_json::json!([{"resource": "repository", "action": "pull"}])
    );
    assert_eq!(http_get(&format!("{api}/users/current"), Some(&auth)).0, 412);
    assert_eq!(
        http_get(&format!("{api}/robots?q=Level%3Dproject%2CProjectID%3D1"), Some(&auth)).0,
        403
    );
    // The robot itself is readable by id, with the link fields.
    let (status, body, _) = http_get(&format!("{api}/robots/{id}"), Some(&auth));
    assert_eq!(status, 200);
    let robot: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(robot["service_account_email"], Value::Null);

    harbor.update_robot("robot$shop+ci", |r| {
        r.permissions[0]
            .access
            .push(docker_credential_stackit::validate::Access {
                resource: "robot".into(),
                action: "list".into(),
                ..Default::default()
            })
    });
    let (status, body, headers) = http_get(&format!("{api}/robots?q=Level%3Dproject%2CProjectID%3D1"), Some(&auth));
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().len(),
        1
    );
    assert!(headers.contains(&("x-total-count".into(), "1".into())));
    assert_eq!(
        http_get(&format!("{api}/robots"), Some(&auth)).0,
        403,
        "no system robot:list"
    );

    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("token.crt");
    let config = harbor.distribution_config("127.0.0.1:5999", &dir.path().join("data"), &cert);
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), harbor.cert_pem());
    assert!(config.contains(&format!("realm: {}", harbor.realm())), "{config}");
    assert!(config.contains("service: harbor-registry") && config.contains("issuer: harbor-token-issuer"));
}
