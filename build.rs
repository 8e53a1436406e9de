//! Links the release binary for Linux/glibc as a **static PIE**: no dynamic loader, no shared
//! libraries, ASLR kept. Docker runs `get` several times per command, and most of a warm `get`
//! used to be the loader mapping and relocating libc and libgcc_s (README, "Performance").
//!
//! The usual way, `RUSTFLAGS="-C target-feature=+crt-static"`, only works with an explicit
//! `--target`: without one the flag also reaches proc-macros, which cannot be built static, and
//! with one the binary moves to `target/<triple>/release`, where `cargo build --release`,
//! `cargo install`, cargo-deb and cargo-generate-rpm do not look. So this script does what
//! rustc does for `+crt-static`, for the binaries only and with the same libraries: it passes
//! `-static-pie` to the linker driver and points the libraries rustc asks for dynamically
//! (`-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc`) at stand-ins in a directory searched first, each
//! a linker script naming glibc's and libgcc's static archives. Tests, examples, build scripts
//! and proc-macros link as before. With glibc 2.36 or later the relative relocations are also
//! packed (DT_RELR), which the static start-up code of that glibc applies.
//!
//! Nothing happens (a normal dynamic PIE is built) for debug builds, other targets, when
//! RUSTFLAGS already say `crt-static` either way (`-C target-feature=-crt-static` is the opt-out
//! for distributions that want dynamic linking), or when the static archives are missing (with a
//! warning naming the package to install). `scripts/release-check` verifies the result.
//!
//! It also hands rust-lld the list of functions a warm `get` runs (`build/warm-path.order`), so
//! that they sit side by side in the binary: see [`warm_path_order`].

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The libraries rustc's std, the `libc` crate and `unwind` request without `crt-static`.
const STAND_INS: [&str; 7] = ["c", "m", "pthread", "dl", "rt", "util", "gcc_s"];
/// What those stand for when linking statically, as rustc links `+crt-static` binaries.
/// libpthread, libdl, librt and libutil are empty since glibc 2.34 but real before it.
const ARCHIVES: [(&str, bool); 8] = [
    ("libc.a", true),
    ("libm.a", false),
    ("libpthread.a", false),
    ("libdl.a", false),
    ("librt.a", false),
    ("libutil.a", false),
    ("libgcc_eh.a", true),
    ("libgcc.a", true),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(why) = static_pie() {
        println!("cargo:warning=building a dynamically linked binary: {why}");
    }
    if let Err(why) = warm_path_order() {
        println!("cargo:warning=the warm path's functions are not laid out together: {why}");
    }
}

/// The functions a warm `get` and `version` run, in the order they first run, one symbol a line
/// (written by `scripts/warm-order`).
const ORDER_FILE: &str = "build/warm-path.order";

/// Has the linker place the functions of [`ORDER_FILE`] side by side at the start of the code.
///
/// Left to itself the linker spreads the few hundred functions a warm `get` runs over about
/// 1.5 MB of code, and every 64 KB stretch of it costs the process a page fault; side by side
/// they fit in three or four (README, "Performance"). Symbol names carry hashes that change
/// with the compiler, so the file names the `rustc` it was made with and is only used with
/// that one; only rust-lld, the default linker of x86_64-unknown-linux-gnu since Rust 1.90, is
/// known to take the option (GNU ld does not).
fn warm_path_order() -> Result<(), String> {
    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("PROFILE") != "release" || var("TARGET") != "x86_64-unknown-linux-gnu" {
        return Ok(());
    }
    // A linker of the builder's choice may not know the option: leave the layout alone.
    if !var("RUSTC_LINKER").is_empty() || var("CARGO_ENCODED_RUSTFLAGS").contains("link") {
        return Ok(());
    }
    // scripts/warm-order asks for the linker's map: the shipped binary has no symbol table, and
    // building one with symbols would change the names (cargo hashes the profile into them).
    println!("cargo:rerun-if-env-changed=DOCKER_CREDENTIAL_STACKIT_LINK_MAP");
    if let Ok(map) = env::var("DOCKER_CREDENTIAL_STACKIT_LINK_MAP") {
        println!("cargo:rustc-link-arg-bins=-Wl,-Map={map}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-demangle");
    }
    let file = Path::new(&var("CARGO_MANIFEST_DIR")).join(ORDER_FILE);
    println!("cargo:rerun-if-changed={}", file.display());
    let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {ORDER_FILE}: {e}"))?;
    let made_with = text
        .lines()
        .find_map(|l| l.strip_prefix("# made with: "))
        .ok_or_else(|| format!("{ORDER_FILE} does not say which rustc it was made with"))?;
    let rustc = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run rustc --version: {e}"))?;
    let rustc = String::from_utf8_lossy(&rustc.stdout);
    if rustc.trim() != made_with.trim() {
        return Err(format!(
            "{ORDER_FILE} was made with {made_with}, this is {}; run scripts/warm-order",
            rustc.trim()
        ));
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        file.display()
    );
    // Symbols that are not in this build (a function renamed since) are skipped silently.
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    Ok(())
}

