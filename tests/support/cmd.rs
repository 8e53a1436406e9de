//! The one way the tests run a program: a strict builder in the style of casey/just's test
//! builder. Unless the test says otherwise, a run must exit 0 with stdout and stderr empty, and
//! every process gets a deadline: past it, its whole process group is killed and the test fails
//! with what the process had printed, instead of hanging the suite.
//!
//! ```ignore
//! env.cmd(&["get"]).stdin("registry.onstackit.cloud").json();          // exit 0, JSON, stderr ""
//! env.get(HOST).stderr_has("using the cached token").json();           // a warning is expected
//! env.get(HOST).assert_error(&["HTTP 400"]);                           // exit 1, one line, echoed on stderr
//! env.cmd(&["token", "a", "b"]).status(2).stderr_has("at most one").run();
//! ```

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any process a test starts may run unless the test sets its own deadline. Generous
/// for a debug build on a loaded 2-core machine; a hang fails in a minute, not at CI's limit.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// What one output stream must look like.
#[derive(Clone, Debug)]
struct Expect {
    /// The whole text, if the test pinned it (the default: empty).
    exact: Option<String>,
    /// Fragments it must contain.
    has: Vec<String>,
    /// Fragments it must not contain.
    lacks: Vec<String>,
}

impl Default for Expect {
    fn default() -> Expect {
        Expect {
            exact: Some(String::new()),
            has: Vec::new(),
            lacks: Vec::new(),
        }
    }
}

impl Expect {
    fn problems(&self, name: &str, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(exact) = &self.exact
            && text != exact
        {
            out.push(format!("{name} should be exactly {exact:?}"));
        }
        for f in &self.has {
            if !text.contains(f.as_str()) {
                out.push(format!("{name} lacks {f:?}"));
            }
        }
        for f in &self.lacks {
            if text.contains(f.as_str()) {
                out.push(format!("{name} must not contain {f:?}"));
            }
        }
        out
    }
}

/// A program about to run, with what it must do. Built by [`super::TestEnv::cmd`] and
/// [`super::TestEnv::program`] (a cleared environment plus the test's HOME and variables) or
/// [`Cmd::system`] (for system tools such as `mount`).
#[must_use = "a Cmd does nothing until run"]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    deadline: Duration,
    user: Option<(u32, u32)>,
    fsize: Option<u64>,
    log: Option<PathBuf>,
    die_with_test: bool,
    status: Option<i32>,
    status_set: bool,
    stdout: Expect,
    stderr: Expect,
    stderr_set: bool,
    stdout_json: bool,
    one_line: bool,
    error_echo: bool,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit status, or -1 when a signal ended the process.
    pub code: i32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// User plus system CPU time the process used (from `wait4`).
    pub cpu: Duration,
    /// Wall time from start to exit.
    pub elapsed: Duration,
}

