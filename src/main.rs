//! The `docker-credential-stackit` binary: argv -> verb -> library call -> Docker's
//! stdout/stderr/exit-code contract. All logic lives in the library.
//!
//! On Linux the binary supplies the C `main` itself instead of std's start-up, which on every
//! run reads `/proc/self/maps` to place a stack guard and sets up an alternate signal stack:
//! about a third of what `version` costs, for a stack-overflow message this program does not
//! need (a runaway recursion still dies, by SIGSEGV). [`main`] keeps what the helper relies on.

#![cfg_attr(all(target_os = "linux", not(test)), no_main)]

use docker_credential_stackit::cli::{
    Lines, check, configure_docker, demo, escape, init_log, kubelet, protocol, verbs,
};
use docker_credential_stackit::{Env, Error, Settings, VERSION};
use std::io::Write;

/// The process's exit status: 0 success, 1 failure, 2 usage error. A number rather than std's
/// `ExitCode`, which cannot be returned from a C `main`.
#[derive(Clone, Copy)]
struct ExitCode(u8);

impl ExitCode {
    const SUCCESS: ExitCode = ExitCode(0);
}

impl From<u8> for ExitCode {
    fn from(code: u8) -> ExitCode {
        ExitCode(code)
    }
}

const USAGE: &str = "\
docker-credential-stackit - Docker credential helper for the STACKIT Container Registry

Usage: docker-credential-stackit <command>

