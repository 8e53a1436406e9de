//! Docker's credential-helper wire format: what arrives on stdin and what goes to stdout.
//!
//! Input is parsed the way the reference Go server does it: all lines are joined without
//! separators and trimmed, so a trailing `\n` or `\r\n` makes no difference.

use crate::error::{Error, Result};
use crate::secret::Secret;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;

/// The most stdin we read. Real payloads are a host name or a JSON object holding a token of a
/// few KB; anything larger is a mistake and gets a clear error instead of unbounded memory.
pub const MAX_STDIN: u64 = 1024 * 1024;

/// What Docker's protocol asks of a credential helper (docker-credential-helpers' `Helper`):
/// the four verbs with their input already parsed. [`serve`] does the reading and writing.
pub trait Helper {
    /// The credentials for a server URL (as the client sent it, trimmed).
    fn get(&self, server_url: String) -> Result<Credentials>;
    /// Keep these credentials.
    fn store(&self, credentials: Credentials) -> Result<()>;
    /// Forget what is kept for a server URL.
    fn erase(&self, server_url: String) -> Result<()>;
    /// Server -> username for everything `get` can answer.
    fn list(&self) -> Result<std::collections::BTreeMap<String, String>>;
}

/// One protocol verb end to end: reads `stdin` (except for `list`), builds the helper with
/// `helper` only once the input is read, asks it, and writes the answer, or the one-line error
/// (Docker's canonical texts), to `stdout`. Real errors are repeated on stderr through the
/// log, because Docker never shows a failed `get`'s stdout but passes stderr through. Returns
/// the exit status: 0, 1, or 2 for a usage error. `verb` must be get, store, erase or list.
pub fn serve<H: Helper>(
    verb: &str,
    stdin: impl Read,
    stdout: &mut impl std::io::Write,
    helper: impl FnOnce() -> Result<H>,
) -> u8 {
    // Read stdin first, whatever happens next: the client is writing to it.
    let input = if verb == "list" {
        Ok(String::new())
    } else {
        read_input(stdin)
    };
    let answer = input.and_then(|input| {
        let helper = helper()?;
        match verb {
            "get" => helper.get(server_url(&input)?).map(|c| Some(render_credentials(&c))),
            "store" => helper.store(credentials(&input)?).map(|()| None),
            "erase" => helper.erase(server_url(&input)?).map(|()| None),
            "list" => helper.list().map(|l| Some(render_list(&l))),
            other => Err(Error::Usage(format!("{other:?} is not a protocol verb"))),
        }
    });
    match answer {
        Ok(Some(out)) => {
            // A closed stdout (e.g. `| head -0`) is not worth a panic.
            let _ = writeln!(stdout, "{}", out.trim_end());
            0
        }
        Ok(None) => 0,
        Err(e) => {
            let _ = writeln!(stdout, "{}", crate::terminal::escape(&e.to_string()));
            if !matches!(e, Error::NotFound) {
                crate::log::emit(crate::log::Level::Error, format_args!("{e}"));
            }
            if matches!(e, Error::Usage(_)) { 2 } else { 1 }
        }
    }
}

