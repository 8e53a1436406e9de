//! The `configure-docker` command line: its options and its `--help` text.

use crate::error::{Error, Result};
use crate::server_url;

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
pub(crate) struct Options {
    /// Hosts from `--registry`, normalised to `host[:port]`; empty means "every served host"
    /// (or, with `--unconfigure`, "every entry that names stackit").
    pub(crate) registries: Vec<String>,
    /// Print the diff instead of writing.
    pub(crate) dry_run: bool,
    /// Remove entries instead of adding them.
    pub(crate) unconfigure: bool,
    /// Also edit the containers auth file.
    pub(crate) containers: bool,
    /// Delete `auths` entries holding a stored secret for a configured host.
    pub(crate) remove_stale_auths: bool,
    /// Print [`USAGE`] and do nothing else.
    pub(crate) help: bool,
}

impl Options {
    /// Parses the arguments after `configure-docker`. Errors are [`Error::Usage`] (exit status 2).
    pub(crate) fn parse(args: &[String]) -> Result<Options> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
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
}
