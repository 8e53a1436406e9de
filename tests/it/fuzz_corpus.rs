//! The fuzz targets' checks (`fuzz/checks.rs`, shared with the cargo-fuzz targets) run on every
//! seed in `fuzz/seeds/` and every regression input in `fuzz/regressions/`: the targets cannot
//! rot between fuzzing sessions, and a fixed parser bug that comes back fails this suite.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files in `dir/<target>/`, sorted; none if the directory does not exist.
fn inputs(dir: &Path, target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(target))
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The subdirectories of `dir` (one per target).
fn subdirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_fuzz_target_has_a_check_and_seeds() {
    let names: Vec<&str> = checks::TARGETS.iter().map(|(n, _)| *n).collect();
    let mut files: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    files.sort();
    assert_eq!(
        files, names,
        "fuzz_targets/*.rs and checks::TARGETS must list the same targets"
    );
    for target in &names {
        assert!(
            !inputs(&fuzz_dir().join("seeds"), target).is_empty(),
            "{target} has no seeds"
        );
        let source = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{target}.rs"))).unwrap();
        assert!(
            source.contains(&format!("checks::{target}(data)")),
            "fuzz_targets/{target}.rs must call checks::{target}"
        );
    }
    for dir in ["seeds", "regressions"] {
        for sub in subdirs(&fuzz_dir().join(dir)) {
            assert!(names.contains(&sub.as_str()), "fuzz/{dir}/{sub} names no target");
        }
    }
}

#[test]
fn every_seed_and_regression_input_replays_cleanly() {
    let mut replayed = 0;
    let mut failures = Vec::new();
    for (target, check) in checks::TARGETS {
        for dir in ["seeds", "regressions"] {
            for file in inputs(&fuzz_dir().join(dir), target) {
                let data = std::fs::read(&file).unwrap();
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    failures.push(file.display().to_string());
                }
                replayed += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that break their target's check: {failures:?}"
    );
    assert!(replayed >= 20, "replayed only {replayed} inputs");
}
