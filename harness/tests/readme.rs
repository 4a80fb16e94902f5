//! The README's examples, run as written: every ```sh block under a `<!-- readme-test: GROUP -->`
//! line, the blocks of one group in README order as one `bash -e -o pipefail` script, with the
//! `strata` under test first on PATH, in a temporary directory of its own (TMPDIR too, so the
//! examples' `mktemp -d` lands in it). `demo` (mounts, containers) needs root and runs in a
//! private mount namespace; `reports` gets a `strata-out/` as `strata suite` leaves it (the
//! committed report fixtures) and needs no privilege.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The marked blocks of `group`, in README order.
fn blocks(text: &str, group: &str) -> Vec<String> {
    let marker = format!("<!-- readme-test: {group} -->");
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != marker {
            continue;
        }
        let fence = lines.next().unwrap_or("");
        assert_eq!(
            fence.trim(),
            "```sh",
            "{marker} must be followed by a ```sh block"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        out.push(body.join("\n"));
    }
    out
}

/// Runs `script` with bash in `dir`; returns stdout, panics with both streams on failure.
fn run(dir: &Path, script: &str) -> String {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_strata"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let o = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(
        o.status.success(),
        "the README's example failed ({}):\n--- script\n{script}\n--- stdout\n{out}\n--- stderr\n{err}",
        o.status
    );
    out
}

#[test]
fn readme_marks_its_examples() {
    let text = readme();
    assert_eq!(
        blocks(&text, "demo").len(),
        2,
        "the worked example and `strata run`"
    );
    assert_eq!(blocks(&text, "reports").len(), 1);
    // No example depends on the directory it is pasted in.
    for b in blocks(&text, "demo")
        .iter()
        .chain(&blocks(&text, "reports"))
    {
        assert!(!b.contains("target/release"), "{b}");
    }
}

#[test]
fn readme_worked_example_and_container_examples_run_as_written() {
    if !strata_runtime::sandbox::is_root() {
        strata_runtime::require::skip_or_fail("root", "the README's examples mount (run as root)");
        return;
    }
    // The examples' mounts stay in this test's own namespace.
    strata_runtime::sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = blocks(&readme(), "demo").join("\n");
    let out = run(dir.path(), &script);
    // What the examples' comments say they print.
    for want in [
        "etc/.wh.motd",
        "demo is pid 1",
        "hello",
        "exit status 127",
        "sha256:",
    ] {
        assert!(out.contains(want), "{want:?} not in the output:\n{out}");
    }
    // Everything landed in the scratch directory under TMPDIR, nothing is left mounted there.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&dir.path().display().to_string()),
        "{mountinfo}"
    );
}

#[test]
fn readme_report_examples_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("strata-out");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/fixtures");
    // What `strata suite --out strata-out` leaves (a record and criterion's output), and a
    // record from another runner.
    std::fs::create_dir(&out).unwrap();
    std::fs::copy(fixtures.join("runner-b.json"), out.join("result.json")).unwrap();
    std::fs::copy(
        fixtures.join("runner-a.json"),
        out.join("other-runner.json"),
    )
    .unwrap();
    let cp = Command::new("cp")
        .arg("-a")
        .arg(fixtures.join("criterion"))
        .arg(out.join("criterion"))
        .status()
        .unwrap();
    assert!(cp.success());
    let script = blocks(&readme(), "reports").join("\n");
    run(dir.path(), &script);
    for f in [
        "report/index.html",
        "report/REPORT.md",
        "from-criterion/index.html",
        "merged/REPORT.md",
        "gate/REPORT.md",
        "results.md",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let fragment = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        fragment.contains("These figures are from one recorded run: commit 5213127"),
        "{fragment}"
    );
}
