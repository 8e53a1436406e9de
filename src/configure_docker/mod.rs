//! `configure-docker`: point Docker (and, with `--containers`, podman, buildah and skopeo) at this
//! helper by editing `credHelpers` in their JSON config files, safely and without prompting.
//!
//! The edit mirrors how docker/cli saves its own config (`configfile/file.go`): a temporary file
//! in the target's directory, the old file's owner and mode copied onto it, then a rename over the
//! symlink-resolved target, so a symlinked config stays a symlink and no reader ever sees half a
//! file. Everything the helper does not own (unknown keys, their order, other helpers, `auths`)
//! is carried over unchanged; serde_json's `preserve_order` feature keeps the key order.

use crate::config::{Env, Settings};
use crate::error::{Error, Result};
use crate::server_url;
use crate::warn;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fs::Metadata;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The name Docker appends to `docker-credential-` to find this binary.
pub const HELPER_NAME: &str = "stackit";

/// The binary Docker runs for [`HELPER_NAME`].
pub const BINARY: &str = "docker-credential-stackit";

/// Docker and containers/image both write their files with tab indentation; new files match.
const DEFAULT_INDENT: &[u8] = b"\t";
/// Auth files larger than this are not edited (real ones are a few KiB).
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// Usage of `configure-docker`, printed by `configure-docker --help`.
pub const USAGE: &str = "\
Usage: docker-credential-stackit configure-docker [--registry HOST]... [--dry-run] [--unconfigure]
                                                  [--containers] [--remove-stale-auths]

Maps each served registry host to the stackit helper in the credHelpers of
$DOCKER_CONFIG/config.json (default ~/.docker/config.json), creating the file if needed.
Everything else in the file is kept, including key order, mode, owner and symlinks.

Options:
  --registry HOST       configure only HOST (repeatable); default: every served host
  --dry-run             print the diff that would be applied; change nothing
  --unconfigure         remove the stackit credHelpers entries instead (without --registry:
                        every entry that names stackit)
  --containers          also edit the containers auth file used by podman, buildah and skopeo
                        ($REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json)
  --remove-stale-auths  delete auths entries that hold a stored secret for a configured host
  -h, --help            print this help
";

/// The parsed command line of `configure-docker`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    /// Hosts from `--registry`, normalised to `host[:port]`; empty means "every served host"
    /// (or, with `--unconfigure`, "every entry that names stackit").
    pub registries: Vec<String>,
    /// Print the diff instead of writing.
    pub dry_run: bool,
    /// Remove entries instead of adding them.
    pub unconfigure: bool,
    /// Also edit the containers auth file.
    pub containers: bool,
    /// Delete `auths` entries holding a stored secret for a configured host.
    pub remove_stale_auths: bool,
    /// Print [`USAGE`] and do nothing else.
    pub help: bool,
}

impl Options {
    /// Parses the arguments after `configure-docker`. Errors are [`Error::Usage`] (exit status 2).
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut opts = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let host = match arg.as_str() {
                "--registry" => Some(
                    args.next()
                        .ok_or_else(|| Error::Usage("--registry needs a HOST argument".into()))?
                        .as_str(),
                ),
                a if a.starts_with("--registry=") => Some(&a["--registry=".len()..]),
                "--dry-run" => {
                    opts.dry_run = true;
                    None
                }
                "--unconfigure" => {
                    opts.unconfigure = true;
                    None
                }
                "--containers" => {
                    opts.containers = true;
                    None
                }
                "--remove-stale-auths" => {
                    opts.remove_stale_auths = true;
                    None
                }
                "-h" | "--help" => {
                    opts.help = true;
                    None
                }
                other => {
                    return Err(Error::Usage(format!(
                        "configure-docker: unknown argument {other:?}; see configure-docker --help"
                    )));
                }
            };
            if let Some(host) = host {
                let norm = server_url::normalize(host)
                    .ok_or_else(|| Error::Usage(format!("--registry {host:?} is not a registry host[:port]")))?;
                if !opts.registries.contains(&norm) {
                    opts.registries.push(norm);
                }
            }
        }
        Ok(opts)
    }
}

/// Which client a file belongs to: it decides the default path and which warnings apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Docker's `config.json`.
    Docker,
    /// The containers/image auth file read by podman, buildah, skopeo and CRI-O.
    Containers,
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as docker/cli resolves it.
pub fn docker_config_path(env: &Env) -> Result<PathBuf> {
    let dir = env.os("DOCKER_CONFIG").map(PathBuf::from);
    config_path_in(dir.as_deref(), env.home()).ok_or_else(|| {
        Error::Config("cannot find the home directory for ~/.docker/config.json; set HOME or DOCKER_CONFIG".into())
    })
}

