//! The protocol verbs as library calls: each takes the settings and what arrived on stdin and
//! returns what goes to stdout. `main.rs` only maps results to output and exit codes.

use crate::config::{ServedHost, Settings};
use crate::error::{Error, Result};
use crate::identity::{self, Identity};
use crate::log::{debug, info, warn};
use crate::protocol::{self, Credentials};
use crate::robots::RobotStore;
use crate::secret::Secret;
use crate::server_url::{self, DEFAULT_REGISTRY};
use crate::token::{self, Token};
use std::collections::BTreeMap;

fn robot_store(settings: &Settings) -> Result<RobotStore> {
    settings.data_dir.as_deref().map(RobotStore::new).ok_or_else(|| {
        Error::Config("cannot find the user data directory for stored robot credentials; set HOME".into())
    })
}

/// A served host, or `NotFound` for anything else (Docker then goes on anonymously).
fn served_host(settings: &Settings, url: &str) -> Result<ServedHost> {
    settings.served_host(url).ok_or_else(|| {
        debug!("{url:?} is not a served host (served: {})", settings.served.join(", "));
        Error::NotFound
    })
}

/// Robot secrets stop working once the robot is linked to a service account, so a host whose
/// service account identity has just produced a token must not keep handing them out.
///
/// Called only after the token is in hand: a mistyped key path must not cost the user a stored
/// login. Waits for the store's lock no later than the command's deadline, and a failure here
/// never fails the `get` that already has its answer.
fn discard_robot(settings: &Settings, host: &ServedHost) {
    if let Ok(store) = robot_store(settings) {
        match store.remove(host.as_str(), settings.deadline) {
            Ok(true) => {
                warn!("discarded stored robot credentials for {host}: it is now served by a service account key")
            }
            Ok(false) => {}
            Err(e) => warn!("{e}"),
        }
    }
}

/// Debug note for a failed service account identity: any stored robot login stays.
fn keeping_robot(settings: &Settings, host: &ServedHost) {
    if crate::log::enabled(crate::log::Level::Debug)
        && robot_store(settings).is_ok_and(|s| s.get(host.as_str()).is_some())
    {
        debug!("{host}: keeping the stored robot credentials until the service account identity produces a token");
    }
}

/// The identity serving `host` (already known to be served) and an access token for it, from
/// the cache or freshly minted; `None` when no identity is configured for the host. `get`,
/// `token` and the kubelet's node identity all answer through this one path
/// ([`Service::identity_token`]).
fn identity_token(settings: &Settings, host: &ServedHost) -> Result<Option<(Identity, Token)>> {
    let Some(spec) = settings.identity_spec(host)? else {
        return Ok(None);
    };
    let identity = identity::load(&spec, settings.deadline)?;
    let token = token::access_token(&settings.token_policy(), &identity)?;
    Ok(Some((identity, token)))
}

/// `get`: the credentials Docker should use for the server URL on stdin.
pub fn get(settings: &Settings, url: String) -> Result<Credentials> {
    let host = served_host(settings, &url)?;
    match identity_token(settings, &host).inspect_err(|_| keeping_robot(settings, &host))? {
        Some((identity, token)) => {
            discard_robot(settings, &host);
            debug!(
                "{host}: answering as {} with a {} token",
                identity.username(),
                if token.from_cache { "cached" } else { "new" }
            );
            Ok(Credentials {
                server_url: url,
                username: identity.username().to_string(),
                secret: token.secret,
            })
        }
        None => match robot_store(settings)?.get(host.as_str()) {
            Some((username, secret)) => {
                debug!("{host}: answering with stored robot credentials for {username}");
                Ok(Credentials {
                    server_url: url,
                    username,
                    secret,
                })
            }
            None => {
                debug!("{host}: no service account key and no stored robot credentials");
                Err(Error::NotFound)
            }
        },
    }
}

/// `store`: keeps robot credentials for hosts without a service account identity; accepts and
/// ignores the service account's own login (which `docker login` stores after `get`).
pub fn store(settings: &Settings, creds: Credentials) -> Result<()> {
    let Some(normalized) = server_url::normalize(&creds.server_url) else {
        return Err(Error::Input(format!(
            "store: {:?} is not a registry host[:port]",
            creds.server_url
        )));
    };
    let Some(host) = settings.served_host(&normalized) else {
        return Err(Error::Config(format!(
            "{normalized} is not served by docker-credential-stackit; add it to DOCKER_CREDENTIAL_STACKIT_REGISTRIES or the config file, or remove it from credHelpers"
        )));
    };
    if let Some(spec) = settings.identity_spec(&host)? {
        let own = identity::load(&spec, settings.deadline)
            .map(|i| i.username() == creds.username)
            .unwrap_or(false);
        if own {
            debug!("store for {host}: the service account's own login; nothing to keep");
            return Ok(());
        }
        // The contract: a robot login is kept, and discarded only once the host's service
        // account identity has produced a token (a broken key must not cost a stored login).
        // Kept for real, so `docker login` reports no success for something thrown away; the
        // user hears at once that `get` answers with the service account while it works.
        warn!(
            "keeping the credentials of {} for {host}, but get answers with {} while it works, and discards them once it has produced a token (a linked robot's secret no longer works)",
            creds.username,
            spec.describe()
        );
    }
    robot_store(settings)?.put(host.as_str(), &creds.username, &creds.secret, settings.deadline)?;
    info!("stored robot credentials of {} for {host}", creds.username);
    Ok(())
}