/// Emits the link arguments for a static PIE, `Ok` without doing so when it does not apply, or
/// the reason it cannot be done here.
fn static_pie() -> Result<(), String> {
    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu" || var("PROFILE") != "release" {
        return Ok(());
    }
    // The builder's explicit choice wins: `+crt-static` (rustc links statically itself),
    // `-crt-static` (stay dynamic), or a non-PIE relocation model.
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if flags.contains("crt-static") || flags.contains("relocation-model") {
        return Ok(());
    }
    if var("CARGO_CFG_TARGET_FEATURE").split(',').any(|f| f == "crt-static") {
        return Ok(());
    }
    // The linker driver cargo will use: a configured one, else rustc's default `cc`, which is
    // only right for this target when it is the host.
    let linker = match env::var("RUSTC_LINKER") {
        Ok(l) if !l.is_empty() => l,
        _ if var("TARGET") == var("HOST") => "cc".to_string(),
        _ => return Err(format!("no linker is configured for {}", var("TARGET"))),
    };
    if find(&linker, "rcrt1.o").is_none() {
        return Err(format!("{linker} has no rcrt1.o (glibc without static-PIE support)"));
    }
    let mut group = Vec::new();
    for (name, required) in ARCHIVES {
        match find(&linker, name) {
            Some(path) => {
                // A glibc update then relinks the binary with the fixed archive.
                println!("cargo:rerun-if-changed={}", path.display());
                group.push(format!("\"{}\"", path.display()));
            }
            None if required => {
                return Err(format!(
                    "{linker} cannot find {name}; install glibc's static libraries (Debian/Ubuntu: libc6-dev, Fedora/RHEL: glibc-static) or set RUSTFLAGS=\"-C target-feature=-crt-static\" to silence this"
                ));
            }
            None => {}
        }
    }
    let dir = PathBuf::from(var("OUT_DIR")).join("static-glibc");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // GROUP, because libc and libgcc refer to each other.
    let script = format!(
        "/* written by docker-credential-stackit's build.rs */\nGROUP ( {} )\n",
        group.join(" ")
    );
    for lib in STAND_INS {
        let path = dir.join(format!("lib{lib}.a"));
        std::fs::write(&path, &script).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    // `-L` rather than `rustc-link-search`: only the binaries may see the stand-ins. A directory
    // given with -L is searched before the compiler's own, and within a directory the linker
    // takes a `.a` when there is no `.so`, so `-lc` finds the stand-in before libc.so.
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bins=-static-pie");
    // Relative relocations packed as a bitmap (DT_RELR): the start-up code relocates the binary
    // from about 3 KB instead of about 180 KB of table. The code that applies them comes from
    // this libc.a, so it is the build's glibc that must know DT_RELR (2.36), not the user's.
    if glibc_version(&linker).is_some_and(|v| v >= (2, 36)) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    Ok(())
}

/// The version of the glibc the linker driver compiles against, from `<features.h>`.
fn glibc_version(driver: &str) -> Option<(u32, u32)> {
    let mut child = Command::new(driver)
        .args(["-dM", "-E", "-x", "c", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::io::Write::write_all(&mut child.stdin.take()?, b"#include <features.h>\n").ok()?;
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let define = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix("#define ")?
                .strip_prefix(name)?
                .trim()
                .parse::<u32>()
                .ok()
        })
    };
    Some((define("__GLIBC__ ")?, define("__GLIBC_MINOR__ ")?))
}

/// The full path of a file in the linker driver's search path, if it has one.
fn find(linker: &str, file: &str) -> Option<PathBuf> {
    let out = Command::new(linker)
        .arg(format!("-print-file-name={file}"))
        .output()
        .ok()?;
    let printed = String::from_utf8(out.stdout).ok()?;
    let path = Path::new(printed.trim());
    // A driver that does not know the file prints its bare name back.
    if out.status.success() && path.is_absolute() && path.is_file() {
        path.canonicalize().ok()
    } else {
        None
    }
}
