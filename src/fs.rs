//! File-system safety, shared by the token cache, the robot store, configure-docker and every
//! reader of key, config and token files: private directories that are never symlinks, opens
//! that never follow a planted symlink nor block on a FIFO, atomic writes, and a lock with a
//! deadline. Nothing here knows what the files hold.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Holding this keeps the identity's lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process held it past the deadline.
    Timeout(PathBuf),
    /// The lock file cannot be opened or locked at all.
    Unavailable(String),
}

/// Opens `path` for reading without blocking on a FIFO that has no writer: a key or config
/// path pointing at one would otherwise hang every `docker pull`. The file stays non-blocking
/// (regular files ignore that), so reading a pipe or device never blocks either: see
/// [`read_text_by`], which waits for its data until a deadline. A FIFO nobody has opened for
/// writing reads as empty; process substitution (`STACKIT_SERVICE_ACCOUNT_KEY_PATH=<(vault
/// read ...)`) has its writer already and works.
pub fn open_for_reading(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

/// Reads at most `max` bytes from `file`; `Ok(None)` when there is more, so that a huge file,
/// `/dev/zero` or a runaway pipe cannot eat memory. Callers name the limit in their message.
/// A non-blocking pipe or device with nothing to read yet is waited for until `deadline`
/// (then `TimedOut`), or, without a deadline, is an error at once (`WouldBlock`).
fn read_capped(
    file: &File,
    known: Option<&std::fs::Metadata>,
    max: u64,
    deadline: Option<Instant>,
) -> std::io::Result<Option<Vec<u8>>> {
    // `take` hides the file's size, so an empty Vec would grow from 32 bytes, one read(2) per
    // doubling (nine for a key file). A regular file's size (up to the cap) is room enough: a
    // buffer of just that size fits in what the heap already has, where a fixed 8 KiB one
    // took fresh pages for every file a warm `get` reads. Pipes and devices start at 8 KiB.
    // The caller's metadata when it has some (it checked owner or mode): no second fstat.
    let fetched;
    let meta = match known {
        Some(meta) => Some(meta),
        None => {
            fetched = file.metadata().ok();
            fetched.as_ref()
        }
    };
    let room = match meta {
        Some(m) if m.is_file() => usize::try_from(m.len().min(max)).unwrap_or(0).saturating_add(1),
        _ => 8 * 1024,
    };
    let mut bytes = Vec::with_capacity(room);
    let mut limited = file.take(max.saturating_add(1));
    let read = loop {
        // read_to_end keeps what it read before an error, so a retry continues where it stopped.
        match limited.read_to_end(&mut bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => match deadline {
                Some(deadline) => {
                    if let Err(e) = wait_readable(file, deadline) {
                        break Err(e);
                    }
                }
                None => break Err(e),
            },
            other => break other,
        }
    };
    if read.is_err() || bytes.len() as u64 > max {
        // What was read may be secret all the same (a key, a cached token).
        zeroize::Zeroize::zeroize(&mut bytes);
        return read.map(|_| None);
    }
    // Give back the unused room: secrets read here are wiped on drop, capacity and all, and
    // shrinking in place copies nothing.
    bytes.shrink_to_fit();
    Ok(Some(bytes))
}

/// Waits until `file` has data (or its writer went away), or fails with `TimedOut` at
/// `deadline`.
#[cfg(unix)]
fn wait_readable(file: &File, deadline: Instant) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        let mut pollfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll reads one pollfd this function owns and writes only its `revents`.
        match unsafe { libc::poll(&mut pollfd, 1, ms) } {
            n if n > 0 => return Ok(()),
            0 => {}
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(not(unix))]
fn wait_readable(_file: &File, _deadline: Instant) -> std::io::Result<()> {
    Err(std::io::ErrorKind::WouldBlock.into())
}

/// Why a file cannot be read as text; callers put it in their own words around [`ReadError`]'s
/// `Display`, which says what is wrong with the file.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed (missing, permission denied, ...).
    Unreadable(std::io::Error),
    /// It is larger than this many bytes, so it is not what it should be.
    TooLarge(u64),
    /// It is not UTF-8 text.
    NotText,
    /// It is a pipe or device that did not deliver its content before the deadline.
    TimedOut,
}

