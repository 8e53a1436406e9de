//! The edit itself, on a parsed document: `credHelpers` entries added or removed, and `auths`
//! entries that hold a stored secret for a configured host reported or deleted.

use super::HELPER_NAME;
use super::mask::SECRET_FIELDS;
use super::paths::Kind;
use crate::error::{Error, Result};
use crate::server_url;
use serde_json::{Map, Value};
use std::path::Path;

/// What to change in one document.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Hosts to map to stackit (configure) or to unmap (unconfigure).
    pub(crate) hosts: Vec<String>,
    /// Remove entries instead of adding them.
    pub(crate) unconfigure: bool,
    /// With `unconfigure` and no hosts: remove every entry that names stackit.
    pub(crate) all_stackit: bool,
    /// Delete `auths` entries holding a stored secret for a configured host.
    pub(crate) remove_stale_auths: bool,
    /// Which client the file belongs to.
    pub(crate) kind: Kind,
}

/// What [`edit`] did to a document, in words for stdout and stderr.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Edit {
    /// One line per change, e.g. `credHelpers["h"] = "stackit" (added)`.
    pub(crate) changes: Vec<String>,
    /// Things the user should know about but that were not changed.
    pub(crate) warnings: Vec<String>,
    /// The hosts the request was about (for the "nothing changed" message).
    pub(crate) hosts: Vec<String>,
}

/// Applies `req` to a parsed config document. `file` only names the file in messages.
///
/// New `credHelpers` entries are appended after the existing ones; removals keep the order of
/// what is left, so a file's layout survives a configure/unconfigure round trip.
pub(crate) fn edit(doc: &mut Map<String, Value>, req: &Request, file: &Path) -> Result<Edit> {
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

/// True for an `auths` entry with a non-empty secret field (docker/cli and containers/image).
fn holds_secret(entry: &Value) -> bool {
    SECRET_FIELDS
        .iter()
        .any(|f| entry.get(f).and_then(Value::as_str).is_some_and(|s| !s.is_empty()))
}

/// How an error message names the JSON type of `v`.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