Commands called by Docker, podman, skopeo, buildah and nerdctl (stdin/stdout protocol):
  get        read a server URL on stdin, print {\"ServerURL\",\"Username\",\"Secret\"}
  store      read {\"ServerURL\",\"Username\",\"Secret\"} on stdin; keeps robot logins
  erase      read a server URL on stdin, forget stored credentials and cached tokens
  list       print {\"<server>\": \"<username>\"} for every host it can answer

Command called by the kubelet (image credential provider plugin, see packaging/kubernetes/):
  kubelet [--allow-node-fallback]
             read a CredentialProviderRequest (credentialprovider.kubelet.k8s.io/v1) on stdin,
             print a CredentialProviderResponse; errors go to stderr. A pod's token is answered
             by the node's identity only if its service account lacks the e-mail annotation key
             and --allow-node-fallback is given

Commands for people:
  token [SERVER]  print the bare access token (for docker login --password-stdin, Harbor API)
  configure-docker [--registry HOST]... [--dry-run] [--unconfigure] [--containers] [--remove-stale-auths]
                  map the served hosts to this helper in ~/.docker/config.json credHelpers
                  (--containers: also the podman/skopeo auth file; see configure-docker --help)
  check [IMAGE-OR-REGISTRY] [--pull|--push] [--json] [--robot-file FILE]
                  explain whether this machine can pull or push IMAGE and what to fix
                  (Docker wiring, key, token, registry login, scopes, robot link)
  demo            run get against a local fake STACKIT token endpoint (no account needed)
  version         print the version (also --version, -v)
  help            print this help (also --help, -h)

Set-up: keep the service account key JSON (STACKIT Portal > service account > keys) in
~/.stackit/sa-key.json and name it in ~/.stackit/credentials.json, as the STACKIT CLI does:
    install -D -m 600 ~/Downloads/sa-key.json ~/.stackit/sa-key.json
    (umask 077; echo '{\"STACKIT_SERVICE_ACCOUNT_KEY_PATH\": \"'\"$HOME\"'/.stackit/sa-key.json\"}' > ~/.stackit/credentials.json)
    docker-credential-stackit configure-docker
(configure-docker puts {\"credHelpers\": {\"registry.onstackit.cloud\": \"stackit\"}} into
~/.docker/config.json.) In CI, set STACKIT_SERVICE_ACCOUNT_KEY or go keyless (README, \"Keyless\").

Environment:
  STACKIT_SERVICE_ACCOUNT_KEY_PATH, STACKIT_SERVICE_ACCOUNT_KEY   the service account key JSON
  STACKIT_PRIVATE_KEY_PATH, STACKIT_PRIVATE_KEY                   PEM key overriding credentials.privateKey
  STACKIT_CREDENTIALS_PATH      STACKIT credentials file (default ~/.stackit/credentials.json)
  STACKIT_TOKEN_BASEURL         token endpoint URL (default https://service-account.api.stackit.cloud/token)
  STACKIT_SERVICE_ACCOUNT_EMAIL keyless: the service account e-mail; with a federated token it wins over keys
  STACKIT_SERVICE_ACCOUNT_FEDERATED_TOKEN   keyless: the federated OIDC token itself (wins over the file)
  STACKIT_FEDERATED_TOKEN_FILE  keyless: the federated OIDC token file
                                (default /var/run/secrets/stackit.cloud/serviceaccount/token)
  STACKIT_IDP_TOKEN_ENDPOINT    keyless: IdP token URL (default https://accounts.stackit.cloud/oauth/v2/token)
  ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN   keyless in GitHub Actions (id-token: write)
  SYSTEM_OIDCREQUESTURI, SYSTEM_ACCESSTOKEN   keyless in Azure Pipelines (pass SYSTEM_ACCESSTOKEN: $(System.AccessToken))
  STACKIT_SERVICE_CONNECTION_ID  Azure Pipelines: the service connection to request the token for
  DOCKER_CREDENTIAL_STACKIT_CONFIG      helper config file (default <config dir>/docker-credential-stackit/config.json)
  DOCKER_CREDENTIAL_STACKIT_REGISTRIES  extra served hosts, comma-separated host[:port]
  DOCKER_CREDENTIAL_STACKIT_CACHE_DIR   token cache (default <cache dir>/docker-credential-stackit)
  DOCKER_CREDENTIAL_STACKIT_NO_CACHE=1  do not cache tokens
  DOCKER_CREDENTIAL_STACKIT_TIMEOUT     seconds for a cold get, retries included (default 20)
  DOCKER_CREDENTIAL_STACKIT_FAILURE_WINDOW  seconds a token endpoint that was not reached is
                                        not tried again for the same identity (default 15; 0 off)
  DOCKER_CREDENTIAL_STACKIT_LOG         off|error|warn|info|debug on stderr (default warn)
  SSL_CERT_FILE, SSL_CERT_DIR, HTTPS_PROXY, NO_PROXY   TLS trust and proxy

Exit status: 0 success, 1 failure (message on stdout for the protocol commands), 2 usage error.
";

const GET_USAGE: &str = "\
Usage: docker-credential-stackit get < SERVER-URL

Docker's credential-helper protocol: reads a server URL on stdin (registry.onstackit.cloud,
host:port, https://host/v2/) and prints {\"ServerURL\",\"Username\",\"Secret\"}: the service
account's e-mail and a short-lived access token, or a stored robot login. A host this helper
does not serve gets 'credentials not found in native keychain' (exit 1); any other error is
one line on stdout and stderr (exit 1).

Try it: printf registry.onstackit.cloud | docker-credential-stackit get
";

const STORE_USAGE: &str = "\
Usage: docker-credential-stackit store < {\"ServerURL\",\"Username\",\"Secret\"}

Docker's credential-helper protocol, called by docker login: keeps a legacy robot login
(robot$project+name and its secret) for a served host that has no service account identity.
The service account's own login (what get returned) is accepted and not stored.
";

const ERASE_USAGE: &str = "\
Usage: docker-credential-stackit erase < SERVER-URL

Docker's credential-helper protocol, called by docker logout: forgets the stored robot login
and the cached tokens for the host on stdin. Succeeds when there is nothing to forget.

Try it: printf registry.onstackit.cloud | docker-credential-stackit erase
";

const LIST_USAGE: &str = "\
Usage: docker-credential-stackit list

Docker's credential-helper protocol: prints {\"<server>\": \"<username>\"} for every host this
helper can answer (served hosts with an identity, stored robot logins). No network.
";

const TOKEN_USAGE: &str = "\
Usage: docker-credential-stackit token [SERVER]

Prints the bare access token for SERVER (default registry.onstackit.cloud) on stdout, for
docker login --password-stdin or Harbor API calls. Errors go to stderr, never to stdout.
";

const KUBELET_USAGE: &str = "\
Usage: docker-credential-stackit kubelet [--allow-node-fallback] < CredentialProviderRequest

The kubelet image credential provider plugin (credentialprovider.kubelet.k8s.io/v1): reads a
CredentialProviderRequest on stdin and prints a CredentialProviderResponse; errors go to
stderr. A request with the pod's service account token is answered by the pod's own
federated identity (annotation workload-identity.stackit.cloud/service-account-email); the
node's identity answers it only when the annotation key is absent and --allow-node-fallback
is given. Set-up: packaging/kubernetes/README.md.
";

const DEMO_USAGE: &str = "\
Usage: docker-credential-stackit demo

Runs get against a local stand-in for the STACKIT token endpoint with a throw-away key (no
STACKIT account needed, none of your variables used): cold, warm from the cache, and a host
this helper does not serve. Fails if the helper misbehaves.
";

const VERSION_USAGE: &str = "\
Usage: docker-credential-stackit version   (also --version, -v)

Prints the name and version.
";

/// The usage of one verb, for `VERB --help`, `VERB -h` and `help VERB`.
fn verb_usage(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "get" => GET_USAGE,
        "store" => STORE_USAGE,
        "erase" => ERASE_USAGE,
        "list" => LIST_USAGE,
        "token" => TOKEN_USAGE,
        "kubelet" => KUBELET_USAGE,
        "check" => check::USAGE,
        "configure-docker" => configure_docker::USAGE,
        "demo" => DEMO_USAGE,
        "version" | "--version" | "-v" => VERSION_USAGE,
        "help" | "--help" | "-h" => USAGE,
        _ => return None,
    })
}

/// What a person who runs a protocol verb in a terminal sees instead of a silent wait for stdin.
fn terminal_hint(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "get" => {
            "get reads a server URL on stdin, as Docker sends it; try: printf registry.onstackit.cloud | docker-credential-stackit get"
        }
        "store" => {
            "store reads {\"ServerURL\",\"Username\",\"Secret\"} on stdin, as docker login sends it; run: docker login registry.onstackit.cloud"
        }
        "erase" => {
            "erase reads a server URL on stdin, as docker logout sends it; try: printf registry.onstackit.cloud | docker-credential-stackit erase"
        }
        "kubelet" => {
            "kubelet reads a CredentialProviderRequest on stdin, as the kubelet sends it; see docker-credential-stackit kubelet --help"
        }
        _ => return None,
    })
}

/// The C entry point on Linux. Of std's start-up it keeps what the helper relies on: stdin,
/// stdout and stderr are open (else the next file opened, say a lock file, would become fd 1
/// and receive the credentials), SIGPIPE is ignored (a reader that went away is a write error,
/// not death by signal), and stdout is flushed at the end.
#[cfg(all(target_os = "linux", not(test)))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    keep_standard_fds_open();
    // SAFETY: setting a disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let args = (1..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: the C runtime passes `argc` valid NUL-terminated strings in `argv`.
            let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
            arg.to_string_lossy().into_owned()
        })
        .collect();
    let code = run(args);
    let _ = std::io::stdout().flush();
    libc::c_int::from(code.0)
}

#[cfg(not(all(target_os = "linux", not(test))))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(run(std::env::args().skip(1).collect()).0)
}