/// Docker's config file given `$DOCKER_CONFIG` and the home directory; `None` without either.
pub fn config_path_in(docker_config: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    match (docker_config, home) {
        (Some(dir), _) => Some(dir.join("config.json")),
        (None, Some(home)) => Some(home.join(".docker").join("config.json")),
        (None, None) => None,
    }
}

/// The first executable [`BINARY`] in the `PATH` value `path`: the one Docker will run.
pub fn find_on_path(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let name = format!("{BINARY}{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(&name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// `$REGISTRY_AUTH_FILE`, else `${XDG_RUNTIME_DIR}/containers/auth.json`: the file podman
/// writes on `podman login` and reads first.
pub fn containers_auth_path(env: &Env) -> Result<PathBuf> {
    if let Some(file) = env.os("REGISTRY_AUTH_FILE") {
        return Ok(PathBuf::from(file));
    }
    if let Some(dir) = env.os("XDG_RUNTIME_DIR") {
        return Ok(PathBuf::from(dir).join("containers").join("auth.json"));
    }
    Err(Error::Config(
        "--containers: neither REGISTRY_AUTH_FILE nor XDG_RUNTIME_DIR is set; set REGISTRY_AUTH_FILE to the containers auth file (e.g. ~/.config/containers/auth.json)".into(),
    ))
}

/// What to change in one document.
#[derive(Debug, Clone)]
pub struct Request {
    /// Hosts to map to stackit (configure) or to unmap (unconfigure).
    pub hosts: Vec<String>,
    /// Remove entries instead of adding them.
    pub unconfigure: bool,
    /// With `unconfigure` and no hosts: remove every entry that names stackit.
    pub all_stackit: bool,
    /// Delete `auths` entries holding a stored secret for a configured host.
    pub remove_stale_auths: bool,
    /// Which client the file belongs to.
    pub kind: Kind,
}

/// What [`edit`] did to a document, in words for stdout and stderr.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Edit {
    /// One line per change, e.g. `credHelpers["h"] = "stackit" (added)`.
    pub changes: Vec<String>,
    /// Things the user should know about but that were not changed.
    pub warnings: Vec<String>,
    /// The hosts the request was about (for the "nothing changed" message).
    pub hosts: Vec<String>,
}

/// Applies `req` to a parsed config document. `file` only names the file in messages.
///
/// New `credHelpers` entries are appended after the existing ones; removals keep the order of
/// what is left, so a file's layout survives a configure/unconfigure round trip.
pub fn edit(doc: &mut Map<String, Value>, req: &Request, file: &Path) -> Result<Edit> {
    let mut out = Edit::default();
    if req.unconfigure {
        remove_helpers(doc, req, &mut out, file)?;
    } else if !req.hosts.is_empty() {
        add_helpers(doc, req, &mut out, file)?;
    }
    let hosts = out.hosts.clone();
    stale_auths(doc, req, &hosts, &mut out, file);
    Ok(out)
}

/// The error for a `credHelpers` (or other) member that is not a JSON object.
fn not_object(file: &Path, what: &str, v: &Value) -> Error {
    Error::Config(format!(
        "{}: {what} is {}, not an object; fix it by hand (nothing was changed)",
        file.display(),
        json_kind(v)
    ))
}

/// Removes our `credHelpers` entries (the requested hosts, or every one naming us).
fn remove_helpers(doc: &mut Map<String, Value>, req: &Request, out: &mut Edit, file: &Path) -> Result<()> {
    let name = file.display();
    match doc.get_mut("credHelpers") {
        Some(Value::Object(helpers)) => {
            let targets: Vec<String> = if req.all_stackit {
                helpers
                    .iter()
                    .filter(|(_, v)| v.as_str() == Some(HELPER_NAME))
                    .map(|(k, _)| k.clone())
                    .collect()
            } else {
                req.hosts.clone()
            };
            for host in targets {
                match helpers.get(&host) {
                    Some(v) if v.as_str() == Some(HELPER_NAME) => {
                        // shift_remove, not remove: with preserve_order, remove() swaps the
                        // last entry into the hole and reorders the user's file.
                        helpers.shift_remove(&host);
                        out.changes
                            .push(format!("credHelpers[\"{host}\"] removed (was \"{HELPER_NAME}\")"));
                    }
                    Some(other) => out.warnings.push(format!(
                        "{name}: credHelpers[\"{host}\"] is {other}, not \"{HELPER_NAME}\"; left alone"
                    )),
                    None => {}
                }
                out.hosts.push(host);
            }
            // An emptied credHelpers means the same to Docker as none; drop it so that
            // configure followed by unconfigure gives back the original document.
            if helpers.is_empty() && !out.changes.is_empty() {
                doc.shift_remove("credHelpers");
                out.changes.push("credHelpers removed (now empty)".into());
            }
        }
        Some(other) => return Err(not_object(file, "credHelpers", other)),
        None if !req.all_stackit => out.hosts = req.hosts.clone(),
        None => {}
    }
    Ok(())
}

/// Points `credHelpers` at us for each requested host, saying what each entry was.
fn add_helpers(doc: &mut Map<String, Value>, req: &Request, out: &mut Edit, file: &Path) -> Result<()> {
    let name = file.display();
    let helpers = match doc.entry("credHelpers").or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(m) => m,
        other => return Err(not_object(file, "credHelpers", other)),
    };
    for host in &req.hosts {
        match helpers.get(host) {
            Some(v) if v.as_str() == Some(HELPER_NAME) => {}
            Some(old) => {
                let old = old.to_string();
                helpers.insert(host.clone(), Value::String(HELPER_NAME.into()));
                out.changes
                    .push(format!("credHelpers[\"{host}\"] = \"{HELPER_NAME}\" (was {old})"));
            }
            None => {
                helpers.insert(host.clone(), Value::String(HELPER_NAME.into()));
                out.changes
                    .push(format!("credHelpers[\"{host}\"] = \"{HELPER_NAME}\" (added)"));
            }
        }
        out.hosts.push(host.clone());
    }
    if req.kind == Kind::Docker
        && let Some(store) = doc.get("credsStore").and_then(Value::as_str).filter(|s| !s.is_empty())
    {
        out.warnings.push(format!(
            "{name} also sets credsStore \"{store}\"; it keeps answering for every registry not listed in credHelpers"
        ));
    }
    Ok(())
}

