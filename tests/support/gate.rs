//! A gate in front of the fake token endpoint: a loopback relay that holds every connection
//! until the test opens it, and records when each one arrived. Tests use it instead of a delay
//! to keep a request in flight until something the test can observe has happened (every other
//! process waiting on the identity's lock, a process killed mid-request), so that they do not
//! depend on how fast a loaded machine starts processes.

use docker_credential_stackit::testing::fake::FakeStackit;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something it expects to happen soon (a hang guard, not a timing
/// assertion).
const PATIENCE: Duration = Duration::from_secs(60);

struct State {
    open: Mutex<bool>,
    opened: Condvar,
    arrivals: Mutex<Vec<Instant>>,
    stop: AtomicBool,
}

/// The relay. Dropping it opens the gate and stops accepting.
pub struct Gate {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Gate {
    /// A closed gate in front of `fake`: connections are accepted and held until [`Gate::open`].
    pub fn closed(fake: &FakeStackit) -> Gate {
        Gate::start(fake.addr(), false)
    }

    /// An open gate in front of `fake`, which only records when requests arrive.
    pub fn recording(fake: &FakeStackit) -> Gate {
        Gate::start(fake.addr(), true)
    }

    fn start(target: SocketAddr, open: bool) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the gate");
        let addr = listener.local_addr().expect("gate address");
        let state = Arc::new(State {
            open: Mutex::new(open),
            opened: Condvar::new(),
            arrivals: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                st.arrivals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Instant::now());
                let st = st.clone();
                std::thread::spawn(move || relay(conn, target, &st));
            }
        });
        Gate { addr, state }
    }

    /// The token URL through the gate.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Lets every held and future connection through.
    pub fn open(&self) {
        *self.state.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.state.opened.notify_all();
    }

    /// Connections accepted so far.
    pub fn arrivals(&self) -> usize {
        self.arrival_times().len()
    }

    /// When each connection was accepted, in order.
    pub fn arrival_times(&self) -> Vec<Instant> {
        self.state.arrivals.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `n` connections have arrived (a hang guard of a minute).
    pub fn wait_for_arrivals(&self, n: usize) {
        let start = Instant::now();
        while self.arrivals() < n {
            assert!(
                start.elapsed() < PATIENCE,
                "the gate saw {} of {n} connections",
                self.arrivals()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.open();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn relay(client: TcpStream, target: SocketAddr, state: &State) {
    {
        let mut open = state.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = state.opened.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }
    let Ok(upstream) = TcpStream::connect(target) else {
        return;
    };
    let (Ok(mut from_client), Ok(mut to_upstream)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_upstream);
        let _ = to_upstream.shutdown(Shutdown::Write);
    });
    let (mut from_upstream, mut to_client) = (upstream, client);
    let _ = std::io::copy(&mut from_upstream, &mut to_client);
    let _ = to_client.shutdown(Shutdown::Both);
}

/// Whether process `pid` has a `*.lock` file in `dir` open: a helper does from just before it
/// first tries the identity's lock until it is done, so every process that has one open and
/// does not hold the lock is waiting on it.
pub fn has_lock_open(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| target.starts_with(dir) && target.extension().is_some_and(|e| e == "lock"))
    })
}

/// Waits until every process in `pids` has a lock file in `dir` open (see [`has_lock_open`]);
/// a hang guard of a minute names how many got there.
pub fn wait_until_all_reach_the_lock(pids: &[u32], dir: &Path) {
    let start = Instant::now();
    loop {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let waiting = pids.iter().filter(|pid| has_lock_open(**pid, &dir)).count();
        if waiting == pids.len() {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "only {waiting} of {} processes reached the lock in {dir:?}",
            pids.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