impl ReadError {
    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Unreadable(e) if e.kind() == std::io::ErrorKind::NotFound)
    }

    /// The reason, followed for a file of the wrong size or kind by what it therefore is not:
    /// `it is larger than 256 KiB; it is not a key file`. Every message about a file that
    /// cannot be read words the problem here, so the same problem reads the same everywhere.
    pub fn reason_for(&self, kind: &str) -> String {
        match self {
            ReadError::TooLarge(_) | ReadError::NotText => format!("{self}; it is not a {kind}"),
            ReadError::Unreadable(_) | ReadError::TimedOut => self.to_string(),
        }
    }
}

const MIB: u64 = 1024 * 1024;

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Unreadable(e) => f.write_str(&io_reason(e)),
            // Limits above 1 MiB read better in MiB; 1 MiB itself reads "1024 KiB", as it
            // always has in messages users may search for.
            ReadError::TooLarge(max) if *max > MIB && max % MIB == 0 => write!(f, "it is larger than {} MiB", max / MIB),
            ReadError::TooLarge(max) => write!(f, "it is larger than {} KiB", max / 1024),
            ReadError::NotText => f.write_str("it is not text (invalid UTF-8)"),
            ReadError::TimedOut => f.write_str(
                "it is a pipe or device whose writer sent nothing (more) before the deadline (DOCKER_CREDENTIAL_STACKIT_TIMEOUT)",
            ),
        }
    }
}

/// Reads `file` (a regular file the caller has checked, `meta` what [`check_own_file`] found)
/// as UTF-8 text of at most `max` bytes; it never waits. Bytes that are not text are wiped
/// before they are dropped: the file may have held a secret all the same.
pub fn read_text(file: File, meta: &std::fs::Metadata, max: u64) -> Result<String, ReadError> {
    text_of(read_capped(&file, Some(meta), max, None), max)
}

/// Reads `file` as UTF-8 text of at most `max` bytes, waiting for a pipe's or device's data no
/// later than `deadline`; `meta` is its metadata if the caller already has it.
pub fn read_text_by(
    file: File,
    meta: Option<&std::fs::Metadata>,
    max: u64,
    deadline: Instant,
) -> Result<String, ReadError> {
    text_of(read_capped(&file, meta, max, Some(deadline)), max)
}

fn text_of(read: std::io::Result<Option<Vec<u8>>>, max: u64) -> Result<String, ReadError> {
    let bytes = read
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => ReadError::TimedOut,
            _ => ReadError::Unreadable(e),
        })?
        .ok_or(ReadError::TooLarge(max))?;
    String::from_utf8(bytes).map_err(|e| {
        let mut bytes = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut bytes);
        ReadError::NotText
    })
}

/// [`open_for_reading`] then [`read_text_by`]: the one way to read a text file a user named (a
/// config, a token, a robot's JSON), never hanging on a FIFO past `deadline` and never reading
/// without bound.
pub fn read_text_file(path: &Path, max: u64, deadline: Instant) -> Result<String, ReadError> {
    read_text_by(
        open_for_reading(path).map_err(ReadError::Unreadable)?,
        None,
        max,
        deadline,
    )
}

/// A short reason for an I/O error without the OS error number noise.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Writes `bytes` to `target` atomically: a 0600 temp file named `<prefix>….tmp` in `dir` (the
/// target's directory, so the rename stays on one file system), synced, then renamed over the
/// target, which replaces a symlink rather than following it. A failure leaves the old file.
pub fn write_atomic(dir: &Path, prefix: &str, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(dir, prefix, target, bytes, |_| Ok(())).map_err(|(_, e)| e)
}