/// Finds (and with `remove_stale_auths` deletes) `auths` entries that hold a stored secret for
/// one of `hosts`. Docker's own empty `{}` entries (kept after a helper `store`) are left alone.
fn stale_auths(doc: &mut Map<String, Value>, req: &Request, hosts: &[String], out: &mut Edit, file: &Path) {
    let Some(Value::Object(auths)) = doc.get_mut("auths") else {
        return;
    };
    let stale: Vec<(String, String)> = auths
        .iter()
        .filter(|(_, entry)| holds_secret(entry))
        .filter_map(|(key, _)| {
            let host = server_url::normalize(key)?;
            hosts.contains(&host).then(|| (key.clone(), host))
        })
        .collect();
    for (key, host) in stale {
        if req.remove_stale_auths {
            auths.shift_remove(&key);
            out.changes
                .push(format!("auths[\"{key}\"] removed (a stored secret for {host})"));
        } else if req.unconfigure {
            out.warnings.push(format!(
                "{}: auths[\"{key}\"] holds a stored secret for {host}; without the credHelpers entry clients will send it again. Delete it with --remove-stale-auths if it is stale",
                file.display()
            ));
        } else {
            let login = match req.kind {
                Kind::Docker => "docker login",
                Kind::Containers => "podman login",
            };
            out.warnings.push(format!(
                "{}: auths[\"{key}\"] still holds a stored secret for {host}, unused now that credHelpers answers for it. Delete it with --remove-stale-auths (if it is an unlinked robot's secret, run {login} {host} afterwards so the helper keeps it)",
                file.display()
            ));
        }
    }
}

/// The fields of an `auths` entry that hold a secret (docker/cli and containers/image).
const SECRET_FIELDS: [&str; 4] = ["auth", "password", "identitytoken", "registrytoken"];

/// What a dry run prints in place of a secret value.
const REDACTED: &str = "\"<redacted>\"";

/// True for an `auths` entry with a non-empty secret field (docker/cli and containers/image).
fn holds_secret(entry: &Value) -> bool {
    SECRET_FIELDS
        .iter()
        .any(|f| entry.get(f).and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One file, read, parsed and edited in memory, ready to be written.
#[derive(Debug)]
struct Prepared {
    /// The path as configured (possibly a symlink), for messages.
    path: PathBuf,
    /// The symlink-resolved file that is actually written.
    target: PathBuf,
    /// The file's text before the edit; `None` if it does not exist.
    old: Option<String>,
    /// The file's text after the edit.
    new: String,
    /// The old file's metadata, whose owner and mode the new file keeps.
    meta: Option<Metadata>,
    edit: Edit,
}

/// Follows symlinks one hop at a time (at most 40, like the kernel) so a dangling link still
/// yields the path of the file to create.
fn resolve_symlinks(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&current)
                    .map_err(|e| Error::Io(format!("cannot read the symlink {}: {e}", current.display())))?;
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Error::Io(format!(
        "{}: too many levels of symbolic links; fix the link",
        path.display()
    )))
}

