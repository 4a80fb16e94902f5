//! The DECLARED cells of `strata check`, pinned: every (driver, case) whose miss a declared
//! capability explains, with exactly the capabilities named. The real catalog runs on real
//! mounts of every available driver; a new DECLARED cell, a lost one or a different set of
//! capabilities named is a failure here, so it is a visible change.
//!
//! Without root, or a driver that cannot run here, the test prints why it skips (that part);
//! `STRATA_REQUIRE=root,fuse-overlayfs,...` makes that a failure instead.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use strata_reports::record::{ResultRecord, Status};
use strata_runtime::{driver, loopfs, sandbox};

/// (driver, case, capabilities named), every driver's.
const PINNED: &[(&str, &str, &[&str])] = &[
    ("overlay", "M-13", &["hardlinks_kept=false"]),
    ("overlay", "M-13c", &["hardlinks_kept=false"]),
    ("overlay", "R-07", &["dir_rename=false"]),
    ("overlay", "R-08", &["dir_rename=false"]),
    ("overlay2", "M-13", &["hardlinks_kept=false"]),
    ("overlay2", "M-13c", &["hardlinks_kept=false"]),
    ("overlay2", "P-08", &["follows_lower_symlinks=false"]),
    ("overlay2", "R-07", &["dir_rename=false"]),
    ("overlay2", "R-08", &["dir_rename=false"]),
    ("overlay2", "W-16b", &["follows_lower_symlinks=false"]),
    (
        "overlay2",
        "X-15b",
        &["implied_dirs_keep_lower_attrs=false"],
    ),
    ("fuse-overlayfs", "R-07", &["dir_rename=false"]),
    ("fuse-overlayfs", "R-08", &["dir_rename=false"]),
    (
        "fuse-overlayfs",
        "X-15",
        &["copy_up_keeps_parent_mtime=false"],
    ),
];

/// True when `STRATA_REQUIRE` (a comma list) names `what`.
fn required(what: &str) -> bool {
    std::env::var("STRATA_REQUIRE")
        .unwrap_or_default()
        .split(',')
        .any(|w| w.trim() == what)
}

/// Prints why `what` is skipped, or fails when it is required.
fn skip(what: &str, why: &str) {
    let line = format!("SKIPPED declared cells of {what}: {why}");
    assert!(!required(what), "{line} (STRATA_REQUIRE names {what})");
    println!("{line}");
}

/// The capabilities a DECLARED detail names: `declared: a=false (what); b=false (what):`.
fn named(detail: &str) -> Vec<String> {
    let first = detail.lines().next().unwrap_or("");
    let Some(list) = first.strip_prefix("declared: ") else {
        return vec![format!("(not a declared detail: {first})")];
    };
    list.trim_end_matches(':')
        .split("; ")
        .map(|n| n.split(" (").next().unwrap_or(n).to_string())
        .collect()
}

#[test]
fn declared_cells_name_exactly_the_capabilities_that_explain_them() {
    if !sandbox::is_root() {
        skip("root", "needs root to mount (run the tests as root)");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("strata-test-declared-")
        .tempdir()
        .unwrap();
    let record = dir.path().join("check.json");
    let tmpdir = dir.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(["check", "--json"])
        .arg(&record)
        .env("TMPDIR", &tmpdir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rec = ResultRecord::read(Path::new(&record)).unwrap();
    let mut checked = 0;
    for d in driver::all() {
        let name = d.name();
        let store_ok = name != "btrfs" || loopfs::check(loopfs::FsType::Btrfs).is_ok();
        if let Err(why) = d.availability() {
            skip(name, &why);
            continue;
        }
        if !store_ok {
            skip(name, "no loop-mounted btrfs here");
            continue;
        }
        let got: BTreeSet<(String, Vec<String>)> = rec
            .conformance
            .iter()
            .filter(|c| c.driver == name && c.status == Status::Declared)
            .map(|c| (c.case.clone(), named(c.detail.as_deref().unwrap_or(""))))
            .collect();
        let want: BTreeSet<(String, Vec<String>)> = PINNED
            .iter()
            .filter(|(d, _, _)| *d == name)
            .map(|(_, c, n)| (c.to_string(), n.iter().map(|s| s.to_string()).collect()))
            .collect();
        assert_eq!(got, want, "{name}: the DECLARED cells changed\n{out}");
        assert!(
            rec.conformance
                .iter()
                .filter(|c| c.driver == name)
                .all(|c| c.status != Status::Fail),
            "{name} failed a case:\n{out}"
        );
        checked += 1;
    }
    println!("declared cells checked on {checked} drivers");
}

#[test]
fn a_declared_detail_is_read_as_its_capabilities() {
    assert_eq!(
        named("declared: a=false (x, y); b=false (z):\n  p: mode expected 1 got 2"),
        vec!["a=false", "b=false"]
    );
}
