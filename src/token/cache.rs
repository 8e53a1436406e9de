//! The on-disk token cache: one JSON file per identity, written atomically, guarded by a lock
//! file so that many processes at once make one token request.
//!
//! Safety rules, because the cache holds bearer tokens: the directory is 0700 and owned by us
//! (a group/world-writable, foreign or symlinked directory is refused), files are 0600, a file
//! that is a symlink, foreign-owned, unparsable or written for another identity is ignored and
//! replaced, and replacement is a rename, so a symlink planted in place of the file is never
//! followed.

use crate::fs::{
    DirError, LockError, LockGuard, check_own_file, lock_file, open_nofollow, open_private_dir, write_atomic,
};
use crate::log::{debug, warn};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to do instead of a symlinked cache directory, for the warning that refuses it.
const CACHE_LINK_FIX: &str =
    "set DOCKER_CREDENTIAL_STACKIT_CACHE_DIR to a directory of its own that is not a symbolic link";

/// A cached token with less than this many seconds left is never handed out.
pub const MIN_REMAINING: u64 = 60;
/// Cache files larger than this are not ours.
const MAX_CACHE_FILE: u64 = 64 * 1024;
/// A `.token-*.tmp` file older than this was left by a writer that died before renaming it.
const STALE_TEMP: Duration = Duration::from_secs(600);
const FORMAT_VERSION: u32 = 1;

/// A token and its validity, in unix seconds.
#[derive(Debug, Clone)]
pub struct CachedToken {
    /// The access token.
    pub access_token: Secret,
    /// When it was minted (local clock).
    pub issued_at: u64,
    /// When it expires (the token's `exp`).
    pub expires_at: u64,
}

/// What a cached token is good for at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// More than half its lifetime and at least [`MIN_REMAINING`] left: use it.
    Fresh,
    /// Past half-life but still at least [`MIN_REMAINING`] left: refresh, but serve it if the
    /// refresh fails.
    Usable,
    /// Less than [`MIN_REMAINING`] left: never hand it out.
    Expired,
}

impl CachedToken {
    /// Seconds left at `now` (zero once expired).
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// Classifies the token at `now`.
    pub fn freshness(&self, now: u64) -> Freshness {
        let remaining = self.remaining(now);
        if remaining < MIN_REMAINING {
            return Freshness::Expired;
        }
        let lifetime = self.expires_at.saturating_sub(self.issued_at);
        if remaining.saturating_mul(2) > lifetime {
            Freshness::Fresh
        } else {
            Freshness::Usable
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    identity: String,
    access_token: String,
    issued_at: u64,
    expires_at: u64,
}

/// A refresh that failed, kept so that the processes that were waiting on the lock meanwhile
/// report it instead of each repeating the request (a refused key in a CI fan-out would
/// otherwise cost one rejected request per process).
#[derive(Serialize, Deserialize)]
struct FailureFile {
    version: u32,
    identity: String,
    /// When it failed, unix milliseconds.
    at_ms: u64,
    /// The error, as shown to the user (never holds secrets).
    message: String,
    /// Whether the endpoint was not reached (a network failure), which later processes answer
    /// with for a short window instead of waiting out their own deadline.
    #[serde(default)]
    network: bool,
}

/// A cache directory that passed the safety checks.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Opens (creating if needed) the cache directory. An error says why it cannot be used;
    /// callers then work without a cache.
    pub fn open(dir: &Path) -> Result<Cache, DirError> {
        open_private_dir(dir, CACHE_LINK_FIX)?;
        Ok(Cache { dir: dir.to_path_buf() })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("token-{:016x}.{ext}", fnv1a(id.as_bytes())))
    }

