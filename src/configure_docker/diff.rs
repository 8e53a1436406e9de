//! The line diff a `--dry-run` prints: a minimal unified diff over `similar`'s edit script.

/// A minimal unified diff (3 lines of context) between two texts, for `--dry-run`.
pub(crate) fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = diff_ops(&a, &b);
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Same(_)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut end = changed[i];
        // Merge changes whose context windows touch into one hunk.
        while i < changed.len() && changed[i] <= end + 2 * CONTEXT + 1 {
            end = changed[i];
            i += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let (old_start, new_start) = positions(&ops[..start]);
        let old_len = hunk.iter().filter(|op| !matches!(op, Op::Add(_))).count();
        let new_len = hunk.iter().filter(|op| !matches!(op, Op::Del(_))).count();
        let first = |pos: usize, len: usize| if len == 0 { pos } else { pos + 1 };
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            first(old_start, old_len),
            first(new_start, new_len)
        ));
        for op in hunk {
            match op {
                Op::Same(j) => out.push_str(&format!(" {}\n", a[*j])),
                Op::Del(j) => out.push_str(&format!("-{}\n", a[*j])),
                Op::Add(k) => out.push_str(&format!("+{}\n", b[*k])),
            }
        }
    }
    out
}

/// One diff line: kept (old index), deleted (old index) or added (new index).
#[derive(Debug, Clone, Copy)]
enum Op {
    Same(usize),
    Del(usize),
    Add(usize),
}

/// Lines of the old and new text consumed before `ops`.
fn positions(ops: &[Op]) -> (usize, usize) {
    ops.iter().fold((0, 0), |(o, n), op| match op {
        Op::Same(_) => (o + 1, n + 1),
        Op::Del(_) => (o + 1, n),
        Op::Add(_) => (o, n + 1),
    })
}

/// The line diff as an edit script (`similar`'s Myers). Config files are small; a pathological
/// pair gets a less minimal diff after a second rather than a long wait, which is still correct.
fn diff_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut ops = Vec::with_capacity(a.len() + b.len());
    for op in similar::capture_diff_slices_deadline(similar::Algorithm::Myers, a, b, Some(deadline)) {
        let (_, old, new) = op.as_tag_tuple();
        match op {
            similar::DiffOp::Equal { .. } => ops.extend(old.map(Op::Same)),
            _ => {
                ops.extend(old.map(Op::Del));
                ops.extend(new.map(Op::Add));
            }
        }
    }
    // Show deletions before additions within a change, as diff(1) does.
    let mut k = 0;
    while k < ops.len() {
        let start = k;
        while k < ops.len() && !matches!(ops[k], Op::Same(_)) {
            k += 1;
        }
        ops[start..k].sort_by_key(|op| matches!(op, Op::Add(_)));
        k += 1;
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_has_hunks_with_context() {
        let old = "{\n\t\"a\": 1,\n\t\"b\": 2,\n\t\"c\": 3\n}\n";
        let new = "{\n\t\"a\": 1,\n\t\"b\": 2,\n\t\"c\": 3,\n\t\"d\": 4\n}\n";
        let d = unified_diff(old, new, "old", "new");
        assert_eq!(
            d,
            "--- old\n+++ new\n@@ -1,5 +1,6 @@\n {\n \t\"a\": 1,\n \t\"b\": 2,\n-\t\"c\": 3\n+\t\"c\": 3,\n+\t\"d\": 4\n }\n"
        );
        let d = unified_diff("", "{}\n", "/dev/null", "new");
        assert_eq!(d, "--- /dev/null\n+++ new\n@@ -0,0 +1,1 @@\n+{}\n");
        assert_eq!(unified_diff("x\n", "x\n", "a", "b"), "--- a\n+++ b\n");
    }

    /// Applies an edit script to `a`; it must give `b`, and deletions come before additions.
    fn apply<'t>(ops: &[Op], a: &[&'t str], b: &[&'t str]) -> Vec<&'t str> {
        for pair in ops.windows(2) {
            assert!(!matches!(pair, [Op::Add(_), Op::Del(_)]), "{ops:?}");
        }
        ops.iter()
            .filter_map(|op| match op {
                Op::Same(i) => Some(a[*i]),
                Op::Del(_) => None,
                Op::Add(j) => Some(b[*j]),
            })
            .collect()
    }

    #[test]
    fn edit_scripts_turn_the_old_lines_into_the_new_ones() {
        let lines = |s: &'static str| s.split(' ').filter(|l| !l.is_empty()).collect::<Vec<_>>();
        for (a, b) in [
            ("a b c d", "a x c d e"),
            ("", "a b"),
            ("a b", ""),
            ("a b a b a", "b a b a b"),
            ("{ } { }", "} { } {"),
        ] {
            let (a, b) = (lines(a), lines(b));
            assert_eq!(apply(&diff_ops(&a, &b), &a, &b), b);
        }
        // Two large files with nothing in common still get a script that is right.
        let a: Vec<String> = (0..20_000).map(|i| format!("old {i}")).collect();
        let b: Vec<String> = (0..20_000).map(|i| format!("new {}", i * 7)).collect();
        let (a, b): (Vec<&str>, Vec<&str>) = (
            a.iter().map(|s| s.as_str()).collect(),
            b.iter().map(|s| s.as_str()).collect(),
        );
        assert_eq!(apply(&diff_ops(&a, &b), &a, &b), b);
    }
}
