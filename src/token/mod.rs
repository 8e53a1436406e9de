//! Getting an access token for an identity: from the cache when it is fresh, else by signing an
//! assertion and exchanging it, with one request per identity however many processes ask.
//!
//! The warm path is: read one small file, compare two integers. No network, no TLS, no threads.

pub mod assertion;
pub mod cache;
pub mod exchange;

use crate::clock::unix_now;
use crate::error::{Error, Result};
use crate::fs::LockError;
use crate::identity::Identity;
use crate::log::{debug, info, warn};
use crate::secret::Secret;
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

/// What the token service needs to know of the settings: where the cache lives, how long a cold
/// fetch may take, and how long a network failure answers for its identity. The service sees
/// nothing else of them.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The cache directory; `None` disables the cache (and the lock and failure records).
    pub cache_dir: Option<std::path::PathBuf>,
    /// When the command must be done: a cold fetch, lock waits and retries included, ends by
    /// then. The command's one deadline, set when its settings were read, so that time spent
    /// before (waiting for a key from a pipe, say) counts against the same budget.
    pub deadline: Instant,
    /// The budget that deadline came from (`DOCKER_CREDENTIAL_STACKIT_TIMEOUT`), for messages.
    pub timeout: std::time::Duration,
    /// How long a recorded network failure answers without a new try; zero: always try.
    pub failure_window: std::time::Duration,
    /// The proxy settings for the exchange.
    pub proxies: crate::http::Proxies,
}

/// The wall clock, as the token service reads it. Tests pass their own.
pub trait Clock {
    /// Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// Unix seconds, the same moment as [`Clock::now_ms`].
    fn now(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::clock::unix_millis()
    }
}

/// Getting a new token for an identity (the cold path's network part). Tests pass their own.
pub trait Mint {
    /// A new token for `identity`, no later than `deadline`, with the endpoint's `Date` header.
    fn mint(&self, identity: &Identity, deadline: Instant) -> Result<(CachedToken, Option<u64>)>;
}

/// The real exchange: sign an assertion or exchange the federated token ([`mint`]), through
/// these proxy settings.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a>(pub &'a crate::http::Proxies);

impl Mint for Exchange<'_> {
    fn mint(&self, identity: &Identity, deadline: Instant) -> Result<(CachedToken, Option<u64>)> {
        mint(identity, deadline, self.0)
    }
}

/// Returns a token for `identity`, following the cache rules in the module docs, with the
/// system clock and the real exchange.
pub fn access_token(policy: &Policy, identity: &Identity) -> Result<Token> {
    access_token_with(policy, identity, &SystemClock, &Exchange(&policy.proxies))
}