/// Opens `/dev/null` on any of fds 0, 1 and 2 that is closed, as std's start-up does; aborts
/// if that is impossible, as std does.
#[cfg(all(target_os = "linux", not(test)))]
fn keep_standard_fds_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll writes only the `revents` of the three entries it is given.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        std::process::abort();
    }
    for pollfd in fds {
        if pollfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: a NUL-terminated path. The lower descriptors are open, so the new one
            // is the closed one.
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } != pollfd.fd {
                std::process::abort();
            }
        }
    }
}

/// Runs the command line without the program name and returns the exit status.
fn run(args: Vec<String>) -> ExitCode {
    // A bug must not dump a backtrace into Docker's output: one line, exit 1.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = format!("docker-credential-stackit: internal error{at}; please report this bug");
        // stdout for Docker (it shows stdout on failure), stderr for the kubelet (it logs stderr).
        let _ = writeln!(std::io::stdout(), "{msg}");
        let _ = writeln!(std::io::stderr(), "{msg}");
        std::process::exit(1);
    }));
    let verb = args.first().map(String::as_str).unwrap_or("");
    let rest = args.get(1..).unwrap_or(&[]);

    // `VERB --help` for every verb; check and configure-docker read their own options.
    if !matches!(verb, "check" | "configure-docker")
        && rest.iter().any(|a| a == "--help" || a == "-h")
        && let Some(usage) = verb_usage(verb)
    {
        return print(usage);
    }
    if let Some(hint) = terminal_hint(verb)
        && stdin().is_ok_and(|f| std::io::IsTerminal::is_terminal(&f))
    {
        let _ = writeln!(std::io::stderr(), "docker-credential-stackit: {hint}");
        return ExitCode::from(2);
    }

    match verb {
        "get" | "store" | "erase" | "list" => protocol_verb(verb, snapshot()),
        "token" => token(rest, snapshot()),
        "kubelet" => kubelet_plugin(rest, snapshot()),
        "check" => run_check(rest, snapshot()),
        // Both print names from files (Docker's config, the helper's config): escaped per line.
        "demo" => finish_human(demo::run(&mut Lines::new(std::io::stdout()))),
        "configure-docker" => finish_human(configure_docker::run(
            rest,
            &mut Lines::new(std::io::stdout()),
            &snapshot(),
        )),
        "version" | "--version" | "-v" => print(&format!("docker-credential-stackit {VERSION}")),
        "help" | "--help" | "-h" => match rest.first().map(String::as_str) {
            None => print(USAGE),
            Some(topic) => match verb_usage(topic) {
                Some(usage) => print(usage),
                None => usage_error(&format!("help: unknown command {topic:?}")),
            },
        },
        "" => usage_error("no command given"),
        other => usage_error(&format!("unknown command {other:?}")),
    }
}

