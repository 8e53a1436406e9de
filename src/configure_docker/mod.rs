//! `configure-docker`: point Docker (and, with `--containers`, podman, buildah and skopeo) at this
//! helper by editing `credHelpers` in their JSON config files, safely and without prompting.
//!
//! The edit mirrors how docker/cli saves its own config (`configfile/file.go`): a temporary file
//! in the target's directory, the old file's owner and mode copied onto it, then a rename over the
//! symlink-resolved target, so a symlinked config stays a symlink and no reader ever sees half a
//! file. Everything the helper does not own (unknown keys, their order, other helpers, `auths`)
//! is carried over unchanged; serde_json's `preserve_order` feature keeps the key order.
//!
//! [`run`] ties the parts together: `arguments` parses the command line, `paths` names the files,
//! `file` reads each one and applies `edit` to it in memory before anything is written, and a
//! dry run prints the `diff` with secret values masked by `mask`.

mod arguments;
mod diff;
mod edit;
mod file;
mod mask;
mod paths;

use crate::config::{Env, Settings};
use crate::error::Result;
use crate::log::warn;
use arguments::Options;
use edit::{Edit, Request};
use file::{Prepared, prepare, write_atomically};
use mask::masked_diff;
use paths::{Kind, containers_auth_path, docker_config_path};
use std::io::Write;
use std::path::Path;

pub use arguments::USAGE;
pub(crate) use paths::{config_path_in, find_on_path};

/// The name Docker appends to `docker-credential-` to find this binary.
pub const HELPER_NAME: &str = "stackit";

/// The binary Docker runs for [`HELPER_NAME`].
pub const BINARY: &str = "docker-credential-stackit";

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
