//! `configure-docker` run as a user would: the compiled binary, an empty environment, a private
//! HOME. Every test checks the file on disk, not just the output.

use crate::support::{Cmd, Output, TestEnv, bin, is_root, skip_or_fail};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const HOST: &str = "registry.onstackit.cloud";

/// A throw-away HOME (also the working directory) with only the binary's own directory on
/// PATH, so the "not on PATH" warning stays out of the way.
struct Sandbox {
    env: TestEnv,
}

impl Sandbox {
    fn new() -> Sandbox {
        let bin_dir = Path::new(bin()).parent().unwrap().to_str().unwrap().to_string();
        Sandbox {
            env: TestEnv::empty().var("PATH", &bin_dir),
        }
    }

    fn home(&self) -> PathBuf {
        self.env.home.path().to_path_buf()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.env.path(rel)
    }

    /// `DOCKER_CONFIG` = `<home>/docker`; returns its config.json path.
    fn with_docker_config(mut self) -> (Sandbox, PathBuf) {
        let dir = self.path("docker");
        self.env.set_var("DOCKER_CONFIG", dir.to_str().unwrap());
        (self, dir.join("config.json"))
    }

    fn set(&mut self, k: &str, v: &str) {
        self.env.set_var(k, v);
    }

    /// `configure-docker <args>`: exit 0 and nothing on stderr unless the test says otherwise;
    /// what it printed on stdout is the test's to check.
    fn run(&self, args: &[&str]) -> Cmd {
        self.env.cmd(&[&["configure-docker"], args].concat()).stdout_any()
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path)).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

/// Files in `dir` other than `keep`: a leftover temp file means a non-atomic or unclean write.
fn strays(dir: &Path, keep: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn creates_docker_config_under_home_with_private_modes() {
    let sb = Sandbox::new();
    let out = sb.run(&[]).run();
    let cfg = sb.home().join(".docker/config.json");
    assert_eq!(
        read(&cfg),
        format!("{{\n\t\"credHelpers\": {{\n\t\t\"{HOST}\": \"stackit\"\n\t}}\n}}\n")
    );
    assert_eq!(mode(&sb.home().join(".docker")), 0o700);
    assert_eq!(mode(&cfg), 0o600);
    assert!(
        out.stdout.starts_with(&format!("Created {}:", cfg.display())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("credHelpers[\"{HOST}\"] = \"stackit\" (added)"))
    );
    assert_eq!(out.stderr, "", "a clean set-up prints no warnings");
}

#[test]
fn configures_every_served_host_or_only_the_named_ones() {
    let (mut sb, cfg) = Sandbox::new().with_docker_config();
    sb.set("DOCKER_CREDENTIAL_STACKIT_REGISTRIES", "localhost:5000,Mirror.Example");
    sb.run(&[]).run();
    let helpers = json(&cfg)["credHelpers"].clone();
    let keys: Vec<&String> = helpers.as_object().unwrap().keys().collect();
    assert_eq!(keys, [HOST, "localhost:5000", "mirror.example"]);

    let (sb, cfg) = Sandbox::new().with_docker_config();
    let out = sb
        .run(&["--registry", "https://Other.Example:443/v2/"])
        .stderr_any()
        .run();
    assert_eq!(
        json(&cfg),
        serde_json::json!({"credHelpers": {"other.example": "stackit"}})
    );
    assert!(
        out.stderr.contains("other.example is not a served host")
            && out.stderr.contains("DOCKER_CREDENTIAL_STACKIT_REGISTRIES"),
        "{}",
        out.stderr
    );
}

#[test]
fn keeps_unknown_keys_their_order_and_other_helpers() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    let before = "{\n\t\"psFormat\": \"table {{.ID}}\",\n\t\"credHelpers\": {\n\t\t\"gcr.io\": \"gcloud\"\n\t},\n\t\"auths\": {\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"eDp5\"\n\t\t}\n\t},\n\t\"zz-plugin\": {\n\t\t\"b\": [1, 2.5, null, true],\n\t\t\"a\": {}\n\t},\n\t\"aa\": \"last\"\n}\n";
    write(&cfg, before);
    sb.run(&[]).run();
    let after = read(&cfg);
    let expected = before
        .replace(
            "[1, 2.5, null, true]",
            "[\n\t\t\t1,\n\t\t\t2.5,\n\t\t\tnull,\n\t\t\ttrue\n\t\t]",
        )
        .replace("\"gcloud\"\n", &format!("\"gcloud\",\n\t\t\"{HOST}\": \"stackit\"\n"));
    assert_eq!(after, expected);
}

