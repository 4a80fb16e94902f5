//! `strata check` as a user meets it: the whole catalog on every available driver with no
//! failure (overlay's declared divergences listed), a broken case file and an unknown driver
//! each one line while the rest still runs, and a record reports can read.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use strata_reports::record::{ResultRecord, Status};
use strata_runtime::{driver, loopfs, sandbox};

fn strata(root: &Path, args: &[&str]) -> Output {
    strata_in(root, args, None)
}

/// Runs strata; `tmpdir`: its TMPDIR (where `strata check` makes its workspace).
fn strata_in(root: &Path, args: &[&str], tmpdir: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.arg("--root").arg(root).args(args);
    if let Some(t) = tmpdir {
        c.env("TMPDIR", t);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(name).tempdir().unwrap()
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// What is left in a directory.
fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_whole_catalog_runs_on_every_available_driver_without_failure() {
    if !strata_runtime::require::root() {
        return;
    }
    let dir = tmp("strata-test-check-all-");
    let record = dir.path().join("check.json");
    let tmpdir = dir.path().join("tmp");
    fs::create_dir(&tmpdir).unwrap();
    let mounts_before = sandbox::mountinfo().unwrap();
    let started = std::time::Instant::now();
    let o = strata_in(
        &dir.path().join("root"),
        &["check", "--json", record.to_str().unwrap()],
        Some(&tmpdir),
    );
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.is_empty(), "{err}");
    eprintln!("whole catalog: {:.1?}", started.elapsed());
    let rec = ResultRecord::read(&record).unwrap();
    let failed: Vec<String> = rec
        .conformance
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| {
            format!(
                "{} {}: {}",
                c.driver,
                c.case,
                c.detail.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // Every driver strata knows has a cell for every case; the available ones ran.
    let cases: BTreeSet<&str> = rec.conformance.iter().map(|c| c.case.as_str()).collect();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for d in driver::all() {
        let cells: Vec<_> = rec
            .conformance
            .iter()
            .filter(|c| c.driver == d.name())
            .collect();
        assert_eq!(cells.len(), cases.len(), "{}", d.name());
        let ran = cells.iter().filter(|c| c.status != Status::Skip).count();
        // btrfs also needs a loop-mounted btrfs for its store (mkfs.btrfs, loop devices).
        let store_ok = d.name() != "btrfs" || loopfs::check(loopfs::FsType::Btrfs).is_ok();
        if d.availability().is_ok() && store_ok {
            assert_eq!(ran, cases.len(), "{} did not run everything", d.name());
        } else if ran < cases.len() {
            let why = cells
                .iter()
                .find(|c| c.status == Status::Skip)
                .and_then(|c| c.detail.clone())
                .unwrap_or_default();
            strata_runtime::require::skip_or_fail(
                d.name(),
                &format!("strata check skipped the {} driver: {why}", d.name()),
            );
        }
    }
    // overlay's declared divergences are declared, listed, and explained.
    let declared = |driver: &str, case: &str| {
        rec.conformance
            .iter()
            .find(|c| c.driver == driver && c.case == case)
            .map(|c| (c.status, c.detail.clone().unwrap_or_default()))
    };
    let (status, detail) = declared("overlay", "R-07").unwrap();
    assert_eq!(status, Status::Declared, "{detail}");
    assert!(detail.contains("dir_rename=false"), "{detail}");
    assert_eq!(declared("overlay", "M-13").unwrap().0, Status::Declared);
    // The chain layout makes overlay's view the image's; Docker's per-layer layout declares.
    assert_eq!(declared("overlay", "P-08").unwrap().0, Status::Pass);
    assert_eq!(declared("overlay2", "P-08").unwrap().0, Status::Declared);
    assert_eq!(declared("copy", "R-07").unwrap().0, Status::Pass);
    assert!(out.contains("Declared divergences ("), "{out}");
    assert!(
        out.contains("  overlay R-07: declared: dir_rename=false"),
        "{out}"
    );
    let header = out.lines().next().unwrap();
    for d in driver::all() {
        assert!(header.contains(d.name()), "{header}");
    }
    let summary = out.lines().last().unwrap();
    assert!(summary.contains(" 0 failed"), "{summary}");
    // Nothing stays mounted or on disk (the workspace was made under TMPDIR).
    assert_eq!(sandbox::mountinfo().unwrap(), mounts_before);
    assert!(listing(&tmpdir).is_empty(), "{:?}", listing(&tmpdir));
    // The runner says where the stores were.
    let fs = rec.runner.fs.unwrap();
    assert_eq!(fs.fs_type.as_deref(), Some("tmpfs"));
}

#[test]
fn a_broken_case_file_is_one_line_and_the_other_cases_still_run() {
    let dir = tmp("strata-test-check-broken-");
    let cases = dir.path().join("cases");
    fs::create_dir(&cases).unwrap();
    for name in [
        "W-10-subtree-whiteout.toml",
        "P-01-upper-file-hides-lower-file.toml",
    ] {
        fs::copy(cases_dir().join(name), cases.join(name)).unwrap();
    }
    fs::write(
        cases.join("W-99-broken.toml"),
        "id = \"W-99\"\ntitle = \"broken\"\nsource = [\"W-99\"]\n\n[[layer]]\nentries = [{ fil = \"x\" }]\n",
    )
    .unwrap();
    fs::write(cases.join("README.txt"), "not a case").unwrap();
    let record = dir.path().join("r.json");
    let o = strata(
        &dir.path().join("root"),
        &[
            "check",
            "--cases",
            cases.to_str().unwrap(),
            "--driver",
            "copy",
            "--json",
            record.to_str().unwrap(),
        ],
    );
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("strata: error: "), "{err}");
    assert!(err.contains("W-99-broken.toml: line 6: "), "{err}");
    assert!(err.contains("fil"), "{err}");
    let rec = ResultRecord::read(&record).unwrap();
    let broken = rec
        .conformance
        .iter()
        .find(|c| c.case == "W-99-broken")
        .unwrap();
    assert_eq!(broken.status, Status::Skip);
    assert!(
        broken.detail.as_deref().unwrap().contains("does not parse"),
        "{broken:?}"
    );
    let want = if sandbox::is_root() {
        Status::Pass
    } else {
        Status::Skip
    };
    for id in ["W-10", "P-01"] {
        let c = rec.conformance.iter().find(|c| c.case == id).unwrap();
        assert_eq!(c.status, want, "{c:?}");
        assert!(out.contains(&format!("\n{id} ")), "{out}");
    }
    assert!(out.contains("Skipped:"), "{out}");
}

#[test]
fn an_unknown_driver_is_one_line_and_exit_1() {
    let dir = tmp("strata-test-check-unknown-");
    let root = dir.path().join("root");
    let o = strata(&root, &["check", "--driver", "nope"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("strata: error: unknown driver \"nope\" (known: overlay, overlay2, copy"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    // With a known driver beside it, that one still runs.
    let o = strata(
        &root,
        &["--json", "check", "--driver", "copy,nope", "--case", "W-10"],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let rec = ResultRecord::from_json_str(&text(&o.stdout)).unwrap();
    let by = |d: &str| rec.conformance.iter().find(|c| c.driver == d).unwrap();
    assert_eq!(by("nope").status, Status::Skip);
    assert!(
        by("nope")
            .detail
            .as_deref()
            .unwrap()
            .contains("unknown driver")
    );
    let want = if sandbox::is_root() {
        Status::Pass
    } else {
        Status::Skip
    };
    assert_eq!(by("copy").status, want, "{:?}", by("copy"));
    assert_eq!(rec.conformance.len(), 2);
}

#[test]
fn a_record_file_needs_json() {
    let dir = tmp("strata-test-check-args-");
    let o = strata(&dir.path().join("root"), &["check", "out.json"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--json FILE"), "{err}");
}