/// Reads and edits one file without writing it. Any problem here leaves every file untouched.
fn prepare(path: &Path, req: &Request) -> Result<Option<Prepared>> {
    let target = resolve_symlinks(path)?;
    let (old, meta) = match std::fs::metadata(&target) {
        Ok(meta) if !meta.is_file() => {
            return Err(Error::Io(format!(
                "{} is not a regular file; nothing was changed",
                target.display()
            )));
        }
        Ok(meta) => {
            let unreadable =
                |why: String| Error::Io(format!("cannot read {}: {why}; nothing was changed", target.display()));
            let deadline = std::time::Instant::now() + crate::config::DEFAULT_TIMEOUT;
            let text = crate::fs::read_text_file(&target, MAX_FILE, deadline)
                .map_err(|e| unreadable(e.reason_for("Docker config")))?;
            (Some(text), Some(meta))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => {
            return Err(Error::Io(format!(
                "cannot inspect {}: {}",
                target.display(),
                crate::fs::io_reason(&e)
            )));
        }
    };
    // Unconfiguring a file that does not exist has nothing to do; do not create it.
    if old.is_none() && req.unconfigure {
        return Ok(None);
    }
    let text = old.as_deref().unwrap_or("");
    // docker/cli accepts an empty file as an empty config (json.Decoder returns io.EOF).
    let mut doc = if text.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                return Err(Error::Config(format!(
                    "{} holds {}, not a JSON object; fix it by hand (nothing was changed)",
                    path.display(),
                    json_kind(&other)
                )));
            }
            // serde_json's messages name the position and the expected token, never the content,
            // so no secret from `auths` can leak into the error.
            Err(e) => {
                return Err(Error::Config(format!(
                    "{} is not valid JSON ({e}); fix it by hand (nothing was changed)",
                    path.display()
                )));
            }
        }
    };
    let edit = edit(&mut doc, req, path)?;
    let indent = detect_indent(text);
    // Keep the file's final newline (or its absence); new files get one.
    let newline = old.as_deref().is_none_or(|t| t.ends_with('\n') || t.trim().is_empty());
    let new = render(&Value::Object(doc), &indent, newline)?;
    Ok(Some(Prepared {
        path: path.to_path_buf(),
        target,
        old,
        new,
        meta,
        edit,
    }))
}

/// The indentation of the first indented line, so a file indented with spaces stays that way.
fn detect_indent(text: &str) -> Vec<u8> {
    text.lines()
        .skip(1)
        .find_map(|line| {
            let ws: String = line.chars().take_while(|c| *c == ' ' || *c == '\t').collect();
            (!ws.is_empty() && line.len() > ws.len()).then(|| ws.into_bytes())
        })
        .unwrap_or_else(|| DEFAULT_INDENT.to_vec())
}

fn render(doc: &Value, indent: &[u8], newline: bool) -> Result<String> {
    let mut buf = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(indent));
    doc.serialize(&mut ser)
        .map_err(|e| Error::Io(format!("cannot render the new config: {e}")))?;
    if newline {
        buf.push(b'\n');
    }
    String::from_utf8(buf).map_err(|e| Error::Io(format!("cannot render the new config: {e}")))
}

/// Writes `text` to `target` atomically: a temp file in the same directory, the old file's owner
/// and mode (0600 for a new file), fsync, rename, fsync of the directory.
fn write_atomically(target: &Path, text: &str, meta: Option<&Metadata>) -> Result<()> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io_err = |what: &str, e: std::io::Error| {
        Error::Io(format!(
            "cannot {what} {}: {}; nothing was changed",
            target.display(),
            crate::fs::io_reason(&e)
        ))
    };
    if !dir.exists() {
        // Docker creates ~/.docker with 0700 too; it may hold plain-text secrets.
        crate::fs::create_private_dir(&dir).map_err(|e| {
            Error::Io(format!(
                "cannot create the directory {}: {}",
                dir.display(),
                crate::fs::io_reason(&e)
            ))
        })?;
    }
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".into());
    crate::fs::write_atomic_with(&dir, &format!(".{file_name}."), target, text.as_bytes(), |file| {
        keep_owner_and_mode(file, meta)
    })
    .map_err(|(stage, e)| {
        use crate::fs::WriteStage;
        let what = match stage {
            WriteStage::Create => "create a temporary file next to",
            WriteStage::Write => "write a temporary file next to",
            WriteStage::Prepare => "keep the owner and mode of",
            WriteStage::Sync => "flush a temporary file next to",
            WriteStage::Replace => "replace",
        };
        io_err(what, e)
    })
}

/// Gives the temp file the old file's owner (when it differs, e.g. root editing a user's file)
/// and mode. Without an old file the temp file keeps tempfile's 0600.
#[cfg(unix)]
fn keep_owner_and_mode(file: &std::fs::File, meta: Option<&Metadata>) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(meta) = meta else {
        return Ok(());
    };
    let mine = file.metadata()?;
    if mine.uid() != meta.uid() || mine.gid() != meta.gid() {
        // chown before chmod: chown clears set-id bits.
        std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
}