/// [`access_token`] with the clock and the exchange passed in: every decision of the cache,
/// the lock, the stale-on-error window and the failure window lives here.
pub fn access_token_with(
    policy: &Policy,
    identity: &Identity,
    clock: &impl Clock,
    minter: &impl Mint,
) -> Result<Token> {
    let id = identity.cache_id();
    let cache = cache::open_or_warn(policy.cache_dir.as_deref());
    let deadline = policy.deadline;

    let mut stale = None;
    if let Some(cache) = &cache {
        match cache.read(&id) {
            Some(t) if t.freshness(clock.now()) == Freshness::Fresh => {
                debug!("using cached token ({}s left)", t.remaining(clock.now()));
                return Ok(Token::cached(t));
            }
            other => stale = other,
        }
    }

    if let Some(recent) = cache
        .as_ref()
        .and_then(|c| recent_network_failure(c, &id, policy, clock))
    {
        return serve_stale(stale, recent, clock);
    }

    // Cold: take the identity's lock so that concurrent processes make one request, then look
    // again, because the process that held the lock before us has probably just refreshed.
    let waited_from = clock.now_ms();
    let _guard = match cache.as_ref().map(|c| take_lock(c, &id, deadline, policy)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(guard))) => Some(guard),
        Some(Err(e)) => return serve_stale(stale, e, clock),
    };
    if let Some(cache) = &cache {
        match cache.read(&id) {
            Some(t) if t.freshness(clock.now()) == Freshness::Fresh => {
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
        return serve_stale(stale, Error::Token(message), clock);
    }

    match minter.mint(identity, deadline) {
        Ok((token, server_date)) => {
            if let Some(cache) = &cache {
                store(cache, &id, &token, clock);
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
            if let Some(cache) = &cache {
                record_failure(cache, &id, &e, clock);
            }
            serve_stale(stale, e, clock)
        }
    }
}

/// Takes the identity's lock: `None` when locking is unavailable here (we go on without it, as
/// a lone process would), an error when another process held it past the deadline.
fn take_lock(cache: &Cache, id: &str, deadline: Instant, policy: &Policy) -> Result<Option<crate::fs::LockGuard>> {
    match cache.lock(id, deadline) {
        Ok(guard) => Ok(Some(guard)),
        Err(LockError::Timeout(path)) => Err(Error::Token(format!(
            "timed out after {:.0}s waiting for another docker-credential-stackit process to refresh the token (lock {}); if none is running, delete the lock file",
            policy.timeout.as_secs_f64(),
            path.display()
        ))),
        Err(LockError::Unavailable(why)) => {
            warn!("{why}; fetching without the lock");
            Ok(None)
        }
    }
}

/// Records a failed refresh so that processes waiting on the lock report it instead of
/// repeating the request (and, for network failures, so the failure window applies).
fn record_failure(cache: &Cache, id: &str, e: &Error, clock: &impl Clock) {
    if let Err(write) = cache.record_failure(id, &e.to_string(), clock.now_ms(), matches!(e, Error::Network(_))) {
        debug!("cannot record the failure for waiting processes: {write}");
    }
}

/// The endpoint was not reached a moment ago (within the policy's failure window): that
/// failure, to answer with at once rather than wait out the deadline again. Docker calls `get`
/// several times per command; a firewalled endpoint must not stall a pull for a minute.
fn recent_network_failure(cache: &Cache, id: &str, policy: &Policy, clock: &impl Clock) -> Option<Error> {
    if policy.failure_window.is_zero() {
        return None;
    }
    let window_ms = u64::try_from(policy.failure_window.as_millis()).unwrap_or(u64::MAX);
    let message = cache.failure_since(id, clock.now_ms().saturating_sub(window_ms), true)?;
    let window = policy.failure_window.as_secs();
    debug!("the token endpoint was not reached less than {window}s ago; not trying again yet");
    Some(Error::Network(format!(
        "{message} [failed less than {window}s ago; not retried before then; DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW=0 retries at once]"
    )))
}

/// Signs and exchanges an assertion, or exchanges the federated token (the cold path); also
/// returns the token endpoint's `Date` header (unix seconds) if it sent one.
pub fn mint(
    identity: &Identity,
    deadline: Instant,
    proxies: &crate::http::Proxies,
) -> Result<(CachedToken, Option<u64>)> {
    let now = unix_now();
    let minted = match identity {
        Identity::Key(key) => {
            let assertion = assertion::sign(key, now, deadline)?;
            exchange::exchange(&key.endpoint, exchange::Grant::Assertion(&assertion), deadline, proxies)?
        }
        Identity::Federated(f) => {
            // A file is re-read for every exchange (it rotates); it was read moments ago when
            // the identity was loaded, so that copy is used. GitHub's is fetched only now.
            let token = match &f.token {
                Some(t) => t.clone(),
                None => f.source.fetch(deadline, proxies)?,
            };
            let grant = exchange::Grant::Federated {
                token: &token.jwt,
                email: &f.email,
            };
            exchange::exchange(&f.endpoint, grant, deadline, proxies)?
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

fn store(cache: &Cache, id: &str, token: &CachedToken, clock: &impl Clock) {
    if token.freshness(clock.now()) == Freshness::Expired {
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
fn serve_stale(stale: Option<CachedToken>, error: Error, clock: &impl Clock) -> Result<Token> {
    match stale {
        Some(t) if t.freshness(clock.now()) != Freshness::Expired => {
            warn!(
                "{error}; using the cached token, which is valid for {}s more",
                t.remaining(clock.now())
            );
            Ok(Token::cached(t))
        }
        _ => Err(error),
    }
}

#[cfg(test)]
mod tests {
    //! The cache, lock, stale-on-error and failure-window decisions, table-driven, with a
    //! clock and an exchange of the test's own and a real cache directory.
    use super::*;
    use crate::http::Endpoint;
    use crate::identity::{KeyIdentity, Source};
    use crate::key::ServiceAccountKey;
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::time::Duration;

    const NOW: u64 = 1_800_000_000;

    struct TestClock(Cell<u64>);
    impl Clock for TestClock {
        fn now_ms(&self) -> u64 {
            self.0.get() * 1000
        }
    }

    /// What the exchange does when asked.
    #[derive(Clone, Copy, Debug)]
    enum Answer {
        /// A token valid for this many seconds from the clock's now.
        Token(u64),
        /// The endpoint was not reached.
        Unreachable,
        /// The endpoint refused the key.
        Refused,
    }

    struct TestMint<'a> {
        clock: &'a TestClock,
        answers: RefCell<VecDeque<Answer>>,
        calls: Cell<usize>,
    }

    impl Mint for TestMint<'_> {
        fn mint(&self, _: &Identity, _: Instant) -> Result<(CachedToken, Option<u64>)> {
            self.calls.set(self.calls.get() + 1);
            let now = self.clock.now();
            match self
                .answers
                .borrow_mut()
                .pop_front()
                .expect("an answer scripted for every mint")
            {
                Answer::Token(life) => Ok((
                    CachedToken {
                        access_token: Secret::new(format!("minted-{}", self.calls.get())),
                        issued_at: now,
                        expires_at: now + life,
                    },
                    None,
                )),
                Answer::Unreachable => Err(Error::Network("token endpoint e.example unreachable".into())),
                Answer::Refused => Err(Error::Token(
                    "token endpoint e.example refused the key (HTTP 400)".into(),
                )),
            }
        }
    }

    fn identity() -> Identity {
        let key = ServiceAccountKey::parse(
            r#"{"credentials":{"kid":"k1","iss":"sa@sa.stackit.cloud","sub":"s1","aud":"a"}}"#,
            "T",
        )
        .unwrap();
        Identity::Key(KeyIdentity {
            key,
            key_source: Source::Inline {
                text: Secret::new("{}"),
                origin: "T".into(),
            },
            private_key: None,
            endpoint: Endpoint::parse("https://e.example/token", "T").unwrap(),
            username: "sa@sa.stackit.cloud".into(),
        })
    }

    /// One scenario: a cache as it is before the call, what the exchange answers, what comes out.
    struct Case {
        what: &'static str,
        /// A cached token: (age in seconds, seconds left).
        cached: Option<(u64, u64)>,
        /// A failure recorded this many seconds ago, and whether it was a network failure.
        failure: Option<(u64, bool)>,
        window: u64,
        cache: bool,
        answers: &'static [Answer],
        /// `Ok(Some(token))`, `Ok(None)` for the cached token, `Err(fragment)`.
        expect: std::result::Result<Option<&'static str>, &'static str>,
        mints: usize,
    }

    fn run(case: &Case) {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        let clock = TestClock(Cell::new(NOW));
        let identity = identity();
        let id = identity.cache_id();
        let cache = Cache::open(&cache_dir).unwrap();
        if let Some((age, left)) = case.cached {
            let token = CachedToken {
                access_token: Secret::new("cached"),
                issued_at: NOW - age,
                expires_at: NOW + left,
            };
            cache.write(&id, &token).unwrap();
        }
        if let Some((ago, network)) = case.failure {
            cache
                .record_failure(&id, "recorded failure", (NOW - ago) * 1000, network)
                .unwrap();
        }
        let policy = Policy {
            cache_dir: case.cache.then_some(cache_dir),
            timeout: Duration::from_secs(2),
            deadline: Instant::now() + Duration::from_secs(2),
            failure_window: Duration::from_secs(case.window),
            proxies: Default::default(),
        };
        let minter = TestMint {
            clock: &clock,
            answers: RefCell::new(case.answers.iter().copied().collect()),
            calls: Cell::new(0),
        };
        let got = access_token_with(&policy, &identity, &clock, &minter);
        match (&got, case.expect) {
            (Ok(t), Ok(Some(token))) => {
                assert_eq!((t.secret.expose(), t.from_cache), (token, false), "{}", case.what)
            }
            (Ok(t), Ok(None)) => assert_eq!((t.secret.expose(), t.from_cache), ("cached", true), "{}", case.what),
            (Err(e), Err(fragment)) => assert!(e.to_string().contains(fragment), "{}: {e}", case.what),
            _ => panic!("{}: got {got:?}", case.what),
        }
        assert_eq!(minter.calls.get(), case.mints, "{}: mints", case.what);
    }

    use Answer::*;

    #[test]
    fn every_cache_and_failure_decision() {
        let cases = [
            Case {
                what: "empty cache: mint",
                cached: None,
                failure: None,
                window: 15,
                cache: true,
                answers: &[Token(3600)],
                expect: Ok(Some("minted-1")),
                mints: 1,
            },
            Case {
                what: "fresh cached token: no request",
                cached: Some((100, 3500)),
                failure: None,
                window: 15,
                cache: true,
                answers: &[],
                expect: Ok(None),
                mints: 0,
            },
            Case {
                what: "past half-life: refresh",
                cached: Some((2000, 1600)),
                failure: None,
                window: 15,
                cache: true,
                answers: &[Token(3600)],
                expect: Ok(Some("minted-1")),
                mints: 1,
            },
            Case {
                what: "past half-life, refresh unreachable: the cached one",
                cached: Some((2000, 1600)),
                failure: None,
                window: 15,
                cache: true,
                answers: &[Unreachable],
                expect: Ok(None),
                mints: 1,
            },
            Case {
                what: "past half-life, refresh refused: the cached one",
                cached: Some((2000, 1600)),
                failure: None,
                window: 15,
                cache: true,
                answers: &[Refused],
                expect: Ok(None),
                mints: 1,
            },
            Case {
                what: "under a minute left, refresh fails: the error",
                cached: Some((3550, 50)),
                failure: None,
                window: 15,
                cache: true,
                answers: &[Refused],
                expect: Err("HTTP 400"),
                mints: 1,
            },
            Case {
                what: "under a minute left: never handed out",
                cached: Some((3550, 50)),
                failure: None,
                window: 15,
                cache: true,
                answers: &[Token(3600)],
                expect: Ok(Some("minted-1")),
                mints: 1,
            },
            Case {
                what: "no cache: always mint",
                cached: Some((100, 3500)),
                failure: None,
                window: 15,
                cache: false,
                answers: &[Token(3600)],
                expect: Ok(Some("minted-1")),
                mints: 1,
            },
            Case {
                what: "network failure a moment ago: no request",
                cached: None,
                failure: Some((5, true)),
                window: 15,
                cache: true,
                answers: &[],
                expect: Err("DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW=0"),
                mints: 0,
            },
            Case {
                what: "network failure a moment ago, usable token: the cached one",
                cached: Some((2000, 1600)),
                failure: Some((5, true)),
                window: 15,
                cache: true,
                answers: &[],
                expect: Ok(None),
                mints: 0,
            },
            Case {
                what: "network failure outside the window: mint",
                cached: None,
                failure: Some((16, true)),
                window: 15,
                cache: true,
                answers: &[Token(3600)],
                expect: Ok(Some("minted-1")),
                mints: 1,
            },
            Case {
                what: "window off: mint",
                cached: None,
                failure: Some((1, true)),
                window: 0,
                cache: true,
                answers: &[Token(3600)],
                expect: Ok(Some("minted-1")),
                mints: 1,
            },
            Case {
                what: "a refusal is no reason to wait: mint",
                cached: None,
                failure: Some((1, false)),
                window: 15,
                cache: true,
                answers: &[Token(3600)],
                expect: Ok(Some("minted-1")),
                mints: 1,
            },
            Case {
                what: "unreachable: the error",
                cached: None,
                failure: None,
                window: 15,
                cache: true,
                answers: &[Unreachable],
                expect: Err("unreachable"),
                mints: 1,
            },
        ];
        for case in &cases {
            run(case);
        }
    }

    #[test]
    fn what_a_call_leaves_behind_decides_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let clock = TestClock(Cell::new(NOW));
        let identity = identity();
        let policy = Policy {
            cache_dir: Some(dir.path().join("cache")),
            timeout: Duration::from_secs(2),
            deadline: Instant::now() + Duration::from_secs(2),
            failure_window: Duration::from_secs(15),
            proxies: Default::default(),
        };
        let minter = TestMint {
            clock: &clock,
            answers: RefCell::new([Unreachable, Token(3600), Token(30), Token(3600)].into_iter().collect()),
            calls: Cell::new(0),
        };
        let call = || access_token_with(&policy, &identity, &clock, &minter);
        // A network failure is recorded: the next call within the window asks nobody.
        assert!(call().is_err());
        assert!(call().is_err());
        assert_eq!(minter.calls.get(), 1);
        // After the window: a new token, cached, and the failure forgotten.
        clock.0.set(NOW + 16);
        assert_eq!(call().unwrap().secret.expose(), "minted-2");
        assert!(call().unwrap().from_cache);
        assert_eq!(minter.calls.get(), 2);
        // A token minted with under a minute left is handed out once, never cached.
        clock.0.set(NOW + 16 + 1900);
        assert_eq!(call().unwrap().secret.expose(), "minted-3");
        assert_eq!(call().unwrap().secret.expose(), "minted-4");
        assert_eq!(minter.calls.get(), 4);
    }

    #[test]
    fn a_lock_held_past_the_deadline_serves_the_usable_token_or_fails_naming_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        let clock = TestClock(Cell::new(NOW));
        let identity = identity();
        let cache = Cache::open(&cache_dir).unwrap();
        let _held = cache
            .lock(&identity.cache_id(), Instant::now() + Duration::from_secs(1))
            .unwrap();
        let policy = Policy {
            cache_dir: Some(cache_dir),
            timeout: Duration::from_millis(200),
            deadline: Instant::now() + Duration::from_millis(200),
            failure_window: Duration::from_secs(15),
            proxies: Default::default(),
        };
        let minter = TestMint {
            clock: &clock,
            answers: RefCell::new(VecDeque::new()),
            calls: Cell::new(0),
        };
        let err = access_token_with(&policy, &identity, &clock, &minter)
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out") && err.contains("lock"), "{err}");
        cache
            .write(
                &identity.cache_id(),
                &CachedToken {
                    access_token: Secret::new("cached"),
                    issued_at: NOW - 2000,
                    expires_at: NOW + 1600,
                },
            )
            .unwrap();
        let t = access_token_with(&policy, &identity, &clock, &minter).unwrap();
        assert!(t.from_cache);
        assert_eq!(
            minter.calls.get(),
            0,
            "nothing is minted while another process holds the lock"
        );
    }
}