    /// The cached token for `id`, or `None` if absent, unreadable, corrupt or foreign.
    pub fn read(&self, id: &str) -> Option<CachedToken> {
        let path = self.path(id, "json");
        let file = match open_nofollow(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                debug!("ignoring cache file {}: {e}", path.display());
                return None;
            }
        };
        let meta = match check_own_file(&file) {
            Ok(meta) => meta,
            Err(why) => {
                debug!("ignoring cache file {}: {why}", path.display());
                return None;
            }
        };
        // One read(2) for the whole file: `read_text` starts with room for it.
        let mut text = match crate::fs::read_text(file, &meta, MAX_CACHE_FILE) {
            Ok(text) => text,
            Err(e) => {
                debug!("ignoring cache file {}: {e}", path.display());
                return None;
            }
        };
        let parsed = parse_entry(&text, id);
        zeroize::Zeroize::zeroize(&mut text);
        match parsed {
            Ok(token) => Some(token),
            Err(why) => {
                debug!("ignoring cache file {}: {why}", path.display());
                None
            }
        }
    }

    /// Stores `token` for `id` atomically: a 0600 temp file in the same directory, synced, then
    /// renamed over the old file. A failure leaves the previous file intact.
    pub fn write(&self, id: &str, token: &CachedToken) -> std::io::Result<()> {
        let body = CacheFile {
            version: FORMAT_VERSION,
            identity: id.to_string(),
            access_token: token.access_token.expose().to_string(),
            issued_at: token.issued_at,
            expires_at: token.expires_at,
        };
        let mut json = serde_json::to_vec(&body).map_err(std::io::Error::other)?;
        let mut body = body;
        zeroize::Zeroize::zeroize(&mut body.access_token);
        let result = write_atomic(&self.dir, ".token-", &self.path(id, "json"), &json);
        zeroize::Zeroize::zeroize(&mut json);
        result?;
        self.remove_stale_temp_files();
        Ok(())
    }

    /// Records that refreshing `id` failed with `message` at `at_ms` (unix milliseconds).
    pub fn record_failure(&self, id: &str, message: &str, at_ms: u64, network: bool) -> std::io::Result<()> {
        let body = FailureFile {
            version: FORMAT_VERSION,
            identity: id.to_string(),
            at_ms,
            message: message.to_string(),
            network,
        };
        let json = serde_json::to_vec(&body).map_err(std::io::Error::other)?;
        write_atomic(&self.dir, ".token-", &self.path(id, "err"), &json)
    }

    /// The message of a failure of `id` recorded at or after `since_ms`, if any; with
    /// `network_only`, only a failure to reach the endpoint counts.
    pub fn failure_since(&self, id: &str, since_ms: u64, network_only: bool) -> Option<String> {
        let file = open_nofollow(&self.path(id, "err"), false).ok()?;
        let meta = check_own_file(&file).ok()?;
        let text = crate::fs::read_text(file, &meta, MAX_CACHE_FILE).ok()?;
        let failure: FailureFile = serde_json::from_str(&text).ok()?;
        (failure.version == FORMAT_VERSION
            && failure.identity == id
            && failure.at_ms >= since_ms
            && (failure.network || !network_only))
            .then_some(failure.message)
    }

    /// Forgets a recorded failure of `id` (after a success, or on `erase`).
    pub fn clear_failure(&self, id: &str) {
        let _ = std::fs::remove_file(self.path(id, "err"));
    }

    /// Removes temp files that a writer killed between creating and renaming them left behind
    /// (SIGKILL, power loss). Only old ones: a fresh one may belong to a writer still running.
    /// Runs on the cold path only, after a successful write.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with(".token-") && name.ends_with(".tmp")) {
                continue;
            }
            // DirEntry::metadata does not follow symlinks, and removing a link removes the link.
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP);
            if stale {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => debug!("removed {}, left behind by a killed writer", entry.path().display()),
                    Err(e) => debug!("cannot remove stale {}: {e}", entry.path().display()),
                }
            }
        }
    }

    /// Deletes the cached token (and any recorded failure) for `id`. Missing is fine.
    pub fn remove(&self, id: &str) -> std::io::Result<bool> {
        self.clear_failure(id);
        match std::fs::remove_file(self.path(id, "json")) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes the exclusive lock for `id`, waiting until `deadline` at most.
    pub fn lock(&self, id: &str, deadline: Instant) -> Result<LockGuard, LockError> {
        lock_file(&self.path(id, "lock"), deadline)
    }
}

/// Parses the text of a cache file that should hold the token of identity `id`.
///
/// Pure (no I/O, no clock), so it can be fuzzed. Anything but a complete entry of this format
/// for this very identity is refused with a short reason; callers then fetch a new token.
pub fn parse_entry(text: &str, id: &str) -> Result<CachedToken, &'static str> {
    let file: CacheFile = serde_json::from_str(text).map_err(|_| "corrupt (not a cache entry)")?;
    if file.version != FORMAT_VERSION {
        return Err("written by another version of the cache format");
    }
    if file.identity != id {
        return Err("written for another identity");
    }
    let access_token = Secret::new(file.access_token);
    if access_token.is_empty() {
        return Err("holds no token");
    }
    if !access_token.is_token_text() {
        return Err("holds a token that is not visible ASCII text");
    }
    Ok(CachedToken {
        access_token,
        issued_at: file.issued_at,
        expires_at: file.expires_at,
    })
}

