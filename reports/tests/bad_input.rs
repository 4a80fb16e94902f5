//! Bad input: each failure is one line naming the file and the reason, and no report that
//! looks whole is left behind (nor is an earlier report damaged).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, fixture_options};
use strata_reports::{ReportError, ReportOptions, build_report};

/// Runs a report expected to fail; checks the error's shape and that `out` was not created.
fn fails(opts: &ReportOptions) -> ReportError {
    let e = build_report(opts).expect_err("the report must fail");
    let line = e.to_string();
    assert!(!line.contains('\n'), "not one line: {line:?}");
    assert!(
        line.starts_with(&format!("{}: ", e.path().display())),
        "does not start with the path: {line}"
    );
    assert!(
        !opts.out.exists(),
        "{} was created by a failed run",
        opts.out.display()
    );
    let parent = opts.out.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial-") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    e
}

fn only_results(out: &Path, results: &[PathBuf]) -> ReportOptions {
    let mut opts = ReportOptions::new(out);
    opts.results = results.to_vec();
    opts
}

#[test]
fn missing_criterion_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ReportOptions::new(tmp.path().join("r"));
    let dir = tmp.path().join("target/criterion");
    opts.criterion = Some(dir.clone());
    let e = fails(&opts);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: criterion directory: no such file or directory",
            dir.display()
        )
    );
}

#[test]
fn empty_criterion_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("criterion");
    std::fs::create_dir_all(dir.join("report")).unwrap(); // criterion's own HTML dir only
    let mut opts = ReportOptions::new(tmp.path().join("r"));
    opts.criterion = Some(dir.clone());
    let e = fails(&opts);
    assert_eq!(e.path(), dir);
    assert!(
        e.reason().starts_with("no criterion benchmarks found"),
        "{e}"
    );
}

#[test]
fn result_file_of_another_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let other = fixture("bad/other-schema.json");
    let e = fails(&only_results(
        &tmp.path().join("r"),
        &[fixture("runner-a.json"), other.clone()],
    ));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: schema is \"strata-result/2\", expected \"strata-result/1\"",
            other.display()
        )
    );

    let hyperfine = fixture("bad/hyperfine.json");
    let e = fails(&only_results(
        &tmp.path().join("r"),
        std::slice::from_ref(&hyperfine),
    ));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not a strata result record: no \"schema\" field (expected \"strata-result/1\")",
            hyperfine.display()
        )
    );
}

#[test]
fn truncated_json() {
    let tmp = tempfile::tempdir().unwrap();
    let truncated = fixture("bad/truncated.json");
    let e = fails(&only_results(
        &tmp.path().join("r"),
        std::slice::from_ref(&truncated),
    ));
    assert_eq!(e.path(), truncated);
    assert!(
        e.reason().starts_with("truncated JSON (input ends at line"),
        "{e}"
    );

    // An empty file says so.
    let empty = tmp.path().join("empty.json");
    std::fs::write(&empty, "").unwrap();
    let e = fails(&only_results(
        &tmp.path().join("r"),
        std::slice::from_ref(&empty),
    ));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: empty file, expected a strata-result/1 JSON record",
            empty.display()
        )
    );
}

#[test]
fn truncated_criterion_estimates_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("criterion");
    copy_dir(&fixture("criterion"), &dir);
    let bad = dir.join("copy_up/overlay/4096/new/estimates.json");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, &text[..text.len() / 2]).unwrap();
    let mut opts = ReportOptions::new(tmp.path().join("r"));
    opts.criterion = Some(dir);
    let e = fails(&opts);
    assert_eq!(e.path(), bad);
    assert!(e.reason().starts_with("truncated JSON"), "{e}");
}

#[test]
fn a_record_missing_a_required_field_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("no-runner.json");
    std::fs::write(&f, r#"{"schema": "strata-result/1", "benchmarks": []}"#).unwrap();
    let e = fails(&only_results(
        &tmp.path().join("r"),
        std::slice::from_ref(&f),
    ));
    assert!(
        e.to_string().starts_with(&format!(
            "{}: invalid strata-result/1 record: missing field `runner`",
            f.display()
        )),
        "{e}"
    );
}

#[test]
fn no_input_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let e = fails(&ReportOptions::new(tmp.path().join("r")));
    assert!(e.reason().starts_with("nothing to report"), "{e}");
}

#[test]
fn a_failed_run_leaves_the_earlier_report_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r");
    common::build_fixture_report(&out);
    let before = std::fs::read(out.join("index.html")).unwrap();
    let count = std::fs::read_dir(&out).unwrap().count();

    let mut opts = fixture_options(&out);
    opts.results.push(fixture("bad/truncated.json"));
    let e = build_report(&opts).unwrap_err();
    assert_eq!(e.path(), fixture("bad/truncated.json"));
    assert_eq!(std::fs::read(out.join("index.html")).unwrap(), before);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), count);
    let beside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("r")]);
}

#[test]
fn an_unrelated_directory_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("src");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("main.rs"), "fn main() {}").unwrap();
    let e = build_report(&fixture_options(&out)).unwrap_err();
    assert_eq!(e.path(), out);
    assert!(e.reason().contains("refusing to replace it"), "{e}");
    assert!(out.join("main.rs").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