/// The stage of [`write_atomic_with`] that failed, for callers that word each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStage {
    /// Creating the temp file next to the target.
    Create,
    /// Writing the bytes.
    Write,
    /// The caller's `prepare` (owner, mode).
    Prepare,
    /// Flushing the temp file to disk.
    Sync,
    /// Renaming it over the target.
    Replace,
}

/// The one atomic writer: [`write_atomic`], with `prepare` run on the temp file before it is
/// synced and renamed (to give it the old file's owner and mode, say), and the directory
/// synced after the rename so that the rename itself survives a crash.
pub fn write_atomic_with(
    dir: &Path,
    prefix: &str,
    target: &Path,
    bytes: &[u8],
    prepare: impl FnOnce(&File) -> std::io::Result<()>,
) -> Result<(), (WriteStage, std::io::Error)> {
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| (WriteStage::Create, e))?;
    tmp.write_all(bytes).map_err(|e| (WriteStage::Write, e))?;
    prepare(tmp.as_file()).map_err(|e| (WriteStage::Prepare, e))?;
    tmp.as_file().sync_all().map_err(|e| (WriteStage::Sync, e))?;
    tmp.persist(target).map_err(|e| (WriteStage::Replace, e.error))?;
    // Failing here cannot undo a completed rename, so it is not an error.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Takes an exclusive lock on the file at `path` (created 0600, never through a symlink),