/// 64-bit FNV-1a: a stable, dependency-free file name for an identity. Collisions are harmless
/// because the file records the full identity and a mismatch is ignored.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Opens the cache at `dir`, or explains on stderr why the helper goes on without one.
pub fn open_or_warn(dir: Option<&Path>) -> Option<Cache> {
    let dir = dir?;
    match Cache::open(dir) {
        Ok(c) => Some(c),
        Err(why) => {
            warn!("token cache disabled: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(issued_at: u64, expires_at: u64) -> CachedToken {
        CachedToken {
            access_token: Secret::new("t"),
            issued_at,
            expires_at,
        }
    }

    #[test]
    fn freshness_follows_half_life_and_the_60s_floor() {
        let t = tok(1000, 4600); // one hour
        assert_eq!(t.freshness(1000), Freshness::Fresh);
        assert_eq!(t.freshness(2799), Freshness::Fresh);
        assert_eq!(t.freshness(2800), Freshness::Usable);
        assert_eq!(t.freshness(4540), Freshness::Usable);
        assert_eq!(t.freshness(4541), Freshness::Expired);
        assert_eq!(t.freshness(9999), Freshness::Expired);
        // A 90 s token is fresh only while both rules hold.
        let short = tok(0, 150);
        assert_eq!(short.freshness(74), Freshness::Fresh);
        assert_eq!(short.freshness(75), Freshness::Usable);
        assert_eq!(short.freshness(90), Freshness::Usable);
        assert_eq!(short.freshness(91), Freshness::Expired);
        // A token shorter than the floor is never served from cache.
        assert_eq!(tok(0, 50).freshness(0), Freshness::Expired);
    }

    #[test]
    fn round_trip_modes_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("c");
        let cache = Cache::open(&cdir).unwrap();
        assert!(cache.read("id").is_none());
        cache.write("id", &tok(1, 2)).unwrap();
        let back = cache.read("id").unwrap();
        assert_eq!(
            (back.access_token.expose(), back.issued_at, back.expires_at),
            ("t", 1, 2)
        );
        assert!(cache.read("other-id").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&cdir), 0o700);
            assert_eq!(mode(&cache.path("id", "json")), 0o600);
        }
        std::fs::write(cache.path("id", "json"), b"{not json").unwrap();
        assert!(cache.read("id").is_none());
        cache.write("id", &tok(1, 2)).unwrap();
        assert!(cache.read("id").is_some());
        assert!(cache.remove("id").unwrap());
        assert!(!cache.remove("id").unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_cache_file_is_neither_read_nor_followed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, cache.path("id", "json")).unwrap();
        assert!(cache.read("id").is_none());
        cache.write("id", &tok(1, 2)).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(cache.read("id").is_some());
    }

    #[cfg(unix)]
    #[test]
    fn world_writable_dir_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c");
        std::fs::create_dir(&c).unwrap();
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Cache::open(&c).unwrap_err();
        assert!(matches!(err, DirError::Writable { mode: 0o777, .. }), "{err:?}");
        assert!(err.to_string().contains("writable by other users"), "{err}");
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o755)).unwrap();
        Cache::open(&c).unwrap();
        assert_eq!(std::fs::metadata(&c).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_dir_is_refused_and_its_target_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        let with_slash = PathBuf::from(format!("{}/", link.display()));
        for path in [&link, &with_slash] {
            let err = Cache::open(path).unwrap_err();
            assert!(
                matches!(&err, DirError::Link { target: Some(t), .. } if *t == mine),
                "{err:?}"
            );
            assert!(err.to_string().contains("is a symbolic link"), "{err}");
            assert_eq!(mode(&mine), 0o755, "{path:?}");
        }
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(Cache::open(&dangling), Err(DirError::Link { .. })));
        assert!(!dir.path().join("nowhere").exists(), "nothing created through the link");
        // A link further up the path is the user's layout (e.g. ~/.cache on another disk).
        let below = link.join("c");
        Cache::open(&below).unwrap();
        assert_eq!((mode(&below), mode(&mine)), (0o700, 0o755));
    }

    #[test]
    fn lock_times_out_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let held = cache.lock("id", Instant::now() + Duration::from_secs(1)).unwrap();
        let second = Cache::open(dir.path()).unwrap();
        assert!(matches!(
            second.lock("id", Instant::now() + Duration::from_millis(50)),
            Err(LockError::Timeout(_))
        ));
        drop(held);
        assert!(second.lock("id", Instant::now() + Duration::from_millis(50)).is_ok());
    }
}
