//! The test builder itself (`tests/support/cmd.rs`): its defaults are strict and its deadline
//! really ends a hang, the hung process's children included. A guard that never fires would
//! let a hang stall CI again.

use crate::support::*;
use std::time::{Duration, Instant};

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("the builder should have failed the test");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn the_deadline_kills_the_whole_process_group_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
    let started = Instant::now();
    let message = panic_message(|| {
        Cmd::system("sh")
            .args(["-c", &script])
            .deadline(Duration::from_secs(1))
            .run();
    });
    assert!(
        message.contains("deadline") && message.contains("still running after 1s"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let grandchild: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // The kill is delivered at once; reaping by init may take a moment.
    let gone = Instant::now();
    while alive(grandchild) && !is_zombie(grandchild) {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the grandchild {grandchild} survived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

#[test]
fn defaults_are_exit_zero_and_silence() {
    let quiet = || Cmd::system("sh").args(["-c", "exit 0"]);
    quiet().run();
    let message = panic_message(|| {
        Cmd::system("sh").args(["-c", "echo note >&2"]).run();
    });
    assert!(message.contains("stderr should be exactly \"\""), "{message}");
    let message = panic_message(|| {
        Cmd::system("sh").args(["-c", "echo out"]).run();
    });
    assert!(message.contains("stdout should be exactly \"\""), "{message}");
    let message = panic_message(|| {
        Cmd::system("sh").args(["-c", "exit 3"]).run();
    });
    assert!(message.contains("expected exit status 0"), "{message}");
    // Saying otherwise is explicit.
    let out = Cmd::system("sh")
        .args(["-c", "echo out; echo note >&2; exit 3"])
        .status(3)
        .stdout("out\n")
        .stderr_has("note")
        .run();
    assert_eq!((out.code, out.signal), (3, None));
}

#[test]
fn assert_error_wants_the_line_echoed_on_stderr_and_nothing_else() {
    let env = TestEnv::empty().var("STACKIT_SERVICE_ACCOUNT_KEY_PATH", "/nonexistent/key.json");
    env.get(HOST).assert_error(&["/nonexistent/key.json"]);
    let message = panic_message(|| {
        Cmd::system("sh")
            .args(["-c", "echo broken; echo 'docker-credential-stackit: warning: x' >&2; echo 'docker-credential-stackit: error: broken' >&2; exit 1"])
            .assert_error(&["broken"]);
    });
    assert!(
        message.contains("stderr should be exactly the error line again"),
        "{message}"
    );
}