#[cfg(not(unix))]
fn keep_owner_and_mode(file: &std::fs::File, meta: Option<&Metadata>) -> std::io::Result<()> {
    match meta {
        Some(m) => file.set_permissions(m.permissions()),
        None => Ok(()),
    }
}

/// The `--dry-run` diff between two config texts, with every secret value shown as
/// `"<redacted>"`: the file holds other registries' stored logins, and a diff prints them as
/// context or as removed lines. Both sides are masked alike, so the diff keeps its shape.
fn masked_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    unified_diff(&mask_secrets(old), &mask_secrets(new), old_name, new_name)
}

/// `text`, a JSON document, with the string value of every key named in [`SECRET_FIELDS`]
/// (compared case-insensitively, as Go's JSON decoding does) replaced by [`REDACTED`]; every
/// other byte is kept.
///
/// This follows the JSON grammar rather than parsing into a `Value` and rendering that: the
/// old side of the diff must stay the file's own text, or the diff would hide the reformatting
/// that the real write does (a compact or hand-indented file is rewritten in full). Only string
/// values are masked: docker/cli and containers/image decode these fields as strings, so any
/// other value is not a credential they would send.
fn mask_secrets(text: &str) -> String {
    /// Where the scanner is: inside an object (expecting a key or not) or an array.
    enum Frame {
        Object { expect_key: bool },
        Array,
    }
    let mut out = String::with_capacity(text.len());
    let mut stack: Vec<Frame> = Vec::new();
    // Set by a secret key, cleared by the value that follows it.
    let mut secret_value = false;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '"' => {
                // Find the closing quote, skipping escaped characters.
                let mut end = text.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        _ => {}
                    }
                }
                let literal = &text[start..end];
                match stack.last_mut() {
                    Some(Frame::Object { expect_key }) if *expect_key => {
                        *expect_key = false;
                        // A key that does not decode is not one of ours; it is copied as is.
                        secret_value = serde_json::from_str::<String>(literal)
                            .is_ok_and(|key| SECRET_FIELDS.iter().any(|f| key.eq_ignore_ascii_case(f)));
                        out.push_str(literal);
                    }
                    _ if secret_value => {
                        secret_value = false;
                        out.push_str(REDACTED);
                    }
                    _ => out.push_str(literal),
                }
            }
            '{' => {
                secret_value = false;
                stack.push(Frame::Object { expect_key: true });
                out.push(c);
            }
            '[' => {
                secret_value = false;
                stack.push(Frame::Array);
                out.push(c);
            }
            '}' | ']' => {
                secret_value = false;
                stack.pop();
                out.push(c);
            }
            ',' => {
                secret_value = false;
                if let Some(Frame::Object { expect_key }) = stack.last_mut() {
                    *expect_key = true;
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A minimal unified diff (3 lines of context) between two texts, for `--dry-run`.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = diff_ops(&a, &b);
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Same(_)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut end = changed[i];
        // Merge changes whose context windows touch into one hunk.
        while i < changed.len() && changed[i] <= end + 2 * CONTEXT + 1 {
            end = changed[i];
            i += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let (old_start, new_start) = positions(&ops[..start]);
        let old_len = hunk.iter().filter(|op| !matches!(op, Op::Add(_))).count();
        let new_len = hunk.iter().filter(|op| !matches!(op, Op::Del(_))).count();
        let first = |pos: usize, len: usize| if len == 0 { pos } else { pos + 1 };
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            first(old_start, old_len),
            first(new_start, new_len)
        ));
        for op in hunk {
            match op {
                Op::Same(j) => out.push_str(&format!(" {}\n", a[*j])),
                Op::Del(j) => out.push_str(&format!("-{}\n", a[*j])),
                Op::Add(k) => out.push_str(&format!("+{}\n", b[*k])),
            }
        }
    }
    out
}

/// One diff line: kept (old index), deleted (old index) or added (new index).
#[derive(Debug, Clone, Copy)]
enum Op {
    Same(usize),
    Del(usize),
    Add(usize),
}

/// Lines of the old and new text consumed before `ops`.
fn positions(ops: &[Op]) -> (usize, usize) {
    ops.iter().fold((0, 0), |(o, n), op| match op {
        Op::Same(_) => (o + 1, n + 1),
        Op::Del(_) => (o + 1, n),
        Op::Add(_) => (o, n + 1),
    })
}