/// The one snapshot of the process environment a verb works from (see `config::Env`), with the
/// log level set from it. Verbs that need none (`version`, `help`) never take it.
fn snapshot() -> Env {
    let env = Env::from_process();
    init_log(env.var("DOCKER_CREDENTIAL_STACKIT_LOG"));
    env
}

/// Runs a Docker protocol verb: the answer or the one-line error goes to stdout.
fn protocol_verb(verb: &str, env: Env) -> ExitCode {
    ExitCode::from(protocol::serve(verb, stdin_reader(), &mut std::io::stdout(), || {
        Settings::from_env(env).map(verbs::Service::new)
    }))
}

fn read_stdin() -> Result<String, Error> {
    protocol::read_input(stdin_reader())
}

/// Standard input as a file of its own (a duplicate of fd 0), without std's `Stdin`: that
/// allocates an 8 KiB buffer the first time it is used, and the helper reads its input once,
/// to the end, where a buffer only adds a copy (and pages a warm `get` touches).
#[cfg(all(target_os = "linux", not(test)))]
fn stdin() -> std::io::Result<std::fs::File> {
    // SAFETY: fd 0 is open for the whole run: `keep_standard_fds_open` saw to that before
    // anything else, and nothing closes it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
    fd.try_clone_to_owned().map(std::fs::File::from)
}

/// Where std's start-up ran (it keeps fd 0 open), std's own handle.
#[cfg(not(all(target_os = "linux", not(test))))]
fn stdin() -> std::io::Result<std::io::Stdin> {
    Ok(std::io::stdin())
}

/// [`stdin`] to read from; if fd 0 cannot even be duplicated, a reader that fails the same
/// way, so the verb reports it as an input error.
fn stdin_reader() -> Box<dyn std::io::Read> {
    struct Failed(std::io::ErrorKind);
    impl std::io::Read for Failed {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }
    }
    match stdin() {
        Ok(file) => Box::new(file),
        Err(e) => Box::new(Failed(e.kind())),
    }
}

/// `token [SERVER]`: the token on stdout; errors on stderr so they never become a password.
fn token(args: &[String], env: Env) -> ExitCode {
    if args.len() > 1 {
        // Not `usage_error`: that writes to stdout, which a script may pipe into
        // `docker login --password-stdin` and take for the password.
        return finish_human(Err(Error::Usage(
            "token takes at most one SERVER argument; run 'docker-credential-stackit help' for usage".into(),
        )));
    }
    let result = Settings::from_env(env).and_then(|s| verbs::Service::new(s).token(args.first().map(String::as_str)));
    finish_human(result.map(|t| {
        let _ = writeln!(std::io::stdout(), "{}", t.expose());
    }))
}

/// `kubelet`: the response on stdout; the kubelet logs stderr when we exit non-zero, so errors
/// go there and stdout stays empty.
fn kubelet_plugin(args: &[String], env: Env) -> ExitCode {
    let fallback = match args {
        [] => kubelet::NodeFallback::Refused,
        [flag] if flag == kubelet::ALLOW_NODE_FALLBACK => kubelet::NodeFallback::Allowed,
        _ => {
            return usage_error(&format!(
                "kubelet takes no further arguments but {0}; set this provider's args in the CredentialProviderConfig to [kubelet] or [kubelet, {0}]",
                kubelet::ALLOW_NODE_FALLBACK
            ));
        }
    };
    finish_human(
        read_stdin()
            .and_then(|input| kubelet::run(&input, fallback, env))
            .map(|json| {
                print(&json);
            }),
    )
}

/// `check`: the report on stdout (human or JSON); exit 1 if a step failed, 2 for usage errors.
fn run_check(args: &[String], env: Env) -> ExitCode {
    let options = match check::Options::parse(args) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.to_string()),
    };
    if options.help {
        return print(check::USAGE);
    }
    let report = check::run(&options, &check::Environment::from_env(&env), Settings::from_env(env));
    print(&if options.json {
        report.to_json()
    } else {
        report.render()
    });
    ExitCode::from(if report.failed() { 1 } else { 0 })
}

/// Exit status for commands run by people: errors on stderr, 2 for usage errors.
fn finish_human(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "docker-credential-stackit: {}",
                escape(&e.to_string())
            );
            ExitCode::from(if matches!(e, Error::Usage(_)) { 2 } else { 1 })
        }
    }
}

fn print(text: &str) -> ExitCode {
    // A closed stdout (e.g. `| head -0`) is not worth a panic.
    let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
    ExitCode::SUCCESS
}

/// A usage error: one line on stderr naming the problem and where help is, exit 2. Nothing on
/// stdout, which a script may be reading for a token or a report.
fn usage_error(msg: &str) -> ExitCode {
    let _ = writeln!(
        std::io::stderr(),
        "docker-credential-stackit: {}; run 'docker-credential-stackit help' for usage",
        escape(msg)
    );
    ExitCode::from(2)
}