#[test]
fn second_run_changes_nothing_and_says_so() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    write(&cfg, "{\"auths\":{}}");
    sb.run(&[]).run();
    let first = read(&cfg);
    let inode = fs::metadata(&cfg).unwrap().ino();
    let out = sb.run(&[]).run();
    assert_eq!(read(&cfg), first);
    assert_eq!(
        fs::metadata(&cfg).unwrap().ino(),
        inode,
        "the file must not even be rewritten"
    );
    assert_eq!(
        out.stdout,
        format!(
            "{}: already configured ({HOST} -> stackit); nothing changed\n",
            cfg.display()
        )
    );
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    let out = sb.run(&["--dry-run"]).run();
    assert!(
        !cfg.exists() && !cfg.parent().unwrap().exists(),
        "dry run created files"
    );
    assert!(out.stdout.contains("--- /dev/null\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("+\t\t\"{HOST}\": \"stackit\"\n")),
        "{}",
        out.stdout
    );

    let before = "{\n    \"auths\": {}\n}\n";
    write(&cfg, before);
    let out = sb.run(&["--dry-run"]).run();
    assert_eq!(read(&cfg), before);
    assert_eq!(
        out.stdout,
        format!(
            "Would change {p} (dry run, nothing written):\n--- {p}\n+++ {p}\n@@ -1,3 +1,6 @@\n {{\n-    \"auths\": {{}}\n+    \"auths\": {{}},\n+    \"credHelpers\": {{\n+        \"{HOST}\": \"stackit\"\n+    }}\n }}\n",
            p = cfg.display()
        )
    );
    assert_eq!(strays(cfg.parent().unwrap(), &["config.json"]), Vec::<String>::new());
}

/// Secrets other registries' logins keep in a Docker config: one per field docker/cli and
/// containers/image use. None of them may ever reach the terminal.
const STORED_SECRETS: [&str; 5] = [
    "quay-IDENTITYTOKEN-s3cret",
    "c3RhbGU6U1RBTEUtUk9CT1QtU0VDUkVU",
    "docker-PASSWORD-s3cret",
    "Z2hjcjpHSENSLUFVVEgtU0VDUkVU",
    "harbor-REGISTRYTOKEN-s3cret",
];