/// The line diff as an edit script (`similar`'s Myers). Config files are small; a pathological
/// pair gets a less minimal diff after a second rather than a long wait, which is still correct.
fn diff_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut ops = Vec::with_capacity(a.len() + b.len());
    for op in similar::capture_diff_slices_deadline(similar::Algorithm::Myers, a, b, Some(deadline)) {
        let (_, old, new) = op.as_tag_tuple();
        match op {
            similar::DiffOp::Equal { .. } => ops.extend(old.map(Op::Same)),
            _ => {
                ops.extend(old.map(Op::Del));
                ops.extend(new.map(Op::Add));
            }
        }
    }
    // Show deletions before additions within a change, as diff(1) does.
    let mut k = 0;
    while k < ops.len() {
        let start = k;
        while k < ops.len() && !matches!(ops[k], Op::Same(_)) {
            k += 1;
        }
        ops[start..k].sort_by_key(|op| matches!(op, Op::Add(_)));
        k += 1;
    }
    ops
}

/// `configure-docker ARGS`: parses the arguments, edits the files, reports to `out` (changes; the binary passes stdout)
/// and stderr (warnings).
pub fn run(args: &[String], out: &mut dyn Write, env: &Env) -> Result<()> {
    let opts = Options::parse(args)?;
    if opts.help {
        let _ = write!(out, "{USAGE}");
        return Ok(());
    }
    let hosts = hosts_to_edit(&opts, env)?;
    let all_stackit = opts.unconfigure && opts.registries.is_empty();

    // Resolve every path first so a missing XDG_RUNTIME_DIR fails before anything is written.
    let mut files = vec![(Kind::Docker, docker_config_path(env)?)];
    if opts.containers {
        files.push((Kind::Containers, containers_auth_path(env)?));
    }
    // Read, parse and edit every file before writing any: a malformed second file must not
    // leave the first one changed.
    let mut prepared = Vec::new();
    for (kind, path) in files {
        let req = Request {
            hosts: hosts.clone(),
            unconfigure: opts.unconfigure,
            all_stackit,
            remove_stale_auths: opts.remove_stale_auths,
            kind,
        };
        prepared.push((path.clone(), prepare(&path, &req)?));
    }

    for (path, p) in prepared {
        apply(&path, p, &opts, out)?;
    }
    // Docker runs the helper from PATH; a missing binary only shows up later as a failed pull.
    if !opts.unconfigure && find_on_path(env.os("PATH")).is_none() {
        warn!(
            "{BINARY} is not on PATH, so Docker cannot run it (\"executable file not found\"); install it into a directory on PATH, e.g. /usr/local/bin"
        );
    }
    Ok(())
}

/// The hosts to configure: the named ones, else (to configure) the served ones, else (to
/// unconfigure) none, which means every STACKIT host.
fn hosts_to_edit(opts: &Options, env: &Env) -> Result<Vec<String>> {
    if !opts.registries.is_empty() {
        if !opts.unconfigure {
            warn_unserved(&opts.registries, env);
        }
        Ok(opts.registries.clone())
    } else if opts.unconfigure {
        Ok(Vec::new())
    } else {
        Ok(Settings::from_env(env.clone())?.served)
    }
}

/// Writes one prepared file (or shows its diff in a dry run) and says what changed.
fn apply(path: &Path, p: Option<Prepared>, opts: &Options, out: &mut dyn Write) -> Result<()> {
    let Some(p) = p else {
        let _ = writeln!(out, "{}: does not exist; nothing to unconfigure", path.display());
        return Ok(());
    };
    for w in &p.edit.warnings {
        warn!("{w}");
    }
    let unchanged = p.old.as_deref() == Some(p.new.as_str()) || p.edit.changes.is_empty();
    if unchanged {
        let _ = writeln!(out, "{}: {}; nothing changed", p.path.display(), already(&p.edit, opts));
        return Ok(());
    }
    let shown = if p.target == p.path {
        p.path.display().to_string()
    } else {
        format!("{} -> {}", p.path.display(), p.target.display())
    };
    if opts.dry_run {
        let old_name = if p.old.is_some() {
            shown.clone()
        } else {
            "/dev/null".into()
        };
        let _ = writeln!(out, "Would change {shown} (dry run, nothing written):");
        let _ = write!(
            out,
            "{}",
            masked_diff(p.old.as_deref().unwrap_or(""), &p.new, &old_name, &shown)
        );
        return Ok(());
    }
    write_atomically(&p.target, &p.new, p.meta.as_ref())?;
    let verb = if p.old.is_some() { "Updated" } else { "Created" };
    let _ = writeln!(out, "{verb} {shown}:");
    for c in &p.edit.changes {
        let _ = writeln!(out, "  {c}");
    }
    Ok(())
}

/// The "nothing to do" message for one file.
fn already(edit: &Edit, opts: &Options) -> String {
    if opts.unconfigure {
        if edit.hosts.is_empty() {
            format!("no credHelpers entry names {HELPER_NAME}")
        } else {
            format!("no {HELPER_NAME} credHelpers entry for {}", edit.hosts.join(", "))
        }
    } else {
        let list: Vec<String> = edit.hosts.iter().map(|h| format!("{h} -> {HELPER_NAME}")).collect();
        format!("already configured ({})", list.join(", "))
    }
}

