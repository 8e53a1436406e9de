//! Getting an access token for an identity: from the cache when it is fresh, else by signing an
//! assertion and exchanging it, with one request per identity however many processes ask.
//!
//! The warm path is: read one small file, compare two integers. No network, no TLS, no threads.

pub mod assertion;
pub mod cache;
pub mod exchange;

use crate::clock::unix_now;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::fs::LockError;
use crate::identity::Identity;
use crate::secret::Secret;
use crate::{debug, info, warn};
use cache::{Cache, CachedToken, Freshness};
use std::time::Instant;

/// An access token ready to hand out.
#[derive(Debug)]
pub struct Token {
    /// The token itself.
    pub secret: Secret,
    /// Expiry in unix seconds.
    pub expires_at: u64,
    /// Whether it came from the cache (no request was made).
    pub from_cache: bool,
    /// The token endpoint's `Date` header in unix seconds, when a token was just minted and the
    /// endpoint sent one (for clock-skew checks).
    pub server_date: Option<u64>,
}

impl Token {
    fn cached(t: CachedToken) -> Token {
        Token {
            secret: t.access_token,
            expires_at: t.expires_at,
            from_cache: true,
            server_date: None,
        }
    }
}

/// Returns a token for `identity`, following the cache rules in the module docs.
pub fn access_token(settings: &Settings, identity: &Identity) -> Result<Token> {
    let id = identity.cache_id();
    let cache = cache::open_or_warn(settings.cache_dir.as_deref());
    let deadline = Instant::now() + settings.timeout;

    let mut stale = None;
    if let Some(cache) = &cache {
        match cache.read(&id) {
            Some(t) if t.freshness(unix_now()) == Freshness::Fresh => {
                debug!("using cached token ({}s left)", t.remaining(unix_now()));
                return Ok(Token::cached(t));
            }
            other => stale = other,
        }
    }

    // The endpoint was not reached a moment ago: answer with that at once rather than wait out
    // the deadline again (Docker calls get several times per command; a firewalled endpoint
    // must not stall a pull for a minute).
    if let Some(cache) = &cache
        && !settings.failure_window.is_zero()
    {
        let window_ms = u64::try_from(settings.failure_window.as_millis()).unwrap_or(u64::MAX);
        if let Some(message) = cache.failure_since(&id, unix_millis().saturating_sub(window_ms), true) {
            debug!(
                "the token endpoint was not reached less than {}s ago; not trying again yet",
                settings.failure_window.as_secs()
            );
            let message = format!(
                "{message} [failed less than {}s ago; not retried before then; DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW=0 retries at once]",
                settings.failure_window.as_secs()
            );
            return serve_stale(stale, Error::Network(message));
        }
    }

    // Cold: take the identity's lock so that concurrent processes make one request, then look
    // again, because the process that held the lock before us has probably just refreshed.
    let waited_from = unix_millis();
    let _guard = match &cache {
        None => None,
        Some(cache) => match cache.lock(&id, deadline) {
            Ok(guard) => Some(guard),
            Err(LockError::Timeout(path)) => {
                let why = format!(
                    "timed out after {:.0}s waiting for another docker-credential-stackit process to refresh the token (lock {}); if none is running, delete the lock file",
                    settings.timeout.as_secs_f64(),
                    path.display()
                );
                return serve_stale(stale, Error::Token(why));
            }
            Err(LockError::Unavailable(why)) => {
                warn!("{why}; fetching without the lock");
                None
            }
        },
    };
    if let Some(cache) = &cache {
        match cache.read(&id) {
            Some(t) if t.freshness(unix_now()) == Freshness::Fresh => {
                debug!("another process refreshed the token while we waited");
                return Ok(Token::cached(t));
            }
            Some(t) => stale = Some(t),
            None => {}
        }
    }

    // The holder we waited for may have failed instead: report its failure rather than
    // repeating a request that was refused (or timed out) a moment ago.
    if let Some(message) = cache.as_ref().and_then(|c| c.failure_since(&id, waited_from, false)) {
        debug!("another process failed to refresh the token while we waited");
        return serve_stale(stale, Error::Token(message));
    }

    match mint(identity, deadline) {
        Ok((token, server_date)) => {
            if let Some(cache) = &cache {
                store(cache, &id, &token);
                cache.clear_failure(&id);
            }
            Ok(Token {
                secret: token.access_token,
                expires_at: token.expires_at,
                from_cache: false,
                server_date,
            })
        }
        Err(e) => {
            if let Some(cache) = &cache
                && let Err(write) =
                    cache.record_failure(&id, &e.to_string(), unix_millis(), matches!(e, Error::Network(_)))
            {
                debug!("cannot record the failure for waiting processes: {write}");
            }
            serve_stale(stale, e)
        }
    }
}

/// Unix milliseconds now: failures are compared with the moment a process started waiting.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Signs and exchanges an assertion, or exchanges the federated token (the cold path); also
/// returns the token endpoint's `Date` header (unix seconds) if it sent one.
pub fn mint(identity: &Identity, deadline: Instant) -> Result<(CachedToken, Option<u64>)> {
    let now = unix_now();
    let minted = match identity {
        Identity::Key(key) => {
            let assertion = assertion::sign(key, now, deadline)?;
            exchange::exchange(&key.endpoint, exchange::Grant::Assertion(&assertion), deadline)?
        }
        Identity::Federated(f) => {
            // A file is re-read for every exchange (it rotates); it was read moments ago when
            // the identity was loaded, so that copy is used. GitHub's is fetched only now.
            let token = match &f.token {
                Some(t) => t.clone(),
                None => f.source.fetch(deadline)?,
            };
            let grant = exchange::Grant::Federated {
                token: &token.jwt,
                email: &f.email,
            };
            exchange::exchange(&f.endpoint, grant, deadline)?
        }
    };
    let now = unix_now();
    if minted.expires_at <= now {
        warn!(
            "the token endpoint issued a token that expired {}s ago by this machine's clock; check the system clock",
            now - minted.expires_at
        );
    } else {
        info!(
            "minted an access token for {} valid for {}s",
            identity.username(),
            minted.expires_at - now
        );
    }
    if let Some(date) = minted.server_date {
        let skew = now.abs_diff(date);
        if skew > 60 {
            warn!("this machine's clock differs from the token endpoint's by {skew}s; fix the clock (NTP)");
        }
    }
    let token = CachedToken {
        access_token: minted.access_token,
        issued_at: now,
        expires_at: minted.expires_at,
    };
    Ok((token, minted.server_date))
}

fn store(cache: &Cache, id: &str, token: &CachedToken) {
    if token.freshness(unix_now()) == Freshness::Expired {
        debug!("not caching a token with less than {}s left", cache::MIN_REMAINING);
        return;
    }
    if let Err(e) = cache.write(id, token) {
        warn!(
            "cannot write the token cache in {}: {e}; continuing without it",
            cache.dir().display()
        );
    }
}

/// Falls back to a cached token that still has at least a minute, with a warning.
fn serve_stale(stale: Option<CachedToken>, error: Error) -> Result<Token> {
    match stale {
        Some(t) if t.freshness(unix_now()) != Freshness::Expired => {
            warn!(
                "{error}; using the cached token, which is valid for {}s more",
                t.remaining(unix_now())
            );
            Ok(Token::cached(t))
        }
        _ => Err(error),
    }
}