#[test]
fn dry_runs_mask_stored_secrets_and_write_nothing() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    let [identity, stale, password, ghcr, registry] = STORED_SECRETS;
    // The layout docker/cli writes, so every secret sits next to a line some run changes.
    let original = format!(
        "{{\n\t\"auths\": {{\n\
         \t\t\"quay.io\": {{\n\t\t\t\"identitytoken\": \"{identity}\"\n\t\t}},\n\
         \t\t\"https://{HOST}/v1/\": {{\n\t\t\t\"auth\": \"{stale}\"\n\t\t}},\n\
         \t\t\"docker.example\": {{\n\t\t\t\"password\": \"{password}\",\n\t\t\t\"username\": \"me\"\n\t\t}},\n\
         \t\t\"ghcr.io\": {{\n\t\t\t\"auth\": \"{ghcr}\"\n\t\t}},\n\
         \t\t\"harbor.example\": {{\n\t\t\t\"registrytoken\": \"{registry}\"\n\t\t}}\n\
         \t}}\n}}\n"
    );
    write(&cfg, &original);
    let assert_masked = |out: &Output, what: &str| {
        for s in STORED_SECRETS {
            assert!(
                !out.stdout.contains(s) && !out.stderr.contains(s),
                "{what} printed the stored secret {s}:\nstdout:\n{}\nstderr:\n{}",
                out.stdout,
                out.stderr
            );
        }
    };

    let stale = "still holds a stored secret";
    let out = sb.run(&["--dry-run"]).stderr_has(stale).run();
    assert_masked(&out, "--dry-run");
    assert!(
        out.stdout.contains("\n \t\t\t\"registrytoken\": \"<redacted>\"\n"),
        "the context keeps its shape:\n{}",
        out.stdout
    );
    assert_eq!(read(&cfg), original, "a dry run writes nothing");

    let out = sb.run(&["--dry-run", "--remove-stale-auths"]).run();
    assert_masked(&out, "--dry-run --remove-stale-auths");
    for line in [
        format!("\n-\t\t\"https://{HOST}/v1/\": {{\n"),
        "\n-\t\t\t\"auth\": \"<redacted>\"\n".to_string(),
        "\n \t\t\t\"identitytoken\": \"<redacted>\"\n".to_string(),
        "\n \t\t\t\"password\": \"<redacted>\",\n".to_string(),
        "\n \t\t\t\"username\": \"me\"\n".to_string(),
    ] {
        assert!(out.stdout.contains(&line), "missing {line:?} in:\n{}", out.stdout);
    }
    assert_eq!(read(&cfg), original);

    // A real run prints no secret either, and writes the real values back untouched.
    let out = sb.run(&[]).stderr_has(stale).run();
    assert_masked(&out, "configure-docker");
    let configured = read(&cfg);
    assert_eq!(json(&cfg)["credHelpers"][HOST], "stackit");
    let original_json: serde_json::Value = serde_json::from_str(&original).unwrap();
    assert_eq!(json(&cfg)["auths"], original_json["auths"]);

    for (args, warning) in [
        (
            &["--unconfigure", "--dry-run"][..],
            Some("without the credHelpers entry clients will send it again"),
        ),
        (&["--unconfigure", "--dry-run", "--remove-stale-auths"], None),
    ] {
        let mut run = sb.run(args);
        if let Some(w) = warning {
            run = run.stderr_has(w);
        }
        let out = run.run();
        assert_masked(&out, &args.join(" "));
        assert!(out.stdout.contains("<redacted>"), "{}", out.stdout);
        assert_eq!(read(&cfg), configured, "{args:?} wrote nothing");
    }
}

#[test]
fn unconfigure_gives_back_the_original_file() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    let before = "{\n\t\"credHelpers\": {\n\t\t\"gcr.io\": \"gcloud\"\n\t},\n\t\"x\": 1\n}\n";
    write(&cfg, before);
    sb.run(&["--registry", "a.example", "--registry", HOST])
        .stderr_has("a.example is not a served host")
        .run();
    assert_ne!(read(&cfg), before);
    let out = sb.run(&["--unconfigure"]).run();
    assert_eq!(read(&cfg), before);
    assert!(
        out.stdout.contains("credHelpers[\"a.example\"] removed"),
        "{}",
        out.stdout
    );
    let out = sb.run(&["--unconfigure"]).run();
    assert!(out.stdout.contains("nothing changed"), "{}", out.stdout);

    // Another helper's entry for the host is not ours to remove.
    write(&cfg, "{\"credHelpers\":{\"registry.onstackit.cloud\":\"ecr-login\"}}");
    let out = sb.run(&["--unconfigure", "--registry", HOST]).stderr_any().run();
    assert!(out.stderr.contains("left alone"), "{}", out.stderr);
    assert_eq!(json(&cfg)["credHelpers"][HOST], "ecr-login");

    // Unconfiguring a file that does not exist does not create it.
    let (sb, cfg) = Sandbox::new().with_docker_config();
    let out = sb.run(&["--unconfigure"]).run();
    assert!(!cfg.exists());
    assert!(out.stdout.contains("does not exist"), "{}", out.stdout);
}