/// polling until `deadline` at most: std's blocking `lock` has no timeout, and a waiter must
/// never hang Docker.
pub fn lock_file(path: &Path, deadline: Instant) -> Result<LockGuard, LockError> {
    let file = open_nofollow(path, true)
        .map_err(|e| LockError::Unavailable(format!("cannot open lock file {}: {e}", path.display())))?;
    let mut pause = Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(LockGuard { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LockError::Unavailable(format!("cannot lock {}: {e}", path.display())));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(LockError::Timeout(path.to_path_buf()));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// Creates `dir` (and missing parents) with mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Makes `dir` usable as a private directory: creates it (0700) if it is missing, refuses it if
/// it is a symbolic link, a directory others could write to or one that belongs to someone
/// else, and tightens our own directory to 0700 if it is merely readable by others. `link_fix`
/// tells the user what to do instead of a symlink. The error is one line, naming `dir`.
///
/// A symlink is refused rather than followed: tightening its target to 0700 would silently
/// change a directory the helper did not create (say, a shared 0755 one the user linked to), and
/// using a looser target as it is would break the rule that token files live in a 0700
/// directory. Refusing is what already happens to every directory that cannot be trusted, and
/// what follows is the same: the token cache is skipped with a warning (`get` still answers),
/// storing a robot login fails with this error.
/// A link further up the path is the user's own layout (e.g. `~/.cache` on another disk) and is
/// followed as usual.
///
/// The checks and the chmod go through one descriptor opened with `O_NOFOLLOW`, so a link put in
/// place of the directory after it was created is refused, never chmod'ed.
#[cfg(unix)]
pub fn open_private_dir(dir: &Path, link_fix: &str) -> Result<(), DirError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    // A trailing slash ("link/") makes the kernel follow the link despite O_NOFOLLOW; the
    // components are the same path without it.
    let dir: PathBuf = dir.components().collect();
    let path = || dir.clone();
    let refuse_link = || DirError::Link {
        target: std::fs::read_link(&dir).ok(),
        path: path(),
        fix: link_fix.to_string(),
    };
    // A link found here is refused below: the O_NOFOLLOW open fails on it.
    match std::fs::symlink_metadata(&dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(&dir).map_err(|source| DirError::Create { path: path(), source })?;
        }
        Err(source) => return Err(DirError::Inspect { path: path(), source }),
    }
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(&dir)
        .map_err(|source| match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => refuse_link(),
            Ok(meta) if !meta.is_dir() => DirError::NotDir { path: path() },
            _ => DirError::Open { path: path(), source },
        })?;
    let meta = handle
        .metadata()
        .map_err(|source| DirError::Inspect { path: path(), source })?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let you = unsafe { libc::geteuid() };
    if meta.uid() != you {
        return Err(DirError::Foreign {
            path: path(),
            owner: meta.uid(),
            you,
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(DirError::Writable { path: path(), mode });
    }
    if mode & 0o077 != 0 {
        // fchmod on the descriptor just checked, not chmod on the path, which could now lead elsewhere.
        handle
            .set_permissions(std::fs::Permissions::from_mode(0o700))
            .map_err(|source| DirError::Restrict { path: path(), source })?;
    }
    Ok(())
}

/// Creates `dir` if it is missing and checks that it is a directory; see the Unix version for
/// the rules. Windows has no modes to keep private, so there is nothing more to check.
#[cfg(not(unix))]
pub fn open_private_dir(dir: &Path, _link_fix: &str) -> Result<(), DirError> {
    let path = || dir.to_path_buf();
    create_private_dir(dir).map_err(|source| DirError::Create { path: path(), source })?;
    if dir.is_dir() {
        Ok(())
    } else {
        Err(DirError::NotDir { path: path() })
    }
}

/// Why a directory cannot be a private directory; the text is the one-line message users see.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// It is a symbolic link (never followed nor chmod'ed); `fix` says what to do instead.
    #[error(
        "{} is a symbolic link{}; not using it, so that what it points to is never changed. Fix: {fix}",
        .path.display(),
        .target.as_ref().map(|t| format!(" (to {})", t.display())).unwrap_or_default()
    )]
    Link {
        /// The directory.
        path: PathBuf,
        /// Where the link points, if it could be read.
        target: Option<PathBuf>,
        /// What to do instead.
        fix: String,
    },
    /// It was missing and cannot be created.
    #[error("cannot create {}: {source}", .path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its metadata cannot be read.
    #[error("cannot inspect {}: {source}", .path.display())]
    Inspect {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It cannot be opened.
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something else than a directory is in its place.
    #[error("{} is not a directory", .path.display())]
    NotDir {
        /// The path.
        path: PathBuf,
    },
    /// It belongs to another user.
    #[error("{} belongs to uid {owner}, not to you (uid {you}); not using it", .path.display())]
    Foreign {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        you: u32,
    },
    /// Other users may write to it.
    #[error("{} is writable by other users (mode {mode:o}); not using it. Fix: chmod 700 {}", .path.display(), .path.display())]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It is ours but readable by others, and cannot be tightened to 0700.
    #[error("cannot restrict {} to mode 700: {source}", .path.display())]
    Restrict {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens a file without following a symlink at its last component; with `create`, opens it for
/// writing and creates it 0600.
pub fn open_nofollow(path: &Path, create: bool) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    if create {
        o.write(true).create(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO planted in place of the file must not hang the open; regular
        // files ignore the flag, and callers refuse anything that is not a regular file.
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).mode(0o600);
    }
    o.open(path)
}

/// A cache or store file must be a regular file owned by us and private to us; its metadata,
/// for the read that follows.
#[cfg(unix)]
pub fn check_own_file(file: &File) -> Result<std::fs::Metadata, FileCheckError> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().map_err(FileCheckError::Inspect)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_file() {
        Err(FileCheckError::NotRegular)
    } else if meta.uid() != uid {
        Err(FileCheckError::Foreign(meta.uid()))
    } else if meta.mode() & 0o077 != 0 {
        Err(FileCheckError::Readable(meta.mode() & 0o777))
    } else {
        Ok(meta)
    }
}

/// A file must be a regular file (Windows has no owner or mode bits to check here).
#[cfg(not(unix))]
pub fn check_own_file(file: &File) -> Result<std::fs::Metadata, FileCheckError> {
    let meta = file.metadata().map_err(FileCheckError::Inspect)?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(FileCheckError::NotRegular)
    }
}

