//! One config file on disk: read and edited in memory without writing ([`prepare`]), then
//! written atomically with its old owner and mode ([`write_atomically`]).

use super::edit::{Edit, Request, edit, json_kind};
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fs::Metadata;
use std::path::{Path, PathBuf};

/// Docker and containers/image both write their files with tab indentation; new files match.
const DEFAULT_INDENT: &[u8] = b"\t";
/// Auth files larger than this are not edited (real ones are a few KiB).
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// One file, read, parsed and edited in memory, ready to be written.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The path as configured (possibly a symlink), for messages.
    pub(crate) path: PathBuf,
    /// The symlink-resolved file that is actually written.
    pub(crate) target: PathBuf,
    /// The file's text before the edit; `None` if it does not exist.
    pub(crate) old: Option<String>,
    /// The file's text after the edit.
    pub(crate) new: String,
    /// The old file's metadata, whose owner and mode the new file keeps.
    pub(crate) meta: Option<Metadata>,
    /// What the edit changed and what to warn about.
    pub(crate) edit: Edit,
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
pub(crate) fn prepare(path: &Path, req: &Request) -> Result<Option<Prepared>> {
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

/// The document as pretty JSON with `indent`, and a final newline if `newline`.
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
pub(crate) fn write_atomically(target: &Path, text: &str, meta: Option<&Metadata>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_is_detected() {
        assert_eq!(detect_indent("{\n    \"a\": 1\n}"), b"    ");
        assert_eq!(detect_indent("{\n\t\"a\": 1\n}"), b"\t");
        assert_eq!(detect_indent("{\"a\":1}"), b"\t");
        assert_eq!(detect_indent(""), b"\t");
    }
}