/// Warns about `--registry` hosts this helper would answer "not found" for.
fn warn_unserved(hosts: &[String], env: &Env) {
    match Settings::from_env(env.clone()) {
        Ok(settings) => {
            for host in hosts.iter().filter(|h| !settings.serves(h)) {
                warn!(
                    "{host} is not a served host, so get will answer \"credentials not found\" for it; add it to DOCKER_CREDENTIAL_STACKIT_REGISTRIES or to registries in the helper config file"
                );
            }
        }
        Err(e) => warn!("cannot check which hosts are served: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn req(hosts: &[&str], unconfigure: bool) -> Request {
        Request {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            unconfigure,
            all_stackit: unconfigure && hosts.is_empty(),
            remove_stale_auths: false,
            kind: Kind::Docker,
        }
    }

    fn doc(text: &str) -> Map<String, Value> {
        match serde_json::from_str(text).unwrap() {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn parses_flags_and_normalises_registries() {
        let o = Options::parse(&args(&[
            "--registry",
            "https://Registry.OnStackit.Cloud/v2/",
            "--registry=localhost:5000",
            "--registry",
            "registry.onstackit.cloud",
            "--dry-run",
            "--unconfigure",
            "--containers",
            "--remove-stale-auths",
        ]))
        .unwrap();
        assert_eq!(o.registries, ["registry.onstackit.cloud", "localhost:5000"]);
        assert!(o.dry_run && o.unconfigure && o.containers && o.remove_stale_auths && !o.help);
        for bad in [&["--registry"][..], &["--registry", "a b"], &["--force"], &["extra"]] {
            assert!(matches!(Options::parse(&args(bad)), Err(Error::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn adds_after_existing_entries_and_keeps_order() {
        let mut d = doc(r#"{"z":1,"credHelpers":{"gcr.io":"gcloud"},"a":2}"#);
        let e = edit(&mut d, &req(&["registry.onstackit.cloud"], false), Path::new("c")).unwrap();
        assert_eq!(e.changes.len(), 1);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"z":1,"credHelpers":{"gcr.io":"gcloud","registry.onstackit.cloud":"stackit"},"a":2}"#
        );
        let again = edit(&mut d, &req(&["registry.onstackit.cloud"], false), Path::new("c")).unwrap();
        assert!(again.changes.is_empty());
    }

    #[test]
    fn unconfigure_removes_only_stackit_entries_in_place() {
        let mut d = doc(r#"{"credHelpers":{"a":"stackit","b":"ecr-login","c":"stackit","d":"x"}}"#);
        let e = edit(&mut d, &req(&[], true), Path::new("c")).unwrap();
        assert_eq!(e.changes.len(), 2);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"credHelpers":{"b":"ecr-login","d":"x"}}"#
        );
        let mut d = doc(r#"{"credHelpers":{"b":"ecr-login"}}"#);
        let e = edit(&mut d, &req(&["b"], true), Path::new("c")).unwrap();
        assert!(e.changes.is_empty() && e.warnings[0].contains("left alone"));
        let mut d = doc(r#"{"x":1,"credHelpers":{"a":"stackit"},"y":2}"#);
        edit(&mut d, &req(&[], true), Path::new("c")).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"{"x":1,"y":2}"#);
    }

    #[test]
    fn stale_auths_are_those_with_a_secret() {
        let text = r#"{"auths":{"https://registry.onstackit.cloud/v1/":{"auth":"cm9ib3Q6cw=="},"registry.onstackit.cloud":{},"other.example":{"auth":"eDp5"}}}"#;
        let mut d = doc(text);
        let e = edit(&mut d, &req(&["registry.onstackit.cloud"], false), Path::new("c")).unwrap();
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
        assert!(e.warnings[0].contains("--remove-stale-auths"));
        assert!(!e.warnings[0].contains("cm9ib3Q6cw=="), "never print the secret");
        let mut d = doc(text);
        let mut r = req(&["registry.onstackit.cloud"], false);
        r.remove_stale_auths = true;
        let e = edit(&mut d, &r, Path::new("c")).unwrap();
        assert!(e.warnings.is_empty());
        assert_eq!(
            d["auths"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["registry.onstackit.cloud", "other.example"]
        );
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let mut d = doc(r#"{"credHelpers":"stackit"}"#);
        let err = edit(&mut d, &req(&["h"], false), Path::new("/x/config.json")).unwrap_err();
        assert!(
            err.to_string().contains("/x/config.json: credHelpers is a string"),
            "{err}"
        );
    }

    #[test]
    fn indentation_is_detected() {
        assert_eq!(detect_indent("{\n    \"a\": 1\n}"), b"    ");
        assert_eq!(detect_indent("{\n\t\"a\": 1\n}"), b"\t");
        assert_eq!(detect_indent("{\"a\":1}"), b"\t");
        assert_eq!(detect_indent(""), b"\t");
    }

    #[test]
    fn secrets_are_masked_wherever_they_are_and_nothing_else_is() {
        let text = "{\"auths\": {\"h\": {\"auth\":\"A\\\"1\", \"Password\" : \"P1\", \"username\": \"auth\"},\n\
                    \"i\": {\"IdentityToken\": \"I1\", \"registrytoken\": \"R1\", \"x\": [\"auth\", \"V\"]}},\n\
                    \"au\\u0074h\": \"E1\", \"AUTH\": 5, \"password\": {\"n\": \"N\"}, \"k\": \"auth\", \"v\": \"W\"}";
        assert!(serde_json::from_str::<Value>(text).is_ok(), "the sample is valid JSON");
        let masked = mask_secrets(text);
        assert_eq!(
            masked,
            "{\"auths\": {\"h\": {\"auth\":\"<redacted>\", \"Password\" : \"<redacted>\", \"username\": \"auth\"},\n\
             \"i\": {\"IdentityToken\": \"<redacted>\", \"registrytoken\": \"<redacted>\", \"x\": [\"auth\", \"V\"]}},\n\
             \"au\\u0074h\": \"<redacted>\", \"AUTH\": 5, \"password\": {\"n\": \"N\"}, \"k\": \"auth\", \"v\": \"W\"}"
        );
        let before = "{\n\t\"auths\": {\n\t\t\"a\": {\n\t\t\t\"auth\": \"S1\"\n\t\t}\n\t}\n}\n";
        let after = "{\n\t\"auths\": {}\n}\n";
        assert_eq!(
            masked_diff(before, after, "a", "b"),
            "--- a\n+++ b\n@@ -1,7 +1,3 @@\n {\n-\t\"auths\": {\n-\t\t\"a\": {\n-\t\t\t\"auth\": \"<redacted>\"\n-\t\t}\n-\t}\n+\t\"auths\": {}\n }\n"
        );
    }

    #[test]
    fn diff_has_hunks_with_context() {
        let old = "{\n\t\"a\": 1,\n\t\"b\": 2,\n\t\"c\": 3\n}\n";
        let new = "{\n\t\"a\": 1,\n\t\"b\": 2,\n\t\"c\": 3,\n\t\"d\": 4\n}\n";
        let d = unified_diff(old, new, "old", "new");
        assert_eq!(
            d,
            "--- old\n+++ new\n@@ -1,5 +1,6 @@\n {\n \t\"a\": 1,\n \t\"b\": 2,\n-\t\"c\": 3\n+\t\"c\": 3,\n+\t\"d\": 4\n }\n"
        );
        let d = unified_diff("", "{}\n", "/dev/null", "new");
        assert_eq!(d, "--- /dev/null\n+++ new\n@@ -0,0 +1,1 @@\n+{}\n");
        assert_eq!(unified_diff("x\n", "x\n", "a", "b"), "--- a\n+++ b\n");
    }

    /// Applies an edit script to `a`; it must give `b`, and deletions come before additions.
    fn apply<'t>(ops: &[Op], a: &[&'t str], b: &[&'t str]) -> Vec<&'t str> {
        for pair in ops.windows(2) {
            assert!(!matches!(pair, [Op::Add(_), Op::Del(_)]), "{ops:?}");
        }
        ops.iter()
            .filter_map(|op| match op {
                Op::Same(i) => Some(a[*i]),
                Op::Del(_) => None,
                Op::Add(j) => Some(b[*j]),
            })
            .collect()
    }

    #[test]
    fn edit_scripts_turn_the_old_lines_into_the_new_ones() {
        let lines = |s: &'static str| s.split(' ').filter(|l| !l.is_empty()).collect::<Vec<_>>();
        for (a, b) in [
            ("a b c d", "a x c d e"),
            ("", "a b"),
            ("a b", ""),
            ("a b a b a", "b a b a b"),
            ("{ } { }", "} { } {"),
        ] {
            let (a, b) = (lines(a), lines(b));
            assert_eq!(apply(&diff_ops(&a, &b), &a, &b), b);
        }
        // Two large files with nothing in common still get a script that is right.
        let a: Vec<String> = (0..20_000).map(|i| format!("old {i}")).collect();
        let b: Vec<String> = (0..20_000).map(|i| format!("new {}", i * 7)).collect();
        let (a, b): (Vec<&str>, Vec<&str>) = (
            a.iter().map(|s| s.as_str()).collect(),
            b.iter().map(|s| s.as_str()).collect(),
        );
        assert_eq!(apply(&diff_ops(&a, &b), &a, &b), b);
    }
}