/// Why a file the helper keeps for itself cannot be trusted; the text completes a message
/// that names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileCheckError {
    /// Its metadata cannot be read.
    #[error("{0}")]
    Inspect(std::io::Error),
    /// A FIFO, device or directory is in its place.
    #[error("not a regular file")]
    NotRegular,
    /// It belongs to this other uid.
    #[error("owned by uid {0}, not by you")]
    Foreign(u32),
    /// Other users may read it (these permission bits).
    #[error("mode {0:o} is readable by others")]
    Readable(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_problem_is_worded_the_same_for_every_file() {
        assert_eq!(
            ReadError::TooLarge(256 * 1024).reason_for("key file"),
            "it is larger than 256 KiB; it is not a key file"
        );
        assert_eq!(
            ReadError::TooLarge(1024 * 1024).to_string(),
            "it is larger than 1024 KiB"
        );
        assert_eq!(
            ReadError::TooLarge(16 * 1024 * 1024).to_string(),
            "it is larger than 16 MiB"
        );
        assert_eq!(
            ReadError::NotText.reason_for("token"),
            "it is not text (invalid UTF-8); it is not a token"
        );
        let missing = ReadError::Unreadable(std::io::Error::from(std::io::ErrorKind::NotFound));
        // A missing file is not "not a key file": nothing is said about what it is.
        assert!(
            !missing.reason_for("key file").contains("not a key file"),
            "{}",
            missing.reason_for("key file")
        );
        assert!(
            ReadError::TimedOut
                .reason_for("token")
                .contains("DOCKER_CREDENTIAL_STACKIT_TIMEOUT")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_dir_below_a_file_cannot_be_inspected_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = open_private_dir(&file.join("cache"), "fix").unwrap_err();
        assert!(matches!(err, DirError::Inspect { .. }), "{err:?}");
        assert!(err.to_string().starts_with("cannot inspect "), "{err}");
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "12345").unwrap();
        assert_eq!(read_text_file(&path, 5, soon()).unwrap(), "12345");
        assert!(matches!(read_text_file(&path, 4, soon()), Err(ReadError::TooLarge(4))));
        assert!(
            read_text_file(&dir.path().join("missing"), 4, soon())
                .unwrap_err()
                .is_not_found()
        );
        std::fs::write(&path, b"\xff\xfe").unwrap();
        assert!(matches!(read_text_file(&path, 5, soon()), Err(ReadError::NotText)));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_without_a_writer_reads_as_empty_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo_in(dir.path());
        assert_eq!(read_text_file(&fifo, 10, soon()).unwrap(), "");
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// A new named pipe `fifo` in `dir`, with no reader or writer yet.
    #[cfg(unix)]
    fn fifo_in(dir: &Path) -> std::path::PathBuf {
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        fifo
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_whose_writer_never_writes_ends_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = fifo_in(dir.path());
        // An idle writer: opened (non-blocking, as the reader is not there yet, needs O_RDWR)
        // and kept open, writing nothing.
        let writer = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        assert!(matches!(read_text_file(&fifo, 10, deadline), Err(ReadError::TimedOut)));
        assert!(Instant::now() >= deadline, "it waited until the deadline");
        // Data that does arrive is read whole, across several writes.
        let mut w = &writer;
        w.write_all(b"par").unwrap();
        let reader = open_for_reading(&fifo).unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let mut w = &writer;
            w.write_all(b"tial").unwrap();
            drop(writer);
        });
        assert_eq!(read_text_by(reader, None, 10, soon()).unwrap(), "partial");
        late.join().unwrap();
        assert!(
            ReadError::TimedOut
                .to_string()
                .contains("DOCKER_CREDENTIAL_STACKIT_TIMEOUT")
        );
    }
}
