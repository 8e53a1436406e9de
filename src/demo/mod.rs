//! `docker-credential-stackit demo`: the whole flow on this machine, no STACKIT account needed.
//!
//! Starts a small token endpoint of its own ([`endpoint`]) on loopback, writes a throw-away
//! service account key, and runs this very binary's `get` through the protocol twice (cold, then
//! warm), showing what Docker would receive. It fails if the helper misbehaves, so it doubles as
//! a smoke test of an installed binary.

pub mod endpoint;

use crate::error::{Error, Result};
use crate::jwt::jwt_claims;
use endpoint::{DemoAccount, DemoEndpoint};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs the demo, writing each step to `out` (the binary passes stdout).
pub fn run(out: &mut dyn Write) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| failed(&format!("cannot find this binary: {e}")))?;
    let dir = tempfile::tempdir().map_err(|e| failed(&format!("cannot create a temporary directory: {e}")))?;
    say(
        out,
        format_args!(
            "docker-credential-stackit demo: a local stand-in for the STACKIT token endpoint, a throw-away key, the real binary.\n"
        ),
    );
    let account = DemoAccount::generate()?;
    let fake = DemoEndpoint::start(&account).map_err(|e| failed(&format!("cannot start the demo endpoint: {e}")))?;
    let key_path = dir.path().join("sa-key.json");
    write_private(&key_path, account.key_json().expose()).map_err(|e| failed(&format!("cannot write the key: {e}")))?;
    say(out, format_args!("1. demo token endpoint:  {}", fake.url()));
    say(
        out,
        format_args!(
            "   service account key:  {} (RSA-2048, kid {})",
            key_path.display(),
            account.kid
        ),
    );
    say(out, format_args!("   service account:      {}\n", account.email));

    let child = DemoGet {
        exe: &exe,
        home: dir.path(),
        key: &key_path,
        url: fake.url(),
    };
    let first_token = cold_then_warm(out, &child, &fake, &account.email)?;
    if let Some(line) = claims_line(&first_token) {
        say(out, format_args!("{line}\n"));
    }
    unserved_host(out, &child)?;
    say(
        out,
        format_args!("Demo passed: 1 token request for 2 gets; the assertion verified with the key's public half."),
    );
    say(
        out,
        format_args!(
            "Real use: name your key in ~/.stackit/credentials.json and run `docker-credential-stackit configure-docker` (see `docker-credential-stackit help`)."
        ),
    );
    Ok(())
}

/// Writes one line of the demo to `out`.
fn say(out: &mut dyn Write, text: std::fmt::Arguments<'_>) {
    // A closed stdout must not stop the demo's checks.
    let _ = writeln!(out, "{text}");
}

/// The error for a demo step that went wrong.
fn failed(what: &str) -> Error {
    Error::Io(format!("demo failed: {what}"))
}

/// Steps 2 and 3: a cold `get` that asks the endpoint, then a warm one that must be answered
/// from the cache with the same token. Returns that token.
fn cold_then_warm(out: &mut dyn Write, child: &DemoGet<'_>, fake: &DemoEndpoint, email: &str) -> Result<String> {
    let mut first_token = String::new();
    for (step, label) in [
        (2, "cold: no cached token, one request to the endpoint"),
        (3, "warm: served from the cache, no network"),
    ] {
        say(
            out,
            format_args!("{step}. $ printf registry.onstackit.cloud | docker-credential-stackit get      # {label}"),
        );
        let (ok, stdout, ms) = child.get("registry.onstackit.cloud")?;
        let (answer, secret) = checked_answer(ok, &stdout, email)?;
        let secret = secret.as_str();
        if first_token.is_empty() {
            first_token = secret.to_string();
        } else if first_token != secret {
            return Err(failed("the warm get did not reuse the cached token"));
        }
        let shown = abbreviated(secret);
        say(
            out,
            format_args!(
                "   Docker receives: {{\"ServerURL\":{},\"Username\":{},\"Secret\":\"{shown}\"}}",
                answer["ServerURL"], answer["Username"]
            ),
        );
        say(
            out,
            format_args!("   took {ms:.1} ms; token requests so far: {}\n", fake.requests()),
        );
    }
    if fake.requests() != 1 {
        return Err(failed(&format!(
            "expected exactly 1 token request, saw {}",
            fake.requests()
        )));
    }
    Ok(first_token)
}

/// Step 4: a host the helper does not serve gets Docker's "not found", so Docker goes on
/// anonymously.
fn unserved_host(out: &mut dyn Write, child: &DemoGet<'_>) -> Result<()> {
    say(
        out,
        format_args!("4. $ printf docker.io | docker-credential-stackit get      # a host this helper does not serve"),
    );
    let (ok, stdout, _) = child.get("docker.io")?;
    if ok || stdout != "credentials not found in native keychain" {
        return Err(failed(&format!("expected not-found for docker.io, got: {stdout}")));
    }
    say(
        out,
        format_args!("   stdout: {stdout}   (exit 1; Docker goes on anonymously)\n"),
    );
    Ok(())
}

/// The answer of a demo `get` and its secret, if it is what Docker must receive: success,
/// JSON, the service account's e-mail as the username and a non-empty secret.
fn checked_answer(ok: bool, out: &str, email: &str) -> Result<(serde_json::Value, String)> {
    let answer: serde_json::Value =
        serde_json::from_str(out).map_err(|_| failed(&format!("get did not answer JSON: {out}")))?;
    let secret = answer["Secret"].as_str().unwrap_or("").to_string();
    if !ok || answer["Username"] != email || secret.is_empty() {
        return Err(failed(&format!("unexpected answer: {out}")));
    }
    Ok((answer, secret))
}

/// A token shortened for the screen: its start and end, and its length.
fn abbreviated(secret: &str) -> String {
    format!(
        "{}…{} ({} bytes)",
        &secret[..secret.len().min(24)],
        &secret[secret.len().saturating_sub(8)..],
        secret.len()
    )
}

/// What the access token says about itself, when it is a JWT.
fn claims_line(token: &str) -> Option<String> {
    let claims = jwt_claims(token)?;
    Some(format!(
        "   the access token is a JWT: email={} sub={}, expires {}",
        claims["email"],
        claims["sub"],
        claims["exp"]
            .as_u64()
            .map_or_else(|| "(no exp claim)".into(), crate::clock::utc_time)
    ))
}

/// One `get` of this very binary, as Docker would run it, in the demo's world.
struct DemoGet<'a> {
    exe: &'a Path,
    home: &'a Path,
    key: &'a Path,
    url: String,
}

impl DemoGet<'_> {
    /// Runs `get` for `host`: whether it succeeded, its stdout, and how long it took (ms).
    fn get(&self, host: &str) -> Result<(bool, String, f64)> {
        let started = Instant::now();
        // A cleared environment plus exactly what the demo sets: none of the caller's
        // variables (a CI job's or a pod's federated identity, a proxy, a config file, a
        // timeout) may change where anything is sent or which identity answers.
        let mut child = Command::new(self.exe)
            .arg("get")
            .env_clear()
            .env("HOME", self.home)
            .env("STACKIT_SERVICE_ACCOUNT_KEY_PATH", self.key)
            .env("STACKIT_TOKEN_BASEURL", &self.url)
            .env("DOCKER_CREDENTIAL_STACKIT_CACHE_DIR", self.home.join("cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| failed(&format!("cannot run {}: {e}", self.exe.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(host.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| failed(&e.to_string()))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            started.elapsed().as_secs_f64() * 1000.0,
        ))
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(text.as_bytes())
}