/// `erase`: forgets stored robot credentials and the cached token for the host. Succeeds when
/// there is nothing to erase, because `docker logout` calls it twice.
pub fn erase(settings: &Settings, url: String) -> Result<()> {
    let Some(host) = server_url::normalize(&url) else {
        return Ok(());
    };
    if robot_store(settings)?.remove(&host, settings.deadline)? {
        info!("erased stored robot credentials for {host}");
    }
    if let Some(served) = settings.served_host(&host)
        && let Ok(Some(identity)) = settings.identity(&served)
        && let Some(cache) = token::cache::open_or_warn(settings.cache_dir.as_deref())
    {
        match cache.remove(&identity.cache_id()) {
            Ok(true) => info!("erased the cached token for {host}"),
            Ok(false) => {}
            Err(e) => {
                return Err(Error::Io(format!(
                    "cannot remove the cached token in {}: {e}",
                    cache.dir().display()
                )));
            }
        }
    }
    Ok(())
}

/// The helper behind Docker's protocol ([`protocol::Helper`]): one value built from the
/// settings, once, in the binary.
#[derive(Debug)]
pub struct Service {
    settings: Settings,
}

impl Service {
    /// The service for these settings.
    pub fn new(settings: Settings) -> Service {
        Service { settings }
    }

    /// The settings it was built from (which hosts are served, and by whom).
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The identity configured for `host` and a token for it, from the cache or freshly
    /// minted; `None` when the host has no identity. What `get`, `token` and the kubelet's node
    /// identity answer with.
    pub(crate) fn identity_token(&self, host: &ServedHost) -> Result<Option<(Identity, Token)>> {
        identity_token(&self.settings, host)
    }

    /// A token for an identity the caller loaded itself (a pod's own federated identity), under
    /// the same cache, lock and failure rules.
    pub(crate) fn access_token(&self, identity: &Identity) -> Result<Token> {
        token::access_token(&self.settings.token_policy(), identity)
    }

    /// The `token` verb: the bare access token for SERVER (default `registry.onstackit.cloud`).
    pub fn token(&self, server: Option<&str>) -> Result<Secret> {
        token(&self.settings, server)
    }
}

impl protocol::Helper for Service {
    fn get(&self, server_url: String) -> Result<Credentials> {
        get(&self.settings, server_url)
    }
    fn store(&self, credentials: Credentials) -> Result<()> {
        store(&self.settings, credentials)
    }
    fn erase(&self, server_url: String) -> Result<()> {
        erase(&self.settings, server_url)
    }
    fn list(&self) -> Result<BTreeMap<String, String>> {
        list(&self.settings)
    }
}

/// `list`: server -> username for every host `get` can answer, without network.
pub fn list(settings: &Settings) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let robots = robot_store(settings).map(|s| s.list()).unwrap_or_default();
    for host in settings.served_hosts() {
        match settings.identity(&host) {
            Ok(Some(identity)) => {
                out.insert(host.to_string(), identity.username().to_string());
            }
            Ok(None) => {
                if let Some(user) = robots.get(host.as_str()) {
                    out.insert(host.to_string(), user.clone());
                }
            }
            Err(e) => debug!("list: leaving out {host}: {e}"),
        }
    }
    Ok(out)
}

/// `token [SERVER]`: the bare access token for the identity serving SERVER (default
/// `registry.onstackit.cloud`).
fn token(settings: &Settings, server: Option<&str>) -> Result<Secret> {
    let normalized = match server {
        None => DEFAULT_REGISTRY.to_string(),
        Some(s) => {
            server_url::normalize(s).ok_or_else(|| Error::Usage(format!("{s:?} is not a registry host[:port]")))?
        }
    };
    let Some(host) = settings.served_host(&normalized) else {
        return Err(Error::Config(format!(
            "{normalized} is not served by docker-credential-stackit; add it to DOCKER_CREDENTIAL_STACKIT_REGISTRIES or the config file"
        )));
    };
    let (_, token) = identity_token(settings, &host)?.ok_or_else(|| {
        Error::Config(format!(
            "no service account identity configured for {host}; set STACKIT_SERVICE_ACCOUNT_KEY_PATH to the key JSON, or STACKIT_SERVICE_ACCOUNT_EMAIL and STACKIT_FEDERATED_TOKEN_FILE for a keyless identity"
        ))
    })?;
    Ok(token.secret)
}
