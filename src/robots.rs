//! Stored legacy robot credentials (`robot$project+name` / secret) for hosts without a service
//! account identity, in one 0600 JSON file under the user data directory.

use crate::error::{Error, Result};
use crate::fs::{LockError, LockGuard, check_own_file, lock_file, open_nofollow, open_private_dir, write_atomic};
use crate::log::{debug, warn};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const MAX_FILE: u64 = 4 * 1024 * 1024;

/// What to do instead of a symlinked data directory, for the error that refuses it.
const DATA_LINK_FIX: &str = "replace the link with a real directory";

/// The store of robot credentials, one entry per `host[:port]`.
#[derive(Debug)]
pub struct RobotStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize, Default)]
struct StoreFile {
    version: u32,
    registries: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    username: String,
    secret: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl RobotStore {
    /// A store kept in `dir` (created on first write).
    pub fn new(dir: &Path) -> RobotStore {
        RobotStore { dir: dir.to_path_buf() }
    }

    /// The file holding the credentials.
    pub fn path(&self) -> PathBuf {
        self.dir.join("robots.json")
    }

    /// The stored username and secret for `host`.
    pub fn get(&self, host: &str) -> Option<(String, Secret)> {
        let file = self.load().ok()?;
        file.registries
            .get(host)
            .map(|e| (e.username.clone(), Secret::new(e.secret.clone())))
    }

    /// Host -> username for every stored entry.
    pub fn list(&self) -> BTreeMap<String, String> {
        match self.load() {
            Ok(f) => f
                .registries
                .iter()
                .map(|(h, e)| (h.clone(), e.username.clone()))
                .collect(),
            Err(_) => BTreeMap::new(),
        }
    }

    /// Stores (or replaces) the credentials for `host`, waiting for the store's lock at most
    /// until `deadline`.
    pub fn put(&self, host: &str, username: &str, secret: &Secret, deadline: Instant) -> Result<()> {
        self.update(deadline, |f| {
            f.registries.insert(
                host.to_string(),
                Entry {
                    username: username.to_string(),
                    secret: secret.expose().to_string(),
                },
            );
            true
        })
    }

    /// Removes the credentials for `host`; `Ok(false)` if there were none. Waits for the store's
    /// lock at most until `deadline`.
    ///
    /// The common case, nothing stored for `host`, is answered from an unlocked read: every
    /// `get` of a key-served host asks, and must not queue behind another process's write.
    pub fn remove(&self, host: &str, deadline: Instant) -> Result<bool> {
        if let Ok(file) = self.load_quietly()
            && !file.registries.contains_key(host)
        {
            return Ok(false);
        }
        let mut removed = false;
        self.update(deadline, |f| {
            removed = f.registries.remove(host).is_some();
            removed
        })?;
        Ok(removed)
    }

    /// Reads the file; a missing file is an empty store. A corrupt or foreign file is an error
    /// for writers (so nothing is overwritten blindly) and empty for readers; either way it is
    /// reported as a warning.
    fn load(&self) -> std::result::Result<StoreFile, StoreProblem> {
        self.load_quietly().inspect_err(|why| {
            warn!("ignoring stored robot credentials in {}: {why}", self.path().display());
        })
    }

    /// `load` without the warning, for callers that only peek (the writer that follows reports it).
    fn load_quietly(&self) -> std::result::Result<StoreFile, StoreProblem> {
        let path = self.path();
        let file = match open_nofollow(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StoreFile::default()),
            Err(e) => return Err(StoreProblem::Open(e)),
        };
        let meta = check_own_file(&file)?;
        // The same capped reader as the token cache's: one read(2), wiped if it is not text.
        // Texts as before: a read error reads as "not UTF-8 text", a file over the cap as
        // "not valid JSON" (it used to be cut at the cap and fail to parse).
        let mut text = crate::fs::read_text(file, &meta, MAX_FILE).map_err(|e| match e {
            crate::fs::ReadError::TooLarge(_) => StoreProblem::NotJson,
            crate::fs::ReadError::Unreadable(_) | crate::fs::ReadError::NotText | crate::fs::ReadError::TimedOut => {
                StoreProblem::NotText
            }
        })?;
        let parsed = serde_json::from_str::<StoreFile>(&text);
        zeroize::Zeroize::zeroize(&mut text);
        parsed.map_err(|_| StoreProblem::NotJson)
    }