/// Reads all of stdin (bounded by `MAX_STDIN`) as UTF-8 text.
pub fn read_input(mut reader: impl Read) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .by_ref()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Input(format!("cannot read stdin: {e}")))?;
    if bytes.len() as u64 > MAX_STDIN {
        return Err(Error::Input(format!(
            "stdin is larger than {} KiB; expected a server URL or a small JSON object",
            MAX_STDIN / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|_| Error::Input("stdin is not valid UTF-8".into()))
}

/// Joins the lines of `input` and trims it, like the reference server. A leading byte-order
/// mark (PowerShell's pipes add one) is dropped too: it is never part of a host name.
fn joined(input: &str) -> String {
    input
        .trim_start_matches('\u{feff}')
        .lines()
        .collect::<String>()
        .trim()
        .to_string()
}

/// Extracts the server URL that `get` and `erase` receive. Empty input is Docker's
/// `no credentials server URL`.
pub fn server_url(input: &str) -> Result<String> {
    let url = joined(input);
    if url.is_empty() {
        return Err(Error::MissingServerUrl);
    }
    if url.starts_with('{') {
        return Err(Error::Input(
            "stdin holds JSON, but this verb expects a bare server URL such as registry.onstackit.cloud".into(),
        ));
    }
    Ok(url)
}

/// The credentials Docker hands to `store` and receives from `get`.
#[derive(Debug)]
pub struct Credentials {
    /// The server URL as the client sent it.
    pub server_url: String,
    /// The login name: a service account e-mail or a robot name.
    pub username: String,
    /// The password: an access token or a robot secret.
    pub secret: Secret,
}

/// Parses `store`'s JSON object. Field names match case-insensitively and unknown fields are
/// ignored, as Go's decoder does.
pub fn credentials(input: &str) -> Result<Credentials> {
    let text = joined(input);
    if text.is_empty() {
        return Err(Error::Input(
            "store expects a JSON object {\"ServerURL\",\"Username\",\"Secret\"} on stdin, got nothing".into(),
        ));
    }
    // Never echo serde's message: it can quote the secret.
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
        Error::Input(format!(
            "store expects a JSON object {{\"ServerURL\",\"Username\",\"Secret\"}} on stdin (invalid JSON at line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    let field = |name: &str| -> Result<String> {
        match map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v) {
            None | Some(serde_json::Value::Null) => Ok(String::new()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::Input(format!("store input: {name} must be a string"))),
        }
    };
    let server_url = field("ServerURL")?.trim().to_string();
    let username = field("Username")?;
    let secret = Secret::new(field("Secret")?);
    if server_url.is_empty() {
        return Err(Error::MissingServerUrl);
    }
    if username.is_empty() {
        return Err(Error::MissingUsername);
    }
    Ok(Credentials {
        server_url,
        username,
        secret,
    })
}

/// Renders `get`'s answer: one JSON object and a newline.
pub fn render_credentials(creds: &Credentials) -> String {
    #[derive(Serialize)]
    struct Wire<'a> {
        #[serde(rename = "ServerURL")]
        server_url: &'a str,
        #[serde(rename = "Username")]
        username: &'a str,
        #[serde(rename = "Secret")]
        secret: &'a str,
    }
    let wire = Wire {
        server_url: &creds.server_url,
        username: &creds.username,
        secret: creds.secret.expose(),
    };
    // Room for all of it at once (a token is most of it): growing the buffer by doubling left
    // three copies of the answer on the heap.
    let mut out = Vec::with_capacity(64 + wire.server_url.len() + wire.username.len() + wire.secret.len());
    // Serialising three strings into memory cannot fail, and serde_json writes only UTF-8.
    let _ = serde_json::to_writer(&mut out, &wire);
    String::from_utf8(out).unwrap_or_default()
}

/// Renders `list`'s answer: server -> username.
pub fn render_list(entries: &BTreeMap<String, String>) -> String {
    serde_json::to_string(entries).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper that records what it was asked and answers from a script.
    struct Recorder {
        asked: std::cell::RefCell<Vec<String>>,
        found: bool,
    }

    impl Helper for Recorder {
        fn get(&self, server_url: String) -> Result<Credentials> {
            self.asked.borrow_mut().push(format!("get {server_url}"));
            if !self.found {
                return Err(Error::NotFound);
            }
            Ok(Credentials {
                server_url,
                username: "sa@sa.stackit.cloud".into(),
                secret: crate::Secret::new("t0ken"),
            })
        }
        fn store(&self, c: Credentials) -> Result<()> {
            self.asked
                .borrow_mut()
                .push(format!("store {} {}", c.server_url, c.username));
            Ok(())
        }
        fn erase(&self, server_url: String) -> Result<()> {
            self.asked.borrow_mut().push(format!("erase {server_url}"));
            Ok(())
        }
        fn list(&self) -> Result<BTreeMap<String, String>> {
            self.asked.borrow_mut().push("list".into());
            Ok(BTreeMap::from([("r.example".to_string(), "u".to_string())]))
        }
    }

    fn serve_with(verb: &str, stdin: &str, found: bool) -> (u8, String, Vec<String>) {
        let helper = Recorder {
            asked: Default::default(),
            found,
        };
        let mut out = Vec::new();
        let code = serve(verb, stdin.as_bytes(), &mut out, || Ok(&helper));
        (code, String::from_utf8(out).unwrap(), helper.asked.take())
    }

    impl Helper for &Recorder {
        fn get(&self, u: String) -> Result<Credentials> {
            (*self).get(u)
        }
        fn store(&self, c: Credentials) -> Result<()> {
            (*self).store(c)
        }
        fn erase(&self, u: String) -> Result<()> {
            (*self).erase(u)
        }
        fn list(&self) -> Result<BTreeMap<String, String>> {
            (*self).list()
        }
    }

    #[test]
    fn serve_reads_parses_asks_and_renders_in_one_place() {
        let (code, out, asked) = serve_with("get", "  https://r.example/v2/ \n", true);
        assert_eq!((code, asked), (0, vec!["get https://r.example/v2/".to_string()]));
        assert_eq!(
            out,
            "{\"ServerURL\":\"https://r.example/v2/\",\"Username\":\"sa@sa.stackit.cloud\",\"Secret\":\"t0ken\"}\n"
        );
        assert_eq!(
            serve_with("get", "r.example", false).1,
            "credentials not found in native keychain\n"
        );
        assert_eq!(
            serve_with("get", "", true),
            (1, "no credentials server URL\n".into(), vec![])
        );
        let (code, out, asked) = serve_with(
            "store",
            r#"{"ServerURL":"r.example","Username":"robot$a+b","Secret":"s"}"#,
            true,
        );
        assert_eq!(
            (code, out.as_str(), asked),
            (0, "", vec!["store r.example robot$a+b".to_string()])
        );
        assert_eq!(
            serve_with("store", r#"{"ServerURL":"r.example","Secret":"s"}"#, true).1,
            "no credentials username\n"
        );
        assert_eq!(serve_with("erase", "r.example", true).2, ["erase r.example"]);
        assert_eq!(serve_with("list", "ignored", true).1, "{\"r.example\":\"u\"}\n");
    }

    #[test]
    fn server_url_is_joined_and_trimmed() {
        assert_eq!(server_url("reg.example\n").unwrap(), "reg.example");
        assert_eq!(server_url("  reg.example \r\n").unwrap(), "reg.example");
        assert_eq!(server_url("reg.\nexample").unwrap(), "reg.example");
        assert!(matches!(server_url(" \n\t"), Err(Error::MissingServerUrl)));
        assert!(matches!(server_url("{\"ServerURL\":\"x\"}"), Err(Error::Input(_))));
        assert_eq!(server_url("\u{feff}reg.example\r\n").unwrap(), "reg.example");
        assert!(matches!(server_url("\u{feff}\n"), Err(Error::MissingServerUrl)));
    }

    #[test]
    fn store_input_like_go_decodes_it() {
        let c = credentials(
            "{\"serverurl\":\"r.example\",\"USERNAME\":\"robot$a+b\",\"Secret\":\"\\u003ctok\\u003e\",\"x\":1}\n",
        )
        .unwrap();
        assert_eq!(c.server_url, "r.example");
        assert_eq!(c.username, "robot$a+b");
        assert_eq!(c.secret.expose(), "<tok>");
        assert!(matches!(
            credentials("{\"ServerURL\":\"r\",\"Secret\":\"s\"}"),
            Err(Error::MissingUsername)
        ));
        assert!(matches!(
            credentials("{\"Username\":\"u\"}"),
            Err(Error::MissingServerUrl)
        ));
        assert!(matches!(credentials(""), Err(Error::Input(_))));
    }

    #[test]
    fn invalid_store_json_never_quotes_the_input() {
        let err = credentials("{\"ServerURL\":\"r\",\"Username\":\"u\",\"Secret\":\"topsecret\"").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
        let err = credentials("{\"ServerURL\":\"r\",\"Username\":\"u\",\"Secret\":[\"topsecret\"]}").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn oversized_and_binary_stdin_are_refused() {
        let big = vec![b'a'; (MAX_STDIN + 10) as usize];
        assert!(read_input(&big[..]).unwrap_err().to_string().contains("larger than"));
        assert!(read_input(&[0xff, 0xfe][..]).unwrap_err().to_string().contains("UTF-8"));
    }

    #[test]
    fn get_answer_has_docker_field_names() {
        let c = Credentials {
            server_url: "r".into(),
            username: "u@sa".into(),
            secret: Secret::new("t<>"),
        };
        assert_eq!(
            render_credentials(&c),
            r#"{"ServerURL":"r","Username":"u@sa","Secret":"t<>"}"#
        );
    }
}