impl Output {
    /// stdout parsed as JSON (the status was already checked by the run).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

impl Cmd {
    /// A command for `program` with an empty environment, no stdin, the default deadline and
    /// the strict default expectations.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            stdin: None,
            deadline: DEFAULT_DEADLINE,
            user: None,
            fsize: None,
            log: None,
            die_with_test: false,
            status: Some(0),
            status_set: false,
            stdout: Expect::default(),
            stderr: Expect::default(),
            stderr_set: false,
            stdout_json: false,
            one_line: false,
            error_echo: false,
        }
    }

    /// A system tool (`mount`, `umount`, …) with only `PATH` from the test's environment.
    pub fn system(program: &str) -> Cmd {
        Cmd::new(program).env("PATH", std::env::var_os("PATH").unwrap_or_default())
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Cmd {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets a variable for this run (over the environment's).
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((k.as_ref().to_os_string(), Some(v.as_ref().to_os_string())));
        self
    }

    /// Removes a variable for this run.
    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Cmd {
        self.env.push((k.as_ref().to_os_string(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Cmd {
        self.stdin = Some(input.as_ref().to_vec());
        self
    }

    /// The process (group) is killed and the test fails if it runs longer than this.
    pub fn deadline(mut self, limit: Duration) -> Cmd {
        self.deadline = limit;
        self
    }

    /// Runs the process as another user (the test must be root).
    pub fn run_as(mut self, uid: u32, gid: u32) -> Cmd {
        self.user = Some((uid, gid));
        self
    }

    /// Makes writes beyond `bytes` in any regular file fail with EFBIG (`RLIMIT_FSIZE`, with
    /// `SIGXFSZ` ignored), as a full disk would.
    pub fn fsize_limit(mut self, bytes: u64) -> Cmd {
        self.fsize = Some(bytes);
        self
    }

    /// Sends stdout and stderr to the file at `path` instead of the test (for daemons, whose
    /// log a test reads while they run); the run then sees both as empty.
    pub fn log_to(mut self, path: impl AsRef<Path>) -> Cmd {
        self.log = Some(path.as_ref().to_path_buf());
        self
    }

    /// Has the kernel kill the process when the test thread that started it ends, however the
    /// test ends (`PR_SET_PDEATHSIG`): for daemons that must never outlive a killed test.
    pub fn die_with_test(mut self) -> Cmd {
        self.die_with_test = true;
        self
    }

    /// The exit status the run must have (default 0).
    pub fn status(mut self, code: i32) -> Cmd {
        self.status = Some(code);
        self.status_set = true;
        self
    }

    /// Any exit status is fine: the test looks at it itself.
    pub fn any_status(mut self) -> Cmd {
        self.status = None;
        self.status_set = true;
        self
    }

    /// stdout must be exactly `text` (default: empty).
    pub fn stdout(mut self, text: impl Into<String>) -> Cmd {
        self.stdout.exact = Some(text.into());
        self
    }

    /// stdout must contain `fragment` (and may hold anything else).
    pub fn stdout_has(mut self, fragment: impl Into<String>) -> Cmd {
        self.stdout.exact = None;
        self.stdout.has.push(fragment.into());
        self
    }

    /// stdout must not contain `fragment`: a constraint on top of the others (with the default,
    /// empty stdout, it adds nothing; combine with [`Cmd::stdout_any`] or [`Cmd::expect_json`]).
    pub fn stdout_lacks(mut self, fragment: impl Into<String>) -> Cmd {
        self.stdout.lacks.push(fragment.into());
        self
    }

    /// stdout is not checked by the run: the test looks at it itself.
    pub fn stdout_any(mut self) -> Cmd {
        self.stdout.exact = None;
        self
    }

    /// stderr must be exactly `text` (default: empty).
    pub fn stderr(mut self, text: impl Into<String>) -> Cmd {
        self.stderr.exact = Some(text.into());
        self.stderr_set = true;
        self
    }

    /// stderr must contain `fragment` (and may hold anything else).
    pub fn stderr_has(mut self, fragment: impl Into<String>) -> Cmd {
        self.stderr.exact = None;
        self.stderr.has.push(fragment.into());
        self.stderr_set = true;
        self
    }

    /// stderr must not contain `fragment`: a constraint on top of the others, like
    /// [`Cmd::stdout_lacks`].
    pub fn stderr_lacks(mut self, fragment: impl Into<String>) -> Cmd {
        self.stderr.lacks.push(fragment.into());
        self
    }

    /// stderr is not checked by the run: the test looks at it itself.
    pub fn stderr_any(mut self) -> Cmd {
        self.stderr.exact = None;
        self.stderr_set = true;
        self
    }

    /// Expects stdout to be one line holding one JSON document.
    pub fn expect_json(mut self) -> Cmd {
        if self.stdout.exact.as_deref() == Some("") {
            self.stdout.exact = None;
        }
        self.stdout_json = true;
        self
    }

    /// Runs with [`Cmd::expect_json`] and returns stdout parsed.
    pub fn json(self) -> serde_json::Value {
        self.expect_json().run().json()
    }

    /// Expects Docker's answer for a failure: exit 1, one line on stdout containing every
    /// fragment, repeated on stderr as `docker-credential-stackit: error: …` and nothing else
    /// there unless the test says otherwise.
    pub fn expect_error(mut self, fragments: &[&str]) -> Cmd {
        if !self.status_set {
            self.status = Some(1);
        }
        if self.stdout.exact.as_deref() == Some("") {
            self.stdout.exact = None;
        }
        self.stdout.has.extend(fragments.iter().map(|f| f.to_string()));
        if !self.stderr_set {
            self.stderr.exact = None;
            self.error_echo = true;
        }
        self.one_line = true;
        self
    }

    /// Runs with [`Cmd::expect_error`] and returns the error line.
    pub fn assert_error(self, fragments: &[&str]) -> String {
        let out = self.expect_error(fragments).run();
        out.stdout.trim_end().to_string()
    }

    /// Runs and checks Docker's "not found" answer: exit 1, exactly the canonical line on stdout,
    /// stderr empty unless the test says otherwise.
    pub fn assert_not_found(mut self) {
        if !self.status_set {
            self.status = Some(1);
        }
        self.stdout.exact = Some("credentials not found in native keychain\n".into());
        self.run();
    }

    /// Runs to the end (within the deadline) and checks every expectation.
    pub fn run(self) -> Output {
        self.spawn().wait()
    }

    /// `program arg…`, for messages.
    fn describe(&self) -> String {
        let name = Path::new(&self.program)
            .file_name()
            .unwrap_or(self.program.as_os_str())
            .to_string_lossy()
            .into_owned();
        let mut all = vec![name];
        all.extend(self.args.iter().map(|a| {
            let a = a.to_string_lossy();
            if a.chars().count() > 120 {
                format!("{}…", a.chars().take(120).collect::<String>())
            } else {
                a.into_owned()
            }
        }));
        all.join(" ")
    }

    /// Starts the process in a process group of its own, feeds its stdin from a thread and
    /// drains its output, without waiting.
    pub fn spawn(self) -> Running {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).env_clear();
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::piped())
            // Its own group, so that the deadline can kill it and everything it started.
            .process_group(0);
        match &self.log {
            Some(path) => {
                let log = std::fs::File::create(path).unwrap_or_else(|e| panic!("log file {path:?}: {e}"));
                let copy = log.try_clone().unwrap_or_else(|e| panic!("log file {path:?}: {e}"));
                cmd.stdout(copy).stderr(log);
            }
            None => {
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        if self.die_with_test {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: prctl, getppid and _exit are async-signal-safe, as pre_exec requires.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The test may have died between fork and prctl.
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
        }
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        if let Some(limit) = self.fsize {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: libc::RLIM_INFINITY,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let started = Instant::now();
        // Reaped with wait4 by `Running` (for the CPU time), not by std's `Child`.
        #[allow(clippy::zombie_processes)]
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.describe()));
        let pid = child.id() as libc::pid_t;
        let input = self.stdin.clone().unwrap_or_default();
        let stdin = child.stdin.take();
        // A thread, so that a process that reads nothing cannot block the test; a process
        // that stops reading early (a size limit) gets EPIPE here, which is its answer.
        std::thread::spawn(move || {
            if let Some(mut pipe) = stdin {
                let _ = pipe.write_all(&input);
            }
        });
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        Running {
            cmd: self,
            pid,
            started,
            reaped: false,
            stdout,
            stderr,
        }
    }

    fn check(&self, out: &Output) {
        let mut problems = Vec::new();
        if let Some(code) = self.status
            && out.code != code
        {
            problems.push(format!("expected exit status {code}"));
        }
        problems.extend(self.stdout.problems("stdout", &out.stdout));
        problems.extend(self.stderr.problems("stderr", &out.stderr));
        if self.stdout_json {
            if out.stdout.lines().count() != 1 {
                problems.push("stdout should be one line of JSON".into());
            } else if let Err(e) = serde_json::from_str::<serde_json::Value>(&out.stdout) {
                problems.push(format!("stdout is not JSON: {e}"));
            }
        }
        if self.one_line && out.stdout.lines().count() != 1 {
            problems.push("stdout should be one line".into());
        }
        if self.error_echo {
            let line = out.stdout.trim_end();
            let echo = format!("docker-credential-stackit: error: {line}\n");
            if out.stderr != echo {
                problems.push(format!("stderr should be exactly the error line again: {echo:?}"));
            }
        }
        if !problems.is_empty() {
            panic!(
                "{}: {}\n  exit: {}{}\n  stdout: {:?}\n  stderr: {:?}",
                self.describe(),
                problems.join("; "),
                out.code,
                out.signal.map(|s| format!(" (signal {s})")).unwrap_or_default(),
                out.stdout,
                out.stderr
            );
        }
    }
}

/// Reads a pipe to the end on a thread; the text arrives on the channel.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// A process that is running. Dropping it kills its process group.
pub struct Running {
    cmd: Cmd,
    pid: libc::pid_t,
    started: Instant,
    reaped: bool,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

/// How a reaped process ended.
struct Ended {
    code: i32,
    signal: Option<i32>,
    cpu: Duration,
    elapsed: Duration,
}

impl Running {
    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Waits for the process within its deadline and checks the expectations.
    pub fn wait(mut self) -> Output {
        let deadline = self.cmd.deadline;
        let Some(ended) = self.reap(Some(deadline)) else {
            self.kill_group();
            self.reap(None);
            let (stdout, stderr) = self.collect(Duration::from_secs(1));
            panic!(
                "deadline: {} still running after {deadline:?}; its process group was killed\n  stdout: {stdout:?}\n  stderr: {stderr:?}",
                self.cmd.describe()
            );
        };
        let left = deadline
            .saturating_sub(self.started.elapsed())
            .max(Duration::from_secs(1));
        let out = self.output(ended, left);
        self.cmd.check(&out);
        out
    }

    /// SIGKILL to the process group (no chance to clean up); returns what it had printed,
    /// unchecked.
    pub fn kill(mut self) -> Output {
        self.kill_group();
        let ended = self.reap(None).expect("a blocking wait returns");
        self.output(ended, Duration::from_secs(5))
    }

    /// Sends `signal` to the process group (e.g. SIGTERM, to let a daemon shut down cleanly).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions; -pid addresses the group this test made.
        unsafe {
            libc::kill(-self.pid, signal);
        }
    }

    /// Whether the process has ended (without reaping it).
    pub fn has_exited(&self) -> bool {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid out-pointer; WNOWAIT leaves the child waitable.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid for the WEXITED case waitid fills in.
        r == 0 && unsafe { info.si_pid() } == self.pid
    }

    fn kill_group(&self) {
        // SAFETY: kill has no memory preconditions; -pid addresses the group this test made.
        unsafe {
            libc::kill(-self.pid, libc::SIGKILL);
        }
    }

    /// Reaps the process, giving up after `limit` (then `None`); `None` as limit blocks.
    fn reap(&mut self, limit: Option<Duration>) -> Option<Ended> {
        let mut pause = Duration::from_millis(1);
        loop {
            let mut status = 0;
            // SAFETY: an all-zero rusage is a valid value for the out-parameter.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            let flags = if limit.is_some() { libc::WNOHANG } else { 0 };
            // SAFETY: valid out-pointers; the pid is our own child.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut usage) };
            if r == self.pid {
                self.reaped = true;
                let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
                let signaled = libc::WIFSIGNALED(status);
                return Some(Ended {
                    code: if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        -1
                    },
                    signal: signaled.then(|| libc::WTERMSIG(status)),
                    cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
                    elapsed: self.started.elapsed(),
                });
            }
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    panic!("wait4 for {}: {e}", self.cmd.describe());
                }
                continue;
            }
            if let Some(limit) = limit
                && self.started.elapsed() > limit
            {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Collects both streams, waiting at most `limit` each; a stream still held open by a
    /// leftover process (a grandchild) gets its group killed and a note in the text.
    fn collect(&self, limit: Duration) -> (String, String) {
        let get = |rx: &mpsc::Receiver<String>| match rx.recv_timeout(limit) {
            Ok(text) => text,
            Err(_) => {
                self.kill_group();
                let text = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                format!("{text}[the pipe was held open by a leftover process; its process group was killed]")
            }
        };
        (get(&self.stdout), get(&self.stderr))
    }

    fn output(&self, ended: Ended, limit: Duration) -> Output {
        let (stdout, stderr) = self.collect(limit);
        Output {
            code: ended.code,
            signal: ended.signal,
            stdout,
            stderr,
            cpu: ended.cpu,
            elapsed: ended.elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
            self.reap(None);
        }
    }
}