#[test]
fn a_symlinked_config_stays_a_symlink() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    let real = sb.path("dotfiles/docker-config.json");
    write(&real, "{\"x\":1}\n");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("../dotfiles/docker-config.json", &cfg).unwrap();
    let out = sb.run(&[]).run();
    assert!(fs::symlink_metadata(&cfg).unwrap().file_type().is_symlink());
    assert_eq!(
        fs::read_link(&cfg).unwrap(),
        Path::new("../dotfiles/docker-config.json")
    );
    assert_eq!(json(&real)["credHelpers"][HOST], "stackit");
    assert_eq!(json(&real)["x"], 1);
    assert!(out.stdout.contains("docker-config.json"), "{}", out.stdout);
    assert_eq!(
        strays(&sb.path("dotfiles"), &["docker-config.json"]),
        Vec::<String>::new()
    );
}

#[test]
fn mode_and_owner_are_kept() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    write(&cfg, "{}");
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).unwrap();
    let root = is_root();
    if root {
        // Root editing a user's file (e.g. under sudo) must not take the file over.
        std::os::unix::fs::chown(&cfg, Some(4242), Some(4343)).unwrap();
    } else {
        skip_or_fail::<()>("owner preservation needs root to give the file to another user".into());
    }
    sb.run(&[]).run();
    assert_eq!(json(&cfg)["credHelpers"][HOST], "stackit");
    assert_eq!(mode(&cfg), 0o640);
    if root {
        let meta = fs::metadata(&cfg).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    }
}

#[test]
fn malformed_json_is_refused_and_left_untouched() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    let broken = "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\"auth\": \"c2VjcmV0\"},\n\t}\n";
    write(&cfg, broken);
    let out = sb.run(&[]).status(1).stdout("").stderr_any().run();
    let err = out.stderr;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&cfg.display().to_string()) && err.contains("line 4 column 2"),
        "{err}"
    );
    assert!(!err.contains("c2VjcmV0"), "the error must not quote the file: {err}");
    assert_eq!(read(&cfg), broken);
    assert_eq!(strays(cfg.parent().unwrap(), &["config.json"]), Vec::<String>::new());

    for (text, what) in [("[]", "an array"), ("{\"credHelpers\": []}", "credHelpers is an array")] {
        write(&cfg, text);
        sb.run(&[]).status(1).stdout("").stderr_has(what).run();
        assert_eq!(read(&cfg), text);
    }
}

#[test]
fn stale_auths_are_reported_then_removed_on_request() {
    let (sb, cfg) = Sandbox::new().with_docker_config();
    write(
        &cfg,
        r#"{"auths":{"https://registry.onstackit.cloud":{"auth":"cm9ib3QkeDpzM2NyZXQ="},"ghcr.io":{"auth":"eDp5"}},"credsStore":"desktop"}"#,
    );
    let out = sb.run(&[]).stderr_any().run();
    let err = out.stderr;
    assert!(
        err.contains("auths[\"https://registry.onstackit.cloud\"] still holds a stored secret")
            && err.contains("--remove-stale-auths"),
        "{err}"
    );
    assert!(err.contains("credsStore \"desktop\""), "{err}");
    assert!(!err.contains("cm9ib3Q"), "never print the secret: {err}");
    assert!(
        json(&cfg)["auths"]["https://registry.onstackit.cloud"].is_object(),
        "kept without the flag"
    );

    let out = sb
        .run(&["--remove-stale-auths"])
        .stderr_has("also sets credsStore \"desktop\"")
        .run();
    assert!(
        out.stdout
            .contains("auths[\"https://registry.onstackit.cloud\"] removed"),
        "{}",
        out.stdout
    );
    let after = json(&cfg);
    assert!(after["auths"].get("https://registry.onstackit.cloud").is_none());
    assert_eq!(
        after["auths"]["ghcr.io"]["auth"], "eDp5",
        "other registries' logins are kept"
    );
    assert_eq!(after["credsStore"], "desktop");
    sb.run(&[]).stderr_any().stderr_lacks("stored secret").run();
}