    /// Read-modify-write under a lock; the write is atomic. `change` returns whether to write.
    fn update(&self, deadline: Instant, change: impl FnOnce(&mut StoreFile) -> bool) -> Result<()> {
        let io =
            |what: &str, e: &dyn std::fmt::Display| Error::Io(format!("cannot {what} {}: {e}", self.dir.display()));
        open_private_dir(&self.dir, DATA_LINK_FIX)?;
        let _lock = lock(&self.dir.join("robots.lock"), deadline)?;
        let mut file = match self.load() {
            Ok(f) => f,
            Err(_) => {
                // Keep the unreadable file for the user instead of overwriting it.
                let aside = self.dir.join("robots.json.corrupt");
                std::fs::rename(self.path(), &aside).map_err(|e| io("move aside a corrupt file in", &e))?;
                warn!("moved the unreadable {} to {}", self.path().display(), aside.display());
                StoreFile::default()
            }
        };
        if !change(&mut file) {
            return Ok(());
        }
        file.version = 1;
        let mut json = serde_json::to_vec_pretty(&file).map_err(|e| io("encode", &e))?;
        let written = write_atomic(&self.dir, ".robots-", &self.path(), &json);
        zeroize::Zeroize::zeroize(&mut json);
        written.map_err(|e| io("write in", &e))?;
        debug!("updated {}", self.path().display());
        Ok(())
    }
}

/// Why the store file cannot be used; the text completes "ignoring stored robot credentials
/// in <file>: ".
#[derive(Debug, thiserror::Error)]
enum StoreProblem {
    #[error("cannot open it: {0}")]
    Open(std::io::Error),
    #[error(transparent)]
    Unsafe(#[from] crate::fs::FileCheckError),
    #[error("it is not UTF-8 text")]
    NotText,
    #[error("it is not valid JSON")]
    NotJson,
}

fn lock(path: &Path, deadline: Instant) -> Result<LockGuard> {
    let started = Instant::now();
    match lock_file(path, deadline) {
        Ok(guard) => Ok(guard),
        Err(LockError::Timeout(_)) => Err(Error::Io(format!(
            "another process held {} for the whole {:.0}s allowed (DOCKER_CREDENTIAL_STACKIT_TIMEOUT); try again",
            path.display(),
            started.elapsed().as_secs_f64()
        ))),
        Err(LockError::Unavailable(why)) => Err(Error::Io(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon() -> Instant {
        Instant::now() + std::time::Duration::from_secs(5)
    }

    #[test]
    fn put_get_remove_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let s = RobotStore::new(&dir.path().join("d"));
        assert!(s.get("h").is_none());
        assert!(!s.remove("h", soon()).unwrap());
        s.put("h", "robot$p+ci", &Secret::new("s1"), soon()).unwrap();
        s.put("g:5000", "robot$q", &Secret::new("s2"), soon()).unwrap();
        let (u, sec) = s.get("h").unwrap();
        assert_eq!((u.as_str(), sec.expose()), ("robot$p+ci", "s1"));
        assert_eq!(s.list().len(), 2);
        assert!(s.remove("h", soon()).unwrap());
        assert!(s.get("h").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(s.path()).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let s = RobotStore::new(dir.path());
        std::fs::write(s.path(), "{garbage").unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(s.path(), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert!(s.get("h").is_none());
        s.put("h", "u", &Secret::new("p"), soon()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("robots.json.corrupt")).unwrap(),
            "{garbage"
        );
        assert!(s.get("h").is_some());
    }
}