#[test]
fn containers_auth_file_is_configured_too() {
    let (mut sb, cfg) = Sandbox::new().with_docker_config();
    let auth = sb.path("podman/auth.json");
    write(
        &auth,
        "{\n\t\"auths\": {\n\t\t\"registry.onstackit.cloud\": {\n\t\t\t\"auth\": \"eDp5\"\n\t\t}\n\t}\n}",
    );
    sb.set("REGISTRY_AUTH_FILE", auth.to_str().unwrap());
    let out = sb.run(&["--containers"]).stderr_any().run();
    assert!(
        out.stderr.contains(&format!("run podman login {HOST} afterwards")),
        "{}",
        out.stderr
    );
    let out = sb.run(&["--containers", "--remove-stale-auths"]).run();
    assert_eq!(
        json(&auth),
        serde_json::json!({"auths": {}, "credHelpers": {HOST: "stackit"}})
    );
    assert!(!read(&auth).ends_with('\n'), "the file's missing final newline is kept");
    assert_eq!(json(&cfg)["credHelpers"][HOST], "stackit");
    assert!(out.stdout.contains(&auth.display().to_string()), "{}", out.stdout);

    // Without REGISTRY_AUTH_FILE: podman's first file under XDG_RUNTIME_DIR.
    let (mut sb, cfg) = Sandbox::new().with_docker_config();
    sb.set("XDG_RUNTIME_DIR", sb.path("run").to_str().unwrap());
    sb.run(&["--containers"]).run();
    let auth = sb.path("run/containers/auth.json");
    assert_eq!(json(&auth)["credHelpers"][HOST], "stackit");
    assert_eq!(mode(&auth), 0o600);
    assert_eq!(mode(auth.parent().unwrap()), 0o700);
    assert_eq!(json(&cfg)["credHelpers"][HOST], "stackit");

    // Neither set: a clear error, and Docker's file is not touched either.
    let (sb, cfg) = Sandbox::new().with_docker_config();
    sb.run(&["--containers"])
        .status(1)
        .stdout("")
        .stderr_has("neither REGISTRY_AUTH_FILE nor XDG_RUNTIME_DIR is set")
        .run();
    assert!(!cfg.exists(), "Docker's config was written although the run failed");
}

#[test]
fn a_broken_second_file_leaves_the_first_unchanged() {
    let (mut sb, cfg) = Sandbox::new().with_docker_config();
    let auth = sb.path("auth.json");
    write(&auth, "{oops");
    sb.set("REGISTRY_AUTH_FILE", auth.to_str().unwrap());
    sb.run(&["--containers"])
        .status(1)
        .stdout("")
        .stderr_has("auth.json is not valid JSON")
        .run();
    assert!(!cfg.exists(), "Docker's config was written although the run failed");
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    for args in [
        &["--bogus"][..],
        &["--registry"],
        &["--registry", "not a host"],
        &["extra"],
    ] {
        let out = sb.run(args).status(2).stdout("").stderr_any().run();
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
    }
    assert!(!sb.home().join(".docker").exists());
    let out = sb.run(&["--help"]).run();
    assert!(out.stdout.contains("--remove-stale-auths"));
}

#[test]
fn missing_binary_on_path_is_warned_about() {
    let (mut sb, _) = Sandbox::new().with_docker_config();
    sb.set("PATH", "/nonexistent");
    sb.run(&[]).stderr_has("is not on PATH").run();
}

/// The verbs listed by `help`: lines indented by exactly two spaces in the command sections.
fn help_verbs() -> Vec<String> {
    let text = TestEnv::empty().cmd(&["help"]).stdout_any().run().stdout;
    let verbs: Vec<String> = text
        .lines()
        .take_while(|l| !l.starts_with("Environment"))
        .filter(|l| l.starts_with("  ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_lowercase))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(verbs.len() >= 9, "could not parse help: {verbs:?}");
    verbs
}

fn man_page() -> String {
    read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/man/docker-credential-stackit.1"))
}

#[test]
fn every_verb_in_help_is_in_the_man_page() {
    let man = man_page();
    for verb in help_verbs() {
        // Verbs are set in bold with roff's minus sign for hyphens, e.g. \fBconfigure\-docker\fR.
        let roff = format!("\\fB{}\\fR", verb.replace('-', "\\-"));
        assert!(man.contains(&roff), "the man page lacks the verb {verb} (as {roff})");
    }
}

#[test]
fn every_environment_variable_is_in_the_man_page() {
    let man = man_page();
    for var in docker_credential_stackit::testing::config::ENV_VARS.iter().chain(&[
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
    ]) {
        assert!(man.contains(&format!(".B {var}\n")), "the man page lacks {var}");
    }
}

#[test]
fn the_man_page_and_readme_document_every_option_and_config_field() {
    // The same sources as --help: each verb's usage (its options) and the config file's fields.
    let man = man_page();
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    for verb in help_verbs() {
        let usage = TestEnv::empty()
            .cmd(&[&verb, "--help"])
            .stdin("")
            .stdout_any()
            .run()
            .stdout;
        for option in usage
            .split(|c: char| c.is_whitespace() || "[]|(),".contains(c))
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            let option = option.trim_end_matches(['.', ':', ';']);
            if option == "--help" {
                continue;
            }
            let roff = option.replace('-', "\\-");
            assert!(man.contains(&roff), "the man page lacks {verb} {option} (as {roff})");
            assert!(readme.contains(option), "the README lacks {verb} {option}");
        }
    }
    for field in docker_credential_stackit::testing::config::CONFIG_FIELDS {
        assert!(man.contains(field), "the man page lacks the config field {field}");
        assert!(readme.contains(field), "the README lacks the config field {field}");
    }
    // The general help lists every variable the helper reads.
    let help = TestEnv::empty().cmd(&["help"]).stdout_any().run().stdout;
    for var in docker_credential_stackit::testing::config::ENV_VARS {
        assert!(help.contains(var), "help lacks {var}");
        assert!(readme.contains(var), "the README lacks {var}");
    }
}

#[test]
fn one_recommended_set_up_everywhere() {
    // The README's Quick start, --help, the man page, the demo's last line and the Homebrew
    // caveats all recommend the same thing: the key named in ~/.stackit/credentials.json,
    // created private.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let help = TestEnv::empty().cmd(&["help"]).stdout_any().run().stdout;
    let demo = TestEnv::empty().cmd(&["demo"]).stdout_any().stderr_any().run().stdout;
    let sources = [
        ("README", read(&root.join("README.md"))),
        ("help", help.clone()),
        ("man page", man_page().replace("\\-", "-")),
        ("demo", demo.lines().last().unwrap_or_default().to_string()),
        (
            "Homebrew caveats",
            read(&root.join("packaging/homebrew/docker-credential-stackit.rb")),
        ),
    ];
    for (what, text) in &sources {
        assert!(
            text.contains("~/.stackit/credentials.json"),
            "{what} does not recommend the credentials file:\n{text}"
        );
        assert!(
            !text.contains("export STACKIT_SERVICE_ACCOUNT_KEY_PATH"),
            "{what} recommends something else"
        );
    }
    for (what, text) in sources.iter().filter(|(w, _)| *w != "demo") {
        assert!(
            text.contains("umask 077"),
            "{what} creates the credentials file without umask 077"
        );
    }
}

#[test]
fn a_compact_file_is_expanded_as_the_docs_say_and_the_dry_run_shows_it() {
    // README-install.md: content kept, layout expanded one key per line, shown by --dry-run.
    let (sb, cfg) = Sandbox::new().with_docker_config();
    let original = "{\"auths\": {\"a.example\": {}}, \"psFormat\": \"table {{.ID}}\"}\n";
    write(&cfg, original);
    let out = sb.run(&["--dry-run"]).run();
    assert!(
        out.stdout
            .contains("-{\"auths\": {\"a.example\": {}}, \"psFormat\": \"table {{.ID}}\"}"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("+\t\t\"a.example\": {}"), "{}", out.stdout);
    assert_eq!(read(&cfg), original, "a dry run writes nothing");
    sb.run(&[]).run();
    let written = json(&cfg);
    assert_eq!(written["auths"], serde_json::json!({"a.example": {}}));
    assert_eq!(written["psFormat"], "table {{.ID}}");
    assert_eq!(written["credHelpers"][HOST], "stackit");
    assert!(read(&cfg).ends_with("}\n"));
}
